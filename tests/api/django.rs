//! Migration from Django REST Framework: `tessera import django` from a real
//! Django database (tests/fixtures/django, made by Django 5.2 itself: read
//! directly on SQLite, loaded from its dump into a fresh database on
//! PostgreSQL), then logins with the old passwords, their upgrade to
//! Argon2id, disabled accounts, and the one-time exchange of DRF keys.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use tessera::import::django::{ImportOptions, Report, import};
use tessera::settings::FailureLimit;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDb, assert_problem, spawn_app, spawn_app_with};

backend_tests!(
    pbkdf2_sha256_logs_in_is_upgraded_and_logs_in_again,
    pbkdf2_sha256_at_djangos_default_cost_logs_in_is_upgraded_and_logs_in_again,
    pbkdf2_sha1_logs_in_is_upgraded_and_logs_in_again,
    argon2_logs_in_is_upgraded_and_logs_in_again,
    bcrypt_sha256_logs_in_is_upgraded_and_logs_in_again,
    bcrypt_logs_in_is_upgraded_and_logs_in_again,
    an_unusable_django_password_never_logs_in,
    an_inactive_user_is_refused_exactly_like_a_wrong_password,
    a_superuser_becomes_admin_and_staff_alone_stays_user,
    date_joined_becomes_created_at,
    a_user_without_an_email_logs_in_by_username,
    an_email_taken_within_django_is_reported_and_skipped,
    an_existing_tessera_account_is_never_overwritten,
    running_the_import_twice_changes_nothing,
    a_reimport_leaves_an_upgraded_password_upgraded,
    a_dry_run_writes_nothing,
    a_custom_user_table_is_imported_with_user_table,
    legacy_keys_are_stored_only_as_hashes,
    a_legacy_key_in_the_token_scheme_exchanges_once,
    a_legacy_key_in_the_body_exchanges_once,
    the_exchanged_pair_refreshes_like_a_login,
    an_unknown_legacy_key_is_refused,
    a_malformed_legacy_key_is_refused,
    a_disabled_accounts_legacy_key_is_refused_like_an_unknown_one,
    a_disabled_accounts_refresh_token_is_refused,
    a_password_change_retires_the_legacy_key,
    logout_all_retires_the_legacy_key,
    a_deleted_account_is_not_recreated_by_a_reimport,
    the_same_ids_from_another_django_database_are_not_merged,
    a_password_in_a_format_tessera_does_not_verify_is_imported_unusable,
    exchange_without_a_key_is_not_authenticated,
    exchange_is_refused_after_the_cut_over,
    exchange_works_before_the_cut_over,
    concurrent_exchanges_of_one_key_succeed_once,
    failed_exchanges_count_towards_the_address_throttle,
    the_metrics_count_remaining_legacy_hashes,
);

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/django");

/// Keys from the fixture (see its README).
const PBKDF2_USER_KEY: &str = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";
const ARGON2_USER_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const INACTIVE_USER_KEY: &str = "0a0b0c0d0e0f00112233445566778899aabbccdd";

/// A Django database owned by one test, on the same backend as the app.
enum DjangoDb {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl DjangoDb {
    fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                std::fs::copy(
                    format!("{FIXTURES}/django.sqlite3"),
                    dir.path().join("db.sqlite3"),
                )
                .unwrap();
                DjangoDb::Sqlite(dir)
            }
            Backend::Postgres => {
                let db = TestDb::create(Backend::Postgres);
                let dump = std::fs::read_to_string(format!("{FIXTURES}/postgres.sql")).unwrap();
                PgConnection::establish(db.url())
                    .unwrap()
                    .batch_execute(&dump)
                    .unwrap();
                DjangoDb::Postgres(db)
            }
        }
    }

    fn url(&self) -> String {
        match self {
            DjangoDb::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("db.sqlite3").display())
            }
            DjangoDb::Postgres(db) => db.url().to_owned(),
        }
    }

    /// Runs SQL on the Django database (to rename its user table).
    fn execute(&self, sql: &str) {
        match self {
            DjangoDb::Sqlite(dir) => {
                SqliteConnection::establish(&dir.path().join("db.sqlite3").display().to_string())
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap();
            }
            DjangoDb::Postgres(db) => {
                PgConnection::establish(db.url())
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap();
            }
        }
    }
}

