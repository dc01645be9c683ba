//! Passkeys: registration, the list, removal and the passwordless login,
//! driven by webauthn-authenticator-rs's software authenticator against the
//! real routes, and the attacks they must withstand (a ceremony used twice
//! or expired, another origin or RP id, a tampered assertion, a foreign user
//! handle, a removed passkey, a disabled account).

use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};
use webauthn_rs_proto::AllowCredentials;

use tessera::settings::FailureLimit;

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, TestUser, assert_problem, jwt_claims, spawn_app, spawn_app_with,
};

backend_tests!(
    registering_a_passkey_answers_it_and_lists_it,
    registration_needs_an_unrevoked_token,
    registering_again_excludes_the_passkeys_already_registered,
    a_passkey_signs_in_without_a_password_with_amr_hwk_user_and_aal2,
    a_refresh_of_a_passkey_session_keeps_amr_and_aal,
    a_login_ceremony_is_used_once,
    a_registration_ceremony_is_used_once,
    an_expired_ceremony_is_refused,
    another_users_registration_ceremony_cannot_be_finished,
    a_registration_made_on_another_origin_is_refused,
    an_assertion_made_on_another_origin_is_refused,
    an_assertion_for_another_rp_id_is_refused,
    a_tampered_assertion_is_refused,
    a_user_handle_naming_another_user_is_refused,
    a_deleted_passkey_can_no_longer_sign_in,
    a_disabled_account_cannot_sign_in_with_a_passkey,
    another_users_passkey_cannot_be_deleted,
    failed_passkey_logins_count_towards_the_address_throttle,
);

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The origin the test servers' default `webauthn.*` settings name.
const ORIGIN: &str = "http://localhost:8080";

/// A software authenticator that keeps one discoverable passkey.
///
/// `SoftPasskey` signs only for credential ids it is given and returns no
/// user handle; a discoverable authenticator finds its credential by the RP
/// id and returns the user handle it stored at registration. This wrapper
/// plays that part: it remembers both and fills them in, as a browser's
/// platform authenticator would.
struct Authenticator {
    soft: SoftPasskey,
    credential_id: Option<Vec<u8>>,
    user_handle: Option<Vec<u8>>,
}

impl Authenticator {
    fn new() -> Self {
        // `true`: claim user verification, as a platform authenticator
        // would after a fingerprint.
        Self {
            soft: SoftPasskey::new(true),
            credential_id: None,
            user_handle: None,
        }
    }

    /// `navigator.credentials.create()` on `origin` with the start's options.
    fn create(&mut self, start: &Value, origin: &str) -> Value {
        let mut options: CreationChallengeResponse =
            serde_json::from_value(json!({"publicKey": start["publicKey"]})).unwrap();
        self.user_handle = Some(options.public_key.user.id.clone());
        // tessera requires a discoverable credential, which `SoftPasskey`
        // cannot make (`NotSupported`); this wrapper is the part that keeps
        // it, so the software key is asked for a plain one.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
            selection.resident_key = None;
        }
        let credential = self
            .soft
            .do_registration(Url::parse(origin).unwrap(), options)
            .unwrap();
        self.credential_id = Some(credential.raw_id.clone());
        serde_json::to_value(credential).unwrap()
    }

    fn request_options(&self, start: &Value) -> RequestChallengeResponse {
        let mut options: RequestChallengeResponse =
            serde_json::from_value(json!({"publicKey": start["publicKey"]})).unwrap();
        assert!(
            options.public_key.allow_credentials.is_empty(),
            "a discoverable login names no credential"
        );
        options.public_key.allow_credentials = vec![AllowCredentials {
            type_: "public-key".to_owned(),
            id: self.credential_id.clone().expect("a registered passkey"),
            transports: None,
        }];
        options
    }

    fn with_user_handle(&self, mut credential: Value) -> Value {
        credential["response"]["userHandle"] = Value::from(base64url(
            self.user_handle.as_ref().expect("a registered passkey"),
        ));
        credential
    }

    /// `navigator.credentials.get()` on `origin` with the start's options.
    fn get(&mut self, start: &Value, origin: &str) -> Value {
        let options = self.request_options(start);
        let credential = self
            .soft
            .do_authentication(Url::parse(origin).unwrap(), options)
            .unwrap();
        self.with_user_handle(serde_json::to_value(credential).unwrap())
    }

    /// An assertion made for `rp_id` (the origin stays the right one),
    /// bypassing the client's check that the two match.
    fn get_for_rp_id(&mut self, start: &Value, rp_id: &str) -> Value {
        let mut options = self.request_options(start);
        options.public_key.rp_id = rp_id.to_owned();
        let credential = AuthenticatorBackend::perform_auth(
            &mut self.soft,
            Url::parse(ORIGIN).unwrap(),
            options.public_key,
            60_000,
        )
        .unwrap();
        self.with_user_handle(serde_json::to_value(credential).unwrap())
    }
}

