//! Login throttling: per account (in the database, shared by instances) and
//! per client address (in memory), 429 with `Retry-After`, even with the
//! right password, identical for unknown and real accounts.

use serde_json::{Value, json};

use tessera::settings::{FailureLimit, Secs};

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app_with};

backend_tests!(
    an_account_is_throttled_after_max_failures_even_with_the_right_password,
    a_throttled_login_says_when_to_retry,
    an_unknown_account_is_throttled_exactly_like_a_real_one,
    a_success_resets_the_account_count,
    throttling_lifts_after_the_window,
    an_address_is_throttled_across_accounts,
    forwarded_for_is_ignored_from_an_untrusted_peer,
    account_throttling_holds_across_two_instances,
);

async fn login_from(
    app: &TestApp,
    base: &str,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    login_from(app, &app.address, username, password, None).await
}

async fn fail_times(app: &TestApp, username: &str, times: usize) {
    for _ in 0..times {
        assert_eq!(login(app, username, "wrong password!").await.status(), 401);
    }
}

async fn app_with_account_limit(backend: Backend, max: u32) -> TestApp {
    spawn_app_with(backend, move |s| {
        s.auth.login_max_failures = FailureLimit::new(max).unwrap()
    })
    .await
}

async fn an_account_is_throttled_after_max_failures_even_with_the_right_password(backend: Backend) {
    let app = app_with_account_limit(backend, 3).await;
    app.register("alice").await;
    fail_times(&app, "alice", 3).await;
    assert_problem(login(&app, "alice", PASSWORD).await, 429, "throttled").await;
    assert_problem(
        login(&app, "ALICE@example.com", PASSWORD).await,
        429,
        "throttled",
    )
    .await;
}

async fn a_throttled_login_says_when_to_retry(backend: Backend) {
    let app = app_with_account_limit(backend, 2).await;
    app.register("alice").await;
    fail_times(&app, "alice", 2).await;
    let response = login(&app, "alice", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert_problem(response, 429, "throttled").await;
}

/// The problem body without the detail's seconds, which tick.
fn shape(body: &Value) -> (Value, Value, Value, Value) {
    (
        body["type"].clone(),
        body["title"].clone(),
        body["status"].clone(),
        body["code"].clone(),
    )
}

async fn an_unknown_account_is_throttled_exactly_like_a_real_one(backend: Backend) {
    let app = app_with_account_limit(backend, 2).await;
    app.register("alice").await;
    fail_times(&app, "alice", 2).await;
    fail_times(&app, "nobody", 2).await;
    let real = login(&app, "alice", PASSWORD).await;
    let unknown = login(&app, "nobody", PASSWORD).await;
    assert_eq!(
        real.headers().contains_key("retry-after"),
        unknown.headers().contains_key("retry-after")
    );
    let real = assert_problem(real, 429, "throttled").await;
    let unknown = assert_problem(unknown, 429, "throttled").await;
    assert_eq!(shape(&real), shape(&unknown));
}

async fn a_success_resets_the_account_count(backend: Backend) {
    let app = app_with_account_limit(backend, 3).await;
    app.register("alice").await;
    fail_times(&app, "alice", 2).await;
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);
    fail_times(&app, "alice", 2).await;
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);
}

async fn throttling_lifts_after_the_window(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.login_max_failures = FailureLimit::new(2).unwrap();
        s.auth.login_window_secs = Secs::new(1).unwrap();
    })
    .await;
    app.register("alice").await;
    fail_times(&app, "alice", 2).await;
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 429);
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);
}

async fn an_address_is_throttled_across_accounts(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.address_max_failures = FailureLimit::new(3).unwrap();
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    app.register("alice").await;
    let attacker = Some("203.0.113.7");
    for name in ["bob", "carol", "dave"] {
        let response = login_from(&app, &app.address, name, "wrong password!", attacker).await;
        assert_eq!(response.status(), 401);
    }
    let blocked = login_from(&app, &app.address, "alice", PASSWORD, attacker).await;
    assert_problem(blocked, 429, "throttled").await;
    let elsewhere = login_from(&app, &app.address, "alice", PASSWORD, Some("198.51.100.1")).await;
    assert_eq!(elsewhere.status(), 200, "another client is not affected");
}

async fn forwarded_for_is_ignored_from_an_untrusted_peer(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.address_max_failures = FailureLimit::new(3).unwrap()
    })
    .await;
    app.register("alice").await;
    for (name, spoofed) in [
        ("bob", "192.0.2.1"),
        ("carol", "192.0.2.2"),
        ("dave", "192.0.2.3"),
    ] {
        let response = login_from(&app, &app.address, name, "wrong password!", Some(spoofed)).await;
        assert_eq!(response.status(), 401);
    }
    let response = login_from(&app, &app.address, "alice", PASSWORD, Some("192.0.2.4")).await;
    assert_problem(response, 429, "throttled").await;
}

async fn account_throttling_holds_across_two_instances(backend: Backend) {
    let app = app_with_account_limit(backend, 3).await;
    app.register("alice").await;
    let sibling = app.spawn_sibling().await;
    fail_times(&app, "alice", 2).await;
    let response = login_from(&app, &sibling, "alice", "wrong password!", None).await;
    assert_eq!(response.status(), 401);
    assert_problem(login(&app, "alice", PASSWORD).await, 429, "throttled").await;
    let on_sibling = login_from(&app, &sibling, "alice", PASSWORD, None).await;
    assert_problem(on_sibling, 429, "throttled").await;
}