fn run_import(app: &TestApp, django: &DjangoDb, user_table: &str, dry_run: bool) -> Report {
    let options = ImportOptions {
        from: SecretString::from(django.url()),
        user_table: user_table.to_owned(),
        dry_run,
    };
    import(&mut app.db_conn(), &options).unwrap()
}

/// An app with the fixture imported.
async fn imported_app(backend: Backend) -> (TestApp, DjangoDb) {
    let app = spawn_app(backend).await;
    let django = DjangoDb::create(backend);
    run_import(&app, &django, "auth_user", false);
    (app, django)
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

fn stored_hash(app: &TestApp, username: &str) -> String {
    use tessera::db::schema::users;
    users::table
        .filter(users::username.eq(username))
        .select(users::password_hash)
        .first(&mut app.db_conn())
        .unwrap()
}

/// The behaviour every Django format must show: a wrong password fails and
/// leaves the hash alone; the right one logs in and replaces the Django hash
/// with tessera's Argon2id; the password still works after the upgrade.
async fn assert_logs_in_and_upgrades(
    backend: Backend,
    username: &str,
    password: &str,
    format: &str,
) {
    let (app, _django) = imported_app(backend).await;
    let before = stored_hash(&app, username);
    assert!(before.starts_with(format), "{before}");
    assert_problem(
        login(&app, username, "not the password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(stored_hash(&app, username), before);
    assert_eq!(login(&app, username, password).await.status(), 200);
    let after = stored_hash(&app, username);
    assert!(
        after.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{after}"
    );
    assert_eq!(login(&app, username, password).await.status(), 200);
    assert_problem(
        login(&app, username, "not the password").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn pbkdf2_sha256_logs_in_is_upgraded_and_logs_in_again(backend: Backend) {
    assert_logs_in_and_upgrades(
        backend,
        "pbkdf2_user",
        "pbkdf2 secret 1",
        "pbkdf2_sha256$1000$",
    )
    .await;
}

async fn pbkdf2_sha256_at_djangos_default_cost_logs_in_is_upgraded_and_logs_in_again(
    backend: Backend,
) {
    assert_logs_in_and_upgrades(
        backend,
        "pbkdf2_default_user",
        "default secret 2",
        "pbkdf2_sha256$1000000$",
    )
    .await;
}

async fn pbkdf2_sha1_logs_in_is_upgraded_and_logs_in_again(backend: Backend) {
    assert_logs_in_and_upgrades(backend, "pbkdf2_sha1_user", "sha1 secret 3", "pbkdf2_sha1$").await;
}

async fn argon2_logs_in_is_upgraded_and_logs_in_again(backend: Backend) {
    assert_logs_in_and_upgrades(
        backend,
        "argon2_user",
        "argon2 secret 4",
        "argon2$argon2id$",
    )
    .await;
}

async fn bcrypt_sha256_logs_in_is_upgraded_and_logs_in_again(backend: Backend) {
    assert_logs_in_and_upgrades(
        backend,
        "bcrypt_sha256_user",
        "bcrypt sha secret 5",
        "bcrypt_sha256$$2b$",
    )
    .await;
}

async fn bcrypt_logs_in_is_upgraded_and_logs_in_again(backend: Backend) {
    assert_logs_in_and_upgrades(backend, "bcrypt_user", "bcrypt secret 6", "bcrypt$$2b$").await;
}

async fn an_unusable_django_password_never_logs_in(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let stored = stored_hash(&app, "unusable_user");
    assert!(stored.starts_with('!'));
    for attempt in ["", "!", stored.as_str(), &stored[1..]] {
        assert_problem(
            login(&app, "unusable_user", attempt).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
}

async fn an_inactive_user_is_refused_exactly_like_a_wrong_password(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let refused = login(&app, "inactive_user", "inactive secret 8").await;
    let refused = assert_problem(refused, 401, "invalid_credentials").await;
    let wrong = login(&app, "inactive_user", "wrong password").await;
    let wrong = assert_problem(wrong, 401, "invalid_credentials").await;
    assert_eq!(refused, wrong);
    // The hash is not upgraded either: nothing about the account changes.
    assert!(stored_hash(&app, "inactive_user").starts_with("pbkdf2_sha256$"));
}

async fn me(app: &TestApp, username: &str, password: &str) -> Value {
    let response = login(app, username, password).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let response = app.get("/users/me", Some(&token)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn a_superuser_becomes_admin_and_staff_alone_stays_user(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    assert_eq!(
        me(&app, "super_user", "super secret 9").await["role"],
        "admin"
    );
    assert_eq!(
        me(&app, "staff_user", "staff secret 10").await["role"],
        "user"
    );
    assert_eq!(
        me(&app, "pbkdf2_user", "pbkdf2 secret 1").await["role"],
        "user"
    );
}

async fn date_joined_becomes_created_at(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let user = me(&app, "pbkdf2_user", "pbkdf2 secret 1").await;
    assert_eq!(user["created_at"], "2019-03-01T10:00:00Z");
    assert_eq!(user["email"], "pbkdf2@example.com");
}

async fn a_user_without_an_email_logs_in_by_username(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let user = me(&app, "no_email_user", "noemail secret 11").await;
    assert_eq!(user["email"], "");
    // An empty email names nobody.
    assert_problem(
        login(&app, "", "noemail secret 11").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn an_email_taken_within_django_is_reported_and_skipped(backend: Backend) {
    let app = spawn_app(backend).await;
    let django = DjangoDb::create(backend);
    let report = run_import(&app, &django, "auth_user", false);
    assert_eq!(report.users_imported, 11);
    assert_eq!(report.users_skipped.len(), 1);
    let skipped = &report.users_skipped[0];
    assert!(skipped.what.contains("Email_Twin"), "{skipped:?}");
    assert!(skipped.reason.contains("email"), "{skipped:?}");
    assert_problem(
        login(&app, "Email_Twin", "twin secret 12").await,
        401,
        "invalid_credentials",
    )
    .await;
    // The first owner of the address keeps it.
    assert_eq!(
        login(&app, "PBKDF2@example.com", "pbkdf2 secret 1")
            .await
            .status(),
        200
    );
}

async fn an_existing_tessera_account_is_never_overwritten(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bcrypt_user").await;
    let django = DjangoDb::create(backend);
    let report = run_import(&app, &django, "auth_user", false);
    assert!(
        report
            .users_skipped
            .iter()
            .any(|s| s.what.contains("bcrypt_user") && s.reason.contains("username")),
        "{report:?}"
    );
    assert_eq!(
        login(&app, "bcrypt_user", crate::helpers::PASSWORD)
            .await
            .status(),
        200
    );
    assert_problem(
        login(&app, "bcrypt_user", "bcrypt secret 6").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn running_the_import_twice_changes_nothing(backend: Backend) {
    let (app, django) = imported_app(backend).await;
    let users_before = app.count_rows("users");
    let report = run_import(&app, &django, "auth_user", false);
    assert_eq!(report.users_imported, 0);
    assert_eq!(report.users_unchanged, 11);
    assert_eq!(report.tokens_imported, 0);
    assert_eq!(report.tokens_unchanged, 3);
    assert_eq!(app.count_rows("users"), users_before);
    assert_eq!(app.count_rows("legacy_tokens"), 3);
}

async fn a_reimport_leaves_an_upgraded_password_upgraded(backend: Backend) {
    let (app, django) = imported_app(backend).await;
    assert_eq!(
        login(&app, "argon2_user", "argon2 secret 4").await.status(),
        200
    );
    let upgraded = stored_hash(&app, "argon2_user");
    run_import(&app, &django, "auth_user", false);
    assert_eq!(stored_hash(&app, "argon2_user"), upgraded);
}

async fn a_dry_run_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let django = DjangoDb::create(backend);
    let report = run_import(&app, &django, "auth_user", true);
    assert!(report.dry_run);
    assert_eq!(report.users_imported, 11);
    assert_eq!(report.tokens_imported, 3);
    assert_eq!(app.count_rows("users"), 0);
    assert_eq!(app.count_rows("legacy_tokens"), 0);
}

async fn a_custom_user_table_is_imported_with_user_table(backend: Backend) {
    let app = spawn_app(backend).await;
    let django = DjangoDb::create(backend);
    django.execute("ALTER TABLE auth_user RENAME TO accounts_user");
    let report = run_import(&app, &django, "accounts_user", false);
    assert_eq!(report.users_imported, 11);
    assert_eq!(report.tokens_imported, 3);
    assert_eq!(
        login(&app, "pbkdf2_user", "pbkdf2 secret 1").await.status(),
        200
    );
}

async fn legacy_keys_are_stored_only_as_hashes(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    use tessera::db::schema::legacy_tokens;
    let stored: Vec<String> = legacy_tokens::table
        .select(legacy_tokens::key_hash)
        .load(&mut app.db_conn())
        .unwrap();
    assert_eq!(stored.len(), 3);
    for key in [PBKDF2_USER_KEY, ARGON2_USER_KEY, INACTIVE_USER_KEY] {
        assert!(stored.iter().all(|hash| !hash.contains(key)));
    }
}

async fn exchange_with_header(app: &TestApp, authorization: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/exchange"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

async fn exchange_with_body(app: &TestApp, key: &str) -> reqwest::Response {
    app.post_json("/auth/exchange", None, &json!({"token": key}))
        .await
}

/// A 200 token response whose access token is `username`'s.
async fn assert_token_pair_for(
    app: &TestApp,
    response: reqwest::Response,
    username: &str,
) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].is_string());
    let access = body["access_token"].as_str().unwrap();
    let me = app.get("/users/me", Some(access)).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], username);
    body
}

async fn a_legacy_key_in_the_token_scheme_exchanges_once(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let header = format!("Token {PBKDF2_USER_KEY}");
    let first = exchange_with_header(&app, &header).await;
    assert_token_pair_for(&app, first, "pbkdf2_user").await;
    assert_problem(
        exchange_with_header(&app, &header).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_legacy_key_in_the_body_exchanges_once(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let first = exchange_with_body(&app, ARGON2_USER_KEY).await;
    assert_token_pair_for(&app, first, "argon2_user").await;
    assert_problem(
        exchange_with_body(&app, ARGON2_USER_KEY).await,
        401,
        "invalid_token",
    )
    .await;
    // Retired for the header too.
    let header = format!("Token {ARGON2_USER_KEY}");
    assert_problem(
        exchange_with_header(&app, &header).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn the_exchanged_pair_refreshes_like_a_login(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let pair = exchange_with_body(&app, PBKDF2_USER_KEY).await;
    let pair = assert_token_pair_for(&app, pair, "pbkdf2_user").await;
    let refreshed = app.refresh(pair["refresh_token"].as_str().unwrap()).await;
    assert_token_pair_for(&app, refreshed, "pbkdf2_user").await;
}

async fn an_unknown_legacy_key_is_refused(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    assert_problem(
        exchange_with_header(&app, &format!("Token {unknown}")).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        exchange_with_body(&app, unknown).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_malformed_legacy_key_is_refused(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    // Too short, not hex, or a JWT: never looked up, refused alike.
    for key in [
        &PBKDF2_USER_KEY[..39],
        "zz44b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
        "a.b.c",
    ] {
        assert_problem(exchange_with_body(&app, key).await, 401, "invalid_token").await;
    }
    // The real key still works afterwards.
    let ok = exchange_with_body(&app, PBKDF2_USER_KEY).await;
    assert_token_pair_for(&app, ok, "pbkdf2_user").await;
}

async fn a_disabled_accounts_legacy_key_is_refused_like_an_unknown_one(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let disabled = exchange_with_header(&app, &format!("Token {INACTIVE_USER_KEY}")).await;
    let disabled = assert_problem(disabled, 401, "invalid_token").await;
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    let unknown = exchange_with_header(&app, &format!("Token {unknown}")).await;
    let unknown = assert_problem(unknown, 401, "invalid_token").await;
    assert_eq!(disabled, unknown);
}

fn set_active(app: &TestApp, username: &str, active: bool) {
    use tessera::db::schema::users;
    diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::is_active.eq(active))
        .execute(&mut app.db_conn())
        .unwrap();
}

async fn a_disabled_accounts_refresh_token_is_refused(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let tokens = login(&app, "pbkdf2_user", "pbkdf2 secret 1").await;
    let tokens: Value = tokens.json().await.unwrap();
    set_active(&app, "pbkdf2_user", false);
    let refreshed = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_problem(refreshed, 401, "invalid_token").await;
}

async fn logged_in(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let response = login(app, username, password).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let me: Value = app
        .get("/users/me", Some(&access))
        .await
        .json()
        .await
        .unwrap();
    (me["id"].as_str().unwrap().to_owned(), access)
}

async fn a_password_change_retires_the_legacy_key(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let (id, access) = logged_in(&app, "pbkdf2_user", "pbkdf2 secret 1").await;
    let changed = app
        .send_json(
            reqwest::Method::PUT,
            &format!("/users/{id}/password"),
            Some(&access),
            &json!({"current_password": "pbkdf2 secret 1", "new_password": "a brand new secret"}),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_problem(
        exchange_with_body(&app, PBKDF2_USER_KEY).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn logout_all_retires_the_legacy_key(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let (_, access) = logged_in(&app, "argon2_user", "argon2 secret 4").await;
    let response = app
        .post_json("/auth/logout-all", Some(&access), &json!({}))
        .await;
    assert_eq!(response.status(), 204);
    assert_problem(
        exchange_with_body(&app, ARGON2_USER_KEY).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_deleted_account_is_not_recreated_by_a_reimport(backend: Backend) {
    let (app, django) = imported_app(backend).await;
    let (id, access) = logged_in(&app, "pbkdf2_user", "pbkdf2 secret 1").await;
    let deleted = app
        .client
        .delete(app.url(&format!("/users/{id}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let report = run_import(&app, &django, "auth_user", false);
    assert!(
        report
            .users_skipped
            .iter()
            .any(|s| s.what.contains("pbkdf2_user") && s.reason.contains("deleted")),
        "{report:?}"
    );
    // Only Email_Twin comes in: the deleted account freed its email.
    assert_eq!(report.users_imported, 1, "{report:?}");
    assert_problem(
        login(&app, "pbkdf2_user", "pbkdf2 secret 1").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        exchange_with_body(&app, PBKDF2_USER_KEY).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn the_same_ids_from_another_django_database_are_not_merged(backend: Backend) {
    let (app, django) = imported_app(backend).await;
    // Django id 1 now names someone else, as in another project's database.
    django.execute("UPDATE auth_user SET username = 'someone_else' WHERE id = 1");
    let report = run_import(&app, &django, "auth_user", false);
    assert!(
        report.users_skipped.iter().any(
            |s| s.what.contains("someone_else") && s.reason.contains("another Django database")
        ),
        "{report:?}"
    );
    assert_problem(
        login(&app, "someone_else", "pbkdf2 secret 1").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn a_password_in_a_format_tessera_does_not_verify_is_imported_unusable(backend: Backend) {
    let app = spawn_app(backend).await;
    let django = DjangoDb::create(backend);
    // Django's long-deprecated unsalted MD5 of "password", and a hash in
    // tessera's own format asking for 4 GiB: neither may ever be checked.
    django.execute(
        "UPDATE auth_user SET password = 'md5$$5f4dcc3b5aa765d61d8327deb882cf99' WHERE id = 10;
         UPDATE auth_user SET password = '$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE id = 11",
    );
    let report = run_import(&app, &django, "auth_user", false);
    assert_eq!(report.users_imported, 11);
    assert_eq!(report.unusable_formats.len(), 2, "{report:?}");
    assert!(stored_hash(&app, "staff_user").starts_with("!md5$"));
    assert!(stored_hash(&app, "no_email_user").starts_with("!$argon2id$"));
    for (username, password) in [("staff_user", "password"), ("no_email_user", "password")] {
        assert_problem(
            login(&app, username, password).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
}

async fn exchange_without_a_key_is_not_authenticated(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let response = app
        .client
        .post(app.url("/auth/exchange"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "not_authenticated").await;
}

async fn app_with_cut_over(backend: Backend, offset: chrono::TimeDelta) -> (TestApp, DjangoDb) {
    let app = spawn_app_with(backend, move |settings| {
        settings.auth.legacy_exchange_until = Some(chrono::Utc::now() + offset);
    })
    .await;
    let django = DjangoDb::create(backend);
    run_import(&app, &django, "auth_user", false);
    (app, django)
}

async fn exchange_is_refused_after_the_cut_over(backend: Backend) {
    let (app, _django) = app_with_cut_over(backend, chrono::TimeDelta::seconds(-1)).await;
    let body = assert_problem(
        exchange_with_body(&app, PBKDF2_USER_KEY).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("ended"), "{body}");
    // Password logins are unaffected by the cut-over.
    assert_eq!(
        login(&app, "pbkdf2_user", "pbkdf2 secret 1").await.status(),
        200
    );
}

async fn exchange_works_before_the_cut_over(backend: Backend) {
    let (app, _django) = app_with_cut_over(backend, chrono::TimeDelta::days(30)).await;
    let response = exchange_with_body(&app, PBKDF2_USER_KEY).await;
    assert_token_pair_for(&app, response, "pbkdf2_user").await;
}

async fn concurrent_exchanges_of_one_key_succeed_once(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    let attempts = (0..10).map(|_| exchange_with_body(&app, PBKDF2_USER_KEY));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        9,
        "{statuses:?}"
    );
}

async fn legacy_gauge(app: &TestApp) -> i64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("tessera_legacy_password_hashes "))
        .unwrap_or_else(|| panic!("no legacy gauge in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn the_metrics_count_remaining_legacy_hashes(backend: Backend) {
    let (app, _django) = imported_app(backend).await;
    // 11 imported: one with an unusable password, one disabled.
    assert_eq!(legacy_gauge(&app).await, 9);
    assert_eq!(
        login(&app, "bcrypt_user", "bcrypt secret 6").await.status(),
        200
    );
    assert_eq!(legacy_gauge(&app).await, 8);
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.contains("tessera_legacy_password_upgrades_total{format=\"bcrypt\"} 1"),
        "{text}"
    );
}

async fn failed_exchanges_count_towards_the_address_throttle(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.auth.address_max_failures = FailureLimit::new(3).unwrap()
    })
    .await;
    let django = DjangoDb::create(backend);
    run_import(&app, &django, "auth_user", false);
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    for _ in 0..3 {
        assert_problem(
            exchange_with_body(&app, unknown).await,
            401,
            "invalid_token",
        )
        .await;
    }
    let throttled = exchange_with_body(&app, PBKDF2_USER_KEY).await;
    assert!(throttled.headers().contains_key("retry-after"));
    assert_problem(throttled, 429, "throttled").await;
    // The same address is throttled for password logins too.
    assert_problem(
        login(&app, "pbkdf2_user", "pbkdf2 secret 1").await,
        429,
        "throttled",
    )
    .await;
}
