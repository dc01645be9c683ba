//! `tessera import django`: copies the users of a Django project (and its
//! DRF `authtoken_token` keys, as hashes) into tessera's database.
//!
//! The Django database is opened read-only and read by column name, so both
//! Django's stock `auth_user` and a custom user model built on
//! `AbstractUser` (`--user-table accounts_user`) work. Everything is written
//! in one transaction; a re-run recognises what it imported before (by the
//! Django row, kept in `legacy_accounts` even after the account is deleted)
//! and leaves it alone, and a username or email that already belongs to
//! another tessera account is reported, never overwritten.
//!
//! Mapping: `username` and `email` as they are (a blank email stays blank,
//! with no uniqueness claim); `password` as Django stored it, verified in
//! its own format at login and then re-hashed with Argon2id;
//! `is_superuser` to the `admin` role, everyone else (including `is_staff`
//! alone, which in Django only opens the admin site) to `user`;
//! `is_active = false` to a disabled account; `date_joined` to `created_at`.

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{PgConnection, SqliteConnection};
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::{self, AccountError, AccountRecord};
use crate::auth::{django, refresh};
use crate::db::{self, DbConnection, legacy_accounts, legacy_tokens};
use crate::domain::{Email, Role, Username};

/// Where to import from, and how.
pub struct ImportOptions {
    /// `sqlite://PATH` or `postgres://...` (may carry a password).
    pub from: SecretString,
    /// The user model's table.
    pub user_table: String,
    /// Do everything, then roll back.
    pub dry_run: bool,
}

/// What the import did, or would do.
#[derive(Debug, Default)]
pub struct Report {
    pub users_imported: usize,
    pub users_unchanged: usize,
    pub users_skipped: Vec<Skipped>,
    /// Imported, but with a password that can never match (a format tessera
    /// does not verify): the account needs a new password from an admin.
    pub unusable_formats: Vec<Skipped>,
    pub tokens_imported: usize,
    pub tokens_unchanged: usize,
    pub tokens_skipped: Vec<Skipped>,
    /// No `authtoken_token` table in the Django database.
    pub no_token_table: bool,
    pub dry_run: bool,
}

/// One row left out, and why.
#[derive(Debug)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "users: {} imported, {} already imported, {} skipped",
            self.users_imported,
            self.users_unchanged,
            self.users_skipped.len()
        )?;
        for skipped in &self.users_skipped {
            writeln!(f, "  skipped {}: {}", skipped.what, skipped.reason)?;
        }
        for warning in &self.unusable_formats {
            writeln!(f, "  warning {}: {}", warning.what, warning.reason)?;
        }
        if self.no_token_table {
            writeln!(f, "tokens: no authtoken_token table, none imported")?;
        } else {
            writeln!(
                f,
                "tokens: {} imported, {} already imported, {} skipped",
                self.tokens_imported,
                self.tokens_unchanged,
                self.tokens_skipped.len()
            )?;
            for skipped in &self.tokens_skipped {
                writeln!(f, "  skipped {}: {}", skipped.what, skipped.reason)?;
            }
        }
        if self.dry_run {
            writeln!(
                f,
                "dry run: no account or key was written (tessera's own migrations were applied)"
            )?;
        }
        Ok(())
    }
}

/// A row of the Django user table, as the query below shapes it.
#[derive(QueryableByName)]
struct DjangoUser {
    /// Django's primary key as text: an integer, or a UUID for a custom
    /// user model.
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    password: String,
    #[diesel(sql_type = Integer)]
    is_superuser: i32,
    #[diesel(sql_type = Integer)]
    is_active: i32,
    #[diesel(sql_type = Text)]
    date_joined: String,
}

/// A row of DRF's `authtoken_token`.
#[derive(QueryableByName)]
struct DjangoToken {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Text)]
    created: String,
}

/// Everything read from the Django database.
struct Source {
    users: Vec<DjangoUser>,
    tokens: Option<Vec<DjangoToken>>,
}

/// A table name is spliced into SQL: only plain identifiers are allowed.
fn check_table_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "--user-table: `{name}` is not a table name (letters, digits and _)"
        ))
    }
}

/// The reads of [`read_source`], the same on both backends but for the SQL
/// that renders a timestamp as UTC text and the catalogue that lists tables.
macro_rules! read_all {
    ($conn:expr, $user_table:expr, $utc:expr, $token_table_exists:expr) => {{
        let user_table = $user_table;
        let users = diesel::sql_query(format!(
            "SELECT CAST(id AS TEXT) AS id, username, COALESCE(email, '') AS email, password, \
             CASE WHEN is_superuser THEN 1 ELSE 0 END AS is_superuser, \
             CASE WHEN is_active THEN 1 ELSE 0 END AS is_active, \
             {} AS date_joined \
             FROM {user_table} ORDER BY {user_table}.id",
            $utc("date_joined")
        ))
        .load::<DjangoUser>($conn)
        .map_err(|e| format!("cannot read {user_table}: {e}"))?;
        let has_tokens = diesel::sql_query($token_table_exists)
            .get_result::<Count>($conn)
            .map_err(|e| format!("cannot read authtoken_token: {e}"))?
            .count
            > 0;
        let tokens = if has_tokens {
            Some(
                diesel::sql_query(format!(
                    "SELECT key, CAST(user_id AS TEXT) AS user_id, {} AS created \
                     FROM authtoken_token ORDER BY authtoken_token.created, key",
                    $utc("created")
                ))
                .load::<DjangoToken>($conn)
                .map_err(|e| format!("cannot read authtoken_token: {e}"))?,
            )
        } else {
            None
        };
        Ok(Source { users, tokens })
    }};
}

