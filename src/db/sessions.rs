//! The `sessions` table: one row per refresh-token family (the family id is
//! the session id), with when it started and was last used, and from where.
//! An ended session keeps its row (with `ended_at`) until it is pruned, so
//! that its access tokens (`sid`) are refused on the logout-sensitive routes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{refresh_tokens, sessions};

/// Longest user agent kept; the rest is cut off (at a character boundary).
pub const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub ended_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// `user_agent` cut to [`MAX_USER_AGENT_CHARS`] characters.
pub fn truncate_user_agent(user_agent: &str) -> String {
    user_agent.chars().take(MAX_USER_AGENT_CHARS).collect()
}

pub fn insert(conn: &mut DbConnection, session: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Session>> {
    sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .optional()
}

/// Records a use of the session (a refresh), inside the rotation's
/// transaction. A family opened before sessions existed gets its row now.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let updated = diesel::update(sessions::table.find(id))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        insert(
            conn,
            &NewSession {
                id,
                user_id,
                created_at: now,
                last_used_at: now,
                user_agent: None,
                ip: None,
            },
        )?;
    }
    Ok(())
}

/// Marks session `id` ended (if it was not already).
pub fn end(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::ended_at.is_null()),
    )
    .set(sessions::ended_at.eq(now))
    .execute(conn)
}

/// Marks every session of `user_id` ended.
pub fn end_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::ended_at.is_null()),
    )
    .set(sessions::ended_at.eq(now))
    .execute(conn)
}

/// The user's live sessions (not ended, with an unexpired current refresh
/// token), most recently used first.
pub fn list_live(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<Session>> {
    let live_families = refresh_tokens::table
        .filter(refresh_tokens::user_id.eq(user_id))
        .filter(refresh_tokens::rotated_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now))
        .select(refresh_tokens::family_id);
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::ended_at.is_null())
        .filter(sessions::id.eq_any(live_families))
        .order((sessions::last_used_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
}

/// Deletes up to `batch` sessions not used since `cutoff` (by then their
/// refresh tokens and access tokens have expired); returns how many went.
pub fn prune_unused_since(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let stale = sessions::table
        .filter(sessions::last_used_at.le(cutoff))
        .select(sessions::id)
        .limit(batch)
        .load::<String>(conn)?;
    if stale.is_empty() {
        return Ok(0);
    }
    diesel::delete(sessions::table.filter(sessions::id.eq_any(&stale))).execute(conn)
}
