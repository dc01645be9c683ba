//! Storage: one connection type over SQLite and PostgreSQL, the pool, the
//! embedded migrations, and [`run`], the only way request code reaches diesel.

pub mod legacy_accounts;
pub mod legacy_tokens;
pub mod login_failures;
pub mod mfa;
pub mod one_time_tokens;
pub mod passkeys;
pub mod refresh_tokens;
pub mod revocations;
pub mod schema;
pub mod service_clients;
pub mod sessions;
pub mod timestamp;
pub mod users;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use crate::settings::{DatabaseSettings, SettingsError};
use crate::threads::NotRun;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection type for both backends, chosen at run time by the URL.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs `$body` with `$conn` (a `&mut DbConnection`) bound as `$c` to the
/// backend's own connection, so that the query is built for that backend
/// alone. For the hot reads: through the multi-backend connection a query
/// has no static id, so every execution renders its SQL to find the cached
/// statement (10 % of the CPU of `GET /users/me`, BENCHMARKS.md); on the
/// backend's connection a query of fixed shape finds it by type.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Postgres($c) => $body,
        }
    };
}

pub use crate::settings::DatabaseUrl;

impl DatabaseUrl {
    /// Opens one connection, configured for concurrent service use.
    pub fn establish(&self) -> ConnectionResult<DbConnection> {
        match self {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    ConnectionError::InvalidConnectionUrl("non-UTF-8 SQLite path".to_owned())
                })?;
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers proceed during a write; busy_timeout makes
                // writers queue instead of failing; NORMAL is durable in WAL.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA busy_timeout = 5000;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                init_libpq();
                PgConnection::establish(url.expose_secret())
                    .map(DbConnection::Postgres)
                    .map_err(|error| redact_connection_error(error, url.expose_secret()))
            }
        }
    }
}

/// Initialises the OpenSSL that libpq is linked with, without the exit
/// handler OpenSSL otherwise registers: at process exit that handler frees
/// OpenSSL's global state while other threads (pooled connections, the
/// database threads) may still use it, a double free or a crash after the
/// work is done. Idempotent; call it before the process's first PostgreSQL
/// connection, since the first initialisation decides.
pub fn init_libpq() {
    openssl_sys::init();
}

/// libpq quotes parts of a malformed URL in its messages; the password must
/// not reach the log or the startup line that way.
fn redact_connection_error(error: ConnectionError, url: &str) -> ConnectionError {
    match error {
        ConnectionError::BadConnection(message) => {
            ConnectionError::BadConnection(redact_password(&message, url))
        }
        ConnectionError::InvalidConnectionUrl(message) => {
            ConnectionError::InvalidConnectionUrl(redact_password(&message, url))
        }
        other => other,
    }
}

/// `message` with the URL's password (as written, and percent-decoded)
/// replaced by `[redacted]`.
pub fn redact_password(message: &str, url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message.to_owned();
    };
    let Some((_, password)) = userinfo.split_once(':') else {
        return message.to_owned();
    };
    let mut redacted = message.to_owned();
    let decoded: String = form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    for secret in [password, decoded.as_str()] {
        if !secret.is_empty() {
            redacted = redacted.replace(secret, "[redacted]");
        }
    }
    redacted
}

/// A pooled connection, and when it last proved alive: answered the
/// check-out ping, or did work in [`run`] that succeeded. (diesel's
/// `is_broken` sees only a broken transaction, not a server that has gone,
/// so a failed piece of work does not count as proof.)
pub struct Pooled {
    conn: DbConnection,
    alive_at: Instant,
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// How long a connection that just worked is trusted without a ping at
/// check-out (HikariCP's `aliveBypassWindowMs` is the same idea, at 500 ms).
/// Under load every connection is back within this window, so requests
/// skip a `SELECT 1` round trip each; an idle connection, or one whose last
/// work failed, is still pinged, and dropped when the ping fails.
const ALIVE_WINDOW: Duration = Duration::from_millis(500);

/// The r2d2 manager: establishes the right variant and applies the pragmas.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = ConnectionError;