async fn start_registration(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .post_json(
            "/auth/passkeys/register/start",
            Some(&user.tokens.access),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn finish_registration(
    app: &TestApp,
    user: &TestUser,
    ceremony_id: &Value,
    credential: &Value,
) -> reqwest::Response {
    app.post_json(
        "/auth/passkeys/register/finish",
        Some(&user.tokens.access),
        &json!({"ceremony_id": ceremony_id, "credential": credential, "name": "test key"}),
    )
    .await
}

/// Registers a passkey of `user` on `authenticator`; returns its JSON.
async fn register(app: &TestApp, user: &TestUser, authenticator: &mut Authenticator) -> Value {
    let start = start_registration(app, user).await;
    let credential = authenticator.create(&start, ORIGIN);
    let response = finish_registration(app, user, &start["ceremony_id"], &credential).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn start_login(app: &TestApp) -> Value {
    let response = app
        .post_json("/auth/passkeys/login/start", None, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn finish_login(app: &TestApp, ceremony_id: &Value, credential: &Value) -> reqwest::Response {
    app.post_json(
        "/auth/passkeys/login/finish",
        None,
        &json!({"ceremony_id": ceremony_id, "credential": credential}),
    )
    .await
}

/// A passkey login on the right origin; returns the response.
async fn sign_in(app: &TestApp, authenticator: &mut Authenticator) -> reqwest::Response {
    let start = start_login(app).await;
    let credential = authenticator.get(&start, ORIGIN);
    finish_login(app, &start["ceremony_id"], &credential).await
}

async fn list(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let response = app.get("/auth/passkeys", Some(&user.tokens.access)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `alice` with a registered passkey.
async fn enrolled(app: &TestApp) -> (TestUser, Authenticator) {
    let user = app.user("alice").await;
    let mut authenticator = Authenticator::new();
    register(app, &user, &mut authenticator).await;
    (user, authenticator)
}

async fn registering_a_passkey_answers_it_and_lists_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let start = start_registration(&app, &user).await;
    let options = &start["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["rp"]["name"], "tessera");
    assert_eq!(options["user"]["name"], "alice");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    // The login lists no credential ids: only a discoverable one signs in.
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["requireResidentKey"],
        true
    );

    let mut authenticator = Authenticator::new();
    let credential = authenticator.create(&start, ORIGIN);
    let response = finish_registration(&app, &user, &start["ceremony_id"], &credential).await;
    assert_eq!(response.status(), 201);
    let passkey: Value = response.json().await.unwrap();
    assert_eq!(passkey["name"], "test key");
    assert!(passkey["id"].is_string() && passkey["created_at"].is_string());
    assert_eq!(passkey["last_used_at"], Value::Null);
    assert_eq!(list(&app, &user).await, vec![passkey]);
}

async fn registration_needs_an_unrevoked_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let anonymous = app
        .post_json("/auth/passkeys/register/start", None, &json!({}))
        .await;
    assert_problem(anonymous, 401, "not_authenticated").await;
    let logout = app
        .post_json("/auth/logout", Some(&user.tokens.access), &json!({}))
        .await;
    assert!(logout.status().is_success());
    let revoked = app
        .post_json(
            "/auth/passkeys/register/start",
            Some(&user.tokens.access),
            &json!({}),
        )
        .await;
    assert_problem(revoked, 401, "invalid_token").await;
}

async fn registering_again_excludes_the_passkeys_already_registered(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, authenticator) = enrolled(&app).await;
    let start = start_registration(&app, &user).await;
    let excluded = start["publicKey"]["excludeCredentials"].as_array().unwrap();
    let registered = base64url(authenticator.credential_id.as_ref().unwrap());
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0]["id"], registered);
}

async fn a_passkey_signs_in_without_a_password_with_amr_hwk_user_and_aal2(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, mut authenticator) = enrolled(&app).await;
    let response = sign_in(&app, &mut authenticator).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let claims = jwt_claims(access);
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    assert_eq!(claims["aal"], "aal2");
    let me = app.get("/users/me", Some(access)).await;
    assert_eq!(me.status(), 200);
    let listed = list(&app, &user).await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
}

async fn a_refresh_of_a_passkey_session_keeps_amr_and_aal(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let body: Value = sign_in(&app, &mut authenticator)
        .await
        .json()
        .await
        .unwrap();
    let claims = app.refreshed_claims(&body).await;
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    assert_eq!(claims["aal"], "aal2");
}

async fn a_login_ceremony_is_used_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let start = start_login(&app).await;
    let credential = authenticator.get(&start, ORIGIN);
    let first = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_eq!(first.status(), 200);
    let replayed = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(replayed, 401, "invalid_credentials").await;
    // A fresh assertion over the spent challenge is refused too.
    let again = authenticator.get(&start, ORIGIN);
    let reused = finish_login(&app, &start["ceremony_id"], &again).await;
    assert_problem(reused, 401, "invalid_credentials").await;
}

