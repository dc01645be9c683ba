//! The error surface: problem+json bodies with stable codes for malformed,
//! mistyped, oversized and mislabelled bodies; no leaked secrets or internals;
//! the headers every error (and every response) carries.

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app};

backend_tests!(
    malformed_json_is_a_parse_error,
    malformed_json_is_a_parse_error_on_every_json_route_before_any_field_check,
    an_empty_body_is_a_parse_error,
    a_json_array_body_is_a_validation_error,
    a_mistyped_field_is_a_validation_error_that_does_not_echo_the_value,
    a_body_without_content_type_is_unsupported_media_type,
    a_text_plain_body_is_unsupported_media_type,
    a_body_over_the_size_limit_is_payload_too_large,
    an_unknown_json_field_is_a_validation_error_naming_it,
    a_failed_login_leaks_no_secret_or_internals,
    a_conflict_leaks_no_secret_or_internals,
    a_validation_error_leaks_no_secret_or_internals,
    a_missing_token_gets_a_bearer_challenge,
    an_invalid_token_gets_an_invalid_token_challenge,
    a_wrong_method_gets_405_with_allow,
    every_success_response_carries_a_request_id,
    every_error_response_carries_a_request_id,
    a_refusal_before_a_late_body_keeps_the_connection_usable,
    an_oversized_body_is_refused_and_the_connection_closed,
    an_overlong_uri_is_414,
    too_many_headers_is_431,
    an_explicit_null_for_an_optional_field_is_a_validation_error,
);

/// `POST /auth/login` with a raw body and an optional Content-Type.
async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.expect("request")
}

/// Asserts a problem response and that its raw text hides `secret` and any
/// trace of hashes, SQL or a stack trace.
async fn assert_problem_without_leaks(
    response: reqwest::Response,
    status: u16,
    code: &str,
    secret: &str,
) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let text = response.text().await.expect("body");
    for forbidden in [
        secret,
        "$argon2",
        "SELECT",
        "INSERT",
        "select ",
        "insert into",
        "panicked",
        "backtrace",
        "src/",
        ".rs:",
    ] {
        assert!(!text.contains(forbidden), "{forbidden:?} in {text}");
    }
    let body: Value = serde_json::from_str(&text).expect("problem json");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn malformed_json_is_a_parse_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = post_raw(
        &app,
        "/auth/login",
        Some("application/json"),
        r#"{"username": "alice", "password": "#,
    )
    .await;
    assert_problem(response, 400, "parse_error").await;
}

/// Syntax first, then shape: a body that is not well-formed JSON is 400
/// `parse_error` on every route that reads JSON, even when the part before
/// the syntax error names a field the route does not know.
async fn malformed_json_is_a_parse_error_on_every_json_route_before_any_field_check(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let token = user.tokens.access.as_str();
    let routes = [
        (Method::POST, "/users".to_owned(), None),
        (Method::POST, "/auth/login".to_owned(), None),
        (Method::POST, "/auth/exchange".to_owned(), None),
        (Method::POST, "/auth/refresh".to_owned(), None),
        (Method::POST, "/auth/logout".to_owned(), Some(token)),
        (Method::POST, "/auth/introspect".to_owned(), Some(token)),
        (Method::PATCH, format!("/users/{}", user.id), Some(token)),
        (
            Method::PUT,
            format!("/users/{}/password", user.id),
            Some(token),
        ),
    ];
    let malformed: [(&str, &[u8]); 5] = [
        ("truncated", br#"{"username": "#),
        (
            "truncated after an unknown field",
            br#"{"no_such_field": "x", "#,
        ),
        ("a missing value", br#"{"no_such_field": }"#),
        ("a trailing comma", br#"{"no_such_field": 1,}"#),
        ("invalid UTF-8", b"{\"no_such_field\": \"\xff\xfe\"}"),
    ];
    for (method, path, bearer) in &routes {
        for (what, body) in malformed {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 400, "{method} {path} with {what}");
            let problem: Value = response.json().await.expect("problem body");
            assert_eq!(
                problem["code"], "parse_error",
                "{method} {path} with {what}"
            );
        }
    }
}

async fn an_empty_body_is_a_parse_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = post_raw(&app, "/auth/login", Some("application/json"), "").await;
    assert_problem(response, 400, "parse_error").await;
}

async fn a_json_array_body_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    // The right credentials, but positionally: a body must be an object.
    let body = json!(["alice", PASSWORD]).to_string();
    let response = post_raw(&app, "/auth/login", Some("application/json"), body).await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"].is_object(), "{body}");
}

