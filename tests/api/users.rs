//! `/users*`: registration, listing, reading, updating, password changes and
//! deletion, as the contract in API.md describes them.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tessera::accounts::{AccountRecord, insert};
use tessera::auth::password::PasswordHasher;
use tessera::domain::{Email, Role, Username};
use tessera::settings::Registration;

use crate::backend_tests;
use crate::helpers::{
    Backend, PASSWORD, TestApp, assert_problem, jwt_claims, spawn_app, spawn_app_with,
};

backend_tests!(
    a_username_equal_to_another_users_email_is_a_conflict,
    an_email_equal_to_another_users_username_is_a_conflict,
    renaming_to_another_users_email_is_a_conflict,
    listing_users_ignores_unknown_query_parameters,
    concurrent_registrations_of_distinct_users_all_succeed,
    concurrent_registrations_of_one_username_give_one_success_and_conflicts,
    registering_answers_201_with_a_location_header,
    registering_returns_the_full_user_without_a_password,
    registered_user_has_a_uuid_id_and_rfc3339_utc_timestamps,
    registering_a_taken_username_in_other_case_is_a_conflict,
    registering_a_taken_email_in_other_case_is_a_conflict,
    registering_an_invalid_email_is_a_validation_error,
    registering_a_username_with_a_space_is_a_validation_error,
    registering_a_seven_character_password_is_a_validation_error,
    registering_a_129_character_password_is_a_validation_error,
    registering_several_invalid_fields_names_each_of_them,
    registering_an_eight_character_password_is_accepted,
    registering_a_128_character_password_is_accepted,
    registering_with_a_role_field_is_refused_and_creates_no_admin,
    registering_with_an_is_admin_field_is_refused_and_creates_no_admin,
    admin_only_registration_without_a_token_is_unauthorized,
    admin_only_registration_by_a_user_is_forbidden,
    admin_only_registration_by_an_admin_creates_the_user,
    listing_users_requires_a_token,
    listing_users_returns_a_page_envelope,
    listing_users_defaults_to_twenty_per_page,
    listing_users_paginates_with_limit_and_offset_in_creation_order,
    listing_users_with_limit_zero_is_refused,
    listing_users_with_limit_over_100_is_refused,
    listing_users_with_a_negative_offset_is_refused,
    listing_users_with_a_non_numeric_limit_is_refused,
    following_next_cursors_lists_every_user_once_in_creation_order,
    listing_users_offers_no_next_page_after_the_last_user,
    a_cursor_stays_valid_when_its_user_is_deleted,
    listing_users_with_a_cursor_not_written_by_tessera_is_refused,
    listing_users_with_a_cursor_and_an_offset_is_refused,
    listing_users_total_follows_registrations_and_deletions,
    non_admin_listing_shows_only_public_fields,
    admin_listing_shows_full_fields,
    me_returns_the_full_user_of_the_token_subject,
    me_requires_a_token,
    reading_oneself_shows_full_fields,
    reading_another_user_shows_only_public_fields,
    admin_reading_another_user_sees_full_fields,
    reading_an_unknown_id_is_not_found,
    reading_a_non_uuid_id_is_not_found,
    patching_oneself_changes_username_and_makes_the_new_email_pending,
    patching_oneself_advances_updated_at,
    patching_to_a_taken_username_in_other_case_is_a_conflict,
    patching_to_an_invalid_email_is_a_validation_error,
    non_admin_patching_another_user_is_forbidden,
    non_admin_sending_a_role_is_forbidden,
    admin_promotion_shows_in_the_users_next_login_token,
    admin_patching_an_unknown_id_is_not_found,
    patching_with_an_empty_body_changes_nothing,
    changing_own_password_swaps_which_password_logs_in,
    changing_password_with_a_wrong_current_password_is_refused,
    changing_own_password_without_current_password_is_a_validation_error,
    changing_to_a_too_short_password_is_a_validation_error,
    changing_password_revokes_the_earlier_access_token,
    changing_password_revokes_the_earlier_refresh_token,
    admin_changes_another_users_password_without_current_password,
    non_admin_changing_another_users_password_is_forbidden,
    deleting_oneself_removes_the_account,
    deleted_user_cannot_log_in,
    deleted_users_refresh_token_fails,
    non_admin_deleting_another_user_is_forbidden,
    admin_deletes_another_user,
    admin_deleting_an_unknown_id_is_not_found,
);

