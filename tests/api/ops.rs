//! Liveness, readiness, JWKS, request ids, trailing slashes, unknown routes.

use crate::backend_tests;
use crate::helpers::{Backend, assert_problem, spawn_app};

backend_tests!(
    healthz_answers_ok,
    readyz_answers_ok_when_the_database_is_reachable,
    jwks_is_empty_under_hs256,
    unknown_route_is_a_problem_404,
    wrong_method_is_a_problem_405_with_allow,
    trailing_slash_reaches_the_same_route,
    valid_request_id_is_echoed,
    invalid_request_id_is_replaced,
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
