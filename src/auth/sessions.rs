//! Sessions: the use cases that issue, rotate and revoke tokens. Login,
//! legacy-key exchange, refresh, logout, log out everywhere, the revocation
//! check of the logout-sensitive routes, and introspection.
//!
//! Nothing here knows about HTTP: callers pass domain values (an
//! identifier, a password, the client address already worked out) and get
//! a [`TokenPair`] or an error enum of this module; `crate::error` maps
//! those to problem responses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::passkeys::{PasskeyError, Passkeys};
use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::throttle::AddressThrottle;
use crate::auth::tokens::{Claims, KeyRing, SignIn, TokenSubject, new_token_id_after};
use crate::auth::totp::{self, SealingKey};
use crate::auth::{django, refresh};
use crate::db::{
    self, Database, DbConnection, StoreError, legacy_tokens, login_failures, mfa, refresh_tokens,
    revocations, service_clients, sessions, users,
};
use crate::domain::Role;
use crate::metrics::Metrics;
use crate::store_errors;

/// Rows deleted per statement when pruning, so a large backlog never holds a
/// long lock.
const PRUNE_BATCH: i64 = 1000;

/// Where a session is opened from: what `GET /auth/sessions` shows, and
/// the client address the login throttle counts.
#[derive(Debug, Clone, Default)]
pub struct SessionOrigin {
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// The client address, worked out as the login throttle does (trusted
    /// proxies honoured).
    pub ip: Option<IpAddr>,
}

/// A live session, as its user sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether the caller's own token belongs to it.
    pub current: bool,
}

/// Why a session could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// No such session, or one of another user (for a non-admin caller).
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

/// A freshly issued access token and refresh token.
pub struct TokenPair {
    pub access_token: String,
    /// The access token's lifetime in seconds.
    pub expires_in: i64,
    pub refresh_token: SecretString,
    /// The refresh token's lifetime in seconds.
    pub refresh_expires_in: i64,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many failures of this account or from this address; retry after.
    #[error("throttled for {0:?}")]
    Throttled(Duration),
    /// Unknown user, wrong password or disabled account: indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The right password, but `auth.require_verified_email` is on and the
    /// account's email is not verified.
    #[error("email not verified")]
    EmailNotVerified,
    /// The right password on an account with a second factor: no tokens
    /// until [`Sessions::verify_mfa`] gets a code for this challenge.
    #[error("a second factor is required")]
    MfaRequired(MfaChallenge),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error("cannot sign the access token: {0}")]
    Signing(String),
    /// A stored passkey or ceremony state that cannot be read back.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

