//! Accounts: registration, reading, profile changes, password changes and
//! deletion, with the uniqueness rules of usernames and emails.
//!
//! Callers pass parsed domain values ([`Username`], [`Email`],
//! [`Password`], [`Role`]) and get an [`AccountError`]; nothing here knows
//! about HTTP. [`insert`] is the one way a user row is created, whether by
//! registration, the CLI or the Django import.

use chrono::NaiveDateTime;
use diesel::Connection;
use secrecy::SecretString;

use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::sessions::{revoke_access_tokens, revoke_all_tokens};
use crate::db::users::{self, Taken, User};
use crate::db::{self, Database, DbConnection, StoreError};
use crate::domain::{Email, Password, Role, Username};
use crate::store_errors;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The username or email (case-insensitively, in one namespace) belongs
    /// to another user.
    #[error("taken: {0:?}")]
    Taken(Taken),
    #[error("no such user")]
    NotFound,
    /// The current password given for a password change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(AccountError);

/// A new account, as registration and `tessera user create` make it.
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub role: Role,
}

/// A user row to create, however the account came to be.
pub struct AccountRecord<'a> {
    pub username: &'a Username,
    /// None for a Django account without one.
    pub email: Option<&'a Email>,
    pub password_hash: &'a str,
    pub role: Role,
    pub created_at: NaiveDateTime,
    pub is_active: bool,
    /// Imported addresses are trusted; new ones wait for confirmation.
    pub email_verified: bool,
}

/// The fields of a profile change; `None` keeps a field as it is. `role`
/// and `is_active` are an admin's to change (the caller checks that).
#[derive(Default)]
pub struct ProfileChanges {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

impl ProfileChanges {
    fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.email.is_none()
            && self.role.is_none()
            && self.is_active.is_none()
    }
}

/// What allows a password change.
pub enum PasswordChange {
    /// The user's own change: their current password.
    WithCurrent(SecretString),
    /// An admin's change of someone's password: no proof needed.
    ByAdmin,
}

/// The account use cases, over the database and the hasher.
pub struct Accounts {
    db: Database,
    hasher: PasswordHasher,
}

impl Accounts {
    pub fn new(db: Database, hasher: PasswordHasher) -> Self {
        Self { db, hasher }
    }

    /// Hashes the password and stores the account unless its username or
    /// email is taken.
    pub async fn register(&self, account: NewAccount) -> Result<User, AccountError> {
        let password_hash = self.hasher.hash(account.password.into_secret()).await?;
        db::run(&self.db, move |conn| {
            insert(
                conn,
                &AccountRecord {
                    username: &account.username,
                    email: Some(&account.email),
                    password_hash: &password_hash,
                    role: account.role,
                    created_at: db::now(),
                    is_active: true,
                    email_verified: false,
                },
            )
        })
        .await
    }

    pub async fn find(&self, id: String) -> Result<Option<User>, StoreError> {
        db::run(&self.db, move |conn| Ok(users::find(conn, &id)?)).await
    }

    /// A page of users, oldest first, and how many there are in all.
    pub async fn page(&self, limit: i64, offset: i64) -> Result<(Vec<User>, i64), StoreError> {
        db::run(&self.db, move |conn| Ok(users::list(conn, limit, offset)?)).await
    }

    /// Changes username, email, role and whether the account is active;
    /// returns the user as changed. Disabling revokes every token of the
    /// user at once; a role change stops their earlier access tokens on the
    /// logout-sensitive routes (the next refresh carries the new role).
    pub async fn update_profile(
        &self,
        id: String,
        changes: ProfileChanges,
    ) -> Result<User, AccountError> {
        db::run(&self.db, move |conn| {
            conn.transaction(|conn| apply_profile_changes(conn, &id, &changes))
        })
        .await
    }

    /// The user with this username (any case), for the CLI.
    pub async fn find_by_username(&self, username: String) -> Result<Option<User>, StoreError> {
        db::run(&self.db, move |conn| {
            Ok(users::find_by_username(conn, &username.to_lowercase())?)
        })
        .await
    }

    /// Sets a new password; every earlier token of the user is revoked.
    pub async fn change_password(
        &self,
        id: String,
        proof: PasswordChange,
        new_password: Password,
    ) -> Result<(), AccountError> {
        if let PasswordChange::WithCurrent(current) = proof {
            let stored = self
                .find(id.clone())
                .await?
                .ok_or(AccountError::NotFound)?
                .password_hash;
            if !self.hasher.verify(current, Some(stored)).await?.matches {
                return Err(AccountError::WrongPassword);
            }
        }
        let new_hash = self.hasher.hash(new_password.into_secret()).await?;
        db::run(&self.db, move |conn| {
            conn.transaction(|conn| {
                let changes = users::UserChanges {
                    password_hash: Some(&new_hash),
                    updated_at: Some(db::now()),
                    ..Default::default()
                };
                if !users::update(conn, &id, &changes)? {
                    return Err(AccountError::NotFound);
                }
                Ok(revoke_all_tokens(conn, &id)?)
            })
        })
        .await
    }

