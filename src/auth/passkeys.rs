//! Passkeys (WebAuthn, through webauthn-rs): registration (start, finish),
//! the list, removal, and the verification half of a passwordless login.
//! The login's session is opened by [`crate::auth::sessions`], as for a
//! password.
//!
//! Every ceremony's state stays server-side, in `webauthn_ceremonies`: a
//! start stores it under a random id for [`CEREMONY_TTL_SECS`], and its
//! finish takes (deletes) it, so a state, and the challenge in it, is used
//! at most once.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDateTime, TimeDelta};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Uuid, Webauthn,
    WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::db::passkeys::{self as store, CeremonyKind, StoredPasskey};
use crate::db::{self, Database, StoreError};
use crate::settings::{SettingsError, WebauthnSettings};
use crate::store_errors;

/// How long a ceremony waits for its finish (also the client's timeout).
pub const CEREMONY_TTL_SECS: i64 = 300;
/// The longest name a passkey may have, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a passkey registration or removal failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Unknown, already used, expired, or another user's ceremony.
    #[error("unknown, used or expired ceremony")]
    UnknownCeremony,
    /// The authenticator's response does not verify.
    #[error("the credential was refused: {0}")]
    Rejected(String),
    /// This credential is already registered (to this or another account).
    #[error("the credential is already registered")]
    AlreadyRegistered,
    #[error("no such passkey")]
    NotFound,
    #[error("the user no longer exists")]
    UserGone,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(PasskeyError);

/// A ceremony's first half: the id its finish names, and the options for
/// the browser's `navigator.credentials.create()`.
pub struct RegistrationStart {
    pub ceremony_id: String,
    pub options: CreationChallengeResponse,
}

/// A login ceremony's first half: its id, and the options for
/// `navigator.credentials.get()`.
pub struct LoginStart {
    pub ceremony_id: String,
    pub options: RequestChallengeResponse,
}

/// A passkey login that verified: whose, and the credential as it is now.
pub struct VerifiedPasskey {
    pub user_id: String,
    pub passkey_id: String,
    /// The stored credential with its new counter and backup state, as JSON.
    pub updated_passkey: String,
}

/// The passkey use cases, over the database and the relying party.
pub struct Passkeys {
    db: Database,
    webauthn: Arc<Webauthn>,
}

impl Passkeys {
    /// The relying party of `webauthn.*`; a bad origin or RP id names its
    /// setting.
    pub fn new(db: Database, settings: &WebauthnSettings) -> Result<Self, SettingsError> {
        let webauthn = WebauthnBuilder::new(&settings.rp_id, &settings.origin)
            .map_err(|error| {
                SettingsError::new(
                    "webauthn.rp_id",
                    format!(
                        "`{}` is not the host of webauthn.origin ({}) or a suffix of it: {error}",
                        settings.rp_id, settings.origin
                    ),
                )
            })?
            .rp_name(&settings.rp_name)
            .timeout(Duration::from_secs(CEREMONY_TTL_SECS.unsigned_abs()))
            .build()
            .map_err(|error| SettingsError::new("webauthn.origin", error.to_string()))?;
        Ok(Self {
            db,
            webauthn: Arc::new(webauthn),
        })
    }