    fn connect(&self) -> Result<Pooled, ConnectionError> {
        Ok(Pooled {
            conn: self.url.establish()?,
            alive_at: Instant::now(),
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), ConnectionError> {
        if pooled.alive_at.elapsed() < ALIVE_WINDOW {
            return Ok(());
        }
        pooled
            .conn
            .ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        pooled.alive_at = Instant::now();
        Ok(())
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        pooled.conn.is_broken()
    }
}

pub type Pool = r2d2::Pool<Manager>;

/// No connection could be had (pool exhausted or database unreachable), or
/// the database threads did not finish the work.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("database connection unavailable: {0}")]
    Unavailable(#[from] r2d2::Error),
    #[error(transparent)]
    Threads(#[from] NotRun),
}

/// Builds the pool and checks that one connection can be made, so a bad URL
/// or an unreachable server stops startup.
pub fn connect(settings: &DatabaseSettings) -> Result<Pool, SettingsError> {
    let url = &settings.url;
    if let DatabaseUrl::Sqlite(path) = url
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            SettingsError::new(
                "database.url",
                format!("cannot create {}: {e}", parent.display()),
            )
        })?;
    }
    // Fail fast with the driver's own message rather than r2d2's timeout.
    url.establish()
        .map_err(|e| SettingsError::new("database.url", format!("cannot connect: {e}")))?;
    r2d2::Pool::builder()
        .max_size(settings.pool_size.get())
        .min_idle(Some(1))
        .connection_timeout(settings.connect_timeout_secs.duration())
        .build(Manager { url: url.clone() })
        .map_err(|e| SettingsError::new("database.url", format!("cannot connect: {e}")))
}

/// Applies the pending migrations of the connection's backend.
pub fn migrate(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| e.to_string())?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// The pool, the threads that use it (one per pooled connection, see
/// [`crate::threads`]), and where the time spent waiting for a connection
/// is reported.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    threads: std::sync::Arc<crate::threads::Threads>,
    wait_seconds: Option<prometheus::Histogram>,
}

impl Database {
    /// Starts one database thread per connection the pool may open.
    pub fn new(pool: Pool, wait_seconds: Option<prometheus::Histogram>) -> std::io::Result<Self> {
        let count = usize::try_from(pool.max_size()).unwrap_or(1);
        let threads = crate::threads::Threads::start("tessera-db", count, || {})?;
        Ok(Self {
            pool,
            threads: std::sync::Arc::new(threads),
            wait_seconds,
        })
    }

    /// Connects (see [`connect`]) and applies the pending migrations; for
    /// the server and the CLI alike. Returns the migrations applied.
    pub async fn open(
        settings: &DatabaseSettings,
        wait_seconds: Option<prometheus::Histogram>,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        let settings = settings.clone();
        let (pool, applied) = actix_web::rt::task::spawn_blocking(move || {
            let pool = connect(&settings)?;
            let mut conn = pool
                .get()
                .map_err(|e| SettingsError::new("database.url", format!("cannot connect: {e}")))?;
            let applied = migrate(&mut conn).map_err(|e| {
                SettingsError::new("database.url", format!("migration failed: {e}"))
            })?;
            Ok::<_, SettingsError>((pool, applied))
        })
        .await
        .map_err(|e| SettingsError::new("database.url", e.to_string()))??;
        let db = Self::new(pool, wait_seconds).map_err(|e| {
            SettingsError::new("database.pool_size", format!("cannot start threads: {e}"))
        })?;
        Ok((db, applied))
    }

    /// The pool's size and idle connections, for `/metrics`.
    pub fn pool_state(&self) -> r2d2::State {
        self.pool.state()
    }