async fn a_mistyped_field_is_a_validation_error_that_does_not_echo_the_value(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": 12345678}),
        )
        .await;
    let body = assert_problem_without_leaks(response, 422, "validation_failed", "12345678").await;
    assert!(body["errors"]["password"].is_array(), "{body}");
}

async fn a_body_without_content_type_is_unsupported_media_type(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let response = post_raw(&app, "/auth/login", None, body).await;
    assert_problem(response, 415, "unsupported_media_type").await;
}

async fn a_text_plain_body_is_unsupported_media_type(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let response = post_raw(&app, "/auth/login", Some("text/plain"), body).await;
    assert_problem(response, 415, "unsupported_media_type").await;
}

async fn a_body_over_the_size_limit_is_payload_too_large(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.settings.server.max_body_bytes.get(), 65536);
    let body = json!({"username": "alice", "password": "x".repeat(70 * 1024)}).to_string();
    let response = post_raw(&app, "/auth/login", Some("application/json"), body).await;
    assert_problem(response, 413, "payload_too_large").await;
}

async fn an_unknown_json_field_is_a_validation_error_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD, "remember_me": true}),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["remember_me"].is_array(), "{body}");
}

async fn a_failed_login_leaks_no_secret_or_internals(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let wrong = "wrong password 2468";
    let response = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": wrong}),
        )
        .await;
    assert_problem_without_leaks(response, 401, "invalid_credentials", wrong).await;
}

async fn a_conflict_leaks_no_secret_or_internals(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let response = app
        .post_json(
            "/users",
            None,
            &json!({"username": "ALICE", "email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem_without_leaks(response, 409, "conflict", PASSWORD).await;
}

async fn a_validation_error_leaks_no_secret_or_internals(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_password = "s3cr3t-".repeat(20);
    let response = app
        .post_json(
            "/users",
            None,
            &json!({"username": "al ice", "email": "alice@", "password": long_password}),
        )
        .await;
    let body =
        assert_problem_without_leaks(response, 422, "validation_failed", &long_password[..20])
            .await;
    assert!(body["errors"]["password"].is_array(), "{body}");
}

async fn a_missing_token_gets_a_bearer_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/users/me", None).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    assert_problem(response, 401, "not_authenticated").await;
}

async fn an_invalid_token_gets_an_invalid_token_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/users/me", Some("not.a.jwt")).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("error_description=\""),
        "{challenge}"
    );
    assert_problem(response, 401, "invalid_token").await;
}

async fn a_wrong_method_gets_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.send_json(Method::PUT, "/users", None, &json!({})).await;
    let allow: Vec<String> = response.headers()["allow"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_owned())
        .collect();
    assert!(
        allow.contains(&"GET".to_owned()) && allow.contains(&"POST".to_owned()),
        "{allow:?}"
    );
    assert_problem(response, 405, "method_not_allowed").await;
}

fn assert_request_id(response: &reqwest::Response, what: &str) {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no X-Request-Id"))
        .to_str()
        .unwrap();
    assert!(!id.is_empty() && id.len() <= 128, "{what}: {id:?}");
}

