//! Account recovery and email verification, against a real SMTP server:
//! the tests read the delivered mail and follow its link.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tessera::settings::{EmailTransport, FailureLimit, Secs, Settings};

use crate::helpers::{
    Backend, PASSWORD, TestApp, assert_problem, jwt_claims, spawn_app, spawn_app_with,
};
use crate::mail::MailSink;
use crate::{backend_tests, smtp_tests};

smtp_tests!(
    registration_mails_a_link_that_verifies_the_email,
    a_reset_mail_link_sets_a_new_password_and_revokes_earlier_tokens,
    a_reset_token_works_once,
    an_expired_reset_token_is_refused,
    a_new_reset_request_replaces_the_earlier_link,
    an_unknown_address_gets_202_and_no_mail,
    a_disabled_account_gets_202_and_no_reset_mail,
    reset_requests_for_one_address_are_throttled_silently,
    an_own_email_change_waits_for_the_new_address_and_notifies_the_old_one,
    an_admins_email_change_applies_at_once,
    resending_replaces_the_verification_link,
    an_unverified_account_cannot_log_in_when_verification_is_required,
    a_down_mail_server_neither_fails_nor_slows_the_request_and_the_mail_arrives_later,
    a_mail_that_cannot_be_delivered_is_given_up_and_counted,
    opening_a_reset_link_does_not_use_its_token,
    the_reset_page_form_sets_the_new_password,
    the_verify_page_form_verifies_the_email,
    every_mail_has_a_text_and_an_html_part,
);

backend_tests!(
    an_unknown_verification_token_is_refused,
    an_unknown_reset_token_is_refused,
    a_reset_request_with_no_address_is_a_validation_error,
    a_reset_to_a_common_password_is_refused,
    resending_for_a_verified_email_is_a_conflict,
    the_pages_carry_the_security_headers,
    the_pages_escape_what_the_link_carries,
    email_verified_is_in_the_user_and_the_access_token,
);

/// A server that mails through `sink`, retrying after a second.
async fn app_with_mail(
    backend: Backend,
    sink: &MailSink,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = sink.url();
    spawn_app_with(backend, move |s| {
        s.email.transport = EmailTransport::Smtp;
        s.email.smtp_url = Some(SecretString::from(url));
        s.email.retry_initial_secs = Secs::new(1).unwrap();
        configure(s);
    })
    .await
}

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/auth/password-reset", None, &json!({"email": email}))
        .await
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/password-reset/confirm",
        None,
        &json!({"token": token, "new_password": password}),
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/auth/verify-email", None, &json!({"token": token}))
        .await
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> u16 {
    app.post_json(
        "/auth/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
    .status()
    .as_u16()
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.get("/users/me", Some(token))
        .await
        .json()
        .await
        .unwrap()
}

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn registration_mails_a_link_that_verifies_the_email(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let user = app.user("alice").await;
    assert_eq!(me(&app, &user.tokens.access).await["email_verified"], false);
    let mail = &sink.wait_for("alice@example.com", 1).await[0];
    assert!(mail.link().contains("/verify-email?token="), "{mail:?}");
    assert_eq!(verify(&app, &mail.token()).await.status(), 204);
    assert_eq!(me(&app, &user.tokens.access).await["email_verified"], true);
}

async fn a_reset_mail_link_sets_a_new_password_and_revokes_earlier_tokens(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let user = app.user("alice").await;
    assert_eq!(request_reset(&app, "Alice@Example.com").await.status(), 202);
    let mails = sink.wait_for("alice@example.com", 2).await;
    let reset = mails
        .iter()
        .find(|mail| mail.link().contains("/reset-password?token="))
        .expect("a reset mail");
    assert_eq!(
        confirm_reset(&app, &reset.token(), NEW_PASSWORD)
            .await
            .status(),
        204
    );
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 401);
    assert_eq!(login_status(&app, "alice", NEW_PASSWORD).await, 200);
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    let stale = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_problem(stale, 401, "invalid_token").await;
}

/// Registers alice, asks for a reset and returns its token.
async fn reset_token(app: &TestApp, sink: &MailSink) -> String {
    app.register("alice").await;
    sink.wait_for("alice@example.com", 1).await;
    assert_eq!(request_reset(app, "alice@example.com").await.status(), 202);
    let mails = sink.wait_for("alice@example.com", 2).await;
    mails
        .iter()
        .rfind(|mail| mail.link().contains("/reset-password"))
        .expect("a reset mail")
        .token()
}

async fn a_reset_token_works_once(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let token = reset_token(&app, &sink).await;
    assert_eq!(
        confirm_reset(&app, &token, NEW_PASSWORD).await.status(),
        204
    );
    let again = confirm_reset(&app, &token, "yet another passphrase").await;
    assert_problem(again, 401, "invalid_token").await;
    assert_eq!(login_status(&app, "alice", NEW_PASSWORD).await, 200);
}

