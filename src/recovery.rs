//! Account recovery and email verification: password reset by mail,
//! verification of the registered address, confirmation of a changed one.
//!
//! One-time tokens are 256 random bits, stored only as their SHA-256
//! (`db::one_time_tokens`), single use, and expire; a new one of a kind
//! replaces the user's earlier one. [`Outbox`] issues them and mails their
//! links; [`Recovery`] redeems them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::TimeDelta;
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::UniqueFields;
use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::refresh;
use crate::auth::sessions::revoke_all_tokens;
use crate::auth::throttle::AddressThrottle;
use crate::db::one_time_tokens::{self, Purpose};
use crate::db::users::{self, Taken, User};
use crate::db::{self, Database, DbConnection, StoreError, login_failures};
use crate::domain::{Email, Password};
use crate::email::{Mail, MailKind, Mailer};
use crate::store_errors;

/// Why redeeming a token failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Unknown, used, expired, or of a disabled account.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The address of an email change was taken by another account meanwhile.
    #[error("taken: {0:?}")]
    Taken(Taken),
    /// Nothing to verify: the email is verified and no change is pending.
    #[error("already verified")]
    AlreadyVerified,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(RecoveryError);

/// Where the links in mails point.
#[derive(Debug, Clone)]
pub struct Links {
    /// `server.public_url`, without a trailing slash.
    pub public_url: String,
    /// `auth.reset_url`, with `{token}`.
    pub reset_url: Option<String>,
    /// `auth.verify_url`, with `{token}`.
    pub verify_url: Option<String>,
}

impl Links {
    fn link(&self, template: Option<&str>, page: &str, token: &SecretString) -> String {
        let token = token.expose_secret();
        match template {
            Some(template) => template.replace("{token}", token),
            None => format!("{}{page}?token={token}", self.public_url),
        }
    }

    pub fn reset(&self, token: &SecretString) -> String {
        self.link(self.reset_url.as_deref(), "/reset-password", token)
    }

    pub fn verify(&self, token: &SecretString) -> String {
        self.link(self.verify_url.as_deref(), "/verify-email", token)
    }
}

/// A mail to send once the transaction that issued its token commits.
pub struct PendingMail {
    kind: MailKind,
    to: String,
    username: String,
    /// The address confirmed, for verification and change mails.
    email: Option<String>,
    token: Option<SecretString>,
}

/// Issues one-time tokens and mails their links.
pub struct Outbox {
    mailer: Mailer,
    links: Links,
    reset_ttl: TimeDelta,
    verify_ttl: TimeDelta,
}

impl Outbox {
    pub fn new(mailer: Mailer, links: Links, reset_ttl: TimeDelta, verify_ttl: TimeDelta) -> Self {
        Self {
            mailer,
            links,
            reset_ttl,
            verify_ttl,
        }
    }

    /// Stores a token of `purpose` for `user` (inside the caller's
    /// transaction) and returns the mail that carries it.
    pub fn issue(
        &self,
        conn: &mut DbConnection,
        user: &User,
        purpose: Purpose,
        address: &str,
    ) -> diesel::QueryResult<PendingMail> {
        let (token, hash) = refresh::generate();
        let now = db::now();
        let ttl = match purpose {
            Purpose::PasswordReset => self.reset_ttl,
            Purpose::VerifyEmail | Purpose::ChangeEmail => self.verify_ttl,
        };
        let confirms = (purpose != Purpose::PasswordReset).then_some(address);
        one_time_tokens::replace(conn, &hash, &user.id, purpose, confirms, now, now + ttl)?;
        let kind = match purpose {
            Purpose::PasswordReset => MailKind::PasswordReset,
            Purpose::VerifyEmail => MailKind::VerifyEmail,
            Purpose::ChangeEmail => MailKind::EmailChange,
        };
        Ok(PendingMail {
            kind,
            to: address.to_owned(),
            username: user.username.clone(),
            email: confirms.map(str::to_owned),
            token: Some(token),
        })
    }

    /// The notice to the old address that a change was asked for.
    pub fn change_notice(user: &User, new_address: &str) -> PendingMail {
        PendingMail {
            kind: MailKind::EmailChangeNotice,
            to: user.email.clone(),
            username: user.username.clone(),
            email: Some(new_address.to_owned()),
            token: None,
        }
    }