/// The second step a login waits for.
#[derive(Debug)]
pub struct MfaChallenge {
    /// Single use, for [`MFA_CHALLENGE_TTL_SECS`]; stored only as a hash.
    pub mfa_token: SecretString,
    /// What [`Sessions::verify_mfa`] accepts: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

/// How long an `mfa_token` lives.
pub const MFA_CHALLENGE_TTL_SECS: i64 = 300;
/// Wrong codes an `mfa_token` survives.
pub const MFA_MAX_FAILURES: i32 = 5;

/// The second factor presented for an `mfa_token`.
pub enum SecondFactor {
    Totp(SecretString),
    RecoveryCode(SecretString),
}

/// Why the second step of a login failed.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Unknown, used, expired, or dead after too many wrong codes.
    #[error("invalid mfa_token")]
    InvalidChallenge,
    /// A wrong, expired or already used code.
    #[error("wrong code")]
    WrongCode,
    #[error("throttled for {0:?}")]
    Throttled(Duration),
    #[error(transparent)]
    Unsealable(#[from] totp::Unsealable),
    #[error("cannot sign the access token: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Why a legacy-key exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// `auth.legacy_exchange_until` has passed.
    #[error("legacy token exchange has closed")]
    Closed,
    #[error("throttled for {0:?}")]
    Throttled(Duration),
    /// Unknown, retired, malformed, or of a disabled account.
    #[error("invalid legacy key")]
    InvalidKey,
    #[error("cannot sign the access token: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked or reused (the family is now revoked).
    #[error("invalid refresh token")]
    InvalidToken,
    #[error("cannot sign the access token: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Why a verified access token is refused on a logout-sensitive route.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the token's user no longer exists")]
    UserGone,
    /// Logged out, or issued before the user's "tokens valid after" time.
    #[error("the token has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(
    LoginError,
    ExchangeError,
    RefreshError,
    AccessError,
    MfaError,
    EndSessionError
);

/// What introspection found a token to be.
pub enum TokenStatus {
    /// A valid, unrevoked access token.
    Access(Box<Claims>),
    /// A current (not rotated, not expired) refresh token.
    Refresh {
        user_id: String,
        /// Unix seconds.
        expires_at: i64,
        /// Unix seconds.
        issued_at: i64,
        /// Its family: the session.
        session_id: String,
    },
    /// Invalid, expired or revoked, whatever it was.
    Inactive,
}

/// Who asks an introspection (RFC 7662 §2.1).
#[derive(Debug, Clone)]
pub enum Introspector {
    /// A service client or an admin: sees any token.
    Privileged,
    /// A user (by id): sees only their own tokens.
    User(String),
}

/// The login throttling settings and the per-address counters.
pub struct LoginThrottle {
    pub addresses: AddressThrottle,
    pub account_max_failures: i32,
    pub window: TimeDelta,
}

/// Lifetimes and the legacy cut-over.
pub struct SessionPolicy {
    pub refresh_ttl: TimeDelta,
    pub refresh_reuse_grace: TimeDelta,
    /// `auth.legacy_exchange_until`: when legacy DRF keys stop working.
    pub legacy_exchange_until: Option<DateTime<Utc>>,
    /// `auth.require_verified_email`.
    pub require_verified_email: bool,
    /// Opens the TOTP secrets (`mfa.encryption_key_file`); none: TOTP is off.
    pub totp_key: Option<SealingKey>,
}

/// The session use cases, over the database, the key ring and the hasher.
pub struct Sessions {
    db: Database,
    keys: Arc<KeyRing>,
    hasher: PasswordHasher,
    /// Shared with the service clients' authentication.
    throttle: Arc<LoginThrottle>,
    metrics: Arc<Metrics>,
    policy: SessionPolicy,
}

/// A session opened in the database: the user as of that moment and the
/// `jti` stamped while their row was locked.
pub struct OpenedSession {
    user: users::User,
    jti: uuid::Uuid,
    sign_in: SignIn,
    /// The session (refresh-token family) id: the token's `sid`.
    sid: String,
}

/// Where a correct password leads.
enum PasswordAccepted {
    Session(Box<OpenedSession>),
    SecondFactor,
}

impl Sessions {
    pub fn new(
        db: Database,
        keys: Arc<KeyRing>,
        hasher: PasswordHasher,
        throttle: Arc<LoginThrottle>,
        metrics: Arc<Metrics>,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            db,
            keys,
            hasher,
            throttle,
            metrics,
            policy,
        }
    }

