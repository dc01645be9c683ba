//! The `legacy_tokens` table: DRF `authtoken_token` keys imported from
//! Django, stored only as SHA-256 hashes. A key is exchanged once for a
//! token pair; it then stays as a retired row, so that a re-run of the
//! import does not bring it back.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::legacy_tokens;

#[derive(Debug, Insertable)]
#[diesel(table_name = legacy_tokens)]
pub struct NewLegacyToken<'a> {
    pub key_hash: &'a str,
    pub user_id: &'a str,
    pub created_at: NaiveDateTime,
}

/// Stores a key unless its hash is already there (imported before, maybe
/// retired since); true when it was new.
pub fn insert_if_absent(conn: &mut DbConnection, token: &NewLegacyToken<'_>) -> QueryResult<bool> {
    let exists = legacy_tokens::table
        .find(token.key_hash)
        .select(legacy_tokens::key_hash)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if exists {
        return Ok(false);
    }
    diesel::insert_into(legacy_tokens::table)
        .values(token)
        .execute(conn)?;
    Ok(true)
}

/// The owner of a key that has not been retired yet.
pub fn owner_of_live_key(conn: &mut DbConnection, key_hash: &str) -> QueryResult<Option<String>> {
    legacy_tokens::table
        .find(key_hash)
        .filter(legacy_tokens::retired_at.is_null())
        .select(legacy_tokens::user_id)
        .first(conn)
        .optional()
}

/// Retires a live key; of concurrent callers exactly one gets true (the
/// conditional UPDATE takes the row lock on PostgreSQL and the write lock on
/// SQLite).
pub fn retire(conn: &mut DbConnection, key_hash: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let rows = diesel::update(
        legacy_tokens::table
            .find(key_hash)
            .filter(legacy_tokens::retired_at.is_null()),
    )
    .set(legacy_tokens::retired_at.eq(now))
    .execute(conn)?;
    Ok(rows == 1)
}
