//! The `legacy_tokens` table: DRF `authtoken_token` keys imported from
//! Django, stored only as SHA-256 hashes. A key is exchanged once for a
//! token pair; it then stays as a retired row (and as an ownerless one when
//! its account is deleted), so that a re-run of the import does not bring
//! it back.

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

/// Retires a live key and returns its owner; of concurrent callers exactly
/// one gets it (the conditional UPDATE takes the row lock on PostgreSQL and
/// the write lock on SQLite). None for an unknown, retired or ownerless key.
pub fn retire(
    conn: &mut DbConnection,
    key_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let rows = diesel::update(
        legacy_tokens::table
            .find(key_hash)
            .filter(legacy_tokens::retired_at.is_null())
            .filter(legacy_tokens::user_id.is_not_null()),
    )
    .set(legacy_tokens::retired_at.eq(now))
    .execute(conn)?;
    if rows == 0 {
        return Ok(None);
    }
    legacy_tokens::table
        .find(key_hash)
        .select(legacy_tokens::user_id)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Retires every live key of a user: a password change or "log out
/// everywhere" ends the legacy keys too.
pub fn retire_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        legacy_tokens::table
            .filter(legacy_tokens::user_id.eq(user_id))
            .filter(legacy_tokens::retired_at.is_null()),
    )
    .set(legacy_tokens::retired_at.eq(now))
    .execute(conn)
    .map(drop)
}