async fn every_success_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .post_json(
            "/users",
            None,
            &json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_request_id(&created, "201 register");
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 200);
    assert_request_id(&login, "200 login");
    let access = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/users/me", Some(&access)).await;
    assert_eq!(me.status(), 200);
    assert_request_id(&me, "200 me");
    let deleted = app
        .client
        .delete(app.url(&format!("/users/{id}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_request_id(&deleted, "204 delete");
}

async fn every_error_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let cases: Vec<(u16, reqwest::Response)> = vec![
        (
            400,
            post_raw(&app, "/auth/login", Some("application/json"), "{").await,
        ),
        (401, app.get("/users/me", None).await),
        (404, app.get("/no/such/route", None).await),
        (
            405,
            app.send_json(Method::PUT, "/users", None, &json!({})).await,
        ),
        (
            409,
            app.post_json(
                "/users",
                None,
                &json!({"username": "Alice", "email": "a2@example.com", "password": PASSWORD}),
            )
            .await,
        ),
        (
            413,
            post_raw(
                &app,
                "/auth/login",
                Some("application/json"),
                "x".repeat(70 * 1024),
            )
            .await,
        ),
        (
            415,
            post_raw(&app, "/auth/login", Some("text/plain"), "{}").await,
        ),
        (
            422,
            app.post_json("/auth/login", None, &json!({"username": "alice"}))
                .await,
        ),
    ];
    for (status, response) in cases {
        assert_eq!(response.status(), status);
        assert_request_id(&response, &status.to_string());
    }
}

/// Sends raw HTTP/1.1 on one connection and returns everything read back.
fn raw_exchange(port: u16, parts: &[(&str, u64)]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    for (text, pause_ms) in parts {
        std::thread::sleep(std::time::Duration::from_millis(*pause_ms));
        stream.write_all(text.as_bytes()).unwrap();
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        if String::from_utf8_lossy(&received)
            .matches("HTTP/1.1 ")
            .count()
            >= 2
            && received.ends_with(b"}")
        {
            break;
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

async fn a_refusal_before_a_late_body_keeps_the_connection_usable(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = r#"{"refresh_token":"x"}"#;
    let head = format!(
        "POST /auth/logout HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer not-a-jwt\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let second = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    let port = app.port;
    let received = actix_web::rt::task::spawn_blocking(move || {
        raw_exchange(port, &[(&head, 0), (body, 300), (second, 50)])
    })
    .await
    .unwrap();
    assert!(received.starts_with("HTTP/1.1 401"), "{received}");
    assert!(
        received.contains("HTTP/1.1 200"),
        "the next request on the connection is answered: {received}"
    );
}

async fn an_oversized_body_is_refused_and_the_connection_closed(backend: Backend) {
    let app = spawn_app(backend).await;
    let head = "POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                Content-Length: 1000000\r\n\r\n";
    let port = app.port;
    let received =
        actix_web::rt::task::spawn_blocking(move || raw_exchange(port, &[(head, 0), ("{", 10)]))
            .await
            .unwrap();
    assert!(received.starts_with("HTTP/1.1 413"), "{received}");
    assert!(
        received.to_ascii_lowercase().contains("connection: close"),
        "{received}"
    );
}

async fn an_overlong_uri_is_414(backend: Backend) {
    let app = spawn_app(backend).await;
    let path = format!("/users?x={}", "a".repeat(5000));
    assert_problem(app.get(&path, None).await, 414, "uri_too_long").await;
}

async fn too_many_headers_is_431(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut request = app.client.get(app.url("/healthz"));
    for i in 0..70 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    assert_problem(request.send().await.unwrap(), 431, "headers_too_large").await;
}

async fn an_explicit_null_for_an_optional_field_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let patch = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/users/{}", user.id),
            Some(&user.tokens.access),
            &serde_json::json!({"username": null}),
        )
        .await;
    let body = assert_problem(patch, 422, "validation_failed").await;
    assert!(body["errors"]["username"].is_array(), "{body}");
    let logout = app
        .post_json(
            "/auth/logout",
            Some(&user.tokens.access),
            &serde_json::json!({"refresh_token": null}),
        )
        .await;
    assert_problem(logout, 422, "validation_failed").await;
}
