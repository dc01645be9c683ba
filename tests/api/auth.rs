//! `/auth/*`: login, refresh rotation and reuse detection, logout,
//! logout-all, verify (with forged tokens), introspect, deleted users.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::RunQueryDsl;
use diesel::prelude::*;
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use tessera::settings::Secs;

use crate::backend_tests;
use crate::helpers::{
    Backend, PASSWORD, TEST_SECRET, TestApp, assert_problem, spawn_app, spawn_app_with,
};

backend_tests!(
    logout_keeps_the_revocation_while_the_token_could_still_verify,
    // POST /auth/login
    login_with_username_returns_a_token_pair,
    login_with_email_is_case_insensitive,
    access_token_header_names_hs256_jwt_and_a_kid,
    access_token_carries_the_contract_claims,
    each_login_gets_a_distinct_jti,
    wrong_password_and_unknown_user_get_identical_401s,
    login_without_a_password_is_422,
    // POST /auth/refresh
    refresh_returns_a_new_pair_and_retires_the_old_token,
    refresh_tokens_are_stored_only_as_hashes,
    reusing_a_rotated_refresh_token_revokes_its_family,
    unknown_refresh_token_is_401_invalid_token,
    expired_refresh_token_is_401_invalid_token,
    concurrent_refreshes_of_one_token_give_exactly_one_success,
    refresh_within_the_reuse_grace_window_succeeds,
    // POST /auth/logout
    logout_answers_204,
    logged_out_access_token_is_refused_on_logout_sensitive_routes,
    logged_out_access_token_still_works_on_stateless_routes,
    logout_with_a_refresh_token_revokes_that_refresh_token,
    logout_with_an_empty_body_works,
    logout_does_not_revoke_another_users_refresh_token,
    // POST /auth/logout-all
    logout_all_answers_204,
    logout_all_refuses_every_earlier_access_token,
    logout_all_revokes_every_refresh_token,
    login_after_logout_all_gets_a_working_token,
    // GET /auth/verify
    verify_returns_claims_and_identity_headers,
    verify_without_a_token_is_401_not_authenticated,
    verify_with_a_bad_token_is_401_invalid_token,
    token_scheme_is_an_alias_for_bearer,
    basic_scheme_is_401_not_authenticated,
    // Forged tokens on GET /auth/verify
    token_signed_with_the_configured_key_is_accepted,
    alg_none_token_is_refused,
    hs512_token_with_the_right_key_is_refused,
    tampered_payload_is_refused,
    token_signed_with_a_wrong_key_is_refused,
    token_with_an_unknown_kid_is_refused,
    token_expired_within_the_leeway_is_accepted,
    token_expired_beyond_the_leeway_is_refused,
    token_with_a_future_nbf_is_refused,
    token_with_a_wrong_issuer_is_refused,
    token_with_a_wrong_audience_is_refused,
    token_without_exp_is_refused,
    // POST /auth/introspect
    introspect_reports_an_active_access_token,
    introspect_reports_garbage_as_inactive,
    introspect_reports_an_expired_token_as_inactive,
    introspect_reports_a_revoked_token_as_inactive,
    introspect_accepts_a_form_body,
    introspect_reports_an_active_refresh_token,
    introspect_reports_a_rotated_refresh_token_as_inactive,
    introspect_response_is_not_cached,
    introspect_without_a_bearer_is_401,
    // Deleted users
    deleted_users_token_is_refused_on_logout_sensitive_routes,
);

