//! The `revoked_tokens` table: access tokens logged out before they expire,
//! by `jti`. Consulted only by logout-sensitive routes; a row is pruned once
//! the token it names has expired anyway.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::DbConnection;
use super::schema::revoked_tokens;

/// Records that `jti` is revoked until `expires_at`; revoking twice is fine.
pub fn revoke(
    conn: &mut DbConnection,
    jti: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    // A portable "insert or ignore": the backends spell upserts differently.
    match diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::user_id.eq(user_id),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
    {
        Ok(_) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(error) => Err(error),
    }
}

pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    crate::on_backend!(conn, |c| diesel::select(diesel::dsl::exists(
        revoked_tokens::table.find(jti)
    ))
    .get_result(c))
}

/// Deletes up to `batch` rows whose token has expired; returns how many went.
pub fn prune_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired = revoked_tokens::table
        .filter(revoked_tokens::expires_at.le(now))
        .select(revoked_tokens::jti)
        .limit(batch)
        .load::<String>(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::jti.eq_any(&expired))).execute(conn)
}
