//! The `refresh_tokens` table: only SHA-256 hashes of the tokens are stored.
//! Every use rotates a token; rotated rows stay (until they expire) so that a
//! replayed token is recognised and its whole family revoked.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{refresh_tokens, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub rotated_at: Option<NaiveDateTime>,
    /// How the family's user signed in (RFC 8176 values, space-separated).
    pub amr: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
    pub family_id: &'a str,
    pub user_id: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub amr: &'a str,
}

/// What presenting a refresh token came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation<T> {
    /// The token was current (or inside the reuse grace window); its
    /// successor has been stored, and `on_rotated` gave `session`.
    Rotated { user_id: String, session: T },
    /// The token had already been rotated: its family is now revoked.
    ReuseDetected { user_id: String },
    /// Unknown (never issued, revoked, or pruned) or expired.
    Invalid,
}

pub fn insert(conn: &mut DbConnection, token: &NewRefreshToken<'_>) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(token)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<RefreshToken>> {
    crate::on_backend!(conn, |c| refresh_tokens::table
        .find(token_hash)
        .select(RefreshToken::as_select())
        .get_result(c)
        .optional())
}

/// Atomically retires `presented_hash` and stores `successor_hash` in its
/// family (with its `amr`), then runs `on_rotated` on the presented token's
/// row (to read the user and stamp the new access token) before committing.
///
/// The owner's user row is locked first, as a password change or "log out
/// everywhere" does, so those and a rotation serialise: either the rotation
/// commits first and they delete its successor, or they commit first and
/// the presented token is gone. Then the conditional UPDATE claims the token,
/// so of several concurrent callers exactly one wins: on PostgreSQL the row
/// lock makes the others re-check `rotated_at`, on SQLite the write lock
/// serialises them.
pub fn rotate<T>(
    conn: &mut DbConnection,
    presented_hash: &str,
    successor_hash: &str,
    now: NaiveDateTime,
    ttl: TimeDelta,
    reuse_grace: TimeDelta,
    on_rotated: impl FnOnce(&mut DbConnection, &RefreshToken) -> QueryResult<T>,
) -> QueryResult<Rotation<T>> {
    conn.transaction(|conn| {
        let owner = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(presented_hash))
            .select(refresh_tokens::user_id.nullable())
            .single_value();
        diesel::update(users::table.filter(users::id.nullable().eq(owner)))
            .set(users::tokens_valid_after.eq(users::tokens_valid_after))
            .execute(conn)?;
        let claimed = diesel::update(
            refresh_tokens::table
                .find(presented_hash)
                .filter(refresh_tokens::rotated_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set(refresh_tokens::rotated_at.eq(now))
        .execute(conn)?;
        let Some(presented) = find(conn, presented_hash)? else {
            return Ok(Rotation::Invalid);
        };
        if claimed == 0 {
            if presented.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            // Read the clock again: this caller may have waited on the
            // winner's row lock, so `now` can predate the winner's
            // `rotated_at`, and a zero grace must never admit anyone.
            let checked_at = super::now().max(now);
            let within_grace = reuse_grace > TimeDelta::zero()
                && presented
                    .rotated_at
                    .is_some_and(|rotated| checked_at < rotated + reuse_grace);
            if !within_grace {
                revoke_family(conn, &presented.family_id)?;
                return Ok(Rotation::ReuseDetected {
                    user_id: presented.user_id,
                });
            }
        }
        insert(
            conn,
            &NewRefreshToken {
                token_hash: successor_hash,
                family_id: &presented.family_id,
                user_id: &presented.user_id,
                created_at: now,
                expires_at: now + ttl,
                amr: &presented.amr,
            },
        )?;
        super::sessions::touch(conn, &presented.family_id, &presented.user_id, now)?;
        let session = on_rotated(conn, &presented)?;
        Ok(Rotation::Rotated {
            user_id: presented.user_id,
            session,
        })
    })
}

/// Deletes every token of a family and ends its session.
pub fn revoke_family(conn: &mut DbConnection, family_id: &str) -> QueryResult<usize> {
    super::sessions::end(conn, family_id, super::now())?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .execute(conn)
}

/// Revokes the family of `token_hash` if that token belongs to `user_id`.
pub fn revoke_family_of(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
) -> QueryResult<usize> {
    match find(conn, token_hash)? {
        Some(token) if token.user_id == user_id => revoke_family(conn, &token.family_id),
        _ => Ok(0),
    }
}

/// Deletes every refresh token of a user and ends all their sessions.
pub fn revoke_all_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    super::sessions::end_all_for_user(conn, user_id, super::now())?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::user_id.eq(user_id))).execute(conn)
}

/// Deletes up to `batch` expired tokens; returns how many went.
pub fn prune_expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired = refresh_tokens::table
        .filter(refresh_tokens::expires_at.le(now))
        .select(refresh_tokens::token_hash)
        .limit(batch)
        .load::<String>(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(&expired)))
        .execute(conn)
}
