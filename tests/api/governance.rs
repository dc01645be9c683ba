//! Account governance: admins disable and enable accounts and change roles;
//! the tokens issued before stop working where revocation is checked.

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, TestUser, assert_problem, jwt_claims, spawn_app};

backend_tests!(
    the_full_user_shows_is_active_email_verified_and_pending_email,
    a_disabled_account_cannot_log_in_and_answers_like_wrong_credentials,
    disabling_an_account_revokes_its_refresh_tokens_at_once,
    disabling_an_account_stops_its_access_tokens_on_logout_sensitive_routes,
    an_enabled_account_logs_in_again,
    only_an_admin_may_disable_an_account,
    a_role_change_stops_earlier_access_tokens_on_logout_sensitive_routes,
    after_a_role_change_a_refresh_carries_the_new_role,
    an_unchanged_role_revokes_nothing,
    registering_a_common_password_is_refused_saying_why,
    changing_to_a_common_password_is_refused,
);

async fn patch(app: &TestApp, id: &str, token: &str, body: &Value) -> reqwest::Response {
    app.send_json(Method::PATCH, &format!("/users/{id}"), Some(token), body)
        .await
}

/// An admin and a user, both logged in; the admin disables the user.
async fn disabled_user(app: &TestApp) -> (TestUser, TestUser) {
    let admin = app.admin("root").await;
    let user = app.user("alice").await;
    let response = patch(
        app,
        &user.id,
        &admin.tokens.access,
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["is_active"], false);
    (admin, user)
}

fn role_of(token: &str) -> Value {
    jwt_claims(token)["role"].clone()
}

async fn the_full_user_shows_is_active_email_verified_and_pending_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("alice").await;
    assert_eq!(user["is_active"], true);
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["pending_email"], Value::Null);
}

async fn a_disabled_account_cannot_log_in_and_answers_like_wrong_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    disabled_user(&app).await;
    let right = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let right = assert_problem(right, 401, "invalid_credentials").await;
    let wrong = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": "not the password"}),
        )
        .await;
    let wrong = assert_problem(wrong, 401, "invalid_credentials").await;
    assert_eq!(right["detail"], wrong["detail"]);
}

async fn disabling_an_account_revokes_its_refresh_tokens_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, user) = disabled_user(&app).await;
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn disabling_an_account_stops_its_access_tokens_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, user) = disabled_user(&app).await;
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn an_enabled_account_logs_in_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin, user) = disabled_user(&app).await;
    let response = patch(
        &app,
        &user.id,
        &admin.tokens.access,
        &json!({"is_active": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    app.login("alice", PASSWORD).await;
}

async fn only_an_admin_may_disable_an_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = patch(
        &app,
        &user.id,
        &user.tokens.access,
        &json!({"is_active": false}),
    )
    .await;
    assert_problem(response, 403, "permission_denied").await;
    app.login("alice", PASSWORD).await;
}

async fn a_role_change_stops_earlier_access_tokens_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let user = app.user("alice").await;
    let response = patch(
        &app,
        &user.id,
        &admin.tokens.access,
        &json!({"role": "admin"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let stale = patch(
        &app,
        &user.id,
        &user.tokens.access,
        &json!({"username": "alice2"}),
    )
    .await;
    assert_problem(stale, 401, "invalid_token").await;
    // Stateless routes still accept it until it expires, as the contract says.
    assert_eq!(
        app.get("/users/me", Some(&user.tokens.access))
            .await
            .status(),
        200
    );
}

async fn after_a_role_change_a_refresh_carries_the_new_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let user = app.user("alice").await;
    assert_eq!(role_of(&user.tokens.access), "user");
    patch(
        &app,
        &user.id,
        &admin.tokens.access,
        &json!({"role": "admin"}),
    )
    .await;
    let refreshed = app.refresh(&user.tokens.refresh).await;
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(role_of(body["access_token"].as_str().unwrap()), "admin");
}

async fn an_unchanged_role_revokes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let user = app.user("alice").await;
    patch(
        &app,
        &user.id,
        &admin.tokens.access,
        &json!({"role": "user"}),
    )
    .await;
    let response = patch(
        &app,
        &user.id,
        &user.tokens.access,
        &json!({"username": "alice2"}),
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn registering_a_common_password_is_refused_saying_why(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &json!({"username": "alice", "email": "alice@example.com", "password": "Password1"}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    let message = body["errors"]["password"][0].as_str().unwrap();
    assert!(message.contains("too common"), "{message}");
}

async fn changing_to_a_common_password_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .send_json(
            Method::PUT,
            &format!("/users/{}/password", user.id),
            Some(&user.tokens.access),
            &json!({"current_password": PASSWORD, "new_password": "iloveyou1"}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(
        body["errors"]["new_password"][0]
            .as_str()
            .unwrap()
            .contains("too common")
    );
    app.login("alice", PASSWORD).await;
}