    /// Whether a round trip to the database succeeds within `timeout`
    /// (readiness); the error says what failed, for the log.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let pool = self.pool.clone();
        let check = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = pool.get_timeout(timeout).map_err(|e| e.to_string())?;
            diesel::sql_query("SELECT 1")
                .execute(&mut **conn)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        match tokio::time::timeout(timeout, check).await {
            Ok(Ok(result)) => result,
            Ok(Err(cause)) => Err(format!("readiness task: {cause}")),
            Err(_) => Err("database check timed out".to_owned()),
        }
    }

    /// Runs `work` only if a pooled connection is idle right now; `None`
    /// when none is (or the work failed), for best-effort background reads
    /// that must never queue behind requests.
    pub async fn run_if_idle<T, F>(&self, work: F) -> Option<T>
    where
        F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = pool.try_get()?;
            work(&mut conn).ok()
        })
        .await
        .ok()
        .flatten()
    }
}

/// A storage failure as the services report it: no connection could be
/// had, or a statement failed. The HTTP edge answers the first with 503 and
/// classifies the second (see `crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] PoolError),
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Lets a service error enum with a `Store(StoreError)` variant take `?` on
/// diesel results and pool failures inside [`run`].
#[macro_export]
macro_rules! store_errors {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$crate::db::StoreError> for $error {
            fn from(error: $crate::db::StoreError) -> Self {
                Self::Store(error)
            }
        }
        impl From<diesel::result::Error> for $error {
            fn from(error: diesel::result::Error) -> Self {
                Self::Store($crate::db::StoreError::Query(error))
            }
        }
        impl From<$crate::db::PoolError> for $error {
            fn from(error: $crate::db::PoolError) -> Self {
                Self::Store($crate::db::StoreError::Unavailable(error))
            }
        }
    )+};
}

