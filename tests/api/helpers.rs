#![allow(
    dead_code,
    reason = "each test module uses a different part of the harness"
)]

//! The test harness: every test starts its own tessera on a random port with
//! its own database (a SQLite file in a temporary folder, or a PostgreSQL
//! database created for the test and dropped after it), and talks to it over
//! real HTTP.

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::{Connection, PgConnection, RunQueryDsl};
use secrecy::SecretString;
use serde_json::{Value, json};
use tessera::db::{DatabaseUrl, DbConnection};
use tessera::settings::{PasswordSettings, Settings};
use tessera::startup::Application;

/// The HS256 key every test server signs with, so tests can forge tokens.
pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery";

/// Generates, for each named `async fn name(backend: Backend)`, a module
/// `name` with a `sqlite` and a `postgres` test. The PostgreSQL one is
/// ignored (and says why) unless `TESSERA_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[actix_web::test]
                #[cfg_attr(
                    not(tessera_postgres_tests),
                    ignore = "PostgreSQL suite skipped: set TESSERA_TEST_POSTGRES_URL to run it"
                )]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database owned by one test.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
                TestDb::Sqlite { _dir: dir, url }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("TESSERA_TEST_POSTGRES_URL").expect(
                    "TESSERA_TEST_POSTGRES_URL must name a PostgreSQL server for the postgres tests",
                );
                let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
                tessera::db::init_libpq();
                let mut conn = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
                    panic!("cannot reach PostgreSQL at TESSERA_TEST_POSTGRES_URL: {e}")
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                TestDb::Postgres {
                    admin_url,
                    name,
                    url,
                }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// `postgres://u@h:5432/test?x=y` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut result = format!("{}/{}", &base[..authority_end], name);
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    result
}

/// Tokens from a login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    fn from_body(body: &Value) -> Self {
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// A registered user and their first tokens.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password: String,
    pub tokens: Tokens,
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub settings: Settings,
    pub db: TestDb,
    _data_dir: tempfile::TempDir,
}

/// The settings a test server starts from: fast Argon2, a fixed key, port 0.
pub fn test_settings(db: &TestDb, data_dir: PathBuf) -> Settings {
    let mut settings = Settings::defaults().expect("defaults");
    settings.server.bind = "127.0.0.1:0".parse().expect("address");
    settings.server.workers = std::num::NonZeroUsize::new(2);
    settings.server.data_dir = data_dir;
    settings.database.url = DatabaseUrl::parse(db.url()).expect("url");
    settings.database.pool_size = std::num::NonZeroU32::new(4).expect("non-zero");
    settings.jwt.secret = Some(SecretString::from(TEST_SECRET));
    settings.password = PasswordSettings::new(1024, 1, 1).expect("argon2 cost");
    settings.log.level = "warn".to_owned();
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server after `configure` has adjusted the test settings.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::create(backend);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&db, data_dir.path().to_path_buf());
    configure(&mut settings);
    let application = Application::build(settings.clone())
        .await
        .expect("the application builds");
    let port = application.port();
    actix_web::rt::spawn(application.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        backend,
        settings,
        db,
        _data_dir: data_dir,
    }
}

