//! The `login_failures` table: failed logins per account within a window.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::DbConnection;
use super::schema::login_failures;

/// When the account's window ends, if it has reached `max_failures` in it.
pub fn throttled_until(
    conn: &mut DbConnection,
    account: &str,
    now: NaiveDateTime,
    max_failures: i32,
    window: TimeDelta,
) -> QueryResult<Option<NaiveDateTime>> {
    let row: Option<(i32, NaiveDateTime)> = login_failures::table
        .find(account)
        .select((login_failures::failures, login_failures::window_started_at))
        .first(conn)
        .optional()?;
    Ok(row.and_then(|(failures, started)| {
        let ends = started + window;
        (failures >= max_failures && ends > now).then_some(ends)
    }))
}

/// Counts one more failure: a window that has ended starts over at 1.
pub fn record_failure(
    conn: &mut DbConnection,
    account: &str,
    now: NaiveDateTime,
    window: TimeDelta,
) -> QueryResult<()> {
    let restarted = diesel::update(
        login_failures::table
            .find(account)
            .filter(login_failures::window_started_at.le(now - window)),
    )
    .set((
        login_failures::failures.eq(1),
        login_failures::window_started_at.eq(now),
    ))
    .execute(conn)?;
    if restarted == 1 || increment(conn, account)? {
        return Ok(());
    }
    // In its own (nested: a savepoint) transaction, so that a unique
    // violation leaves a caller's enclosing PostgreSQL transaction usable.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::account.eq(account),
                login_failures::failures.eq(1),
                login_failures::window_started_at.eq(now),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(()),
        // Another instance inserted the row meanwhile: count on it.
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            increment(conn, account).map(drop)
        }
        Err(error) => Err(error),
    }
}

fn increment(conn: &mut DbConnection, account: &str) -> QueryResult<bool> {
    let rows = diesel::update(login_failures::table.find(account))
        .set(login_failures::failures.eq(login_failures::failures + 1))
        .execute(conn)?;
    Ok(rows == 1)
}

/// Forgets the account's failures (after a successful login).
pub fn reset(conn: &mut DbConnection, account: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(account))
        .execute(conn)
        .map(drop)
}

/// Deletes up to `batch` rows whose window ended before `cutoff`.
pub fn prune_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let ended = login_failures::table
        .filter(login_failures::window_started_at.le(cutoff))
        .select(login_failures::account)
        .limit(batch)
        .load::<String>(conn)?;
    if ended.is_empty() {
        return Ok(0);
    }
    diesel::delete(login_failures::table.filter(login_failures::account.eq_any(&ended)))
        .execute(conn)
}
