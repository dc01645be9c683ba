//! Liveness, readiness, JWKS, request ids, trailing slashes, unknown routes.

use crate::backend_tests;
use chrono::{TimeDelta, Utc};
use tessera::db::{refresh_tokens, revocations};
use tessera::settings::{Origin, Secs};

use crate::helpers::{Backend, assert_problem, spawn_app, spawn_app_with};

backend_tests!(
    healthz_answers_ok,
    readyz_answers_ok_when_the_database_is_reachable,
    jwks_is_empty_under_hs256,
    unknown_route_is_a_problem_404,
    wrong_method_is_a_problem_405_with_allow,
    trailing_slash_reaches_the_same_route,
    valid_request_id_is_echoed,
    invalid_request_id_is_replaced,
    expired_revocations_and_refresh_tokens_are_pruned,
    cors_preflight_from_an_allowed_origin_is_answered_and_cached,
    cors_gives_nothing_to_an_origin_not_allowed,
    cors_exposes_the_headers_auth_verify_answers_with,
    metrics_count_requests_by_route_template_and_auth_outcomes,
    head_is_answered_wherever_get_is,
);

async fn healthz_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn readyz_answers_ok_when_the_database_is_reachable(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);
}

async fn jwks_is_empty_under_hs256(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("cache-control").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"keys": []}));
}

async fn unknown_route_is_a_problem_404(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.get("/no/such/route", None).await, 404, "not_found").await;
}

async fn wrong_method_is_a_problem_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .delete(app.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_problem(response, 405, "method_not_allowed").await;
}

async fn trailing_slash_reaches_the_same_route(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz/", None).await.status(), 200);
    let user = app.user("slash").await;
    let response = app.get("/users/me/", Some(&user.tokens.access)).await;
    assert_eq!(response.status(), 200);
}

async fn valid_request_id_is_echoed(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc.DEF_123-x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc.DEF_123-x");
    let missing = app.get("/nope", None).await;
    assert!(
        !missing.headers()["x-request-id"].is_empty(),
        "errors carry one too"
    );
}

async fn invalid_request_id_is_replaced(backend: Backend) {
    let app = spawn_app(backend).await;
    for bad in ["has space", "semi;colon", &"a".repeat(129)] {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.len() <= 128);
    }
}

async fn expired_revocations_and_refresh_tokens_are_pruned(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.database.prune_interval_secs = Secs::new(1).unwrap()
    })
    .await;
    let user = app.user("pruned").await;
    let past = Utc::now().naive_utc() - TimeDelta::hours(1);
    let future = Utc::now().naive_utc() + TimeDelta::hours(1);
    let mut conn = app.db_conn();
    revocations::revoke(&mut conn, "expired-jti", &user.id, past).unwrap();
    revocations::revoke(&mut conn, "live-jti", &user.id, future).unwrap();
    refresh_tokens::insert(
        &mut conn,
        &refresh_tokens::NewRefreshToken {
            token_hash: "expired-hash",
            family_id: "family",
            user_id: &user.id,
            created_at: past - TimeDelta::hours(1),
            expires_at: past,
            amr: "pwd",
        },
    )
    .unwrap();
    assert_eq!(app.count_rows("revoked_tokens"), 2);
    assert_eq!(
        app.count_rows("refresh_tokens"),
        2,
        "the login's token and the expired one"
    );
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        app.count_rows("revoked_tokens"),
        1,
        "only the live revocation stays"
    );
    assert_eq!(
        app.count_rows("refresh_tokens"),
        1,
        "only the login's token stays"
    );
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
}

/// PostgreSQL only: a database that disappears under a running server makes
/// database routes answer 503 quickly, while stateless checks keep working.
/// (An open SQLite file cannot be taken away from a process like this.)
#[actix_web::test]
#[cfg_attr(
    not(tessera_postgres_tests),
    ignore = "PostgreSQL suite skipped: set TESSERA_TEST_POSTGRES_URL to run it"
)]
async fn lost_database_answers_503_and_readyz_fails_postgres() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.database.connect_timeout_secs = Secs::new(1).unwrap()
    })
    .await;
    let user = app.user("lost").await;
    let crate::helpers::TestDb::Postgres {
        admin_url, name, ..
    } = &app.db
    else {
        unreachable!("a postgres app has a postgres database")
    };
    let mut admin = PgConnection::establish(admin_url).unwrap();
    diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .unwrap();
    let started = std::time::Instant::now();
    let body = assert_problem(
        app.get("/users", Some(&user.tokens.access)).await,
        503,
        "service_unavailable",
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!body.to_string().contains("postgres://"));
    assert_problem(app.get("/readyz", None).await, 503, "service_unavailable").await;
    assert_eq!(
        app.get("/auth/verify", Some(&user.tokens.access))
            .await
            .status(),
        200
    );
}