// ---------------------------------------------------------------- helpers

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The JSON of one base64url segment of a JWT (0: header, 1: payload).
fn jwt_segment(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("a JWT segment");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

fn claims_of(token: &str) -> Value {
    jwt_segment(token, 1)
}

/// The `kid` the test server's key has.
fn test_kid() -> String {
    tessera::auth::tokens::hmac_kid(TEST_SECRET.as_bytes())
}

/// Signs `claims` with an arbitrary algorithm, key and `kid`.
fn sign(algorithm: Algorithm, kid: Option<String>, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

fn header_str(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `GET /auth/verify` with `token` as the bearer, expecting 401 invalid_token
/// and the RFC 6750 error parameter.
async fn assert_verify_refuses(app: &TestApp, token: &str) {
    let response = app.get("/auth/verify", Some(token)).await;
    let challenge = header_str(&response, "www-authenticate");
    assert_problem(response, 401, "invalid_token").await;
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// `POST /auth/introspect` with `{"token": token}`.
async fn introspect(app: &TestApp, bearer: &str, token: &str) -> reqwest::Response {
    app.post_json("/auth/introspect", Some(bearer), &json!({ "token": token }))
        .await
}

/// `POST /auth/introspect`, expecting 200; returns the body.
async fn introspection(app: &TestApp, bearer: &str, token: &str) -> Value {
    let response = introspect(app, bearer, token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `POST /auth/logout` with no body at all.
async fn logout_without_body(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `PATCH /users/{id}` changing the email, a logout-sensitive route.
async fn patch_email(app: &TestApp, id: &str, token: &str, email: &str) -> reqwest::Response {
    app.send_json(
        reqwest::Method::PATCH,
        &format!("/users/{id}"),
        Some(token),
        &json!({ "email": email }),
    )
    .await
}

/// Asserts that `token` gets 401 invalid_token on each logout-sensitive
/// route tried: PATCH /users/{id}, POST /auth/introspect, POST /auth/logout.
async fn assert_refused_on_logout_sensitive_routes(app: &TestApp, user_id: &str, token: &str) {
    assert_problem(
        patch_email(app, user_id, token, "changed@example.com").await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(introspect(app, token, token).await, 401, "invalid_token").await;
    assert_problem(
        app.post_json("/auth/logout", Some(token), &json!({})).await,
        401,
        "invalid_token",
    )
    .await;
}

#[derive(QueryableByName)]
struct StoredRefreshToken {
    #[diesel(sql_type = diesel::sql_types::Text)]
    token_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    family_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
}

fn stored_refresh_tokens(app: &TestApp) -> Vec<StoredRefreshToken> {
    let mut conn = app.db_conn();
    diesel::sql_query("SELECT token_hash, family_id, user_id FROM refresh_tokens")
        .load::<StoredRefreshToken>(&mut conn)
        .expect("read refresh_tokens")
}

// ---------------------------------------------------------------- login

async fn login_with_username_returns_a_token_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let response = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "cache-control"), "no-store");
    assert!(
        header_str(&response, "content-type").starts_with("application/json"),
        "content type"
    );
    let body: Value = response.json().await.unwrap();
    let object = body.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(
        refresh.len() >= 43,
        "at least 256 bits of base64: {refresh}"
    );
    assert_ne!(body["access_token"], body["refresh_token"]);
}

async fn login_with_email_is_case_insensitive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("alice").await;
    let response = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "ALICE@Example.COM", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["username"], "alice");
}

async fn access_token_header_names_hs256_jwt_and_a_kid(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let header = jwt_segment(&user.tokens.access, 0);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    let kid = header["kid"].as_str().expect("kid");
    assert!(!kid.is_empty());
    // Derived from the key: every token signed with it names the same kid.
    let again = app.login("alice", PASSWORD).await;
    assert_eq!(jwt_segment(&again.access, 0)["kid"], kid);
    assert_eq!(kid, test_kid());
}

async fn access_token_carries_the_contract_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = now();
    let user = app.user("alice").await;
    let after = now();
    let claims = claims_of(&user.tokens.access);
    assert_eq!(claims["iss"], "tessera");
    assert_eq!(claims["aud"], "tessera");
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["username"], "alice");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    let nbf = claims["nbf"].as_i64().expect("nbf");
    assert!(
        (before - 1..=after + 1).contains(&iat),
        "iat {iat} in [{before}, {after}]"
    );
    assert_eq!(exp - iat, 900);
    assert!(nbf <= iat + 1 && nbf >= iat - 1, "nbf {nbf} near iat {iat}");
    assert!(
        !claims["jti"].as_str().expect("jti").is_empty(),
        "jti is a non-empty string"
    );
}

async fn each_login_gets_a_distinct_jti(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let first_jti = claims_of(&user.tokens.access)["jti"].clone();
    let second_jti = claims_of(&second.access)["jti"].clone();
    assert!(first_jti.is_string());
    assert_ne!(first_jti, second_jti);
    assert_ne!(user.tokens.refresh, second.refresh);
}

async fn wrong_password_and_unknown_user_get_identical_401s(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let wrong_password = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "alice", "password": "not the password"}),
        )
        .await;
    let unknown_user = app
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "nobody", "password": "not the password"}),
        )
        .await;
    let challenge_a = header_str(&wrong_password, "www-authenticate");
    let challenge_b = header_str(&unknown_user, "www-authenticate");
    let a = assert_problem(wrong_password, 401, "invalid_credentials").await;
    let b = assert_problem(unknown_user, 401, "invalid_credentials").await;
    assert_eq!(challenge_a, challenge_b);
    for field in ["status", "code", "type", "title", "detail"] {
        assert_eq!(a[field], b[field], "{field}");
    }
}