/// The full user of the v1.1 contract: v1's fields, plus `is_active`,
/// `email_verified` and `pending_email`.
const FULL_FIELDS: [&str; 9] = [
    "created_at",
    "email",
    "email_verified",
    "id",
    "is_active",
    "pending_email",
    "role",
    "updated_at",
    "username",
];
const PUBLIC_FIELDS: [&str; 3] = ["created_at", "id", "username"];

/// The sorted keys of a JSON object.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn assert_full_user(user: &Value) {
    assert_eq!(keys(user), FULL_FIELDS, "{user}");
}

fn assert_public_user(user: &Value) {
    assert_eq!(keys(user), PUBLIC_FIELDS, "{user}");
}

fn registration(username: &str, email: &str, password: &str) -> Value {
    json!({"username": username, "email": email, "password": password})
}

fn timestamp(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
}

/// Inserts an account straight into the database (registration may be
/// closed), with the server's password settings; returns its id.
async fn insert_user(app: &TestApp, username: &str, role: Role) -> String {
    let hash = PasswordHasher::new(&app.settings.password, 1)
        .expect("hasher")
        .hash(SecretString::from(PASSWORD))
        .await
        .expect("hash");
    let email = Email::parse(&format!("{username}@example.com")).expect("email");
    let username = Username::parse(username).expect("username");
    let account = AccountRecord {
        username: &username,
        email: Some(&email),
        password_hash: &hash,
        role,
        created_at: chrono::Utc::now().naive_utc(),
        is_active: true,
        email_verified: false,
    };
    insert(&mut app.db_conn(), &account)
        .expect("insert account")
        .id
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

async fn patch(app: &TestApp, id: &str, token: &str, body: &Value) -> reqwest::Response {
    app.send_json(Method::PATCH, &format!("/users/{id}"), Some(token), body)
        .await
}

async fn change_password(app: &TestApp, id: &str, token: &str, body: &Value) -> reqwest::Response {
    app.send_json(
        Method::PUT,
        &format!("/users/{id}/password"),
        Some(token),
        body,
    )
    .await
}

async fn delete(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/users/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn login_response(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

// POST /users

async fn registering_answers_201_with_a_location_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let user = json_of(response).await;
    assert_eq!(location, format!("/users/{}", user["id"].as_str().unwrap()));
}

async fn registering_returns_the_full_user_without_a_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("Alice", "Alice@Example.com", PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_full_user(&user);
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["email"], "Alice@Example.com");
    assert_eq!(user["role"], "user");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains("$argon2"), "{text}");
    assert!(!text.contains("password"), "{text}");
}

async fn registered_user_has_a_uuid_id_and_rfc3339_utc_timestamps(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
    let user = app.register("alice").await;
    let id = user["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is not a UUID");
    for field in ["created_at", "updated_at"] {
        let at = timestamp(&user[field]);
        assert_eq!(at.offset().local_minus_utc(), 0, "{field} is not UTC");
        assert!(at > before && at < chrono::Utc::now() + chrono::TimeDelta::seconds(5));
    }
}

async fn registering_a_taken_username_in_other_case_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("ALICE", "other@example.com", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 409, "conflict").await;
    assert!(body["errors"]["username"].is_array(), "{body}");
    assert!(body["errors"].get("email").is_none(), "{body}");
}

async fn registering_a_taken_email_in_other_case_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("bob", "ALICE@Example.COM", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 409, "conflict").await;
    assert!(body["errors"]["email"].is_array(), "{body}");
    assert!(body["errors"].get("username").is_none(), "{body}");
}

async fn registering_an_invalid_email_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "not-an-email", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["email"], "{body}");
}

async fn registering_a_username_with_a_space_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("al ice", "alice@example.com", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["username"], "{body}");
}

async fn registering_a_seven_character_password_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", "1234567"),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["password"], "{body}");
}

async fn registering_a_129_character_password_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", &"p".repeat(129)),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["password"], "{body}");
}