/// Reads the user table and the DRF keys from the Django database at `url`,
/// in one read-only snapshot.
fn read_source(url: &SecretString, user_table: &str) -> Result<Source, String> {
    let url = url.expose_secret();
    let explain = |error: ReadError| match error {
        ReadError::Message(message) => db::redact_password(&message, url),
        ReadError::Database(e) => db::redact_password(&format!("--from: {e}"), url),
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !std::path::Path::new(path).is_file() {
            return Err(format!("--from: {path} is not a file"));
        }
        // Read-only, and never created: the Django database stays untouched.
        let uri = format!("file:{}?mode=ro", percent_encode_path(path));
        let mut conn = SqliteConnection::establish(&uri)
            .map_err(|e| format!("--from: cannot open {path}: {e}"))?;
        conn.transaction::<_, ReadError, _>(|conn| {
            read_all!(
                conn,
                user_table,
                |column: &str| format!("CAST({column} AS TEXT)"),
                "SELECT COUNT(*) AS count FROM sqlite_master \
                 WHERE type = 'table' AND name = 'authtoken_token'"
            )
        })
        .map_err(explain)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = PgConnection::establish(url)
            .map_err(|e| db::redact_password(&format!("--from: cannot connect: {e}"), url))?;
        conn.build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, ReadError, _>(|conn| {
                read_all!(
                    conn,
                    user_table,
                    |column: &str| format!(
                        "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
                    ),
                    "SELECT COUNT(*) AS count FROM information_schema.tables \
                     WHERE table_name = 'authtoken_token' \
                     AND table_schema = ANY (current_schemas(false))"
                )
            })
            .map_err(explain)
    } else {
        Err("--from: must start with sqlite:// or postgres://".to_owned())
    }
}

/// A read failure inside the source transaction: already explained, or
/// the transaction itself failed.
enum ReadError {
    Message(String),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for ReadError {
    fn from(error: diesel::result::Error) -> Self {
        ReadError::Database(error)
    }
}

impl From<String> for ReadError {
    fn from(message: String) -> Self {
        ReadError::Message(message)
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Escapes what an SQLite URI would read as syntax in a file path.
fn percent_encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => encoded.push_str(&format!("%{:02X}", c as u32)),
            _ => encoded.push(c),
        }
    }
    encoded
}

/// Django's timestamps, as the queries above render them: UTC, with or
/// without fractional seconds.
fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    let text = text
        .strip_suffix("+00:00")
        .or_else(|| text.strip_suffix('Z'))
        .unwrap_or(text);
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// Signals the rollback of a dry run, carrying its report out.
enum Outcome {
    Failed(String),
    DryRun(Report),
}

impl From<diesel::result::Error> for Outcome {
    fn from(error: diesel::result::Error) -> Self {
        Outcome::Failed(format!("database: {error}"))
    }
}

/// Reads the Django database and writes the accounts and keys into
/// `target` (already migrated) in one transaction.
pub fn import(target: &mut DbConnection, options: &ImportOptions) -> Result<Report, String> {
    check_table_name(&options.user_table)?;
    // Unquoted SQL names ignore case; the import's memory must too.
    let user_table = options.user_table.to_ascii_lowercase();
    let source = read_source(&options.from, &user_table)?;
    let result = target.transaction(|conn| {
        let mut report = write(conn, &source, &user_table)?;
        report.dry_run = options.dry_run;
        if options.dry_run {
            return Err(Outcome::DryRun(report));
        }
        Ok(report)
    });
    match result {
        Ok(report) | Err(Outcome::DryRun(report)) => Ok(report),
        Err(Outcome::Failed(message)) => Err(message),
    }
}