async fn login_without_a_password_is_422(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let response = app
        .post_json("/auth/login", None, &json!({"username": "alice"}))
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["password"].is_array(), "{body}");
}

// ---------------------------------------------------------------- refresh

async fn refresh_returns_a_new_pair_and_retires_the_old_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app.refresh(&user.tokens.refresh).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    let new_refresh = body["refresh_token"].as_str().unwrap();
    let new_access = body["access_token"].as_str().unwrap();
    assert_ne!(new_refresh, user.tokens.refresh);
    assert_eq!(claims_of(new_access)["sub"], user.id.as_str());
    assert_ne!(
        claims_of(new_access)["jti"],
        claims_of(&user.tokens.access)["jti"]
    );
    assert_eq!(
        app.get("/auth/verify", Some(new_access)).await.status(),
        200
    );

    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn refresh_tokens_are_stored_only_as_hashes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app.refresh(&user.tokens.refresh).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();

    let rows = stored_refresh_tokens(&app);
    assert_eq!(rows.len(), 2, "the rotated token and its successor");
    for raw in [user.tokens.refresh.as_str(), rotated.as_str()] {
        for row in &rows {
            for column in [&row.token_hash, &row.family_id, &row.user_id] {
                assert!(!column.contains(raw), "raw refresh token stored: {column}");
            }
        }
    }
    assert!(rows.iter().all(|row| row.user_id == user.id));
}

async fn reusing_a_rotated_refresh_token_revokes_its_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app.refresh(&user.tokens.refresh).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let successor = body["refresh_token"].as_str().unwrap().to_owned();

    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(app.refresh(&successor).await, 401, "invalid_token").await;
}

async fn unknown_refresh_token_is_401_invalid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let unknown = URL_SAFE_NO_PAD.encode([7u8; 32]);
    assert_problem(app.refresh(&unknown).await, 401, "invalid_token").await;
}

async fn expired_refresh_token_is_401_invalid_token(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jwt.refresh_ttl_secs = Secs::new(1).unwrap()).await;
    let user = app.user("alice").await;
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn concurrent_refreshes_of_one_token_give_exactly_one_success(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    // A race shows only sometimes: several rounds, each with a fresh token.
    for round in 0..5 {
        let tokens = app.login("alice", PASSWORD).await;
        let responses = join_all((0..20).map(|_| app.refresh(&tokens.refresh))).await;
        let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            19,
            "round {round}: {statuses:?}"
        );
    }
}

async fn refresh_within_the_reuse_grace_window_succeeds(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jwt.refresh_reuse_grace_secs = Secs::new(30).unwrap()
    })
    .await;
    let user = app.user("alice").await;
    let first = app.refresh(&user.tokens.refresh).await;
    assert_eq!(first.status(), 200);
    let second = app.refresh(&user.tokens.refresh).await;
    assert_eq!(second.status(), 200);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].is_string());
}

// ---------------------------------------------------------------- logout

async fn logout_answers_204(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json("/auth/logout", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
}

async fn logged_out_access_token_is_refused_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json("/auth/logout", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    assert_refused_on_logout_sensitive_routes(&app, &user.id, &user.tokens.access).await;
}

async fn logged_out_access_token_still_works_on_stateless_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json("/auth/logout", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    let me = app.get("/users/me", Some(&user.tokens.access)).await;
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["id"], user.id.as_str());
}