    /// Queues the mails (never waits for the network).
    pub fn send(&self, mails: Vec<PendingMail>) {
        for mail in mails {
            let (link, ttl) = match (&mail.token, mail.kind) {
                (Some(token), MailKind::PasswordReset) => {
                    (Some(self.links.reset(token)), self.reset_ttl)
                }
                (Some(token), _) => (Some(self.links.verify(token)), self.verify_ttl),
                (None, _) => (None, self.verify_ttl),
            };
            self.mailer.send(Mail {
                kind: mail.kind,
                to: mail.to,
                username: mail.username,
                link,
                email: mail.email,
                expires_minutes: u64::try_from(ttl.num_minutes()).unwrap_or(0),
            });
        }
    }

    /// An outbox that sends nothing, for the CLI.
    pub fn disabled(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self::new(
            Mailer::disabled(metrics),
            Links {
                public_url: String::new(),
                reset_url: None,
                verify_url: None,
            },
            TimeDelta::zero(),
            TimeDelta::zero(),
        )
    }

    pub async fn drain(&self, deadline: std::time::Duration) {
        self.mailer.drain(deadline).await;
    }
}

/// Throttling of password-reset requests.
pub struct ResetThrottle {
    /// Requests per client address, in memory.
    pub addresses: AddressThrottle,
    /// Requests per email address within `window`, in the database.
    pub max_per_address: i32,
    pub window: TimeDelta,
}

/// The recovery use cases.
pub struct Recovery {
    db: Database,
    hasher: PasswordHasher,
    outbox: Arc<Outbox>,
    throttle: Arc<ResetThrottle>,
}

impl Recovery {
    pub fn new(
        db: Database,
        hasher: PasswordHasher,
        outbox: Arc<Outbox>,
        throttle: ResetThrottle,
    ) -> Self {
        Self {
            db,
            hasher,
            outbox,
            throttle: Arc::new(throttle),
        }
    }

