//! Multi-factor authentication with TOTP: enrolment, the login's second
//! step, recovery codes, and the attacks they must withstand (a replayed
//! code, guessing, a reused recovery code or mfa_token).

use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, TestUser, assert_problem, jwt_claims, spawn_app};

backend_tests!(
    starting_totp_gives_a_secret_and_an_otpauth_uri_and_changes_nothing_yet,
    starting_totp_needs_the_right_password,
    a_wrong_code_does_not_confirm_totp,
    confirming_totp_gives_ten_recovery_codes_and_login_then_asks_for_a_second_factor,
    a_totp_code_finishes_the_login_with_amr_otp_and_aal2,
    a_token_without_a_second_factor_says_pwd_and_aal1,
    a_totp_code_is_accepted_only_once,
    a_recovery_code_signs_in_once,
    an_mfa_token_is_single_use,
    an_mfa_token_dies_after_five_wrong_codes,
    wrong_codes_count_towards_the_account_throttle,
    concurrent_wrong_codes_are_each_counted,
    a_refresh_keeps_amr_and_aal,
    removing_totp_with_the_password_makes_the_login_one_step_again,
    removing_totp_with_a_wrong_code_is_refused,
    the_totp_secret_is_stored_encrypted,
    starting_again_while_totp_is_active_is_a_conflict,
);

/// The code of `secret` (base32) for the time step `steps` away from now.
fn code(secret: &str, steps: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .expect("base32 secret")
        .as_bytes()
        .to_vec();
    let totp = totp_rs::Builder::new()
        .with_secret(bytes)
        .with_account_name("test")
        .build()
        .expect("totp");
    let now = chrono::Utc::now().timestamp() + steps * 30;
    totp.generate(u64::try_from(now).expect("time")).to_string()
}

async fn start(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .post_json(
            "/auth/mfa/totp",
            Some(&user.tokens.access),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn started_secret(app: &TestApp, user: &TestUser) -> String {
    start(app, user).await["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn confirm(app: &TestApp, user: &TestUser, code: &str) -> reqwest::Response {
    app.post_json(
        "/auth/mfa/totp/confirm",
        Some(&user.tokens.access),
        &json!({"code": code}),
    )
    .await
}

/// `alice` with TOTP active; returns her, the secret and the recovery codes.
async fn enrolled(app: &TestApp) -> (TestUser, String, Vec<String>) {
    let user = app.user("alice").await;
    let secret = started_secret(app, &user).await;
    let response = confirm(app, &user, &code(&secret, 0)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (user, secret, codes)
}

async fn login(app: &TestApp) -> reqwest::Response {
    app.post_json(
        "/auth/login",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    )
    .await
}

/// A login's first step: its `mfa_token`.
async fn mfa_token(app: &TestApp) -> String {
    let body = assert_problem(login(app).await, 403, "mfa_required").await;
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_json("/auth/mfa/verify", None, body).await
}

/// The second step with a TOTP code.
async fn verify_code(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    verify(app, &json!({"mfa_token": mfa_token, "code": code})).await
}

async fn starting_totp_gives_a_secret_and_an_otpauth_uri_and_changes_nothing_yet(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let body = start(&app, &user).await;
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/tessera:alice?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert_eq!(
        login(&app).await.status(),
        200,
        "not active until confirmed"
    );
}

async fn starting_totp_needs_the_right_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json(
            "/auth/mfa/totp",
            Some(&user.tokens.access),
            &json!({"password": "not the password"}),
        )
        .await;
    assert_problem(response, 400, "invalid_current_password").await;
}

async fn a_wrong_code_does_not_confirm_totp(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let secret = started_secret(&app, &user).await;
    let response = confirm(&app, &user, &code(&secret, 10)).await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["code"].is_array(), "{body}");
    assert_eq!(login(&app).await.status(), 200);
}

async fn confirming_totp_gives_ten_recovery_codes_and_login_then_asks_for_a_second_factor(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, _, codes) = enrolled(&app).await;
    assert_eq!(codes.len(), 10);
    let response = login(&app).await;
    let body = assert_problem(response, 403, "mfa_required").await;
    assert!(body["mfa_token"].as_str().unwrap().len() >= 43, "{body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none());
}

async fn a_totp_code_finishes_the_login_with_amr_otp_and_aal2(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let token = mfa_token(&app).await;
    // The confirmation used this step's code: the next step's is new.
    let response = verify_code(&app, &token, &code(&secret, 1)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let claims = jwt_claims(access);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["aal"], "aal2");
    let verified = app.get("/auth/verify", Some(access)).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.headers()["x-user-aal"], "aal2");
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["amr"], json!(["pwd", "otp"]));
}

async fn a_token_without_a_second_factor_says_pwd_and_aal1(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let claims = jwt_claims(&user.tokens.access);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["aal"], "aal1");
    let verified = app.get("/auth/verify", Some(&user.tokens.access)).await;
    assert_eq!(verified.headers()["x-user-aal"], "aal1");
}

