//! The multi-factor tables: `mfa_totp` (one encrypted TOTP secret per user,
//! active once confirmed, with the last accepted time step), the
//! `mfa_recovery_codes` (SHA-256 hashes, each usable once) and the
//! `mfa_challenges` of logins waiting for their second factor (hashes of
//! their `mfa_token`s).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{mfa_challenges, mfa_recovery_codes, mfa_totp};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mfa_totp)]
pub struct Totp {
    pub user_id: String,
    pub sealed_secret: String,
    pub confirmed_at: Option<NaiveDateTime>,
    pub last_step: Option<i64>,
}

pub fn find_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<Totp>> {
    mfa_totp::table
        .find(user_id)
        .select(Totp::as_select())
        .first(conn)
        .optional()
}

/// Whether the user has an active (confirmed) TOTP.
pub fn has_active_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        mfa_totp::table
            .find(user_id)
            .filter(mfa_totp::confirmed_at.is_not_null()),
    ))
    .get_result(conn)
}

/// Stores a new, unconfirmed secret, replacing an earlier unconfirmed one.
/// False (nothing written) when the user already has an active TOTP.
pub fn start_enrolment(
    conn: &mut DbConnection,
    user_id: &str,
    sealed_secret: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    if has_active_totp(conn, user_id)? {
        return Ok(false);
    }
    diesel::delete(mfa_totp::table.find(user_id)).execute(conn)?;
    diesel::insert_into(mfa_totp::table)
        .values((
            mfa_totp::user_id.eq(user_id),
            mfa_totp::sealed_secret.eq(sealed_secret),
            mfa_totp::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| true)
}

/// Records `step` as the last accepted one, if it is later than the stored
/// one (the conditional update makes concurrent uses of one code race to a
/// single winner), and confirms an enrolment. False when `step` was already
/// used (a replay). Run it inside a transaction.
pub fn accept_step(
    conn: &mut DbConnection,
    user_id: &str,
    step: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        mfa_totp::table.find(user_id).filter(
            mfa_totp::last_step
                .is_null()
                .or(mfa_totp::last_step.lt(step)),
        ),
    )
    .set(mfa_totp::last_step.eq(step))
    .execute(conn)?;
    if updated == 1 {
        diesel::update(
            mfa_totp::table
                .find(user_id)
                .filter(mfa_totp::confirmed_at.is_null()),
        )
        .set(mfa_totp::confirmed_at.eq(now))
        .execute(conn)?;
    }
    Ok(updated == 1)
}

/// Removes the user's TOTP and recovery codes; false when there was none.
pub fn remove(conn: &mut DbConnection, user_id: &str) -> QueryResult<bool> {
    diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let removed = diesel::delete(mfa_totp::table.find(user_id)).execute(conn)?;
    Ok(removed == 1)
}

/// Replaces the user's recovery codes with new ones (their hashes).
pub fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    code_hashes: &[String],
) -> QueryResult<()> {
    diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    // One statement per code: the multi-backend connection has no batch
    // insert, and there are ten.
    for hash in code_hashes {
        diesel::insert_into(mfa_recovery_codes::table)
            .values((
                mfa_recovery_codes::code_hash.eq(hash),
                mfa_recovery_codes::user_id.eq(user_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Uses a recovery code of the user, once: false when it is unknown,
/// another user's, or already used.
pub fn use_recovery_code(
    conn: &mut DbConnection,
    user_id: &str,
    code_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let used = diesel::update(
        mfa_recovery_codes::table
            .find(code_hash)
            .filter(mfa_recovery_codes::user_id.eq(user_id))
            .filter(mfa_recovery_codes::used_at.is_null()),
    )
    .set(mfa_recovery_codes::used_at.eq(now))
    .execute(conn)?;
    Ok(used == 1)
}

/// A login waiting for its second factor.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mfa_challenges)]
pub struct Challenge {
    pub user_id: String,
    pub failures: i32,
    pub expires_at: NaiveDateTime,
}

pub fn insert_challenge(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::token_hash.eq(token_hash),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::created_at.eq(now),
            mfa_challenges::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The live challenge of `token_hash`, locked for this transaction (a
/// no-op write first, so that concurrent attempts with one `mfa_token`
/// serialise on both backends).
pub fn lock_challenge(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Challenge>> {
    diesel::update(mfa_challenges::table.find(token_hash))
        .set(mfa_challenges::failures.eq(mfa_challenges::failures))
        .execute(conn)?;
    mfa_challenges::table
        .find(token_hash)
        .filter(mfa_challenges::expires_at.gt(now))
        .select(Challenge::as_select())
        .first(conn)
        .optional()
}

/// Counts a wrong code; the challenge is deleted at `max_failures`.
pub fn record_challenge_failure(
    conn: &mut DbConnection,
    token_hash: &str,
    max_failures: i32,
) -> QueryResult<()> {
    diesel::update(mfa_challenges::table.find(token_hash))
        .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
        .execute(conn)?;
    diesel::delete(
        mfa_challenges::table
            .find(token_hash)
            .filter(mfa_challenges::failures.ge(max_failures)),
    )
    .execute(conn)
    .map(drop)
}

pub fn delete_challenge(conn: &mut DbConnection, token_hash: &str) -> QueryResult<()> {
    diesel::delete(mfa_challenges::table.find(token_hash))
        .execute(conn)
        .map(drop)
}

/// Deletes up to `batch` challenges that expired before `cutoff`.
pub fn prune_expired_challenges(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired = mfa_challenges::table
        .filter(mfa_challenges::expires_at.lt(cutoff))
        .select(mfa_challenges::token_hash)
        .limit(batch)
        .load::<String>(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(mfa_challenges::table.filter(mfa_challenges::token_hash.eq_any(&expired)))
        .execute(conn)
}
