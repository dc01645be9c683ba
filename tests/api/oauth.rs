//! Service clients and OAuth 2.0: the token endpoint (client credentials,
//! refresh), its RFC 6749 §5.2 errors, throttling, introspection rules
//! (RFC 7662 §2.1), revocation (RFC 7009) and the metadata (RFC 8414).

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, jwt_claims, spawn_app, spawn_app_with};

backend_tests!(
    client_credentials_with_basic_give_a_service_token,
    client_credentials_in_the_form_give_a_service_token,
    a_requested_scope_within_the_clients_is_granted_alone,
    a_scope_outside_the_clients_is_invalid_scope,
    basic_and_form_credentials_together_are_invalid_request,
    a_wrong_secret_is_invalid_client_with_a_basic_challenge,
    no_client_credentials_is_invalid_client,
    an_unknown_grant_type_is_unsupported_grant_type,
    a_missing_grant_type_or_a_json_body_is_invalid_request,
    the_refresh_token_grant_rotates_like_auth_refresh,
    a_bad_refresh_token_is_invalid_grant,
    a_wrong_client_secret_is_throttled,
    a_service_token_is_refused_on_user_routes,
    a_service_token_verifies_at_auth_verify,
    a_user_cannot_introspect_another_users_token,
    a_service_client_introspects_any_token_by_basic_form_or_bearer,
    an_admin_introspects_any_token,
    wrong_client_credentials_on_introspection_are_invalid_client,
    a_deleted_clients_tokens_stop_working_on_logout_sensitive_routes,
    revoking_a_refresh_token_ends_its_session,
    revoking_an_access_token_makes_it_fail_on_logout_sensitive_routes,
    revoking_an_unknown_token_is_ok,
    revoking_with_wrong_client_credentials_is_invalid_client,
    the_metadata_document_names_the_endpoints,
);

async fn oauth_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    headers
}

async fn introspect(app: &TestApp, bearer: &str, token: &str) -> Value {
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(bearer)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn revoke(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/revoke"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn client_credentials_with_basic_give_a_service_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("users:read audit");
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "users:read audit");
    assert!(body.get("refresh_token").is_none());
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scope"], "users:read audit");
    assert_eq!(claims["role"], "service");
    for absent in ["username", "sid", "amr", "aal"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
}

async fn client_credentials_in_the_form_give_a_service_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("a");
    let response = app
        .oauth_token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["sub"],
        id
    );
}

async fn a_requested_scope_within_the_clients_is_granted_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("a b c");
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "c a")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "c a");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["scope"],
        "c a"
    );
}

async fn a_scope_outside_the_clients_is_invalid_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("a");
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "a admin")],
        )
        .await;
    oauth_error(response, 400, "invalid_scope").await;
}

async fn basic_and_form_credentials_together_are_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("a");
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    oauth_error(response, 400, "invalid_request").await;
}

async fn a_wrong_secret_is_invalid_client_with_a_basic_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = app.create_client("a");
    let response = app
        .oauth_token(
            Some((&id, "wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let headers = oauth_error(response, 401, "invalid_client").await;
    assert_eq!(headers["www-authenticate"], "Basic realm=\"tessera\"");
    let response = app
        .oauth_token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "no-such-client"),
                ("client_secret", "x"),
            ],
        )
        .await;
    oauth_error(response, 401, "invalid_client").await;
}

async fn no_client_credentials_is_invalid_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .oauth_token(None, &[("grant_type", "client_credentials")])
        .await;
    oauth_error(response, 401, "invalid_client").await;
}

async fn an_unknown_grant_type_is_unsupported_grant_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.oauth_token(None, &[("grant_type", "password")]).await;
    oauth_error(response, 400, "unsupported_grant_type").await;
}

async fn a_missing_grant_type_or_a_json_body_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.oauth_token(None, &[("scope", "a")]).await;
    oauth_error(response, 400, "invalid_request").await;
    let response = app
        .post_json(
            "/oauth/token",
            None,
            &json!({"grant_type": "client_credentials"}),
        )
        .await;
    oauth_error(response, 400, "invalid_request").await;
    let response = app
        .oauth_token(
            None,
            &[("grant_type", "client_credentials"), ("grant_type", "x")],
        )
        .await;
    oauth_error(response, 400, "invalid_request").await;
}

async fn the_refresh_token_grant_rotates_like_auth_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .oauth_token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &user.tokens.refresh),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id);
    assert_eq!(claims["sid"], jwt_claims(&user.tokens.access)["sid"]);
    // The presented token was rotated.
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_bad_refresh_token_is_invalid_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .oauth_token(
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", "nope")],
        )
        .await;
    oauth_error(response, 400, "invalid_grant").await;
    let response = app
        .oauth_token(None, &[("grant_type", "refresh_token")])
        .await;
    oauth_error(response, 400, "invalid_request").await;
}