async fn a_registration_ceremony_is_used_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let start = start_registration(&app, &user).await;
    let mut first = Authenticator::new();
    let credential = first.create(&start, ORIGIN);
    let response = finish_registration(&app, &user, &start["ceremony_id"], &credential).await;
    assert_eq!(response.status(), 201);
    let mut second = Authenticator::new();
    let other = second.create(&start, ORIGIN);
    let replayed = finish_registration(&app, &user, &start["ceremony_id"], &other).await;
    let body = assert_problem(replayed, 422, "validation_failed").await;
    assert!(body["errors"]["ceremony_id"].is_array(), "{body}");
    assert_eq!(list(&app, &user).await.len(), 1);
}

async fn an_expired_ceremony_is_refused(backend: Backend) {
    use diesel::prelude::*;
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let start = start_login(&app).await;
    let credential = authenticator.get(&start, ORIGIN);
    let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
    diesel::sql_query("UPDATE webauthn_ceremonies SET expires_at = $1")
        .bind::<diesel::sql_types::Timestamp, _>(past)
        .execute(&mut app.db_conn())
        .unwrap();
    let response = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn another_users_registration_ceremony_cannot_be_finished(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let start = start_registration(&app, &alice).await;
    let credential = Authenticator::new().create(&start, ORIGIN);
    let response = finish_registration(&app, &bob, &start["ceremony_id"], &credential).await;
    assert_problem(response, 422, "validation_failed").await;
    assert!(list(&app, &bob).await.is_empty());
    // Alice's own ceremony is still hers to finish.
    let response = finish_registration(&app, &alice, &start["ceremony_id"], &credential).await;
    assert_eq!(response.status(), 201);
}

async fn a_registration_made_on_another_origin_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.user("alice").await;
    let start = start_registration(&app, &user).await;
    let credential = Authenticator::new().create(&start, "https://phish.localhost");
    let response = finish_registration(&app, &user, &start["ceremony_id"], &credential).await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["credential"].is_array(), "{body}");
    assert!(list(&app, &user).await.is_empty());
}

async fn an_assertion_made_on_another_origin_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let start = start_login(&app).await;
    let credential = authenticator.get(&start, "https://phish.localhost");
    let response = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn an_assertion_for_another_rp_id_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let start = start_login(&app).await;
    let credential = authenticator.get_for_rp_id(&start, "example.com");
    let response = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn a_tampered_assertion_is_refused(backend: Backend) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let start = start_login(&app).await;
    let mut credential = authenticator.get(&start, ORIGIN);
    let signature = credential["response"]["signature"].as_str().unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    credential["response"]["signature"] = Value::from(URL_SAFE_NO_PAD.encode(bytes));
    let response = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn a_user_handle_naming_another_user_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut authenticator) = enrolled(&app).await;
    let bob = app.user("bob").await;
    let start = start_login(&app).await;
    let mut credential = authenticator.get(&start, ORIGIN);
    let bob_handle = uuid::Uuid::parse_str(&bob.id).unwrap();
    credential["response"]["userHandle"] = Value::from(base64url(bob_handle.as_bytes()));
    let response = finish_login(&app, &start["ceremony_id"], &credential).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn a_deleted_passkey_can_no_longer_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, mut authenticator) = enrolled(&app).await;
    let id = list(&app, &user).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app
        .send_json(
            Method::DELETE,
            &format!("/auth/passkeys/{id}"),
            Some(&user.tokens.access),
            &json!({}),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert!(list(&app, &user).await.is_empty());
    let response = sign_in(&app, &mut authenticator).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn a_disabled_account_cannot_sign_in_with_a_passkey(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, mut authenticator) = enrolled(&app).await;
    tessera::db::users::update(
        &mut app.db_conn(),
        &user.id,
        &tessera::db::users::UserChanges {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let response = sign_in(&app, &mut authenticator).await;
    assert_problem(response, 401, "invalid_credentials").await;
}

async fn another_users_passkey_cannot_be_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, _) = enrolled(&app).await;
    let bob = app.user("bob").await;
    let id = list(&app, &alice).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send_json(
            Method::DELETE,
            &format!("/auth/passkeys/{id}"),
            Some(&bob.tokens.access),
            &json!({}),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    assert_eq!(list(&app, &alice).await.len(), 1);
}

async fn failed_passkey_logins_count_towards_the_address_throttle(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.auth.address_max_failures = FailureLimit::new(2).unwrap();
    })
    .await;
    let (_, mut authenticator) = enrolled(&app).await;
    for _ in 0..2 {
        let start = start_login(&app).await;
        let credential = authenticator.get(&start, "https://phish.localhost");
        let response = finish_login(&app, &start["ceremony_id"], &credential).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    // Now even a good assertion waits.
    let response = sign_in(&app, &mut authenticator).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}