impl TestApp {
    /// Starts a second server on this app's database (two instances behind
    /// a load balancer); returns its base URL.
    pub async fn spawn_sibling(&self) -> String {
        let application = Application::build(self.settings.clone())
            .await
            .expect("the sibling builds");
        let port = application.port();
        actix_web::rt::spawn(application.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A direct connection to the test database, for arranging and checking
    /// what the HTTP surface cannot show (stored hashes, expiry times).
    pub fn db_conn(&self) -> DbConnection {
        DatabaseUrl::parse(self.db.url())
            .expect("url")
            .establish()
            .expect("connect to the test database")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.send_json(reqwest::Method::POST, path, token, body)
            .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// `POST /users`, expecting 201; returns the created user.
    pub async fn register(&self, username: &str) -> Value {
        let response = self
            .post_json(
                "/users",
                None,
                &json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 201, "registering {username}");
        response.json().await.expect("user json")
    }

    /// `POST /auth/login`, expecting 200.
    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let response = self
            .post_json(
                "/auth/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(response.status(), 200, "logging in {username}");
        Tokens::from_body(&response.json().await.expect("token json"))
    }

    /// `POST /auth/refresh`; returns the response for the caller to judge.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_json(
            "/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Refreshes the refresh token of a token response, expecting 200, and
    /// returns the new access token's claims.
    pub async fn refreshed_claims(&self, token_response: &Value) -> Value {
        let refreshed = self
            .refresh(token_response["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(refreshed.status(), 200);
        let refreshed: Value = refreshed.json().await.unwrap();
        jwt_claims(refreshed["access_token"].as_str().unwrap())
    }

    /// Registers `username` and logs them in.
    pub async fn user(&self, username: &str) -> TestUser {
        let user = self.register(username).await;
        let tokens = self.login(username, PASSWORD).await;
        TestUser {
            id: user["id"].as_str().expect("id").to_owned(),
            username: username.to_owned(),
            email: format!("{username}@example.com"),
            password: PASSWORD.to_owned(),
            tokens,
        }
    }

    /// Registers `username`, makes them admin in the database, logs them in.
    pub async fn admin(&self, username: &str) -> TestUser {
        let user = self.register(username).await;
        let id = user["id"].as_str().expect("id").to_owned();
        let mut conn = self.db_conn();
        tessera::db::users::update(
            &mut conn,
            &id,
            &tessera::db::users::UserChanges {
                role: Some("admin"),
                ..Default::default()
            },
        )
        .expect("promote to admin");
        let tokens = self.login(username, PASSWORD).await;
        TestUser {
            id,
            username: username.to_owned(),
            email: format!("{username}@example.com"),
            password: PASSWORD.to_owned(),
            tokens,
        }
    }

    /// Signs arbitrary claims with the test key and the right `kid`.
    pub fn forge(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(tessera::auth::tokens::hmac_kid(TEST_SECRET.as_bytes()));
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
        )
        .expect("sign")
    }

    /// Claims that a tessera token for `user_id` would carry, valid now.
    pub fn claims_for(&self, user_id: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": "tessera", "aud": "tessera", "sub": user_id,
            "exp": now + 600, "iat": now, "nbf": now,
            "jti": uuid::Uuid::now_v7().to_string(), "role": "user", "username": "someone",
        })
    }

    /// Creates a service client with `scopes` (space-separated) directly in
    /// the database, as `tessera client create` does; returns its id and
    /// secret.
    pub fn create_client(&self, scopes: &str) -> (String, String) {
        let client_id = uuid::Uuid::new_v4().to_string();
        let secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        let mut conn = self.db_conn();
        tessera::db::service_clients::insert(
            &mut conn,
            &tessera::db::service_clients::NewServiceClient {
                client_id: &client_id,
                name: "test service",
                secret_hash: &tessera::auth::refresh::hash(&secret),
                scopes,
                created_at: chrono::Utc::now().naive_utc(),
            },
        )
        .expect("insert a service client");
        (client_id, secret)
    }

    /// `POST /oauth/token` with a form body and optional HTTP Basic credentials.
    pub async fn oauth_token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.expect("request")
    }

    /// A client-credentials access token of a new client with `scopes`;
    /// returns the client id, its secret and the token.
    pub async fn service_token(&self, scopes: &str) -> (String, String, String) {
        let (id, secret) = self.create_client(scopes);
        let response = self
            .oauth_token(
                Some((&id, &secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(response.status(), 200, "client credentials");
        let body: Value = response.json().await.expect("token json");
        let token = body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        (id, secret, token)
    }

    /// Number of rows in a table, for checks on pruning and revocation.
    pub fn count_rows(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db_conn();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    }
}

/// The claims of a JWT, read without verifying it.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Asserts an RFC 9457 problem response with `status` and `code`; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    if status == 401 {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"tessera\""),
            "{challenge}"
        );
    }
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}