async fn registering_several_invalid_fields_names_each_of_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json("/users", None, &registration("al ice", "nope@", "short"))
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(
        keys(&body["errors"]),
        ["email", "password", "username"],
        "{body}"
    );
    for field in ["email", "password", "username"] {
        let messages = body["errors"][field]
            .as_array()
            .expect("a list of messages");
        assert!(!messages.is_empty() && messages.iter().all(Value::is_string));
    }
    let list = app
        .get("/users", Some(&app.user("carol").await.tokens.access))
        .await;
    assert_eq!(json_of(list).await["total"], 1, "nothing was created");
}

async fn registering_an_eight_character_password_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", "k3v9-q2x"),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        login_response(&app, "alice", "k3v9-q2x").await.status(),
        200
    );
}

async fn registering_a_128_character_password_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let password = "p".repeat(128);
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", &password),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(login_response(&app, "alice", &password).await.status(), 200);
}

async fn refuses_extra_field_and_creates_no_admin(app: &TestApp, field: &str, value: Value) {
    let mut body = registration("mallory", "mallory@example.com", PASSWORD);
    body[field] = value;
    let response = app.post_json("/users", None, &body).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert!(problem["errors"][field].is_array(), "{problem}");
    assert_problem(
        login_response(app, "mallory", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let admin = app.admin("root").await;
    let list = json_of(app.get("/users", Some(&admin.tokens.access)).await).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["username"], "root");
}

async fn registering_with_a_role_field_is_refused_and_creates_no_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    refuses_extra_field_and_creates_no_admin(&app, "role", json!("admin")).await;
}

async fn registering_with_an_is_admin_field_is_refused_and_creates_no_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    refuses_extra_field_and_creates_no_admin(&app, "is_admin", json!(true)).await;
}

// POST /users with auth.registration = admin_only

async fn spawn_admin_only(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.auth.registration = Registration::AdminOnly).await
}

async fn admin_only_registration_without_a_token_is_unauthorized(backend: Backend) {
    let app = spawn_admin_only(backend).await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("alice", "alice@example.com", PASSWORD),
        )
        .await;
    assert_problem(response, 401, "not_authenticated").await;
}

async fn admin_only_registration_by_a_user_is_forbidden(backend: Backend) {
    let app = spawn_admin_only(backend).await;
    insert_user(&app, "bob", Role::User).await;
    let bob = app.login("bob", PASSWORD).await;
    let response = app
        .post_json(
            "/users",
            Some(&bob.access),
            &registration("alice", "alice@example.com", PASSWORD),
        )
        .await;
    assert_problem(response, 403, "permission_denied").await;
    assert_problem(
        login_response(&app, "alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn admin_only_registration_by_an_admin_creates_the_user(backend: Backend) {
    let app = spawn_admin_only(backend).await;
    insert_user(&app, "root", Role::Admin).await;
    let root = app.login("root", PASSWORD).await;
    let response = app
        .post_json(
            "/users",
            Some(&root.access),
            &registration("alice", "alice@example.com", PASSWORD),
        )
        .await;
    assert_eq!(response.status(), 201);
    let user = json_of(response).await;
    assert_full_user(&user);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "user");
    assert_eq!(login_response(&app, "alice", PASSWORD).await.status(), 200);
}

// GET /users

async fn listing_users_requires_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    assert_problem(app.get("/users", None).await, 401, "not_authenticated").await;
}

async fn listing_users_returns_a_page_envelope(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let response = app.get("/users", Some(&alice.tokens.access)).await;
    assert_eq!(response.status(), 200);
    let page = json_of(response).await;
    assert_eq!(
        keys(&page),
        ["items", "limit", "next", "next_cursor", "offset", "total"],
        "{page}"
    );
    assert_eq!(page["limit"], 20);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["total"], 2);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
}

async fn listing_users_defaults_to_twenty_per_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.user("user00").await;
    for n in 1..21 {
        app.register(&format!("user{n:02}")).await;
    }
    let page = json_of(app.get("/users", Some(&first.tokens.access)).await).await;
    assert_eq!(page["limit"], 20);
    assert_eq!(page["total"], 21);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert_eq!(items[0]["username"], "user00");
    assert_eq!(items[19]["username"], "user19");
}