async fn logout_with_a_refresh_token_revokes_that_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json(
            "/auth/logout",
            Some(&user.tokens.access),
            &json!({"refresh_token": user.tokens.refresh}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_problem(
        app.refresh(&user.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn logout_with_an_empty_body_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = logout_without_body(&app, &user.tokens.access).await;
    assert_eq!(response.status(), 204);
    assert_problem(
        logout_without_body(&app, &user.tokens.access).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn logout_does_not_revoke_another_users_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let response = app
        .post_json(
            "/auth/logout",
            Some(&alice.tokens.access),
            &json!({"refresh_token": bob.tokens.refresh}),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.refresh(&bob.tokens.refresh).await.status(), 200);
}

// ---------------------------------------------------------------- logout-all

async fn logout_all_answers_204(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
}

async fn logout_all_refuses_every_earlier_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let response = app
        .post_json("/auth/logout-all", Some(&second.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    for token in [&user.tokens.access, &second.access] {
        assert_refused_on_logout_sensitive_routes(&app, &user.id, token).await;
    }
}

async fn logout_all_revokes_every_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    for refresh in [&user.tokens.refresh, &second.refresh] {
        assert_problem(app.refresh(refresh).await, 401, "invalid_token").await;
    }
}

async fn login_after_logout_all_gets_a_working_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json("/auth/logout-all", Some(&user.tokens.access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    let fresh = app.login("alice", PASSWORD).await;
    let patched = patch_email(&app, &user.id, &fresh.access, "alice2@example.com").await;
    assert_eq!(patched.status(), 200);
    let active = introspection(&app, &fresh.access, &fresh.access).await;
    assert_eq!(active["active"], true);
    let logout = app
        .post_json("/auth/logout", Some(&fresh.access), &json!({}))
        .await;
    assert_eq!(logout.status(), 204);
}

// ---------------------------------------------------------------- verify

async fn verify_returns_claims_and_identity_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app.get("/auth/verify", Some(&user.tokens.access)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "x-user-id"), user.id);
    assert_eq!(header_str(&response, "x-user-role"), "user");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, claims_of(&user.tokens.access));
}

async fn verify_without_a_token_is_401_not_authenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/auth/verify", None).await;
    let challenge = header_str(&response, "www-authenticate");
    assert_problem(response, 401, "not_authenticated").await;
    assert_eq!(challenge, "Bearer realm=\"tessera\"");
    assert!(!challenge.contains("error="), "{challenge}");
}

async fn verify_with_a_bad_token_is_401_invalid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_verify_refuses(&app, "not.a.jwt").await;
}

async fn token_scheme_is_an_alias_for_bearer(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .client
        .get(app.url("/auth/verify"))
        .header("authorization", format!("Token {}", user.tokens.access))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "x-user-id"), user.id);
}

async fn basic_scheme_is_401_not_authenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let response = app
        .client
        .get(app.url("/auth/verify"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "not_authenticated").await;
}

// ---------------------------------------------------------------- forged tokens

async fn token_signed_with_the_configured_key_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let token = app.forge(&app.claims_for(&user.id));
    let response = app.get("/auth/verify", Some(&token)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "x-user-id"), user.id);
}

async fn alg_none_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let header = URL_SAFE_NO_PAD.encode(
        json!({"alg": "none", "typ": "JWT", "kid": test_kid()})
            .to_string()
            .as_bytes(),
    );
    let payload = URL_SAFE_NO_PAD.encode(app.claims_for(&user.id).to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_verify_refuses(&app, &token).await;
    }
}

async fn hs512_token_with_the_right_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let token = sign(
        Algorithm::HS512,
        Some(test_kid()),
        TEST_SECRET.as_bytes(),
        &app.claims_for(&user.id),
    );
    assert_verify_refuses(&app, &token).await;
}

async fn tampered_payload_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let parts: Vec<&str> = user.tokens.access.split('.').collect();
    let mut claims = claims_of(&user.tokens.access);
    claims["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_verify_refuses(&app, &forged).await;
}

async fn token_signed_with_a_wrong_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let token = sign(
        Algorithm::HS256,
        Some(test_kid()),
        b"a-different-secret-of-enough-length-0123",
        &app.claims_for(&user.id),
    );
    assert_verify_refuses(&app, &token).await;
}

async fn token_with_an_unknown_kid_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let token = sign(
        Algorithm::HS256,
        Some("0000000000000000".to_owned()),
        TEST_SECRET.as_bytes(),
        &app.claims_for(&user.id),
    );
    assert_verify_refuses(&app, &token).await;
}

async fn token_expired_within_the_leeway_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["iat"] = json!(now() - 900);
    claims["nbf"] = json!(now() - 900);
    claims["exp"] = json!(now() - 5);
    let response = app.get("/auth/verify", Some(&app.forge(&claims))).await;
    assert_eq!(response.status(), 200);
}

async fn token_expired_beyond_the_leeway_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["iat"] = json!(now() - 1000);
    claims["nbf"] = json!(now() - 1000);
    claims["exp"] = json!(now() - 60);
    assert_verify_refuses(&app, &app.forge(&claims)).await;
}