async fn an_expired_reset_token_is_refused(backend: Backend) {
    use diesel::prelude::*;
    use tessera::db::schema::one_time_tokens;
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let token = reset_token(&app, &sink).await;
    diesel::update(one_time_tokens::table)
        .set(
            one_time_tokens::expires_at
                .eq(chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1)),
        )
        .execute(&mut app.db_conn())
        .unwrap();
    assert_problem(
        confirm_reset(&app, &token, NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(login_status(&app, "alice", PASSWORD).await, 200);
}

async fn a_new_reset_request_replaces_the_earlier_link(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let first = reset_token(&app, &sink).await;
    assert_eq!(request_reset(&app, "alice@example.com").await.status(), 202);
    let mails = sink.wait_for("alice@example.com", 3).await;
    let second = mails.last().unwrap().token();
    assert_ne!(first, second);
    assert_problem(
        confirm_reset(&app, &first, NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(
        confirm_reset(&app, &second, NEW_PASSWORD).await.status(),
        204
    );
}

async fn an_unknown_address_gets_202_and_no_mail(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let response = request_reset(&app, "nobody@example.com").await;
    assert_eq!(response.status(), 202);
    assert!(response.text().await.unwrap().is_empty());
    sink.assert_none_to("nobody@example.com", Duration::from_secs(2))
        .await;
}

async fn a_disabled_account_gets_202_and_no_reset_mail(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let admin = app.admin("root").await;
    let user = app.register("alice").await;
    sink.wait_for("alice@example.com", 1).await;
    let id = user["id"].as_str().unwrap();
    app.send_json(
        Method::PATCH,
        &format!("/users/{id}"),
        Some(&admin.tokens.access),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(request_reset(&app, "alice@example.com").await.status(), 202);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.wait_for("alice@example.com", 1).await.len(),
        1,
        "only the verification mail"
    );
}

async fn reset_requests_for_one_address_are_throttled_silently(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |s| {
        s.auth.reset_max_requests = FailureLimit::new(1).unwrap();
    })
    .await;
    app.register("alice").await;
    for _ in 0..3 {
        assert_eq!(request_reset(&app, "alice@example.com").await.status(), 202);
    }
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let resets = sink
        .wait_for("alice@example.com", 2)
        .await
        .into_iter()
        .filter(|mail| mail.link().contains("/reset-password"))
        .count();
    assert_eq!(resets, 1);
}

async fn an_own_email_change_waits_for_the_new_address_and_notifies_the_old_one(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let user = app.user("alice").await;
    let changed = app
        .send_json(
            Method::PATCH,
            &format!("/users/{}", user.id),
            Some(&user.tokens.access),
            &json!({"email": "alice@new.example"}),
        )
        .await;
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["email"], "alice@example.com");
    assert_eq!(changed["pending_email"], "alice@new.example");
    let confirmation = &sink.wait_for("alice@new.example", 1).await[0];
    let old = sink.wait_for("alice@example.com", 2).await;
    assert!(
        old.iter()
            .any(|mail| mail.text.contains("alice@new.example")),
        "a notice to the old address: {old:?}"
    );
    assert_eq!(verify(&app, &confirmation.token()).await.status(), 204);
    let now = me(&app, &user.tokens.access).await;
    assert_eq!(now["email"], "alice@new.example");
    assert_eq!(now["pending_email"], Value::Null);
    assert_eq!(now["email_verified"], true);
    assert_eq!(login_status(&app, "alice@new.example", PASSWORD).await, 200);
}

async fn an_admins_email_change_applies_at_once(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let admin = app.admin("root").await;
    let user = app.user("alice").await;
    let changed = app
        .send_json(
            Method::PATCH,
            &format!("/users/{}", user.id),
            Some(&admin.tokens.access),
            &json!({"email": "alice@new.example"}),
        )
        .await;
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["email"], "alice@new.example");
    assert_eq!(changed["email_verified"], false);
    // The new address is asked to verify itself.
    let mail = &sink.wait_for("alice@new.example", 1).await[0];
    assert_eq!(verify(&app, &mail.token()).await.status(), 204);
}

async fn resending_replaces_the_verification_link(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let user = app.user("alice").await;
    let first = sink.wait_for("alice@example.com", 1).await[0].token();
    let resent = app
        .post_json(
            "/auth/verify-email/resend",
            Some(&user.tokens.access),
            &json!({}),
        )
        .await;
    assert_eq!(resent.status(), 202);
    let second = sink.wait_for("alice@example.com", 2).await[1].token();
    assert_problem(verify(&app, &first).await, 401, "invalid_token").await;
    assert_eq!(verify(&app, &second).await.status(), 204);
}