async fn listing_users_paginates_with_limit_and_offset_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.user("user0").await;
    for n in 1..5 {
        app.register(&format!("user{n}")).await;
    }
    let response = app
        .get("/users?limit=2&offset=2", Some(&first.tokens.access))
        .await;
    assert_eq!(response.status(), 200);
    let page = json_of(response).await;
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 2);
    assert_eq!(page["total"], 5);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user2", "user3"]);
    let past_the_end = json_of(
        app.get("/users?limit=2&offset=5", Some(&first.tokens.access))
            .await,
    )
    .await;
    assert_eq!(past_the_end["items"], json!([]));
    assert_eq!(past_the_end["total"], 5);
}

/// A refused query: a 4xx problem naming a query error.
async fn assert_query_refused(app: &TestApp, query: &str) {
    let alice = app.user("alice").await;
    let response = app
        .get(&format!("/users?{query}"), Some(&alice.tokens.access))
        .await;
    let status = response.status().as_u16();
    assert!(status == 400 || status == 422, "{query}: {status}");
    let code = if status == 400 {
        "invalid_query"
    } else {
        "validation_failed"
    };
    assert_problem(response, status, code).await;
}

async fn listing_users_with_limit_zero_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_query_refused(&app, "limit=0").await;
}

async fn listing_users_with_limit_over_100_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_query_refused(&app, "limit=101").await;
}

async fn listing_users_with_a_negative_offset_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_query_refused(&app, "offset=-1").await;
}

async fn listing_users_with_a_non_numeric_limit_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_query_refused(&app, "limit=abc").await;
}

fn usernames(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn following_next_cursors_lists_every_user_once_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.user("user0").await;
    for n in 1..5 {
        app.register(&format!("user{n}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/users?limit=2".to_owned();
    for _ in 0..5 {
        let page = json_of(app.get(&path, Some(&first.tokens.access)).await).await;
        assert_eq!(page["total"], 5, "{page}");
        seen.extend(usernames(&page));
        match page["next"].as_str() {
            Some(next) => {
                let cursor = page["next_cursor"].as_str().unwrap();
                assert_eq!(next, format!("/users?limit=2&cursor={cursor}"));
                path = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["user0", "user1", "user2", "user3", "user4"]);
}

async fn listing_users_offers_no_next_page_after_the_last_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.user("user0").await;
    app.register("user1").await;
    let page = json_of(app.get("/users?limit=2", Some(&first.tokens.access)).await).await;
    assert_eq!(usernames(&page), ["user0", "user1"]);
    assert_eq!(page["next"], Value::Null, "{page}");
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
}

async fn a_cursor_stays_valid_when_its_user_is_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let one = app.user("user1").await;
    app.register("user2").await;
    let page = json_of(app.get("/users?limit=2", Some(&admin.tokens.access)).await).await;
    assert_eq!(usernames(&page), ["root", "user1"]);
    let next = page["next"].as_str().unwrap().to_owned();
    assert_eq!(
        delete(&app, &one.id, &admin.tokens.access).await.status(),
        204
    );
    let rest = json_of(app.get(&next, Some(&admin.tokens.access)).await).await;
    assert_eq!(usernames(&rest), ["user2"]);
    assert_eq!(rest["total"], 2);
}

async fn listing_users_with_a_cursor_not_written_by_tessera_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = app
        .get("/users?cursor=bm90LWEtY3Vyc29y", Some(&alice.tokens.access))
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["cursor"].is_array(), "{body}");
}

async fn listing_users_with_a_cursor_and_an_offset_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let page = json_of(app.get("/users?limit=1", Some(&alice.tokens.access)).await).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let response = app
        .get(
            &format!("/users?cursor={cursor}&offset=1"),
            Some(&alice.tokens.access),
        )
        .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["offset"].is_array(), "{body}");
}

async fn listing_users_total_follows_registrations_and_deletions(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let total = |page: Value| page["total"].as_i64().unwrap();
    let page = json_of(app.get("/users", Some(&admin.tokens.access)).await).await;
    assert_eq!(total(page), 3);
    assert_eq!(
        delete(&app, &alice.id, &admin.tokens.access).await.status(),
        204
    );
    let page = json_of(app.get("/users", Some(&admin.tokens.access)).await).await;
    assert_eq!(total(page), 2);
}