async fn token_with_a_future_nbf_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["nbf"] = json!(now() + 300);
    assert_verify_refuses(&app, &app.forge(&claims)).await;
}

async fn token_with_a_wrong_issuer_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["iss"] = json!("someone-else");
    assert_verify_refuses(&app, &app.forge(&claims)).await;
}

async fn token_with_a_wrong_audience_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["aud"] = json!("another-service");
    assert_verify_refuses(&app, &app.forge(&claims)).await;
}

async fn token_without_exp_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims.as_object_mut().unwrap().remove("exp");
    assert_verify_refuses(&app, &app.forge(&claims)).await;
}

// ---------------------------------------------------------------- introspect

async fn introspect_reports_an_active_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let body = introspection(&app, &user.tokens.access, &other.access).await;
    let claims = claims_of(&other.access);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["sub"], user.id.as_str());
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["iat"], claims["iat"]);
    assert_eq!(body["jti"], claims["jti"]);
    assert_eq!(body["username"], "alice");
}

async fn introspect_reports_garbage_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    for garbage in ["garbage", "a.b.c", ""] {
        let body = introspection(&app, &user.tokens.access, garbage).await;
        assert_eq!(body, json!({"active": false}), "{garbage:?}");
    }
}

async fn introspect_reports_an_expired_token_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let mut claims = app.claims_for(&user.id);
    claims["iat"] = json!(now() - 1000);
    claims["nbf"] = json!(now() - 1000);
    claims["exp"] = json!(now() - 60);
    let body = introspection(&app, &user.tokens.access, &app.forge(&claims)).await;
    assert_eq!(body, json!({"active": false}));
}

async fn introspect_reports_a_revoked_token_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let logout = app
        .post_json("/auth/logout", Some(&other.access), &json!({}))
        .await;
    assert_eq!(logout.status(), 204);
    let body = introspection(&app, &user.tokens.access, &other.access).await;
    assert_eq!(body, json!({"active": false}));
}

async fn introspect_accepts_a_form_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&user.tokens.access)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", user.tokens.access))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["sub"], user.id.as_str());
}

async fn introspect_reports_an_active_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let body = introspection(&app, &user.tokens.access, &user.tokens.refresh).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "refresh_token");
    assert_eq!(body["sub"], user.id.as_str());
    let exp = body["exp"].as_i64().expect("exp");
    assert!((exp - now() - 1_209_600).abs() < 60, "exp {exp}");
}

async fn introspect_reports_a_rotated_refresh_token_as_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    assert_eq!(app.refresh(&user.tokens.refresh).await.status(), 200);
    let body = introspection(&app, &user.tokens.access, &user.tokens.refresh).await;
    assert_eq!(body, json!({"active": false}));
}

async fn introspect_response_is_not_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = introspect(&app, &user.tokens.access, &user.tokens.access).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header_str(&response, "cache-control"), "no-store");
}

async fn introspect_without_a_bearer_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let response = app
        .post_json(
            "/auth/introspect",
            None,
            &json!({"token": user.tokens.access}),
        )
        .await;
    assert_problem(response, 401, "not_authenticated").await;
}

// ---------------------------------------------------------------- deleted users

async fn deleted_users_token_is_refused_on_logout_sensitive_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let response = app
        .client
        .delete(app.url(&format!("/users/{}", user.id)))
        .bearer_auth(&user.tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for token in [&user.tokens.access, &other.access] {
        assert_refused_on_logout_sensitive_routes(&app, &user.id, token).await;
    }
    let delete_again = app
        .client
        .delete(app.url(&format!("/users/{}", user.id)))
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_problem(delete_again, 401, "invalid_token").await;
}

async fn logout_keeps_the_revocation_while_the_token_could_still_verify(backend: Backend) {
    use tessera::db::schema::revoked_tokens;
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    assert_eq!(
        logout_without_body(&app, &user.tokens.access)
            .await
            .status(),
        204
    );
    let exp = claims_of(&user.tokens.access)["exp"].as_i64().unwrap();
    let kept_until: chrono::NaiveDateTime = revoked_tokens::table
        .select(revoked_tokens::expires_at)
        .first(&mut app.db_conn())
        .unwrap();
    let leeway = i64::try_from(app.settings.jwt.leeway_secs.get()).unwrap();
    assert_eq!(
        kept_until.and_utc().timestamp(),
        exp + leeway,
        "pruned no earlier than exp + leeway"
    );
}
