//! Accounts: registration, reading, profile changes, password changes and
//! deletion, with the uniqueness rules of usernames and emails.
//!
//! Callers pass parsed domain values ([`Username`], [`Email`],
//! [`Password`], [`Role`]) and get an [`AccountError`]; nothing here knows
//! about HTTP. [`insert`] is the one way a user row is created, whether by
//! registration, the CLI or the Django import.

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::Connection;
use secrecy::SecretString;

use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::sessions::{revoke_access_tokens, revoke_all_tokens};
use crate::db::one_time_tokens::{self, Purpose};
use crate::db::users::{self, PageStart, Taken, User};
use crate::db::{self, Database, DbConnection, StoreError};
use crate::domain::{Email, Password, Role, UserCursor, Username};
use crate::recovery::{Outbox, PendingMail};
use crate::store_errors;

/// One page of the list of users.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Users in all (a counter kept by the database, not a count).
    pub total: i64,
    /// Just after the last user of this page; none when it is the last page.
    pub next: Option<UserCursor>,
}

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
    /// False: a verification mail goes out. The CLI's operator vouches for
    /// the address; registration does not.
    pub email_verified: bool,
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
    /// A new `email` waits for the new address to confirm it (the user's
    /// own change); false applies it at once, unverified (an admin's).
    pub confirm_email: bool,
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

/// The account use cases, over the database, the hasher and the outbox.
pub struct Accounts {
    db: Database,
    hasher: PasswordHasher,
    outbox: Arc<Outbox>,
}

impl Accounts {
    pub fn new(db: Database, hasher: PasswordHasher, outbox: Arc<Outbox>) -> Self {
        Self { db, hasher, outbox }
    }

    /// Hashes the password and stores the account unless its username or
    /// email is taken; mails a verification link unless the address is
    /// vouched for.
    pub async fn register(&self, account: NewAccount) -> Result<User, AccountError> {
        let password_hash = self.hasher.hash(account.password.into_secret()).await?;
        let outbox = Arc::clone(&self.outbox);
        // Not one transaction: the insert's uniqueness check reads before it
        // writes, which SQLite cannot upgrade under concurrent writers. A
        // verification token that fails to be stored is logged; the user
        // can ask for another.
        let (user, mail) = db::run(&self.db, move |conn| {
            let user = insert(
                conn,
                &AccountRecord {
                    username: &account.username,
                    email: Some(&account.email),
                    password_hash: &password_hash,
                    role: account.role,
                    created_at: db::now(),
                    is_active: true,
                    email_verified: account.email_verified,
                },
            )?;
            let mail = if user.email_verified {
                None
            } else {
                let address = user.email.clone();
                outbox
                    .issue(conn, &user, Purpose::VerifyEmail, &address)
                    .inspect_err(|error| {
                        tracing::error!(%error, "the verification token could not be stored");
                    })
                    .ok()
            };
            Ok::<_, AccountError>((user, mail))
        })
        .await?;
        self.outbox.send(mail.into_iter().collect());
        Ok(user)
    }

    pub async fn find(&self, id: String) -> Result<Option<User>, StoreError> {
        db::run(&self.db, move |conn| Ok(users::find(conn, &id)?)).await
    }

    /// Up to `limit` users in creation order from `start`, how many there
    /// are in all, and where the next page starts (none after the last).
    pub async fn page(&self, limit: i64, start: PageStart) -> Result<UserPage, StoreError> {
        db::run(&self.db, move |conn| {
            let (users, more) = users::page(conn, limit, &start)?;
            let total = users::count(conn)?;
            let next = more.then(|| users.last()).flatten().map(|last| UserCursor {
                created_at: last.created_at,
                id: last.id.clone(),
            });
            Ok(UserPage { users, total, next })
        })
        .await
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
        let outbox = Arc::clone(&self.outbox);
        let (user, mails) = db::run(&self.db, move |conn| {
            conn.transaction(|conn| apply_profile_changes(conn, &outbox, &id, &changes))
        })
        .await?;
        self.outbox.send(mails);
        Ok(user)
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
    outbox: &Outbox,
    id: &str,
    changes: &ProfileChanges,
) -> Result<(User, Vec<PendingMail>), AccountError> {
    if changes.is_empty() {
        return Ok((
            users::find(conn, id)?.ok_or(AccountError::NotFound)?,
            Vec::new(),
        ));
    }
    // A write first, so SQLite takes its write lock before the reads.
    if !users::lock(conn, id)? {
        return Err(AccountError::NotFound);
    }
    let before = users::find(conn, id)?.ok_or(AccountError::NotFound)?;
    // An address the account already has is no change.
    let new_email = changes
        .email
        .as_ref()
        .filter(|email| before.email_lower.as_deref() != Some(email.canonical().as_str()));
    let (applied_email, pending_email) = match new_email {
        Some(email) if changes.confirm_email => (None, Some(email)),
        other => (other, None),
    };
    let username_lower = changes.username.as_ref().map(Username::canonical);
    let email_lower = new_email.map(Email::canonical);
    let row = users::UserChanges {
        username: changes.username.as_ref().map(Username::as_str),
        username_lower: username_lower.as_deref(),
        email: applied_email.map(Email::as_str),
        email_lower: applied_email.and(email_lower.as_deref()),
        email_verified: applied_email.map(|_| false),
        pending_email: new_email.map(|_| pending_email.map(Email::as_str)),
        role: changes.role.map(Role::as_str),
        is_active: changes.is_active,
        updated_at: Some(db::now()),
        ..Default::default()
    };
    // A pending address is checked now too: no one can queue up another
    // account's address.
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
    let user = users::find(conn, id)?.ok_or(AccountError::NotFound)?;
    let mut mails = Vec::new();
    if let Some(pending) = pending_email {
        mails.push(outbox.issue(conn, &user, Purpose::ChangeEmail, pending.as_str())?);
        if !before.email.is_empty() {
            mails.push(Outbox::change_notice(&before, pending.as_str()));
        }
    } else if let Some(applied) = applied_email {
        one_time_tokens::delete_for_user(conn, id, Purpose::ChangeEmail)?;
        mails.push(outbox.issue(conn, &user, Purpose::VerifyEmail, applied.as_str())?);
    }
    Ok((user, mails))
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
pub(crate) struct UniqueFields<'a> {
    pub username_lower: Option<&'a str>,
    pub email_lower: Option<&'a str>,
    pub except_id: Option<&'a str>,
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
    pub(crate) fn write<T>(
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