fn write(conn: &mut DbConnection, source: &Source, table: &str) -> Result<Report, Outcome> {
    let mut report = Report::default();
    let now = db::now();
    // Django user id to tessera user id, for the keys.
    let mut imported_ids: HashMap<&str, String> = HashMap::new();
    for row in &source.users {
        let what = format!("user {} (django id {})", row.username, row.id);
        let legacy_id = format!("django:{table}:{}", row.id);
        if let Some(before) = legacy_accounts::find(conn, &legacy_id)? {
            match before.user_id {
                // The same Django row under the same name: imported before.
                Some(id) if before.username_lower == row.username.to_lowercase() => {
                    imported_ids.insert(&row.id, id);
                    report.users_unchanged += 1;
                }
                Some(_) => report.users_skipped.push(Skipped {
                    what,
                    reason: format!(
                        "django id {} was imported before as `{}`: another Django database?",
                        row.id, before.username_lower
                    ),
                }),
                None => report.users_skipped.push(Skipped {
                    what,
                    reason: "imported before, then deleted in tessera: not re-created".to_owned(),
                }),
            }
            continue;
        }
        let account = match check_user(row) {
            Ok(account) => account,
            Err(reason) => {
                report.users_skipped.push(Skipped { what, reason });
                continue;
            }
        };
        // A password in a format tessera does not verify is kept, marked
        // unusable: it never matches, whatever it is.
        let (password_hash, unusable) = if django::is_django_hash(&row.password) {
            (row.password.clone(), None)
        } else {
            let format = row.password.split('$').next().unwrap_or_default();
            let warning = Skipped {
                what: what.clone(),
                reason: format!(
                    "imported, but its `{format}` password hash is not one tessera verifies \
                     and can never match; an admin must set a new password \
                     (PUT /users/{{id}}/password)"
                ),
            };
            (format!("!{}", row.password), Some(warning))
        };
        let record = AccountRecord {
            username: &account.username,
            email: account.email.as_ref(),
            password_hash: &password_hash,
            role: account.role,
            created_at: account.created_at,
            is_active: row.is_active != 0,
            email_verified: account.email.is_some(),
        };
        let id = match accounts::insert(conn, &record) {
            Ok(user) => user.id,
            Err(AccountError::Taken(taken)) => {
                let reason = if taken.username {
                    format!("username `{}` is already taken in tessera", row.username)
                } else {
                    format!("email `{}` is already taken in tessera", row.email)
                };
                report.users_skipped.push(Skipped { what, reason });
                continue;
            }
            Err(error) => return Err(Outcome::Failed(error.to_string())),
        };
        report.unusable_formats.extend(unusable);
        let username_lower = account.username.canonical();
        legacy_accounts::insert(
            conn,
            &legacy_accounts::NewLegacyAccount {
                legacy_id: &legacy_id,
                user_id: &id,
                username_lower: &username_lower,
                imported_at: now,
            },
        )?;
        imported_ids.insert(&row.id, id);
        report.users_imported += 1;
    }
    let Some(tokens) = &source.tokens else {
        report.no_token_table = true;
        return Ok(report);
    };
    for token in tokens {
        let prefix: String = token.key.chars().take(6).collect();
        let what = format!("key {prefix}... (django user {})", token.user_id);
        let Some(user_id) = imported_ids.get(token.user_id.as_str()) else {
            report.tokens_skipped.push(Skipped {
                what,
                reason: "its user was not imported".to_owned(),
            });
            continue;
        };
        if !django::is_drf_key(&token.key) {
            report.tokens_skipped.push(Skipped {
                what,
                reason: "not a 40-hex-digit DRF key".to_owned(),
            });
            continue;
        }
        let created_at = parse_timestamp(&token.created).unwrap_or(now);
        let new = legacy_tokens::insert_if_absent(
            conn,
            &legacy_tokens::NewLegacyToken {
                key_hash: &refresh::hash(&token.key),
                user_id,
                created_at,
            },
        )?;
        if new {
            report.tokens_imported += 1;
        } else {
            report.tokens_unchanged += 1;
        }
    }
    Ok(report)
}

/// A Django user, checked against tessera's rules and accounts.
struct Account {
    username: Username,
    email: Option<Email>,
    role: Role,
    created_at: NaiveDateTime,
}

/// The account to create for `row`, or why it cannot be.
fn check_user(row: &DjangoUser) -> Result<Account, String> {
    let username = match Username::parse(&row.username) {
        Ok(username) => username,
        Err(problem) => return Err(format!("invalid username: {problem}")),
    };
    let email = match row.email.trim() {
        "" => None,
        raw => match Email::parse(raw) {
            Ok(email) => Some(email),
            Err(problem) => return Err(format!("invalid email `{raw}`: {problem}")),
        },
    };
    let Some(created_at) = parse_timestamp(&row.date_joined) else {
        return Err(format!("unreadable date_joined `{}`", row.date_joined));
    };
    Ok(Account {
        username,
        email,
        role: if row.is_superuser != 0 {
            Role::Admin
        } else {
            Role::User
        },
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_timestamps_parse_with_and_without_fractions() {
        for text in [
            "2019-03-01 10:00:00",
            "2019-03-01 10:00:00.123456",
            "2019-03-01 10:00:00+00:00",
            "2019-03-01T10:00:00Z",
        ] {
            assert!(parse_timestamp(text).is_some(), "{text}");
        }
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn only_plain_identifiers_name_the_user_table() {
        assert!(check_table_name("auth_user").is_ok());
        assert!(check_table_name("accounts_User2").is_ok());
        for bad in ["", "1users", "auth_user; DROP TABLE x", "a.b", "\"x\""] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_uri_syntax_in_paths_is_escaped() {
        assert_eq!(percent_encode_path("/tmp/a?b#c%d"), "/tmp/a%3Fb%23c%25d");
    }
}
