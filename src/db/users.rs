//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{user_count, users};
use super::timestamp::Stamp;
use crate::domain::UserCursor;

/// A stored user. `password_hash` is a PHC string and never leaves the
/// service; `Debug` omits it.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub username_lower: String,
    /// Empty for an account imported from Django without one.
    pub email: String,
    pub email_lower: Option<String>,
    pub password_hash: String,
    pub role: String,
    #[diesel(deserialize_as = Stamp)]
    pub tokens_valid_after: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// False for a disabled account (by an admin, or imported from Django
    /// with `is_active = false`): it cannot log in, refresh, exchange a
    /// legacy key or reset its password.
    pub is_active: bool,
    /// The email was confirmed through a verification link (or imported).
    pub email_verified: bool,
    /// A new address the user asked for, until its confirmation link is used.
    pub pending_email: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub username_lower: &'a str,
    pub email: &'a str,
    pub email_lower: Option<&'a str>,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub tokens_valid_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub is_active: bool,
    pub email_verified: bool,
}

/// Which of the unique fields are already taken by another user.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub username: bool,
    pub email: bool,
}

impl Taken {
    pub fn any(&self) -> bool {
        self.username || self.email
    }
}

/// By primary key: the read of `GET /users/me` and of every
/// logout-sensitive route, so built per backend ([`crate::on_backend`]).
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    crate::on_backend!(conn, |c| users::table
        .find(id)
        .select(User::as_select())
        .get_result(c)
        .optional())
}

/// What a logout-sensitive request needs to know of its token besides the
/// claims: the user's row, whether its `jti` was revoked, and whether its
/// session is live (not ended, and the user's).
pub struct AccessCheck {
    pub user: User,
    pub revoked: bool,
    pub session_live: bool,
}

/// The user `id`, with whether token `jti` was revoked and whether session
/// `sid` is live, in one statement: one round trip to the database on
/// every logout-sensitive request instead of three. Without a `sid`,
/// `session_live` is false.
pub fn find_for_access(
    conn: &mut DbConnection,
    id: &str,
    jti: &str,
    sid: Option<&str>,
) -> QueryResult<Option<AccessCheck>> {
    use super::schema::{revoked_tokens, sessions};
    use diesel::dsl::exists;
    // No session has the empty id: without a `sid` the subquery finds none.
    let sid = sid.unwrap_or("");
    let found: Option<(User, bool, bool)> = crate::on_backend!(conn, |c| users::table
        .find(id)
        .select((
            User::as_select(),
            exists(revoked_tokens::table.find(jti)),
            exists(
                sessions::table
                    .find(sid)
                    .filter(sessions::user_id.eq(id))
                    .filter(sessions::ended_at.is_null()),
            ),
        ))
        .get_result(c)
        .optional())?;
    Ok(found.map(|(user, revoked, session_live)| AccessCheck {
        user,
        revoked,
        session_live,
    }))
}

/// By username, lower-cased.
pub fn find_by_username(
    conn: &mut DbConnection,
    username_lower: &str,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username_lower.eq(username_lower))
        .select(User::as_select())
        .get_result(conn)
        .optional()
}

/// By email, lower-cased.
pub fn find_by_email(conn: &mut DbConnection, email_lower: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email_lower.eq(email_lower))
        .select(User::as_select())
        .get_result(conn)
        .optional()
}

/// The user a login identifier names: a username match wins over an email
/// match, since a Django username may look like someone else's email. With
/// `verified_emails_only`, an email matches only once it is verified.
pub fn find_by_login(
    conn: &mut DbConnection,
    identifier_lower: &str,
    verified_emails_only: bool,
) -> QueryResult<Option<User>> {
    let mut candidates: Vec<User> = users::table
        .filter(
            users::username_lower
                .eq(identifier_lower)
                .or(users::email_lower.eq(identifier_lower)),
        )
        .select(User::as_select())
        .limit(2)
        .load(conn)?;
    candidates.sort_by_key(|user| user.username_lower != identifier_lower);
    Ok(candidates.into_iter().find(|user| {
        user.username_lower == identifier_lower || user.email_verified || !verified_emails_only
    }))
}