async fn non_admin_listing_shows_only_public_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    app.register("bob").await;
    let text = app
        .get("/users", Some(&alice.tokens.access))
        .await
        .text()
        .await
        .unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    items.iter().for_each(assert_public_user);
    assert!(!text.contains("@example.com"), "{text}");
}

async fn admin_listing_shows_full_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob").await;
    let root = app.admin("root").await;
    let page = json_of(app.get("/users", Some(&root.tokens.access)).await).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    items.iter().for_each(assert_full_user);
    assert_eq!(items[0]["email"], "bob@example.com");
    assert_eq!(items[1]["role"], "admin");
}

// GET /users/me

async fn me_returns_the_full_user_of_the_token_subject(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob").await;
    let alice = app.user("alice").await;
    let response = app.get("/users/me", Some(&alice.tokens.access)).await;
    assert_eq!(response.status(), 200);
    let me = json_of(response).await;
    assert_full_user(&me);
    assert_eq!(me["id"], alice.id);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["role"], "user");
}

async fn me_requires_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.get("/users/me", None).await, 401, "not_authenticated").await;
}

// GET /users/{id}

async fn reading_oneself_shows_full_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = app
        .get(&format!("/users/{}", alice.id), Some(&alice.tokens.access))
        .await;
    assert_eq!(response.status(), 200);
    let user = json_of(response).await;
    assert_full_user(&user);
    assert_eq!(user["id"], alice.id);
    assert_eq!(user["email"], "alice@example.com");
}

async fn reading_another_user_shows_only_public_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let response = app
        .get(&format!("/users/{}", bob.id), Some(&alice.tokens.access))
        .await;
    assert_eq!(response.status(), 200);
    let user = json_of(response).await;
    assert_public_user(&user);
    assert_eq!(user["id"], bob.id);
    assert_eq!(user["username"], "bob");
}

async fn admin_reading_another_user_sees_full_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.user("bob").await;
    let root = app.admin("root").await;
    let response = app
        .get(&format!("/users/{}", bob.id), Some(&root.tokens.access))
        .await;
    assert_eq!(response.status(), 200);
    let user = json_of(response).await;
    assert_full_user(&user);
    assert_eq!(user["email"], "bob@example.com");
    assert_eq!(user["role"], "user");
}

async fn reading_an_unknown_id_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let path = format!("/users/{}", uuid::Uuid::new_v4());
    assert_problem(
        app.get(&path, Some(&alice.tokens.access)).await,
        404,
        "not_found",
    )
    .await;
}

async fn reading_a_non_uuid_id_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    assert_problem(
        app.get("/users/not-a-uuid", Some(&alice.tokens.access))
            .await,
        404,
        "not_found",
    )
    .await;
}

// PATCH /users/{id}

async fn patching_oneself_changes_username_and_makes_the_new_email_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = patch(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"username": "alicia", "email": "alicia@example.org"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let user = json_of(response).await;
    assert_full_user(&user);
    assert_eq!(user["id"], alice.id);
    assert_eq!(user["username"], "alicia");
    // v1.1: one's own new email waits for the new address to confirm it.
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["pending_email"], "alicia@example.org");
    let stored = json_of(
        app.get(&format!("/users/{}", alice.id), Some(&alice.tokens.access))
            .await,
    )
    .await;
    assert_eq!(stored["username"], "alicia");
    assert_eq!(stored["pending_email"], "alicia@example.org");
}

async fn patching_oneself_advances_updated_at(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.register("alice").await;
    let tokens = app.login("alice", PASSWORD).await;
    let id = created["id"].as_str().unwrap();
    let user = json_of(patch(&app, id, &tokens.access, &json!({"username": "alicia"})).await).await;
    assert_eq!(user["created_at"], created["created_at"]);
    assert!(
        timestamp(&user["updated_at"]) > timestamp(&created["updated_at"]),
        "{} then {}",
        created["updated_at"],
        user["updated_at"]
    );
}