    /// Log in with a username (or email) and password.
    ///
    /// Throttled attempts (per client address, in memory; per account, in
    /// the database) are refused before any password work. Unknown users
    /// cost the same hash as wrong passwords and get the same answer; so do
    /// disabled accounts.
    pub async fn login(
        &self,
        identifier: &str,
        password: SecretString,
        origin: SessionOrigin,
    ) -> Result<TokenPair, LoginError> {
        let client = origin.ip;
        self.check_address(client)
            .map_err(LoginError::Throttled)
            .inspect_err(|_| self.metrics.login("throttled"))?;
        let identifier = identifier.trim().to_lowercase();
        let (max_failures, window) = (self.throttle.account_max_failures, self.throttle.window);
        let verified_only = self.policy.require_verified_email;
        let (user, account, throttled_until) = db::run(&self.db, move |conn| {
            let user = if identifier.is_empty() {
                None
            } else {
                users::find_by_login(conn, &identifier, verified_only)?
            };
            let account = throttle_account(user.as_ref(), &identifier);
            let until =
                login_failures::throttled_until(conn, &account, db::now(), max_failures, window)?;
            Ok::<_, LoginError>((user, account, until))
        })
        .await?;
        if let Some(until) = throttled_until {
            self.metrics.login("throttled");
            self.metrics.throttled("account");
            return Err(LoginError::Throttled(
                (until - db::now()).to_std().unwrap_or_default(),
            ));
        }
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let rehash_input = SecretString::from(password.expose_secret().to_owned());
        let outcome = self.hasher.verify(password, stored_hash).await?;
        let user = match user {
            Some(user) if outcome.matches && user.is_active => user,
            _ => {
                self.record_address_failure(client);
                db::run(&self.db, move |conn| {
                    login_failures::record_failure(conn, &account, db::now(), window)
                        .map_err(LoginError::from)
                })
                .await?;
                self.metrics.login("invalid_credentials");
                return Err(LoginError::InvalidCredentials);
            }
        };
        // Only after the right password, so it reveals nothing to a guesser.
        if self.policy.require_verified_email && !user.email_verified {
            self.metrics.login("email_not_verified");
            return Err(LoginError::EmailNotVerified);
        }
        // A hash made with an outdated cost is replaced now that the password
        // is known; failing to make one only postpones the upgrade.
        let upgraded_hash = if outcome.needs_rehash {
            self.hasher
                .hash(rehash_input)
                .await
                .inspect_err(|error| tracing::warn!(%error, "could not upgrade a password hash"))
                .ok()
        } else {
            None
        };
        let legacy_format = upgraded_hash
            .as_ref()
            .and_then(|_| django::algorithm(&user.password_hash));
        let (refresh_token, refresh_hash) = refresh::generate();
        let (challenge_token, challenge_hash) = refresh::generate();
        let ttl = self.policy.refresh_ttl;
        let session = db::run(&self.db, move |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                // The password checked above must still be the user's: a
                // password change that committed meanwhile wins, and this
                // login fails.
                if !users::lock_if_password_is(conn, &user.id, &user.password_hash)? {
                    return Ok(None);
                }
                if let Some(new_hash) = &upgraded_hash {
                    let changes = users::UserChanges {
                        password_hash: Some(new_hash),
                        ..Default::default()
                    };
                    users::update(conn, &user.id, &changes)?;
                    tracing::info!(user_id = %user.id, "password hash upgraded to the configured cost");
                }
                // With a second factor the password alone opens nothing;
                // the account's failures are only forgiven by the code.
                if mfa::has_active_totp(conn, &user.id)? {
                    let now = db::now();
                    let expires = now + TimeDelta::seconds(MFA_CHALLENGE_TTL_SECS);
                    mfa::insert_challenge(conn, &challenge_hash, &user.id, now, expires)?;
                    return Ok(Some(PasswordAccepted::SecondFactor));
                }
                login_failures::reset(conn, &account)?;
                Ok(
                    start_session(conn, &user.id, &refresh_hash, ttl, SignIn::Password, &origin)?
                        .map(|session| PasswordAccepted::Session(Box::new(session))),
                )
            })
            .map_err(LoginError::from)
        })
        .await?
        .ok_or(LoginError::InvalidCredentials)?;
        if let Some(format) = legacy_format {
            self.metrics.legacy_hash_upgraded(format);
        }
        let session = match session {
            PasswordAccepted::Session(session) => *session,
            PasswordAccepted::SecondFactor => {
                self.metrics.login("mfa_required");
                return Err(LoginError::MfaRequired(MfaChallenge {
                    mfa_token: challenge_token,
                    methods: vec!["totp", "recovery_code"],
                }));
            }
        };
        self.metrics.login("success");
        self.token_pair(session, refresh_token)
            .map_err(LoginError::Signing)
    }

    /// The second step of a login: a TOTP code (each accepted once) or a
    /// recovery code (each usable once) for the `mfa_token` the password
    /// step gave. Wrong codes count towards the account's login throttle and
    /// the address throttle; the `mfa_token` dies after
    /// [`MFA_MAX_FAILURES`] of them.
    pub async fn verify_mfa(
        &self,
        mfa_token: SecretString,
        factor: SecondFactor,
        origin: SessionOrigin,
    ) -> Result<TokenPair, MfaError> {
        let client = origin.ip;
        self.check_address(client).map_err(MfaError::Throttled)?;
        let Some(key) = self.policy.totp_key.clone() else {
            return Err(MfaError::InvalidChallenge);
        };
        let challenge_hash = refresh::hash(mfa_token.expose_secret());
        let (refresh_token, refresh_hash) = refresh::generate();
        let ttl = self.policy.refresh_ttl;
        let (max_failures, window) = (self.throttle.account_max_failures, self.throttle.window);
        let outcome = db::run(&self.db, move |conn| {
            conn.transaction(|conn| {
                let now = db::now();
                let Some(challenge) = mfa::lock_challenge(conn, &challenge_hash, now)? else {
                    return Ok(Err(MfaError::InvalidChallenge));
                };
                let account = format!("user:{}", challenge.user_id);
                if let Some(until) =
                    login_failures::throttled_until(conn, &account, now, max_failures, window)?
                {
                    let wait = (until - now).to_std().unwrap_or_default();
                    return Ok(Err(MfaError::Throttled(wait)));
                }
                let sign_in = match &factor {
                    SecondFactor::Totp(code) => {
                        accept_totp(conn, &key, &challenge.user_id, code.expose_secret(), now)?
                            .then_some(SignIn::PasswordAndTotp)
                    }
                    SecondFactor::RecoveryCode(code) => {
                        let hash = totp::recovery_code_hash(code.expose_secret());
                        mfa::use_recovery_code(conn, &challenge.user_id, &hash, now)?
                            .then_some(SignIn::PasswordAndRecoveryCode)
                    }
                };
                let Some(sign_in) = sign_in else {
                    mfa::record_challenge_failure(conn, &challenge_hash, MFA_MAX_FAILURES)?;
                    login_failures::record_failure(conn, &account, now, window)?;
                    return Ok(Err(MfaError::WrongCode));
                };
                mfa::delete_challenge(conn, &challenge_hash)?;
                login_failures::reset(conn, &account)?;
                let session = start_session(
                    conn,
                    &challenge.user_id,
                    &refresh_hash,
                    ttl,
                    sign_in,
                    &origin,
                )?;
                Ok(session.ok_or(MfaError::InvalidChallenge))
            })
            .map_err(|error: MfaError| error)
        })
        .await?;
        let session = outcome.inspect_err(|error| {
            if matches!(error, MfaError::WrongCode) {
                self.record_address_failure(client);
                self.metrics.login("mfa_wrong_code");
            }
        })?;
        self.metrics.login("success");
        self.token_pair(session, refresh_token)
            .map_err(MfaError::Signing)
    }

    /// Log in with a passkey: `passkeys` verifies the assertion against its
    /// ceremony (spent either way), then the session opens as a password
    /// login's does, saying `amr` `["hwk","user"]` and `aal2`. No second
    /// factor is asked: the passkey's user verification is one.
    ///
    /// Every refusal (unknown, used or expired ceremony, unknown or foreign
    /// credential, bad signature, wrong origin, disabled account) is
    /// `InvalidCredentials` and counts towards the address throttle.
    pub async fn login_with_passkey(
        &self,
        passkeys: &Passkeys,
        ceremony_id: String,
        credential: &webauthn_rs::prelude::PublicKeyCredential,
        origin: SessionOrigin,
    ) -> Result<TokenPair, LoginError> {
        let client = origin.ip;
        self.check_address(client)
            .map_err(LoginError::Throttled)
            .inspect_err(|_| self.metrics.login("throttled"))?;
        let verified = passkeys
            .verify_login(ceremony_id, credential)
            .await
            .map_err(|error| match error {
                PasskeyError::Store(error) => LoginError::Store(error),
                other => LoginError::Internal(other.to_string()),
            })?;
        let (refresh_token, refresh_hash) = refresh::generate();
        let ttl = self.policy.refresh_ttl;
        let verified_only = self.policy.require_verified_email;
        let outcome = match verified {
            None => Err(LoginError::InvalidCredentials),
            Some(verified) => {
                db::run(&self.db, move |conn| {
                    // Any refusal rolls the whole login back.
                    conn.transaction::<_, LoginError, _>(|conn| {
                        if !users::lock(conn, &verified.user_id)? {
                            return Err(LoginError::InvalidCredentials);
                        }
                        let session = start_session(
                            conn,
                            &verified.user_id,
                            &refresh_hash,
                            ttl,
                            SignIn::Passkey,
                            &origin,
                        )?
                        .ok_or(LoginError::InvalidCredentials)?;
                        if verified_only && !session.user.email_verified {
                            return Err(LoginError::EmailNotVerified);
                        }
                        // Removed since it verified: it signs in no more.
                        if !crate::auth::passkeys::record_use(conn, &verified, db::now())? {
                            return Err(LoginError::InvalidCredentials);
                        }
                        login_failures::reset(conn, &format!("user:{}", verified.user_id))?;
                        Ok(session)
                    })
                })
                .await
            }
        };
        let session = outcome.inspect_err(|error| match error {
            LoginError::InvalidCredentials => {
                self.record_address_failure(client);
                self.metrics.login("invalid_credentials");
            }
            LoginError::EmailNotVerified => self.metrics.login("email_not_verified"),
            _ => {}
        })?;
        self.metrics.login("success");
        self.token_pair(session, refresh_token)
            .map_err(LoginError::Signing)
    }

    /// Exchanges a legacy DRF key for a token pair, once: the key is retired
    /// by its first exchange. Failures count towards the address throttle.
    pub async fn exchange(
        &self,
        key: SecretString,
        origin: SessionOrigin,
    ) -> Result<TokenPair, ExchangeError> {
        let client = origin.ip;
        if self
            .policy
            .legacy_exchange_until
            .is_some_and(|until| Utc::now() >= until)
        {
            self.metrics.legacy_exchange("closed");
            return Err(ExchangeError::Closed);
        }
        self.check_address(client)
            .map_err(ExchangeError::Throttled)?;
        let key_hash =
            django::is_drf_key(key.expose_secret()).then(|| refresh::hash(key.expose_secret()));
        let (refresh_token, refresh_hash) = refresh::generate();
        let ttl = self.policy.refresh_ttl;
        let session = match key_hash {
            None => None,
            Some(key_hash) => {
                db::run(&self.db, move |conn| {
                    let exchanged = conn.transaction(|conn| {
                        // Retire first (the write claims the key), then lock
                        // the owner's row as a login or a password change does.
                        let Some(user_id) = legacy_tokens::retire(conn, &key_hash, db::now())?
                        else {
                            return Ok(None);
                        };
                        if !users::lock(conn, &user_id)? {
                            return Ok(None);
                        }
                        // A disabled account gets no session; its key is left
                        // as it was.
                        start_session(
                            conn,
                            &user_id,
                            &refresh_hash,
                            ttl,
                            SignIn::Password,
                            &origin,
                        )?
                        .map(Some)
                        .ok_or(diesel::result::Error::RollbackTransaction)
                    });
                    match exchanged {
                        Err(diesel::result::Error::RollbackTransaction) => Ok(None),
                        other => other.map_err(ExchangeError::from),
                    }
                })
                .await?
            }
        };
        let Some(session) = session else {
            self.record_address_failure(client);
            self.metrics.legacy_exchange("invalid");
            return Err(ExchangeError::InvalidKey);
        };
        tracing::info!(user_id = %session.user.id, "legacy DRF token exchanged and retired");
        self.metrics.legacy_exchange("exchanged");
        self.token_pair(session, refresh_token)
            .map_err(ExchangeError::Signing)
    }

    /// Rotates a refresh token into a new pair. Presenting an already
    /// rotated token (reuse) revokes its whole family.
    pub async fn refresh(&self, presented: SecretString) -> Result<TokenPair, RefreshError> {
        let presented_hash = refresh::hash(presented.expose_secret());
        let (successor, successor_hash) = refresh::generate();
        let (ttl, grace) = (self.policy.refresh_ttl, self.policy.refresh_reuse_grace);
        let (session, outcome) = db::run(&self.db, move |conn| {
            let rotation = refresh_tokens::rotate(
                conn,
                &presented_hash,
                &successor_hash,
                db::now(),
                ttl,
                grace,
                |conn, presented| {
                    open_session(
                        conn,
                        &presented.user_id,
                        SignIn::from_stored(&presented.amr),
                        &presented.family_id,
                    )
                },
            )?;
            Ok::<_, RefreshError>(match rotation {
                refresh_tokens::Rotation::Rotated { session, .. } => (session, "rotated"),
                refresh_tokens::Rotation::ReuseDetected { user_id } => {
                    tracing::warn!(%user_id, "refresh token reuse detected: family revoked");
                    (None, "reuse_detected")
                }
                refresh_tokens::Rotation::Invalid => (None, "invalid"),
            })
        })
        .await?;
        self.metrics.refresh(outcome);
        let session = session.ok_or(RefreshError::InvalidToken)?;
        self.token_pair(session, successor)
            .map_err(RefreshError::Signing)
    }

    /// Revokes this access token and, if given, the family of a refresh
    /// token of the same user.
    pub async fn logout(
        &self,
        claims: Claims,
        refresh_token: Option<SecretString>,
    ) -> Result<(), StoreError> {
        let refresh_hash = refresh_token.map(|token| refresh::hash(token.expose_secret()));
        let keep_until = self.keys.verifiable_until(&claims).naive_utc();
        db::run(&self.db, move |conn| {
            revocations::revoke(conn, &claims.jti, &claims.sub, keep_until)?;
            if let Some(hash) = refresh_hash {
                refresh_tokens::revoke_family_of(conn, &hash, &claims.sub)?;
            }
            Ok(())
        })
        .await
    }

    /// Log out everywhere: every token of the user issued before now stops
    /// working on the logout-sensitive routes, the caller's own included.
    pub async fn logout_all(&self, claims: Claims) -> Result<(), StoreError> {
        let keep_until = self.keys.verifiable_until(&claims).naive_utc();
        db::run(&self.db, move |conn| {
            conn.transaction(|conn| revoke_all_tokens(conn, &claims.sub))?;
            // The caller's own token too, even if issued within the same millisecond.
            revocations::revoke(conn, &claims.jti, &claims.sub, keep_until)?;
            Ok(())
        })
        .await
    }

    /// The revocation check of the logout-sensitive routes: the token's
    /// user, fresh from the database, unless the token was revoked.
    pub async fn authorize(&self, claims: Claims) -> Result<users::User, AccessError> {
        db::run(&self.db, move |conn| check_not_revoked(conn, &claims)).await
    }

    /// Whether `token` is an active access token or refresh token, as
    /// `viewer` may know (RFC 7662 §2.1): a user learns only about their
    /// own tokens; anyone else's is `Inactive` to them.
    pub async fn introspect(
        &self,
        token: &str,
        viewer: Introspector,
    ) -> Result<TokenStatus, StoreError> {
        let status = self.token_status(token).await?;
        let Introspector::User(viewer_id) = viewer else {
            return Ok(status);
        };
        Ok(match status {
            TokenStatus::Access(claims)
                if claims.role != Role::Service && claims.sub == viewer_id =>
            {
                TokenStatus::Access(claims)
            }
            TokenStatus::Refresh {
                user_id,
                expires_at,
                issued_at,
                session_id,
            } if user_id == viewer_id => TokenStatus::Refresh {
                user_id,
                expires_at,
                issued_at,
                session_id,
            },
            _ => TokenStatus::Inactive,
        })
    }

    /// Revokes a token (RFC 7009): a refresh token's family (its session
    /// ends), or an access token's `jti`. Whoever holds a token may revoke
    /// it; an unknown or invalid token is no error.
    pub async fn revoke_token(&self, token: &str) -> Result<(), StoreError> {
        let verified = self.keys.verify(token).ok();
        let keep_until = verified
            .as_ref()
            .map(|claims| self.keys.verifiable_until(claims).naive_utc());
        let refresh_hash = refresh::hash(token);
        db::run(&self.db, move |conn| {
            if let (Some(claims), Some(keep_until)) = (verified, keep_until) {
                revocations::revoke(conn, &claims.jti, &claims.sub, keep_until)?;
                return Ok(());
            }
            if let Some(row) = refresh_tokens::find(conn, &refresh_hash)? {
                refresh_tokens::revoke_family(conn, &row.family_id)?;
            }
            Ok(())
        })
        .await
    }

    /// What `token` is, to an introspector who may see everything.
    async fn token_status(&self, token: &str) -> Result<TokenStatus, StoreError> {
        let verified = self.keys.verify(token).ok();
        let refresh_hash = refresh::hash(token);
        db::run(&self.db, move |conn| {
            if let Some(claims) = verified {
                return match check_token_active(conn, &claims) {
                    Ok(()) => Ok(TokenStatus::Access(Box::new(claims))),
                    Err(AccessError::Store(error)) => Err(error),
                    Err(AccessError::UserGone | AccessError::Revoked) => Ok(TokenStatus::Inactive),
                };
            }
            let now = db::now();
            Ok(match refresh_tokens::find(conn, &refresh_hash)? {
                Some(row) if row.rotated_at.is_none() && row.expires_at > now => {
                    TokenStatus::Refresh {
                        user_id: row.user_id,
                        expires_at: row.expires_at.and_utc().timestamp(),
                        issued_at: row.created_at.and_utc().timestamp(),
                        session_id: row.family_id,
                    }
                }
                _ => TokenStatus::Inactive,
            })
        })
        .await
    }

    /// The user's live sessions, most recently used first; `current` marks
    /// the one of `current_sid`.
    pub async fn list_sessions(
        &self,
        user_id: String,
        current_sid: Option<String>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = db::run(&self.db, move |conn| {
            sessions::list_live(conn, &user_id, db::now()).map_err(StoreError::from)
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| SessionInfo {
                current: current_sid.as_deref() == Some(row.id.as_str()),
                id: row.id,
                created_at: row.created_at.and_utc(),
                last_used_at: row.last_used_at.and_utc(),
                user_agent: row.user_agent,
                ip: row.ip,
            })
            .collect())
    }

    /// Ends session `id`: its refresh tokens are revoked and its access
    /// tokens fail on the logout-sensitive routes. A caller who is not an
    /// admin may end only their own sessions; another user's is "not found".
    pub async fn end_session(
        &self,
        caller_id: String,
        caller_is_admin: bool,
        id: String,
    ) -> Result<(), EndSessionError> {
        db::run(&self.db, move |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let session = sessions::find(conn, &id)?
                    .filter(|s| s.ended_at.is_none())
                    .filter(|s| caller_is_admin || s.user_id == caller_id);
                if session.is_none() {
                    return Ok(Err(EndSessionError::NotFound));
                }
                refresh_tokens::revoke_family(conn, &id)?;
                Ok(Ok(()))
            })
            .map_err(EndSessionError::from)?
        })
        .await
    }

    /// Deletes expired refresh tokens, revocation rows and ended throttling
    /// windows, in batches; returns how many rows went.
    pub async fn prune_expired(&self) -> Result<usize, StoreError> {
        self.throttle.addresses.prune(Instant::now());
        let window = self.throttle.window;
        let refresh_ttl = self.policy.refresh_ttl;
        db::run(&self.db, move |conn| {
            let now = db::now();
            let mut pruned = 0;
            // A session unused this long has no live refresh token, and its
            // access tokens (shorter-lived) have expired: its row can go.
            let sessions_cutoff = now - refresh_ttl - TimeDelta::days(1);
            let pruners: [(Pruner, chrono::NaiveDateTime); 7] = [
                (refresh_tokens::prune_expired, now),
                (revocations::prune_expired, now),
                (login_failures::prune_before, now - window),
                (crate::db::one_time_tokens::prune_expired, now),
                (crate::db::mfa::prune_expired_challenges, now),
                (crate::db::passkeys::prune_expired_ceremonies, now),
                (sessions::prune_unused_since, sessions_cutoff),
            ];
            for (prune, cutoff) in pruners {
                loop {
                    let deleted = prune(conn, cutoff, PRUNE_BATCH)?;
                    pruned += deleted;
                    if deleted < PRUNE_BATCH as usize {
                        break;
                    }
                }
            }
            Ok(pruned)
        })
        .await
    }

    /// How long `client` must wait, if that address is throttled: checked
    /// before any password or key work.
    fn check_address(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let wait = client.and_then(|ip| self.throttle.addresses.retry_after(ip, Instant::now()));
        match wait {
            Some(wait) => {
                self.metrics.throttled("address");
                Err(wait)
            }
            None => Ok(()),
        }
    }

    fn record_address_failure(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.throttle.addresses.record_failure(ip, Instant::now());
        }
    }

    /// Signs the session's access token and pairs it with the refresh token.
    fn token_pair(
        &self,
        session: OpenedSession,
        refresh_token: SecretString,
    ) -> Result<TokenPair, String> {
        let user = session.user;
        let role = Role::parse(&user.role)?;
        let (access_token, _) = self
            .keys
            .sign_access_token(
                session.jti,
                TokenSubject {
                    user_id: &user.id,
                    username: &user.username,
                    role,
                    email_verified: user.email_verified,
                    sign_in: session.sign_in,
                    session_id: Some(&session.sid),
                },
            )
            .map_err(|error| error.to_string())?;
        self.metrics.token_pair_issued();
        Ok(TokenPair {
            access_token,
            expires_in: self.keys.access_ttl_secs(),
            refresh_token,
            refresh_expires_in: self.policy.refresh_ttl.num_seconds(),
        })
    }
}