/// Runs blocking diesel work on one of the database threads, never on an
/// HTTP worker, carrying the caller's tracing span. Waiting for a thread
/// and a connection is bounded by `database.connect_timeout_secs`; past it
/// the answer is [`PoolError`], which the HTTP layer answers with 503.
pub async fn run<T, E, F>(db: &Database, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<PoolError> + Send + 'static,
{
    let pool = db.pool.clone();
    let wait_seconds = db.wait_seconds.clone();
    let request = crate::telemetry::RequestScope::current();
    let timeout = pool.connection_timeout();
    let outcome = db
        .threads
        .call_within(timeout, move |queued| {
            request.run(|| {
                let waiting = Instant::now();
                // What is left of the wait after the queue, so that the two
                // together stay within `connect_timeout_secs`.
                let connection = pool.get_timeout(timeout.saturating_sub(queued));
                if let Some(histogram) = &wait_seconds {
                    histogram.observe((queued + waiting.elapsed()).as_secs_f64());
                }
                let mut conn = connection.map_err(PoolError::from)?;
                let result = work(&mut conn);
                if result.is_ok() {
                    conn.alive_at = Instant::now();
                }
                result
            })
        })
        .await;
    if let (Err(NotRun::Busy { waited, .. }), Some(histogram)) = (&outcome, &db.wait_seconds) {
        histogram.observe(waited.as_secs_f64());
    }
    outcome.map_err(PoolError::from)?
}

/// Current time, truncated to microseconds: what both backends store, so a
/// value read back compares equal to the one written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_redacted_from_driver_messages() {
        let url = "postgres://tessera:s%40cret:x@db:5432/tessera";
        let message = "invalid token \"s%40cret:x\" and s@cret:x";
        let redacted = redact_password(message, url);
        assert!(!redacted.contains("cret"), "{redacted}");
    }

    #[test]
    fn a_url_without_a_password_is_left_alone() {
        assert_eq!(redact_password("boom", "postgres://u@h/db"), "boom");
    }

    #[test]
    fn the_scheme_picks_the_backend() {
        let url = DatabaseUrl::parse;
        assert_eq!(url("sqlite://data/x.db").unwrap().backend_name(), "sqlite");
        assert_eq!(url("postgres://u@h/db").unwrap().backend_name(), "postgres");
        assert_eq!(
            url("postgresql://u@h/db").unwrap().backend_name(),
            "postgres"
        );
        assert!(url("mysql://u@h/db").is_err());
        assert!(url("sqlite://").is_err());
    }

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }

    fn texts(conn: &mut SqliteConnection, sql: &str) -> Vec<String> {
        diesel::sql_query(sql)
            .load::<Row>(conn)
            .unwrap()
            .into_iter()
            .map(|row| row.value)
            .collect()
    }

    /// The Django migration rebuilds `users` on SQLite with foreign keys
    /// off: a database made by the earlier migrations keeps its accounts
    /// and refresh tokens, and its foreign keys still cascade.
    #[test]
    fn the_sqlite_users_rebuild_keeps_existing_data_and_foreign_keys() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
        for _ in 0..2 {
            conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        }
        conn.batch_execute(
            "INSERT INTO users VALUES ('u1', 'alice', 'alice', 'a@x.io', 'a@x.io',
                 '$argon2id$x', 'user', '2026-01-01 00:00:00', '2026-01-01 00:00:00',
                 '2026-01-01 00:00:00');
             INSERT INTO refresh_tokens VALUES ('h1', 'f1', 'u1', '2026-01-01 00:00:00',
                 '2027-01-01 00:00:00', NULL);",
        )
        .unwrap();
        let applied = conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        assert!(applied.to_string().contains("020000"), "{applied}");
        assert_eq!(
            texts(
                &mut conn,
                "SELECT username || ' ' || email_lower || ' ' || is_active AS value FROM users"
            ),
            ["alice a@x.io 1"]
        );
        assert_eq!(
            texts(&mut conn, "SELECT user_id AS value FROM refresh_tokens"),
            ["u1"]
        );
        assert_eq!(
            texts(
                &mut conn,
                "SELECT CAST(COUNT(*) AS TEXT) AS value FROM pragma_foreign_key_check()"
            ),
            ["0"]
        );
        // Still enforced and still cascading after the rebuild.
        assert!(
            conn.batch_execute(
                "INSERT INTO refresh_tokens VALUES ('h2', 'f2', 'nobody',
                 '2026-01-01 00:00:00', '2027-01-01 00:00:00', NULL)"
            )
            .is_err()
        );
        conn.batch_execute("DELETE FROM users WHERE id = 'u1'")
            .unwrap();
        assert!(texts(&mut conn, "SELECT token_hash AS value FROM refresh_tokens").is_empty());
    }

    /// Reverting the Django migration keeps a disabled account locked (its
    /// hash made unusable) rather than silently enabling it.
    #[test]
    fn reverting_the_django_migration_keeps_disabled_accounts_locked() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        conn.batch_execute(
            "INSERT INTO users (id, username, username_lower, email, email_lower,
                 password_hash, role, tokens_valid_after, created_at, updated_at, is_active)
             VALUES ('u1', 'old', 'old', 'o@x.io', 'o@x.io', 'pbkdf2_sha256$1$s$h', 'user',
                 '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)",
        )
        .unwrap();
        // Every later migration, then the Django one.
        let django = |conn: &mut SqliteConnection| {
            conn.applied_migrations()
                .unwrap()
                .iter()
                .any(|version| version.to_string() == "20261128020000")
        };
        assert!(django(&mut conn));
        while django(&mut conn) {
            conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        }
        assert_eq!(
            texts(&mut conn, "SELECT password_hash AS value FROM users"),
            ["!pbkdf2_sha256$1$s$h"]
        );
    }

    #[test]
    fn debug_output_hides_a_postgres_url() {
        let url = DatabaseUrl::parse("postgres://u:pw@h/db").unwrap();
        assert!(!format!("{url:?}").contains("pw"));
    }
}