async fn patching_to_a_taken_username_in_other_case_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob").await;
    let alice = app.user("alice").await;
    let response = patch(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"username": "BOB"}),
    )
    .await;
    let body = assert_problem(response, 409, "conflict").await;
    assert!(body["errors"]["username"].is_array(), "{body}");
    let me = json_of(app.get("/users/me", Some(&alice.tokens.access)).await).await;
    assert_eq!(me["username"], "alice");
}

async fn patching_to_an_invalid_email_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = patch(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"email": "not an email"}),
    )
    .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["email"], "{body}");
    let me = json_of(app.get("/users/me", Some(&alice.tokens.access)).await).await;
    assert_eq!(me["email"], "alice@example.com");
}

async fn non_admin_patching_another_user_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let response = patch(
        &app,
        &bob.id,
        &alice.tokens.access,
        &json!({"username": "bobby"}),
    )
    .await;
    assert_problem(response, 403, "permission_denied").await;
    let stored = json_of(
        app.get(&format!("/users/{}", bob.id), Some(&bob.tokens.access))
            .await,
    )
    .await;
    assert_eq!(stored["username"], "bob");
}

async fn non_admin_sending_a_role_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = patch(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"role": "admin"}),
    )
    .await;
    assert_problem(response, 403, "permission_denied").await;
    let me = json_of(app.get("/users/me", Some(&alice.tokens.access)).await).await;
    assert_eq!(me["role"], "user");
    let fresh = app.login("alice", PASSWORD).await;
    assert_eq!(jwt_claims(&fresh.access)["role"], "user");
}

async fn admin_promotion_shows_in_the_users_next_login_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.user("bob").await;
    assert_eq!(jwt_claims(&bob.tokens.access)["role"], "user");
    let root = app.admin("root").await;
    let response = patch(
        &app,
        &bob.id,
        &root.tokens.access,
        &json!({"role": "admin"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["role"], "admin");
    let fresh = app.login("bob", PASSWORD).await;
    let claims = jwt_claims(&fresh.access);
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["sub"], bob.id);
    let page = json_of(app.get("/users", Some(&fresh.access)).await).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_full_user);
}

async fn admin_patching_an_unknown_id_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let response = patch(
        &app,
        &uuid::Uuid::new_v4().to_string(),
        &root.tokens.access,
        &json!({"username": "ghost"}),
    )
    .await;
    assert_problem(response, 404, "not_found").await;
}

async fn patching_with_an_empty_body_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let before = json_of(app.get("/users/me", Some(&alice.tokens.access)).await).await;
    let response = patch(&app, &alice.id, &alice.tokens.access, &json!({})).await;
    assert_eq!(response.status(), 200);
    let after = json_of(response).await;
    assert_full_user(&after);
    for field in ["id", "username", "email", "role", "created_at"] {
        assert_eq!(after[field], before[field], "{field}");
    }
}

// PUT /users/{id}/password

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn changing_own_password_swaps_which_password_logs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    assert_problem(
        login_response(&app, "alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        login_response(&app, "alice", NEW_PASSWORD).await.status(),
        200
    );
}

async fn changing_password_with_a_wrong_current_password_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"current_password": "not the password", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(response, 400, "invalid_current_password").await;
    assert_eq!(login_response(&app, "alice", PASSWORD).await.status(), 200);
}

async fn changing_own_password_without_current_password_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"new_password": NEW_PASSWORD}),
    )
    .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert!(body["errors"]["current_password"].is_array(), "{body}");
    assert_eq!(login_response(&app, "alice", PASSWORD).await.status(), 200);
}

async fn changing_to_a_too_short_password_is_a_validation_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"current_password": PASSWORD, "new_password": "1234567"}),
    )
    .await;
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(keys(&body["errors"]), ["new_password"], "{body}");
    assert_eq!(login_response(&app, "alice", PASSWORD).await.status(), 200);
}