    /// Deletes the account; its refresh tokens go with it.
    pub async fn delete(&self, id: String) -> Result<(), AccountError> {
        db::run(&self.db, move |conn| {
            if users::delete(conn, &id)? {
                Ok(())
            } else {
                Err(AccountError::NotFound)
            }
        })
        .await
    }
}

fn apply_profile_changes(
    conn: &mut DbConnection,
    id: &str,
    changes: &ProfileChanges,
) -> Result<User, AccountError> {
    let before = users::find(conn, id)?.ok_or(AccountError::NotFound)?;
    if changes.is_empty() {
        return Ok(before);
    }
    let username_lower = changes.username.as_ref().map(Username::canonical);
    let email_lower = changes.email.as_ref().map(Email::canonical);
    let row = users::UserChanges {
        username: changes.username.as_ref().map(Username::as_str),
        username_lower: username_lower.as_deref(),
        email: changes.email.as_ref().map(Email::as_str),
        email_lower: email_lower.as_deref(),
        role: changes.role.map(Role::as_str),
        is_active: changes.is_active,
        updated_at: Some(db::now()),
        ..Default::default()
    };
    let unique = UniqueFields {
        username_lower: username_lower.as_deref(),
        email_lower: email_lower.as_deref(),
        except_id: Some(id),
    };
    if !unique.write(conn, |conn| users::update(conn, id, &row))? {
        return Err(AccountError::NotFound);
    }
    let disabled = before.is_active && changes.is_active == Some(false);
    let role_changed = changes
        .role
        .is_some_and(|role| role.as_str() != before.role);
    if disabled {
        revoke_all_tokens(conn, id)?;
        tracing::info!(user_id = %id, "account disabled: every token revoked");
    } else if role_changed {
        revoke_access_tokens(conn, id)?;
        tracing::info!(user_id = %id, "role changed: earlier access tokens revoked");
    }
    users::find(conn, id)?.ok_or(AccountError::NotFound)
}

/// Stores a new user row unless its username or email is taken; the one
/// way users are created.
pub fn insert(conn: &mut DbConnection, record: &AccountRecord<'_>) -> Result<User, AccountError> {
    let username_lower = record.username.canonical();
    let email_lower = record.email.map(Email::canonical);
    let id = uuid::Uuid::new_v4().to_string();
    let now = db::now();
    let row = users::NewUser {
        id: &id,
        username: record.username.as_str(),
        username_lower: &username_lower,
        email: record.email.map_or("", Email::as_str),
        email_lower: email_lower.as_deref(),
        password_hash: record.password_hash,
        role: record.role.as_str(),
        tokens_valid_after: now,
        created_at: record.created_at,
        updated_at: now,
        is_active: record.is_active,
        email_verified: record.email_verified,
    };
    let unique = UniqueFields {
        username_lower: Some(&username_lower),
        email_lower: email_lower.as_deref(),
        except_id: None,
    };
    unique.write(conn, |conn| users::insert(conn, &row))?;
    users::find(conn, &id)?.ok_or(AccountError::Store(StoreError::Query(
        diesel::result::Error::NotFound,
    )))
}

/// The unique fields a write sets, checked before it and explained after
/// it if the unique indexes refused it anyway.
struct UniqueFields<'a> {
    username_lower: Option<&'a str>,
    email_lower: Option<&'a str>,
    except_id: Option<&'a str>,
}

impl UniqueFields<'_> {
    fn taken(&self, conn: &mut DbConnection) -> Result<Taken, AccountError> {
        Ok(users::taken(
            conn,
            self.username_lower,
            self.email_lower,
            self.except_id,
        )?)
    }

    /// Runs `write` unless a field is taken. Two concurrent writers can both
    /// pass the check; the unique indexes then refuse the second, which is
    /// explained the same way.
    fn write<T>(
        &self,
        conn: &mut DbConnection,
        write: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, AccountError> {
        let taken = self.taken(conn)?;
        if taken.any() {
            return Err(AccountError::Taken(taken));
        }
        match write(conn) {
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Err(AccountError::Taken(self.taken(conn)?)),
            other => Ok(other?),
        }
    }
}