/// Deletes up to a batch of rows older than a cutoff; returns how many went.
type Pruner = fn(&mut DbConnection, chrono::NaiveDateTime, i64) -> diesel::QueryResult<usize>;

/// The throttling key of a login attempt: the user, whichever identifier
/// named them, or the identifier itself when no user matches, so unknown
/// names are throttled exactly like real ones.
fn throttle_account(user: Option<&users::User>, identifier: &str) -> String {
    match user {
        Some(user) => format!("user:{}", user.id),
        None => format!("name:{identifier}"),
    }
}

/// Reads the user and stamps the access token's `jti`, inside the
/// transaction that holds the user's row lock, later than the user's
/// "tokens valid after" time. A disabled account gets no session.
fn open_session(
    conn: &mut DbConnection,
    user_id: &str,
    sign_in: SignIn,
    sid: &str,
) -> diesel::QueryResult<Option<OpenedSession>> {
    Ok(users::find(conn, user_id)?
        .filter(|user| user.is_active)
        .map(|user| OpenedSession {
            jti: new_token_id_after(user.tokens_valid_after.and_utc()),
            user,
            sign_in,
            sid: sid.to_owned(),
        }))
}

/// Whether `code` is the user's active TOTP code of a step not accepted
/// before; accepting it records the step (so a replay fails).
fn accept_totp(
    conn: &mut DbConnection,
    key: &SealingKey,
    user_id: &str,
    code: &str,
    now: NaiveDateTime,
) -> Result<bool, MfaError> {
    match mfa::find_totp(conn, user_id)?.filter(|t| t.confirmed_at.is_some()) {
        Some(stored) => crate::auth::mfa::accept_code(conn, key, &stored, code, now),
        None => Ok(false),
    }
}