async fn an_unverified_account_cannot_log_in_when_verification_is_required(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |s| s.auth.require_verified_email = true).await;
    app.register("alice").await;
    let refused = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_problem(refused, 403, "email_not_verified").await;
    // A wrong password still gets the usual answer: nothing is revealed.
    assert_eq!(login_status(&app, "alice", "not the password").await, 401);
    let mail = &sink.wait_for("alice@example.com", 1).await[0];
    assert_eq!(verify(&app, &mail.token()).await.status(), 204);
    let tokens = app.login("alice", PASSWORD).await;
    assert_eq!(jwt_claims(&tokens.access)["email_verified"], true);
}

async fn a_down_mail_server_neither_fails_nor_slows_the_request_and_the_mail_arrives_later(
    backend: Backend,
) {
    let mut sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    app.register("alice").await;
    sink.wait_for("alice@example.com", 1).await;
    sink.stop();
    let started = Instant::now();
    let response = request_reset(&app, "alice@example.com").await;
    assert_eq!(response.status(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    sink.resume();
    let mails = sink.wait_for("alice@example.com", 2).await;
    assert!(mails[1].link().contains("/reset-password"), "{mails:?}");
}

async fn a_mail_that_cannot_be_delivered_is_given_up_and_counted(backend: Backend) {
    let mut sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |s| {
        s.email.max_attempts = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    sink.stop();
    app.register("alice").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        if metrics.contains("tessera_emails_total{kind=\"verify_email\",outcome=\"failed\"} 1") {
            assert!(
                metrics
                    .contains("tessera_emails_total{kind=\"verify_email\",outcome=\"retried\"} 1")
            );
            break;
        }
        assert!(Instant::now() < deadline, "not given up: {metrics}");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn opening_a_reset_link_does_not_use_its_token(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let token = reset_token(&app, &sink).await;
    for _ in 0..2 {
        let page = app
            .get(&format!("/reset-password?token={token}"), None)
            .await;
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains(&token));
    }
    assert_eq!(
        confirm_reset(&app, &token, NEW_PASSWORD).await.status(),
        204
    );
}

async fn the_reset_page_form_sets_the_new_password(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let token = reset_token(&app, &sink).await;
    let response = app
        .client
        .post(app.url("/reset-password"))
        .form(&[
            ("token", token.as_str()),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Password changed"));
    assert_eq!(login_status(&app, "alice", NEW_PASSWORD).await, 200);
}

async fn the_verify_page_form_verifies_the_email(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    let user = app.user("alice").await;
    let token = sink.wait_for("alice@example.com", 1).await[0].token();
    let page = app.get(&format!("/verify-email?token={token}"), None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(me(&app, &user.tokens.access).await["email_verified"], false);
    let response = app
        .client
        .post(app.url("/verify-email"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(me(&app, &user.tokens.access).await["email_verified"], true);
}

async fn every_mail_has_a_text_and_an_html_part(backend: Backend) {
    let sink = MailSink::start();
    let app = app_with_mail(backend, &sink, |_| {}).await;
    reset_token(&app, &sink).await;
    for mail in sink.wait_for("alice@example.com", 2).await {
        assert!(!mail.subject.is_empty());
        assert!(mail.text.contains("token="), "{mail:?}");
        assert!(mail.html.contains("<a href="), "{mail:?}");
    }
}

async fn an_unknown_verification_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(verify(&app, "no-such-token").await, 401, "invalid_token").await;
}

async fn an_unknown_reset_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(
        confirm_reset(&app, "no-such-token", NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_reset_request_with_no_address_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(
        request_reset(&app, "not an address").await,
        422,
        "validation_failed",
    )
    .await;
}

async fn a_reset_to_a_common_password_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = assert_problem(
        confirm_reset(&app, "some-token", "password123").await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        body["errors"]["new_password"][0]
            .as_str()
            .unwrap()
            .contains("too common")
    );
}

async fn resending_for_a_verified_email_is_a_conflict(backend: Backend) {
    use diesel::prelude::*;
    use tessera::db::schema::users;
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    diesel::update(users::table)
        .set(users::email_verified.eq(true))
        .execute(&mut app.db_conn())
        .unwrap();
    let response = app
        .post_json(
            "/auth/verify-email/resend",
            Some(&user.tokens.access),
            &json!({}),
        )
        .await;
    assert_problem(response, 409, "conflict").await;
}

async fn the_pages_carry_the_security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/reset-password?token=x", "/verify-email?token=x"] {
        let page = app.get(path, None).await;
        assert_eq!(page.status(), 200);
        let headers = page.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

async fn the_pages_escape_what_the_link_carries(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app
        .get(
            "/reset-password?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            None,
        )
        .await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
}

async fn email_verified_is_in_the_user_and_the_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    assert_eq!(jwt_claims(&user.tokens.access)["email_verified"], false);
    let verified = app.get("/auth/verify", Some(&user.tokens.access)).await;
    let body: Value = verified.json().await.unwrap();
    assert_eq!(body["email_verified"], false);
}
