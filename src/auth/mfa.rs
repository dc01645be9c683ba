//! TOTP enrolment: start (with the password), confirm (with a first code,
//! which also gives the recovery codes) and removal (with a code or the
//! password). The login's second step is [`crate::auth::sessions`]'s.

use secrecy::{ExposeSecret, SecretString};

use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::totp::{self, SealingKey};
use crate::db::{self, Database, StoreError, mfa, users};
use crate::store_errors;

/// What an authenticator app needs to start producing codes.
pub struct TotpEnrolment {
    /// Base32.
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
}

/// How the user proves it is them when removing TOTP.
pub enum RemovalProof {
    Code(SecretString),
    Password(SecretString),
}

/// Why a TOTP enrolment step failed.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// No `mfa.encryption_key_file` in production.
    #[error("TOTP is off: no mfa.encryption_key_file")]
    Disabled,
    #[error("TOTP is already active")]
    AlreadyActive,
    #[error("no TOTP enrolment")]
    NotEnrolled,
    #[error("wrong code")]
    WrongCode,
    #[error("wrong password")]
    WrongPassword,
    #[error("the user no longer exists")]
    UserGone,
    #[error(transparent)]
    Unsealable(#[from] totp::Unsealable),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(TotpError);

/// The TOTP enrolment use cases.
pub struct Mfa {
    db: Database,
    hasher: PasswordHasher,
    key: Option<SealingKey>,
    /// The `issuer` of the otpauth URI: `jwt.issuer`.
    issuer: String,
}

impl Mfa {
    pub fn new(
        db: Database,
        hasher: PasswordHasher,
        key: Option<SealingKey>,
        issuer: String,
    ) -> Self {
        Self {
            db,
            hasher,
            key,
            issuer,
        }
    }

    fn key(&self) -> Result<SealingKey, TotpError> {
        self.key.clone().ok_or(TotpError::Disabled)
    }

    /// Starts (or restarts) an enrolment: a new secret, inactive until
    /// [`Mfa::confirm_totp`]. The password is asked again, as for any change
    /// of how the account signs in.
    pub async fn start_totp(
        &self,
        user_id: &str,
        password: SecretString,
    ) -> Result<TotpEnrolment, TotpError> {
        let key = self.key()?;
        let user = self.check_password(user_id, password).await?;
        let new = totp::new_secret(&key, &user.id, &self.issuer, &user.username)
            .map_err(TotpError::Internal)?;
        let sealed = new.sealed;
        let started = db::run(&self.db, move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                mfa::start_enrolment(conn, &user.id, &sealed, db::now())
            })
            .map_err(TotpError::from)
        })
        .await?;
        if !started {
            return Err(TotpError::AlreadyActive);
        }
        Ok(TotpEnrolment {
            secret: new.secret,
            otpauth_uri: new.otpauth_uri,
        })
    }

    /// Activates the enrolment with a first code; returns the recovery
    /// codes, shown this once (only their hashes are kept).
    pub async fn confirm_totp(
        &self,
        user_id: &str,
        code: SecretString,
    ) -> Result<Vec<String>, TotpError> {
        let key = self.key()?;
        let user_id = user_id.to_owned();
        let (codes, hashes) = totp::new_recovery_codes();
        db::run(&self.db, move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                let stored = mfa::find_totp(conn, &user_id)?.ok_or(TotpError::NotEnrolled)?;
                if stored.confirmed_at.is_some() {
                    return Err(TotpError::AlreadyActive);
                }
                let now = db::now();
                if !accept_code::<TotpError>(conn, &key, &stored, code.expose_secret(), now)? {
                    return Err(TotpError::WrongCode);
                }
                mfa::replace_recovery_codes(conn, &user_id, &hashes)?;
                Ok(())
            })
        })
        .await?;
        Ok(codes)
    }

    /// Removes TOTP and the recovery codes, with a current code or the
    /// password.
    pub async fn remove_totp(&self, user_id: &str, proof: RemovalProof) -> Result<(), TotpError> {
        let code = match proof {
            RemovalProof::Password(password) => {
                self.check_password(user_id, password).await?;
                None
            }
            RemovalProof::Code(code) => Some((self.key()?, code)),
        };
        let user_id = user_id.to_owned();
        db::run(&self.db, move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                let stored = mfa::find_totp(conn, &user_id)?
                    .filter(|stored| stored.confirmed_at.is_some())
                    .ok_or(TotpError::NotEnrolled)?;
                if let Some((key, code)) = &code
                    && !accept_code::<TotpError>(
                        conn,
                        key,
                        &stored,
                        code.expose_secret(),
                        db::now(),
                    )?
                {
                    return Err(TotpError::WrongCode);
                }
                mfa::remove(conn, &user_id)?;
                Ok(())
            })
        })
        .await
    }

    async fn check_password(
        &self,
        user_id: &str,
        password: SecretString,
    ) -> Result<users::User, TotpError> {
        let id = user_id.to_owned();
        let user = db::run(&self.db, move |conn| {
            users::find(conn, &id).map_err(TotpError::from)
        })
        .await?
        .filter(|user| user.is_active)
        .ok_or(TotpError::UserGone)?;
        let outcome = self
            .hasher
            .verify(password, Some(user.password_hash.clone()))
            .await?;
        if !outcome.matches {
            return Err(TotpError::WrongPassword);
        }
        Ok(user)
    }
}

/// Whether `code` matches the stored secret at a step not accepted before;
/// accepting records the step (and confirms an enrolment). Shared by the
/// enrolment and the login's second step.
pub(crate) fn accept_code<E>(
    conn: &mut db::DbConnection,
    key: &SealingKey,
    stored: &mfa::Totp,
    code: &str,
    now: chrono::NaiveDateTime,
) -> Result<bool, E>
where
    E: From<totp::Unsealable> + From<diesel::result::Error>,
{
    let unix = u64::try_from(now.and_utc().timestamp()).unwrap_or(0);
    let Some(step) = totp::matching_step(key, &stored.user_id, &stored.sealed_secret, code, unix)?
    else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    Ok(mfa::accept_step(conn, &stored.user_id, step, now)?)
}
