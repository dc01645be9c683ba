//! The `one_time_tokens` table: password-reset, email-verification and
//! email-change tokens, stored only as SHA-256 hashes. A token is taken
//! (deleted) by its one use; a new token of a kind replaces the user's
//! earlier one of that kind.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::one_time_tokens;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    VerifyEmail,
    ChangeEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::VerifyEmail => "verify_email",
            Purpose::ChangeEmail => "change_email",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Purpose::PasswordReset,
            Purpose::VerifyEmail,
            Purpose::ChangeEmail,
        ]
        .into_iter()
        .find(|purpose| purpose.as_str() == text)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = one_time_tokens)]
struct Row {
    user_id: String,
    purpose: String,
    email: Option<String>,
    expires_at: NaiveDateTime,
}

/// A token that was just used.
#[derive(Debug, Clone)]
pub struct TakenToken {
    pub user_id: String,
    pub purpose: Purpose,
    /// The address a verification or change token confirms.
    pub email: Option<String>,
}

/// Stores a new token for `user_id`, deleting the user's earlier ones of
/// the same purpose (only the newest link works).
pub fn replace(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
    purpose: Purpose,
    email: Option<&str>,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    delete_for_user(conn, user_id, purpose)?;
    diesel::insert_into(one_time_tokens::table)
        .values((
            one_time_tokens::token_hash.eq(token_hash),
            one_time_tokens::user_id.eq(user_id),
            one_time_tokens::purpose.eq(purpose.as_str()),
            one_time_tokens::email.eq(email),
            one_time_tokens::created_at.eq(now),
            one_time_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Uses the token: deletes it and returns what it was for, if it exists,
/// has one of `purposes` and has not expired. Run it in a transaction: its
/// first statement is a write, so SQLite takes the write lock before the
/// read (a read first could not be upgraded under concurrent writers), and
/// of two concurrent uses only one finds the row.
pub fn take(
    conn: &mut DbConnection,
    token_hash: &str,
    purposes: &[Purpose],
    now: NaiveDateTime,
) -> QueryResult<Option<TakenToken>> {
    let names: Vec<&str> = purposes.iter().map(|purpose| purpose.as_str()).collect();
    let mine = || {
        one_time_tokens::table
            .find(token_hash)
            .filter(one_time_tokens::purpose.eq_any(&names))
    };
    let locked = diesel::update(mine())
        .set(one_time_tokens::expires_at.eq(one_time_tokens::expires_at))
        .execute(conn)?;
    if locked != 1 {
        return Ok(None);
    }
    let row: Row = mine().select(Row::as_select()).get_result(conn)?;
    diesel::delete(one_time_tokens::table.find(token_hash)).execute(conn)?;
    if row.expires_at <= now {
        return Ok(None);
    }
    Ok(Purpose::parse(&row.purpose).map(|purpose| TakenToken {
        user_id: row.user_id,
        purpose,
        email: row.email,
    }))
}

/// Whether a token exists with one of `purposes` and has not expired: a
/// cheap check before expensive work; [`take`] decides.
pub fn is_live(
    conn: &mut DbConnection,
    token_hash: &str,
    purposes: &[Purpose],
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let names: Vec<&str> = purposes.iter().map(|purpose| purpose.as_str()).collect();
    let expires_at: Option<NaiveDateTime> = one_time_tokens::table
        .find(token_hash)
        .filter(one_time_tokens::purpose.eq_any(&names))
        .select(one_time_tokens::expires_at)
        .get_result(conn)
        .optional()?;
    Ok(expires_at.is_some_and(|expires_at| expires_at > now))
}

pub fn delete_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: Purpose,
) -> QueryResult<usize> {
    diesel::delete(
        one_time_tokens::table
            .filter(one_time_tokens::user_id.eq(user_id))
            .filter(one_time_tokens::purpose.eq(purpose.as_str())),
    )
    .execute(conn)
}

/// Deletes up to `batch` expired tokens.
pub fn prune_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired = one_time_tokens::table
        .filter(one_time_tokens::expires_at.le(now))
        .select(one_time_tokens::token_hash)
        .limit(batch)
        .load::<String>(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(one_time_tokens::table.filter(one_time_tokens::token_hash.eq_any(&expired)))
        .execute(conn)
}