/// Checks the unique fields against every user but `except_id`. A username
/// may contain `@`, so names and emails share one namespace: a username
/// equal to someone's email (or the reverse) is taken too, or logging in
/// "by email" could reach the wrong account.
pub fn taken(
    conn: &mut DbConnection,
    username_lower: Option<&str>,
    email_lower: Option<&str>,
    except_id: Option<&str>,
) -> QueryResult<Taken> {
    let mut in_use = |identifier: &str| {
        let mut query = users::table
            .filter(
                users::username_lower
                    .eq(identifier)
                    .or(users::email_lower.eq(identifier)),
            )
            .select(users::id)
            .into_boxed();
        if let Some(id) = except_id {
            query = query.filter(users::id.ne(id));
        }
        query
            .first::<String>(conn)
            .optional()
            .map(|found| found.is_some())
    };
    Ok(Taken {
        username: username_lower
            .map(&mut in_use)
            .transpose()?
            .unwrap_or(false),
        email: email_lower.map(&mut in_use).transpose()?.unwrap_or(false),
    })
}

pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(drop)
}

/// Where a page of users starts, in creation order (`created_at`, then `id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageStart {
    /// After skipping this many users: the database still walks past them.
    Offset(i64),
    /// Just after this user (a keyset): the index goes straight there, so a
    /// deep page costs what the first one does.
    After(UserCursor),
}

/// Up to `limit` users in creation order from `start`, and whether more
/// follow (one extra row is read to know).
pub fn page(
    conn: &mut DbConnection,
    limit: i64,
    start: &PageStart,
) -> QueryResult<(Vec<User>, bool)> {
    let mut query = users::table
        .order((users::created_at.asc(), users::id.asc()))
        .limit(limit.saturating_add(1))
        .select(User::as_select())
        .into_boxed();
    query = match start {
        PageStart::Offset(offset) => query.offset(*offset),
        // (created_at, id) > (after): the leading `>=` is what lets both
        // planners start a range scan of the (created_at, id) index there;
        // the OR alone made SQLite and PostgreSQL read from the start.
        PageStart::After(after) => query.filter(
            users::created_at.ge(after.created_at).and(
                users::created_at
                    .gt(after.created_at)
                    .or(users::id.gt(after.id.clone())),
            ),
        ),
    };
    let mut items = query.load(conn)?;
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = items.len() > limit;
    items.truncate(limit);
    Ok((items, more))
}

/// How many users there are: one row kept by triggers on `users` (see the
/// `user_count` migration), not a count of the table.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    crate::on_backend!(conn, |c| user_count::table
        .find(1)
        .select(user_count::n)
        .get_result(c))
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = users)]
pub struct UserChanges<'a> {
    pub username: Option<&'a str>,
    pub username_lower: Option<&'a str>,
    pub email: Option<&'a str>,
    pub email_lower: Option<&'a str>,
    pub role: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub tokens_valid_after: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
    pub is_active: Option<bool>,
    pub email_verified: Option<bool>,
    /// `Some(None)` clears it.
    pub pending_email: Option<Option<&'a str>>,
}

/// Applies `changes`; false when the user no longer exists.
pub fn update(conn: &mut DbConnection, id: &str, changes: &UserChanges<'_>) -> QueryResult<bool> {
    let rows = diesel::update(users::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(rows == 1)
}

/// Locks the user's row for the rest of the transaction if their password
/// hash is still `verified_hash`: a login whose password check raced a
/// password change must not open a session. A write, so that SQLite takes
/// its write lock here rather than upgrading a read lock later.
pub fn lock_if_password_is(
    conn: &mut DbConnection,
    id: &str,
    verified_hash: &str,
) -> QueryResult<bool> {
    let rows = diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(verified_hash)),
    )
    .set(users::password_hash.eq(users::password_hash))
    .execute(conn)?;
    Ok(rows == 1)
}

/// Deletes the user (refresh tokens go with it); false when absent.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let rows = diesel::delete(users::table.find(id)).execute(conn)?;
    Ok(rows == 1)
}

/// Locks the user's row for the rest of the transaction (a no-op write, so
/// that SQLite takes its write lock here); false when the user is gone.
pub fn lock(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let rows = diesel::update(users::table.find(id))
        .set(users::tokens_valid_after.eq(users::tokens_valid_after))
        .execute(conn)?;
    Ok(rows == 1)
}

/// How many active accounts still carry a password hash in a Django
/// format, waiting to be upgraded at their next login. A stored hash is
/// tessera's own PHC string (`$argon2id$...`), unusable (`!...`, which is also
/// how the import stores formats it cannot verify), or a Django format.
pub fn count_legacy_hashes(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::is_active)
        .filter(users::password_hash.not_like("$%"))
        .filter(users::password_hash.not_like("!%"))
        .count()
        .get_result(conn)
}