    /// Asks for a password-reset mail to `address`. Returns at once, before
    /// any lookup, so the answer takes the same time whether the address
    /// is known, unknown, disabled or throttled; the work runs in the
    /// background and a failure there is only logged.
    pub fn request_password_reset(&self, address: &str, client: Option<IpAddr>) {
        let throttle = Arc::clone(&self.throttle);
        if let Some(ip) = client {
            if throttle.addresses.retry_after(ip, Instant::now()).is_some() {
                tracing::info!("password reset refused: client address throttled");
                return;
            }
            throttle.addresses.record_failure(ip, Instant::now());
        }
        let Ok(email) = Email::parse(address) else {
            return;
        };
        let (db, outbox, issuer) = (
            self.db.clone(),
            Arc::clone(&self.outbox),
            Arc::clone(&self.outbox),
        );
        actix_web::rt::spawn(async move {
            let issued = db::run(&db, move |conn| {
                issue_reset(conn, &issuer, &throttle, &email)
            })
            .await;
            match issued {
                Ok(Some(mail)) => outbox.send(vec![mail]),
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "a password reset could not be issued"),
            }
        });
    }

    /// Sets a new password with a reset token: the token is used up, every
    /// earlier token of the user is revoked, and the email counts as
    /// verified (the link reached it).
    pub async fn confirm_password_reset(
        &self,
        token: SecretString,
        new_password: Password,
    ) -> Result<(), RecoveryError> {
        let token_hash = refresh::hash(token.expose_secret());
        // A guessed token costs no Argon2 work: it is refused before the
        // hash (its 256 random bits make the answer worthless to a guesser).
        let checked = token_hash.clone();
        let live = db::run(&self.db, move |conn| {
            Ok::<_, RecoveryError>(one_time_tokens::is_live(
                conn,
                &checked,
                &[Purpose::PasswordReset],
                db::now(),
            )?)
        })
        .await?;
        if !live {
            return Err(RecoveryError::InvalidToken);
        }
        let new_hash = self.hasher.hash(new_password.into_secret()).await?;
        db::run(&self.db, move |conn| {
            conn.transaction(|conn| {
                let taken =
                    one_time_tokens::take(conn, &token_hash, &[Purpose::PasswordReset], db::now())?
                        .ok_or(RecoveryError::InvalidToken)?;
                let user = users::find(conn, &taken.user_id)?
                    .filter(|user| user.is_active)
                    .ok_or(RecoveryError::InvalidToken)?;
                users::update(
                    conn,
                    &user.id,
                    &users::UserChanges {
                        password_hash: Some(&new_hash),
                        email_verified: Some(true),
                        updated_at: Some(db::now()),
                        ..Default::default()
                    },
                )?;
                revoke_all_tokens(conn, &user.id)?;
                tracing::info!(user_id = %user.id, "password reset: earlier tokens revoked");
                Ok(())
            })
        })
        .await
    }

    /// Redeems a verification token (the email is now verified) or an
    /// email-change token (the confirmed address replaces the old one).
    pub async fn verify_email(&self, token: SecretString) -> Result<(), RecoveryError> {
        let token_hash = refresh::hash(token.expose_secret());
        db::run(&self.db, move |conn| {
            conn.transaction(|conn| {
                let taken = one_time_tokens::take(
                    conn,
                    &token_hash,
                    &[Purpose::VerifyEmail, Purpose::ChangeEmail],
                    db::now(),
                )?
                .ok_or(RecoveryError::InvalidToken)?;
                let user = users::find(conn, &taken.user_id)?
                    .filter(|user| user.is_active)
                    .ok_or(RecoveryError::InvalidToken)?;
                let Some(address) = taken.email else {
                    return Err(RecoveryError::InvalidToken);
                };
                match taken.purpose {
                    // The link confirms the address it was sent to, if the
                    // account still has it.
                    Purpose::VerifyEmail if address == user.email => {
                        users::update(
                            conn,
                            &user.id,
                            &users::UserChanges {
                                email_verified: Some(true),
                                updated_at: Some(db::now()),
                                ..Default::default()
                            },
                        )?;
                    }
                    Purpose::ChangeEmail if user.pending_email.as_deref() == Some(&address) => {
                        let email =
                            Email::parse(&address).map_err(|_| RecoveryError::InvalidToken)?;
                        let email_lower = email.canonical();
                        let changes = users::UserChanges {
                            email: Some(email.as_str()),
                            email_lower: Some(&email_lower),
                            email_verified: Some(true),
                            pending_email: Some(None),
                            updated_at: Some(db::now()),
                            ..Default::default()
                        };
                        let unique = UniqueFields {
                            username_lower: None,
                            email_lower: Some(&email_lower),
                            except_id: Some(&user.id),
                        };
                        unique
                            .write(conn, |conn| users::update(conn, &user.id, &changes))
                            .map_err(|error| match error {
                                crate::accounts::AccountError::Taken(taken) => {
                                    RecoveryError::Taken(taken)
                                }
                                crate::accounts::AccountError::Store(error) => {
                                    RecoveryError::Store(error)
                                }
                                _ => RecoveryError::InvalidToken,
                            })?;
                        tracing::info!(user_id = %user.id, "email change confirmed");
                    }
                    _ => return Err(RecoveryError::InvalidToken),
                }
                Ok(())
            })
        })
        .await
    }

    /// Mails a new verification link for the caller's unverified email, or
    /// for their pending new address.
    pub async fn resend_verification(&self, user_id: String) -> Result<(), RecoveryError> {
        let outbox = Arc::clone(&self.outbox);
        let mail = db::run(&self.db, move |conn| {
            conn.transaction(|conn| {
                // A write first, so SQLite takes its write lock before the read.
                if !users::lock(conn, &user_id)? {
                    return Err(RecoveryError::NotFound);
                }
                let user = users::find(conn, &user_id)?.ok_or(RecoveryError::NotFound)?;
                if let Some(pending) = user.pending_email.clone() {
                    return Ok(outbox.issue(conn, &user, Purpose::ChangeEmail, &pending)?);
                }
                if user.email_verified || user.email.is_empty() {
                    return Err(RecoveryError::AlreadyVerified);
                }
                let address = user.email.clone();
                Ok(outbox.issue(conn, &user, Purpose::VerifyEmail, &address)?)
            })
        })
        .await?;
        self.outbox.send(vec![mail]);
        Ok(())
    }
}

/// The reset mail for `email`'s account, if it has an active one and the
/// address is not throttled.
fn issue_reset(
    conn: &mut DbConnection,
    outbox: &Outbox,
    throttle: &ResetThrottle,
    email: &Email,
) -> Result<Option<PendingMail>, StoreError> {
    let email_lower = email.canonical();
    let key = format!("reset:{email_lower}");
    let now = db::now();
    // Counted first, then checked, in one transaction: the count's write
    // locks the row (PostgreSQL) or the database (SQLite), so concurrent
    // requests for one address see each other's counts and at most
    // `max_per_address` of them go through.
    let throttled = conn.transaction(|conn| {
        login_failures::record_failure(conn, &key, now, throttle.window)?;
        login_failures::throttled_until(
            conn,
            &key,
            now,
            throttle.max_per_address.saturating_add(1),
            throttle.window,
        )
    })?;
    if throttled.is_some() {
        tracing::info!("password reset refused: address throttled");
        return Ok(None);
    }
    let Some(user) = users::find_by_email(conn, &email_lower)?.filter(|user| user.is_active) else {
        return Ok(None);
    };
    let address = user.email.clone();
    Ok(Some(conn.transaction(|conn| {
        outbox.issue(conn, &user, Purpose::PasswordReset, &address)
    })?))
}