    /// Starts registering a passkey for the user; the options exclude the
    /// credentials they already have, so one authenticator registers once.
    pub async fn start_registration(
        &self,
        user_id: &str,
        username: &str,
    ) -> Result<RegistrationStart, PasskeyError> {
        let user_handle = user_handle(user_id)?;
        let owner = user_id.to_owned();
        let existing = db::run(&self.db, move |conn| {
            store::list_for_user(conn, &owner).map_err(PasskeyError::from)
        })
        .await?;
        let exclude = existing
            .iter()
            .map(|stored| parse_passkey(&stored.passkey).map(|passkey| passkey.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user_handle, username, username, Some(exclude))
            .map_err(|error| PasskeyError::Internal(error.to_string()))?;
        // A passwordless login finds the account through the credential
        // itself (its options list no credential ids), so a passkey must be
        // discoverable: require one. An authenticator that cannot store it
        // refuses in the browser, instead of registering a credential that
        // could never sign in here.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let state = serde_json::to_string(&state)
            .map_err(|error| PasskeyError::Internal(error.to_string()))?;
        let ceremony_id = self
            .store_ceremony(CeremonyKind::Register, Some(user_id.to_owned()), state)
            .await?;
        Ok(RegistrationStart {
            ceremony_id,
            options,
        })
    }

    /// Finishes a registration with the authenticator's response; returns
    /// the stored passkey.
    pub async fn finish_registration(
        &self,
        user_id: &str,
        ceremony_id: String,
        credential: RegisterPublicKeyCredential,
        name: String,
    ) -> Result<StoredPasskey, PasskeyError> {
        let state = self
            .take_ceremony(
                ceremony_id,
                CeremonyKind::Register,
                Some(user_id.to_owned()),
            )
            .await?
            .ok_or(PasskeyError::UnknownCeremony)?;
        let state: PasskeyRegistration = serde_json::from_str(&state)
            .map_err(|error| PasskeyError::Internal(format!("stored ceremony state: {error}")))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|error| PasskeyError::Rejected(error.to_string()))?;
        let stored = StoredPasskey {
            id: Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice()),
            passkey: serde_json::to_string(&passkey)
                .map_err(|error| PasskeyError::Internal(error.to_string()))?,
            name,
            created_at: db::now(),
            last_used_at: None,
        };
        let row = stored.clone();
        db::run(&self.db, move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                if store::find_by_credential_id(conn, &row.credential_id)?.is_some() {
                    return Err(PasskeyError::AlreadyRegistered);
                }
                // The user may have been deleted since the start.
                if crate::db::users::find(conn, &row.user_id)?.is_none() {
                    return Err(PasskeyError::UserGone);
                }
                store::insert(
                    conn,
                    &store::NewPasskey {
                        id: &row.id,
                        user_id: &row.user_id,
                        credential_id: &row.credential_id,
                        passkey: &row.passkey,
                        name: &row.name,
                        created_at: row.created_at,
                    },
                )
                .map_err(|error| match error {
                    // A concurrent registration of the same credential won.
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => PasskeyError::AlreadyRegistered,
                    other => PasskeyError::from(other),
                })
            })
        })
        .await?;
        tracing::info!(%user_id, passkey_id = %stored.id, "passkey registered");
        Ok(stored)
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<StoredPasskey>, PasskeyError> {
        let user_id = user_id.to_owned();
        db::run(&self.db, move |conn| {
            store::list_for_user(conn, &user_id).map_err(PasskeyError::from)
        })
        .await
    }

    /// Removes one of the user's passkeys; another user's is not found.
    pub async fn delete(&self, user_id: &str, passkey_id: &str) -> Result<(), PasskeyError> {
        let (owner, id) = (user_id.to_owned(), passkey_id.to_owned());
        let deleted = db::run(&self.db, move |conn| {
            store::delete_for_user(conn, &owner, &id).map_err(PasskeyError::from)
        })
        .await?;
        if !deleted {
            return Err(PasskeyError::NotFound);
        }
        tracing::info!(%user_id, %passkey_id, "passkey removed");
        Ok(())
    }

    /// Starts a passwordless login: a challenge for any discoverable
    /// passkey of this relying party.
    pub async fn start_login(&self) -> Result<LoginStart, PasskeyError> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|error| PasskeyError::Internal(error.to_string()))?;
        // webauthn-rs asks for conditional mediation (autofill); whether to
        // use it is the page's choice.
        options.mediation = None;
        let state = serde_json::to_string(&state)
            .map_err(|error| PasskeyError::Internal(error.to_string()))?;
        let ceremony_id = self
            .store_ceremony(CeremonyKind::Login, None, state)
            .await?;
        Ok(LoginStart {
            ceremony_id,
            options,
        })
    }

    /// Verifies a login's assertion against its ceremony, once: the
    /// ceremony is taken whatever the outcome. `None` for every refusal
    /// (unknown, used or expired ceremony, unknown credential, a user
    /// handle that is not the credential's owner, a bad signature, origin,
    /// RP id or counter), which the caller answers alike.
    pub async fn verify_login(
        &self,
        ceremony_id: String,
        credential: &PublicKeyCredential,
    ) -> Result<Option<VerifiedPasskey>, PasskeyError> {
        let Ok((user_handle, credential_id)) = self
            .webauthn
            .identify_discoverable_authentication(credential)
        else {
            // Still spend the ceremony: one attempt per challenge.
            self.take_ceremony(ceremony_id, CeremonyKind::Login, None)
                .await?;
            return Ok(None);
        };
        let credential_id = URL_SAFE_NO_PAD.encode(credential_id);
        let (state, stored) = db::run(&self.db, move |conn| {
            let state =
                store::take_ceremony(conn, &ceremony_id, CeremonyKind::Login, None, db::now())?;
            let stored = store::find_by_credential_id(conn, &credential_id)?;
            Ok::<_, PasskeyError>((state, stored))
        })
        .await?;
        let (Some(state), Some(stored)) = (state, stored) else {
            return Ok(None);
        };
        if stored.user_id != user_handle.to_string() {
            tracing::warn!(passkey_id = %stored.id, "passkey login with a user handle that is not the credential's owner");
            return Ok(None);
        }
        let state: DiscoverableAuthentication = serde_json::from_str(&state)
            .map_err(|error| PasskeyError::Internal(format!("stored ceremony state: {error}")))?;
        let mut passkey = parse_passkey(&stored.passkey)?;
        let result = match self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
        {
            Ok(result) => result,
            Err(error) => {
                tracing::info!(passkey_id = %stored.id, %error, "passkey assertion refused");
                return Ok(None);
            }
        };
        passkey.update_credential(&result);
        let updated_passkey = serde_json::to_string(&passkey)
            .map_err(|error| PasskeyError::Internal(error.to_string()))?;
        Ok(Some(VerifiedPasskey {
            user_id: stored.user_id,
            passkey_id: stored.id,
            updated_passkey,
        }))
    }

    async fn store_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<String>,
        state: String,
    ) -> Result<String, PasskeyError> {
        let ceremony_id = new_ceremony_id();
        let id = ceremony_id.clone();
        db::run(&self.db, move |conn| {
            let expires_at = db::now() + TimeDelta::seconds(CEREMONY_TTL_SECS);
            store::insert_ceremony(conn, &id, kind, user_id.as_deref(), &state, expires_at)
                .map_err(PasskeyError::from)
        })
        .await?;
        Ok(ceremony_id)
    }

    async fn take_ceremony(
        &self,
        ceremony_id: String,
        kind: CeremonyKind,
        user_id: Option<String>,
    ) -> Result<Option<String>, PasskeyError> {
        db::run(&self.db, move |conn| {
            store::take_ceremony(conn, &ceremony_id, kind, user_id.as_deref(), db::now())
                .map_err(PasskeyError::from)
        })
        .await
    }
}

/// Records a verified login's use of its passkey: the new counter and
/// backup state, and the time. Run it inside the login's transaction; false
/// when the passkey was removed since it verified.
pub fn record_use(
    conn: &mut db::DbConnection,
    verified: &VerifiedPasskey,
    now: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    store::record_use(conn, &verified.passkey_id, &verified.updated_passkey, now)
}

/// 32 random bytes, base64url: a ceremony id that cannot be guessed.
fn new_ceremony_id() -> String {
    use rand::RngCore as _;
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The WebAuthn user handle of a tessera user: their id, a UUID.
fn user_handle(user_id: &str) -> Result<Uuid, PasskeyError> {
    Uuid::parse_str(user_id)
        .map_err(|_| PasskeyError::Internal(format!("user id `{user_id}` is not a UUID")))
}

fn parse_passkey(json: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(json)
        .map_err(|error| PasskeyError::Internal(format!("stored passkey: {error}")))
}