/// Stores the first refresh token of a new family and the family's
/// session row, and opens the session; for a login, an MFA step or a
/// legacy-key exchange, inside its transaction.
fn start_session(
    conn: &mut DbConnection,
    user_id: &str,
    refresh_hash: &str,
    ttl: TimeDelta,
    sign_in: SignIn,
    origin: &SessionOrigin,
) -> diesel::QueryResult<Option<OpenedSession>> {
    let now = db::now();
    let family_id = uuid::Uuid::new_v4().to_string();
    refresh_tokens::insert(
        conn,
        &refresh_tokens::NewRefreshToken {
            token_hash: refresh_hash,
            family_id: &family_id,
            user_id,
            created_at: now,
            expires_at: now + ttl,
            amr: &sign_in.as_stored(),
        },
    )?;
    let user_agent = origin
        .user_agent
        .as_deref()
        .map(sessions::truncate_user_agent);
    let ip = origin.ip.map(|ip| ip.to_string());
    sessions::insert(
        conn,
        &sessions::NewSession {
            id: &family_id,
            user_id,
            created_at: now,
            last_used_at: now,
            user_agent: user_agent.as_deref(),
            ip: ip.as_deref(),
        },
    )?;
    open_session(conn, user_id, sign_in, &family_id)
}

/// Whether `claims` were revoked: the `jti` logged out, or issued before the
/// user's "tokens valid after" time (log out everywhere, password change).
pub fn check_not_revoked(
    conn: &mut DbConnection,
    claims: &Claims,
) -> Result<users::User, AccessError> {
    let check = users::find_for_access(conn, &claims.sub, &claims.jti, claims.sid.as_deref())?
        .ok_or(AccessError::UserGone)?;
    let valid_after =
        DateTime::<Utc>::from_naive_utc_and_offset(check.user.tokens_valid_after, Utc);
    // A token from the revocation's own millisecond is refused: tokens issued
    // after it are stamped later (`new_token_id_after`).
    if claims.issued_at() <= valid_after || check.revoked {
        return Err(AccessError::Revoked);
    }
    // An ended (or pruned) session takes its access tokens with it.
    if claims.sid.is_some() && !check.session_live {
        return Err(AccessError::Revoked);
    }
    Ok(check.user)
}

