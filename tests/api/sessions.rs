//! Sessions: each login starts one (a refresh-token family), access tokens
//! carry its id as `sid`, and a user lists and ends their own.

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, jwt_claims, spawn_app};

backend_tests!(
    a_login_starts_a_session_listed_with_its_user_agent_and_address,
    access_tokens_carry_the_sid_and_a_refresh_keeps_it,
    the_list_shows_the_most_recently_used_session_first_and_marks_the_current_one,
    ending_a_session_kills_its_refresh_and_access_tokens_but_not_the_other_sessions,
    ending_another_users_session_is_not_found,
    an_admin_may_end_any_session,
    logout_with_the_refresh_token_ends_the_session,
    logout_all_ends_every_session,
    reuse_detection_ends_the_session,
);

async fn login_with_agent(app: &TestApp, username: &str, agent: &str) -> Value {
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", agent)
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/auth/sessions", Some(token)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json::<Vec<Value>>().await.unwrap()
}

async fn end(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.send_json(
        Method::DELETE,
        &format!("/auth/sessions/{id}"),
        Some(token),
        &json!({}),
    )
    .await
}

fn sid(token: &str) -> String {
    jwt_claims(token)["sid"].as_str().expect("sid").to_owned()
}

async fn a_login_starts_a_session_listed_with_its_user_agent_and_address(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let long_agent = format!("phone/1.0 {}", "x".repeat(1000));
    let tokens = login_with_agent(&app, "alice", &long_agent).await;
    let access = tokens["access_token"].as_str().unwrap();
    let sessions = list(&app, access).await;
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session["id"], sid(access));
    assert_eq!(session["ip"], "127.0.0.1");
    let agent = session["user_agent"].as_str().unwrap();
    assert!(agent.starts_with("phone/1.0 "));
    assert_eq!(agent.chars().count(), 256, "truncated");
    assert_eq!(session["current"], true);
    assert!(session["created_at"].is_string());
    assert!(session["last_used_at"].is_string());
}

async fn access_tokens_carry_the_sid_and_a_refresh_keeps_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let first = sid(&user.tokens.access);
    uuid::Uuid::parse_str(&first).expect("a UUID");
    let response = app.refresh(&user.tokens.refresh).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(sid(body["access_token"].as_str().unwrap()), first);
    let other = app.login("alice", PASSWORD).await;
    assert_ne!(sid(&other.access), first, "each login is its own session");
}

async fn the_list_shows_the_most_recently_used_session_first_and_marks_the_current_one(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let older = login_with_agent(&app, "alice", "laptop").await;
    let newer = login_with_agent(&app, "alice", "phone").await;
    // Using the older session (a refresh) makes it the most recent.
    let response = app.refresh(older["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    let newer_access = newer["access_token"].as_str().unwrap();
    let sessions = list(&app, newer_access).await;
    let agents: Vec<&str> = sessions
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["laptop", "phone"]);
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["current"], true);
    assert_ne!(sessions[0]["created_at"], sessions[0]["last_used_at"]);
}

async fn ending_a_session_kills_its_refresh_and_access_tokens_but_not_the_other_sessions(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let lost_phone = app.login("alice", PASSWORD).await;
    let response = end(&app, &user.tokens.access, &sid(&lost_phone.access)).await;
    assert_eq!(response.status(), 204);
    // The ended session's tokens: refresh dead, access refused where it counts.
    assert_problem(app.refresh(&lost_phone.refresh).await, 401, "invalid_token").await;
    let response = app
        .post_json("/auth/logout-all", Some(&lost_phone.access), &json!({}))
        .await;
    assert_problem(response, 401, "invalid_token").await;
    // The caller's own session goes on.
    let sessions = list(&app, &user.tokens.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], sid(&user.tokens.access));
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
    // Ending it again: it is gone.
    let response = end(&app, &user.tokens.access, &sid(&lost_phone.access)).await;
    assert_problem(response, 404, "not_found").await;
}

async fn ending_another_users_session_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let response = end(&app, &mallory.tokens.access, &sid(&alice.tokens.access)).await;
    assert_problem(response, 404, "not_found").await;
    let response = end(
        &app,
        &mallory.tokens.access,
        &uuid::Uuid::new_v4().to_string(),
    )
    .await;
    assert_problem(response, 404, "not_found").await;
    assert_eq!(app.refresh(&alice.tokens.refresh).await.status(), 200);
}

async fn an_admin_may_end_any_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let admin = app.admin("root").await;
    let response = end(&app, &admin.tokens.access, &sid(&alice.tokens.access)).await;
    assert_eq!(response.status(), 204);
    assert_problem(
        app.refresh(&alice.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn logout_with_the_refresh_token_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let response = app
        .post_json(
            "/auth/logout",
            Some(&other.access),
            &json!({"refresh_token": other.refresh}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let sessions = list(&app, &user.tokens.access).await;
    let ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&user.tokens.access)]);
}

async fn logout_all_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    app.login("alice", PASSWORD).await;
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    let fresh = app.login("alice", PASSWORD).await;
    let sessions = list(&app, &fresh.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], sid(&fresh.access));
}

async fn reuse_detection_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let watcher = app.login("alice", PASSWORD).await;
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
    // The rotated token again: reuse, the family is revoked.
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    let sessions = list(&app, &watcher.access).await;
    let ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(&watcher.access)]);
    let response = app
        .post_json("/auth/logout", Some(&user.tokens.access), &json!({}))
        .await;
    assert_problem(response, 401, "invalid_token").await;
}