/// SQLite: while every database thread is held by a write waiting for a
/// lock, a further request waits `connect_timeout_secs` for a thread, then
/// answers 503; the writes finish once the lock is gone.
#[actix_web::test]
async fn a_request_finding_every_database_thread_busy_answers_503_sqlite() {
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database.connect_timeout_secs = Secs::new(1).unwrap()
    })
    .await;
    let user = app.user("waiting").await;
    let mut lock = app.db_conn();
    lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let threads = app.settings.database.pool_size.get();
    let names: Vec<String> = (0..threads).map(|i| format!("writer{i}")).collect();
    let writers = futures_util::future::join_all(names.iter().map(|name| app.register(name)));
    let (_, (response, waited)) = tokio::join!(writers, async {
        // Long enough for every write to be waiting on the lock.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let response = app.get("/users/me", Some(&user.tokens.access)).await;
        let waited = started.elapsed();
        lock.batch_execute("COMMIT").unwrap();
        (response, waited)
    });
    assert_problem(response, 503, "service_unavailable").await;
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&waited),
        "{waited:?}"
    );
}

async fn preflight(app: &crate::helpers::TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/users/me"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

async fn cors_preflight_from_an_allowed_origin_is_answered_and_cached(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.cors.allowed_origins = vec![Origin::Exact("https://app.example.com".to_owned())];
    })
    .await;
    let response = preflight(&app, "https://app.example.com").await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert!(
        headers["access-control-max-age"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 600
    );
    let user = app.user("alice").await;
    let simple = app
        .client
        .get(app.url("/users/me"))
        .bearer_auth(&user.tokens.access)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

async fn cors_exposes_the_headers_auth_verify_answers_with(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.cors.allowed_origins = vec![Origin::Exact("https://app.example.com".to_owned())];
    })
    .await;
    let user = app.user("alice").await;
    let response = app
        .client
        .get(app.url("/auth/verify"))
        .bearer_auth(&user.tokens.access)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["x-user-id", "x-user-role", "x-user-aal"] {
        assert!(response.headers().contains_key(name), "{name} missing");
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
}

async fn cors_gives_nothing_to_an_origin_not_allowed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.cors.allowed_origins = vec![Origin::Exact("https://app.example.com".to_owned())];
    })
    .await;
    let response = preflight(&app, "https://evil.example.net").await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(response.status().is_client_error());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "refusals are problem details too"
    );
}

async fn metrics_count_requests_by_route_template_and_auth_outcomes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    for id in [user.id.as_str(), "00000000-0000-0000-0000-000000000000"] {
        app.get(&format!("/users/{id}"), Some(&user.tokens.access))
            .await;
    }
    let failed = app
        .post_json(
            "/auth/login",
            None,
            &serde_json::json!({"username": "alice", "password": "wrong password"}),
        )
        .await;
    assert_eq!(failed.status(), 401);
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    for expected in [
        r#"tessera_http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#,
        r#"tessera_http_requests_total{method="GET",route="/users/{id}",status="404"} 1"#,
        r#"tessera_logins_total{outcome="success"} 1"#,
        r#"tessera_logins_total{outcome="invalid_credentials"} 1"#,
        r#"tessera_refreshes_total{outcome="rotated"} 1"#,
        r#"tessera_tokens_issued_total{kind="access"} 2"#,
        "tessera_argon2_duration_seconds_count",
        "tessera_argon2_in_flight 0",
        "tessera_db_pool_connections ",
        "tessera_db_pool_connections_in_use ",
        "tessera_db_pool_wait_seconds_count",
        "tessera_http_request_duration_seconds_bucket",
        // No log writer in the test server: none dropped.
        "tessera_log_lines_dropped_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(!text.contains(&user.id), "raw ids never become labels");
}

async fn head_is_answered_wherever_get_is(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    for path in [
        "/healthz",
        "/.well-known/jwks.json",
        "/auth/verify",
        "/users/me",
    ] {
        let response = app
            .client
            .head(app.url(path))
            .bearer_auth(&user.tokens.access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "HEAD {path}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "no body for HEAD {path}"
        );
    }
    let refused = app.client.head(app.url("/users/me")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let allow = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(allow.headers()["allow"], "HEAD, GET");
}