async fn a_wrong_client_secret_is_throttled(backend: Backend) {
    // auth.login_max_failures is 5, as for logins.
    let app = spawn_app(backend).await;
    let (id, secret) = app.create_client("a");
    for _ in 0..5 {
        let response = app
            .oauth_token(
                Some((&id, "wrong")),
                &[("grant_type", "client_credentials")],
            )
            .await;
        oauth_error(response, 401, "invalid_client").await;
    }
    // Now even the right secret waits.
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 429, "throttled").await;
    // Introspection's client authentication counts the same way.
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(response, 429, "throttled").await;
    // Another client is not affected.
    let (other, other_secret) = app.create_client("a");
    let response = app
        .oauth_token(
            Some((&other, &other_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn a_service_token_is_refused_on_user_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let (_, _, token) = app.service_token("a").await;
    for path in [
        "/users",
        "/users/me",
        &format!("/users/{}", alice.id),
        "/auth/sessions",
    ] {
        assert_problem(
            app.get(path, Some(&token)).await,
            403,
            "user_token_required",
        )
        .await;
    }
    let response = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/users/{}", alice.id),
            Some(&token),
            &json!({"username": "eve"}),
        )
        .await;
    assert_problem(response, 403, "user_token_required").await;
    for path in ["/auth/logout-all", "/auth/logout"] {
        let response = app.post_json(path, Some(&token), &json!({})).await;
        assert_problem(response, 403, "user_token_required").await;
    }
}

async fn a_service_token_verifies_at_auth_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _, token) = app.service_token("a b").await;
    let response = app.get("/auth/verify", Some(&token)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user-id"], id.as_str());
    assert_eq!(response.headers()["x-user-role"], "service");
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["scope"], "a b");
    assert!(claims.get("amr").is_none());
}

async fn a_user_cannot_introspect_another_users_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    for token in [&alice.tokens.access, &alice.tokens.refresh] {
        let body = introspect(&app, &mallory.tokens.access, token).await;
        assert_eq!(body, json!({"active": false}));
    }
    let (_, _, service) = app.service_token("a").await;
    let body = introspect(&app, &mallory.tokens.access, &service).await;
    assert_eq!(body, json!({"active": false}));
    // Her own tokens she may see.
    let body = introspect(&app, &mallory.tokens.access, &mallory.tokens.access).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["sid"], jwt_claims(&mallory.tokens.access)["sid"]);
    let body = introspect(&app, &mallory.tokens.access, &mallory.tokens.refresh).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
}

async fn a_service_client_introspects_any_token_by_basic_form_or_bearer(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let (id, secret, service) = app.service_token("introspect").await;
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", &alice.tokens.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], alice.id);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["token_type"], "access_token");
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .form(&[
            ("token", alice.tokens.refresh.as_str()),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], alice.id);
    let body = introspect(&app, &service, &alice.tokens.access).await;
    assert_eq!(body["active"], true);
    // Its own token: a service token's members.
    let body = introspect(&app, &service, &service).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id);
    assert_eq!(body["scope"], "introspect");
    assert_eq!(body["role"], "service");
    assert!(body.get("username").is_none());
}

async fn an_admin_introspects_any_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let admin = app.admin("root").await;
    let body = introspect(&app, &admin.tokens.access, &alice.tokens.access).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], alice.id);
}

async fn wrong_client_credentials_on_introspection_are_invalid_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let (id, _) = app.create_client("a");
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .basic_auth(&id, Some("wrong"))
        .form(&[("token", &alice.tokens.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"tessera\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_client");
}

async fn a_deleted_clients_tokens_stop_working_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let admin = app.admin("root").await;
    let (id, secret, service) = app.service_token("a").await;
    assert_eq!(
        introspect(&app, &service, &alice.tokens.access).await["active"],
        true
    );
    let mut conn = app.db_conn();
    assert!(tessera::db::service_clients::delete(&mut conn, &id).unwrap());
    // Its bearer token no longer authenticates a logout-sensitive route...
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&service)
        .form(&[("token", &alice.tokens.access)])
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "invalid_token").await;
    // ...is inactive to introspection...
    assert_eq!(
        introspect(&app, &admin.tokens.access, &service).await,
        json!({"active": false})
    );
    // ...and its secret is refused.
    let response = app
        .oauth_token(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    oauth_error(response, 401, "invalid_client").await;
}

async fn revoking_a_refresh_token_ends_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = revoke(
        &app,
        &[
            ("token", user.tokens.refresh.as_str()),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    // The session ended, so its access token fails where revocation counts.
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn revoking_an_access_token_makes_it_fail_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let (id, secret, service) = app.service_token("a").await;
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", &user.tokens.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_problem(response, 401, "invalid_token").await;
    // Stateless routes still accept it until it expires.
    assert_eq!(
        app.get("/users/me", Some(&user.tokens.access))
            .await
            .status(),
        200
    );
    // The refresh token lives on: only the access token was revoked.
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
    // A service token revoked by JSON body.
    let response = app
        .post_json("/oauth/revoke", None, &json!({"token": service}))
        .await;
    assert_eq!(response.status(), 200);
    let admin = app.admin("root").await;
    assert_eq!(
        introspect(&app, &admin.tokens.access, &service).await,
        json!({"active": false})
    );
}

async fn revoking_an_unknown_token_is_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = revoke(&app, &[("token", "no-such-token")]).await;
    assert_eq!(response.status(), 200);
}

async fn revoking_with_wrong_client_credentials_is_invalid_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let (id, _) = app.create_client("a");
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&id, Some("wrong"))
        .form(&[("token", &user.tokens.refresh)])
        .send()
        .await
        .unwrap();
    oauth_error(response, 401, "invalid_client").await;
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
}

async fn the_metadata_document_names_the_endpoints(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.server.public_url = "https://auth.example.com/".to_owned();
    })
    .await;
    let response = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let base = "https://auth.example.com";
    assert_eq!(body["issuer"], base);
    assert_eq!(body["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(body["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(
        body["introspection_endpoint"],
        format!("{base}/auth/introspect")
    );
    assert_eq!(body["revocation_endpoint"], format!("{base}/oauth/revoke"));
    assert_eq!(
        body["grant_types_supported"],
        json!(["client_credentials", "refresh_token"])
    );
    assert_eq!(
        body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(body["introspection_endpoint_auth_methods_supported"].is_array());
    assert!(body["revocation_endpoint_auth_methods_supported"].is_array());
    assert!(body["response_types_supported"].is_array());
}
