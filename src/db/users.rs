//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::users;

/// A stored user. `password_hash` is a PHC string and never leaves the
/// service; `Debug` omits it.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub username_lower: String,
    pub email: String,
    pub email_lower: String,
    pub password_hash: String,
    pub role: String,
    pub tokens_valid_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
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
    pub email_lower: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub tokens_valid_after: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
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

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user a login identifier names: a username match wins over an email
/// match, since a Django username may look like someone else's email.
pub fn find_by_login(conn: &mut DbConnection, identifier_lower: &str) -> QueryResult<Option<User>> {
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
    Ok(candidates.into_iter().next())
}

/// Checks the unique fields against every user but `except_id`.
pub fn taken(
    conn: &mut DbConnection,
    username_lower: Option<&str>,
    email_lower: Option<&str>,
    except_id: Option<&str>,
) -> QueryResult<Taken> {
    let mut taken = Taken::default();
    if let Some(name) = username_lower {
        let mut query = users::table
            .filter(users::username_lower.eq(name))
            .select(users::id)
            .into_boxed();
        if let Some(id) = except_id {
            query = query.filter(users::id.ne(id));
        }
        taken.username = query.first::<String>(conn).optional()?.is_some();
    }
    if let Some(email) = email_lower {
        let mut query = users::table
            .filter(users::email_lower.eq(email))
            .select(users::id)
            .into_boxed();
        if let Some(id) = except_id {
            query = query.filter(users::id.ne(id));
        }
        taken.email = query.first::<String>(conn).optional()?.is_some();
    }
    Ok(taken)
}

pub fn insert(conn: &mut DbConnection, user: &NewUser<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(drop)
}

/// One page of users, oldest first, and the total count.
pub fn list(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<(Vec<User>, i64)> {
    let total = users::table.count().get_result(conn)?;
    let items = users::table
        .order((users::created_at.asc(), users::id.asc()))
        .limit(limit)
        .offset(offset)
        .select(User::as_select())
        .load(conn)?;
    Ok((items, total))
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
}

/// Applies `changes`; false when the user no longer exists.
pub fn update(conn: &mut DbConnection, id: &str, changes: &UserChanges<'_>) -> QueryResult<bool> {
    let rows = diesel::update(users::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(rows == 1)
}

/// Replaces the hash only if it is still `old_hash`, so a concurrent password
/// change is never overwritten by a login's rehash.
pub fn upgrade_password_hash(
    conn: &mut DbConnection,
    id: &str,
    old_hash: &str,
    new_hash: &str,
) -> QueryResult<()> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(old_hash)),
    )
    .set(users::password_hash.eq(new_hash))
    .execute(conn)
    .map(drop)
}

/// Deletes the user (refresh tokens go with it); false when absent.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let rows = diesel::delete(users::table.find(id)).execute(conn)?;
    Ok(rows == 1)
}