/// The revocation check of a service token: its client still exists and
/// its `jti` was not revoked.
pub fn check_service_token(conn: &mut DbConnection, claims: &Claims) -> Result<(), AccessError> {
    let client_id = claims.client_id.as_deref().unwrap_or(&claims.sub);
    if client_id != claims.sub || !service_clients::exists(conn, client_id)? {
        return Err(AccessError::Revoked);
    }
    if revocations::is_revoked(conn, &claims.jti)? {
        return Err(AccessError::Revoked);
    }
    Ok(())
}

/// The logout-sensitive check of any access token: a user's
/// ([`check_not_revoked`]) or a service client's ([`check_service_token`]).
pub fn check_token_active(conn: &mut DbConnection, claims: &Claims) -> Result<(), AccessError> {
    if claims.role == Role::Service {
        check_service_token(conn, claims)
    } else {
        check_not_revoked(conn, claims).map(drop)
    }
}

/// Makes every access token of `user_id` issued before now fail on
/// logout-sensitive routes (a role change: the next refresh carries the new
/// role, so refresh tokens stay).
pub fn revoke_access_tokens(
    conn: &mut DbConnection,
    user_id: &str,
) -> diesel::QueryResult<NaiveDateTime> {
    // The row lock first, then the time: a session that committed before
    // this call stamped its token no later than `now`, and one that waits
    // for the lock sees `now` and stamps its token later. Truncated to the
    // millisecond, the precision of `Claims::issued_at`.
    users::lock(conn, user_id)?;
    let now = {
        use chrono::DurationRound;
        let now = db::now();
        now.duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now)
    };
    users::update(
        conn,
        user_id,
        &users::UserChanges {
            tokens_valid_after: Some(now),
            ..Default::default()
        },
    )?;
    Ok(now)
}

/// Makes every token of `user_id` issued before now fail on logout-sensitive
/// routes, deletes all their refresh tokens and retires their legacy DRF
/// keys. Run it inside the caller's transaction.
pub fn revoke_all_tokens(conn: &mut DbConnection, user_id: &str) -> diesel::QueryResult<()> {
    let now = revoke_access_tokens(conn, user_id)?;
    refresh_tokens::revoke_all_for_user(conn, user_id)?;
    legacy_tokens::retire_all_for_user(conn, user_id, now)?;
    Ok(())
}