async fn a_totp_code_is_accepted_only_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let next = code(&secret, 1);
    let first = verify_code(&app, &mfa_token(&app).await, &next).await;
    assert_eq!(first.status(), 200);
    let replay = verify_code(&app, &mfa_token(&app).await, &next).await;
    assert_problem(replay, 401, "invalid_credentials").await;
    // The confirmation's own code is spent too.
    let confirmation = code(&secret, 0);
    let again = verify_code(&app, &mfa_token(&app).await, &confirmation).await;
    assert_problem(again, 401, "invalid_credentials").await;
}

async fn a_recovery_code_signs_in_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, codes) = enrolled(&app).await;
    let typed = codes[3].to_uppercase();
    let response = verify(
        &app,
        &json!({"mfa_token": mfa_token(&app).await, "recovery_code": typed}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
    assert_eq!(claims["aal"], "aal2");
    let reused = verify(
        &app,
        &json!({"mfa_token": mfa_token(&app).await, "recovery_code": codes[3]}),
    )
    .await;
    assert_problem(reused, 401, "invalid_credentials").await;
}

async fn an_mfa_token_is_single_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let token = mfa_token(&app).await;
    let first = verify_code(&app, &token, &code(&secret, 1)).await;
    assert_eq!(first.status(), 200);
    let second = verify_code(&app, &token, &code(&secret, -1)).await;
    assert_problem(second, 401, "invalid_token").await;
}

async fn an_mfa_token_dies_after_five_wrong_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let token = mfa_token(&app).await;
    for _ in 0..5 {
        let wrong = verify_code(&app, &token, &code(&secret, 20)).await;
        assert_problem(wrong, 401, "invalid_credentials").await;
    }
    let right = verify_code(&app, &token, &code(&secret, 1)).await;
    assert_problem(right, 401, "invalid_token").await;
}

async fn wrong_codes_count_towards_the_account_throttle(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    // auth.login_max_failures is 5: two tokens, five wrong codes in all.
    for (token, tries) in [(mfa_token(&app).await, 3), (mfa_token(&app).await, 2)] {
        for _ in 0..tries {
            let wrong = verify_code(&app, &token, &code(&secret, 20)).await;
            assert_problem(wrong, 401, "invalid_credentials").await;
        }
    }
    let response = login(&app).await;
    assert_problem(response, 429, "throttled").await;
}

async fn concurrent_wrong_codes_are_each_counted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(mfa_token(&app).await);
    }
    let wrong = code(&secret, 20);
    let bodies: Vec<Value> = tokens
        .iter()
        .map(|token| json!({"mfa_token": token, "code": wrong}))
        .collect();
    let attempts = bodies.iter().map(|body| verify(&app, body));
    for response in futures_util::future::join_all(attempts).await {
        assert_problem(response, 401, "invalid_credentials").await;
    }
    assert_problem(login(&app).await, 429, "throttled").await;
}

async fn a_refresh_keeps_amr_and_aal(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let token = mfa_token(&app).await;
    let body: Value = verify_code(&app, &token, &code(&secret, 1))
        .await
        .json()
        .await
        .unwrap();
    let claims = app.refreshed_claims(&body).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["aal"], "aal2");
}

async fn removing_totp_with_the_password_makes_the_login_one_step_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, _, _) = enrolled(&app).await;
    let response = app
        .send_json(
            Method::DELETE,
            "/auth/mfa/totp",
            Some(&user.tokens.access),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(login(&app).await.status(), 200);
    assert_eq!(app.count_rows("mfa_recovery_codes"), 0);
}

async fn removing_totp_with_a_wrong_code_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, secret, _) = enrolled(&app).await;
    let response = app
        .send_json(
            Method::DELETE,
            "/auth/mfa/totp",
            Some(&user.tokens.access),
            &json!({"code": code(&secret, 20)}),
        )
        .await;
    assert_problem(response, 422, "validation_failed").await;
    assert_problem(login(&app).await, 403, "mfa_required").await;
}

async fn the_totp_secret_is_stored_encrypted(backend: Backend) {
    use diesel::prelude::*;
    use tessera::db::schema::mfa_totp;
    let app = spawn_app(backend).await;
    let (_, secret, _) = enrolled(&app).await;
    let sealed: String = mfa_totp::table
        .select(mfa_totp::sealed_secret)
        .first(&mut app.db_conn())
        .unwrap();
    let raw = totp_rs::Secret::try_from_base32(&secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    assert!(!sealed.contains(&secret));
    assert!(!sealed.contains(&hex::encode(&raw)));
    assert!(
        sealed.len() > 40,
        "nonce, ciphertext and tag: {} chars",
        sealed.len()
    );
}

async fn starting_again_while_totp_is_active_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, _, _) = enrolled(&app).await;
    let response = app
        .post_json(
            "/auth/mfa/totp",
            Some(&user.tokens.access),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_problem(response, 409, "conflict").await;
}