async fn changing_password_revokes_the_earlier_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), 204);
    let response = patch(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"username": "alicia"}),
    )
    .await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn changing_password_revokes_the_earlier_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = change_password(
        &app,
        &alice.id,
        &alice.tokens.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_problem(
        app.refresh(&alice.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn admin_changes_another_users_password_without_current_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.user("bob").await;
    let root = app.admin("root").await;
    let response = change_password(
        &app,
        &bob.id,
        &root.tokens.access,
        &json!({"new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_problem(
        login_response(&app, "bob", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        login_response(&app, "bob", NEW_PASSWORD).await.status(),
        200
    );
}

async fn non_admin_changing_another_users_password_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let response = change_password(
        &app,
        &bob.id,
        &alice.tokens.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(response, 403, "permission_denied").await;
    assert_eq!(login_response(&app, "bob", PASSWORD).await.status(), 200);
}

// DELETE /users/{id}

async fn deleting_oneself_removes_the_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let root = app.admin("root").await;
    let response = delete(&app, &alice.id, &alice.tokens.access).await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    assert_problem(
        app.get(&format!("/users/{}", alice.id), Some(&root.tokens.access))
            .await,
        404,
        "not_found",
    )
    .await;
}

async fn deleted_user_cannot_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    assert_eq!(
        delete(&app, &alice.id, &alice.tokens.access).await.status(),
        204
    );
    assert_problem(
        login_response(&app, "alice", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn deleted_users_refresh_token_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    assert_eq!(
        delete(&app, &alice.id, &alice.tokens.access).await.status(),
        204
    );
    assert_problem(
        app.refresh(&alice.tokens.refresh).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn non_admin_deleting_another_user_is_forbidden(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    assert_problem(
        delete(&app, &bob.id, &alice.tokens.access).await,
        403,
        "permission_denied",
    )
    .await;
    let response = app
        .get(&format!("/users/{}", bob.id), Some(&bob.tokens.access))
        .await;
    assert_eq!(response.status(), 200);
}

async fn admin_deletes_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.user("bob").await;
    let root = app.admin("root").await;
    assert_eq!(
        delete(&app, &bob.id, &root.tokens.access).await.status(),
        204
    );
    assert_problem(
        app.get(&format!("/users/{}", bob.id), Some(&root.tokens.access))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        login_response(&app, "bob", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn admin_deleting_an_unknown_id_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    assert_problem(
        delete(&app, &uuid::Uuid::new_v4().to_string(), &root.tokens.access).await,
        404,
        "not_found",
    )
    .await;
}

async fn concurrent_registrations_of_distinct_users_all_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    let requests = (0..12).map(|i| {
        let name = format!("user{i}");
        let body = registration(&name, &format!("{name}@example.com"), PASSWORD);
        let app = &app;
        async move { app.post_json("/users", None, &body).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(statuses, vec![201; 12]);
}

async fn concurrent_registrations_of_one_username_give_one_success_and_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let requests = (0..12).map(|i| {
        let username = if i % 2 == 0 { "Same" } else { "same" };
        let body = registration(username, &format!("same{i}@example.com"), PASSWORD);
        let app = &app;
        async move { app.post_json("/users", None, &body).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        11,
        "{statuses:?}"
    );
}

async fn a_username_equal_to_another_users_email_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob").await;
    let response = app
        .post_json(
            "/users",
            None,
            &registration("Bob@Example.com", "mallory@example.com", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 409, "conflict").await;
    assert!(body["errors"]["username"].is_array(), "{body}");
    let bob = app.login("bob@example.com", PASSWORD).await;
    let claims = jwt_claims(&bob.access);
    assert_eq!(claims["username"], "bob", "bob's email still logs bob in");
}

async fn an_email_equal_to_another_users_username_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .post_json(
            "/users",
            None,
            &registration("carol@example.org", "carol@example.com", PASSWORD),
        )
        .await;
    assert_eq!(first.status(), 201);
    let response = app
        .post_json(
            "/users",
            None,
            &registration("dave", "carol@example.org", PASSWORD),
        )
        .await;
    let body = assert_problem(response, 409, "conflict").await;
    assert!(body["errors"]["email"].is_array(), "{body}");
}

async fn renaming_to_another_users_email_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob").await;
    let mallory = app.user("mallory").await;
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/users/{}", mallory.id),
            Some(&mallory.tokens.access),
            &json!({"username": "bob@example.com"}),
        )
        .await;
    assert_problem(response, 409, "conflict").await;
}

async fn listing_users_ignores_unknown_query_parameters(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let response = app
        .get(
            "/users?format=json&_=12345&limit=5",
            Some(&alice.tokens.access),
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = json_of(response).await;
    assert_eq!(page["limit"], 5);
}
