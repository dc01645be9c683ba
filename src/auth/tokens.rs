//! Access tokens: the key ring, the claims, issuing and verifying.
//!
//! Verification trusts nothing in the token header but `kid`: the algorithm
//! is pinned by configuration, and `exp`, `nbf`, `iat`, `iss`, `aud`, `sub`
//! and `jti` are all required (jsonwebtoken's defaults would allow 60 s of
//! leeway, skip `nbf` and require only `exp`).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, encode};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::keys::{self, PublishedJwk};
use crate::domain::Role;
use crate::settings::{Algorithm, DeployEnv, Settings, SettingsError};

/// Shortest HS256 key accepted: RFC 7518 §3.2 asks for at least the hash size.
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims of a tessera access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub role: Role,
    /// The user's name; absent from a service client's token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Whether the user's email was verified when the token was issued
    /// (absent from tokens issued before v1.1: false).
    #[serde(default)]
    pub email_verified: bool,
    /// How the user signed in (RFC 8176 values; absent from tokens issued
    /// before v1.1: a password).
    /// Empty (and absent) in a service client's token.
    #[serde(default = "password_amr", skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The authenticator assurance level (NIST SP 800-63B): `aal1` for one
    /// factor, `aal2` for two. Empty (and absent) in a service client's token.
    #[serde(default = "aal1", skip_serializing_if = "String::is_empty")]
    pub aal: String,
    /// The session (refresh-token family) the token belongs to; absent from
    /// tokens issued before sessions existed and from service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// A service token's client (equal to `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A service token's granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn password_amr() -> Vec<String> {
    vec!["pwd".to_owned()]
}

fn aal1() -> String {
    "aal1".to_owned()
}

/// How a session's user signed in; kept by every refresh of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// A password (or a legacy key a password login once gave).
    Password,
    /// A password, then a TOTP code.
    PasswordAndTotp,
    /// A password, then a recovery code.
    PasswordAndRecoveryCode,
    /// A passkey: a hardware-bound key, unlocked by user verification
    /// (webauthn-rs passkeys require it), so two factors in one.
    Passkey,
}

impl SignIn {
    /// The RFC 8176 `amr` values.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            SignIn::Password => &["pwd"],
            SignIn::PasswordAndTotp => &["pwd", "otp"],
            SignIn::PasswordAndRecoveryCode => &["pwd", "mfa"],
            SignIn::Passkey => &["hwk", "user"],
        }
    }

    pub fn aal(self) -> &'static str {
        match self {
            SignIn::Password => "aal1",
            SignIn::PasswordAndTotp | SignIn::PasswordAndRecoveryCode | SignIn::Passkey => "aal2",
        }
    }

    /// As stored with the session: the `amr` values, space-separated.
    pub fn as_stored(self) -> String {
        self.amr().join(" ")
    }

    /// Reads [`SignIn::as_stored`] back; anything unknown is a password.
    pub fn from_stored(text: &str) -> Self {
        [
            SignIn::PasswordAndTotp,
            SignIn::PasswordAndRecoveryCode,
            SignIn::Passkey,
        ]
        .into_iter()
        .find(|sign_in| sign_in.as_stored() == text)
        .unwrap_or(SignIn::Password)
    }
}

/// Whom an access token is for: what its claims say about the user.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub role: Role,
    pub email_verified: bool,
    pub sign_in: SignIn,
    /// The session the token belongs to (`sid`).
    pub session_id: Option<&'a str>,
}

impl Claims {
    /// When the token was issued, to the millisecond: `jti` is a UUIDv7,
    /// whose timestamp is finer than `iat`'s whole seconds. That precision
    /// lets "log out everywhere" refuse a token issued a moment before it,
    /// yet accept one issued a moment after, within the same second.
    pub fn issued_at(&self) -> DateTime<Utc> {
        let from_jti = Uuid::parse_str(&self.jti)
            .ok()
            .filter(|id| id.get_version_num() == 7)
            .and_then(|id| id.get_timestamp())
            .and_then(|ts| {
                let (secs, nanos) = ts.to_unix();
                DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
            })
            .filter(|at| at.timestamp() == self.iat);
        from_jti.unwrap_or_else(|| DateTime::from_timestamp(self.iat, 0).unwrap_or_default())
    }
}

/// Why a token was refused. The message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("The token has expired.")]
    Expired,
    #[error("The token is not valid yet.")]
    NotYetValid,
    #[error("The token has an unknown key id.")]
    UnknownKey,
    #[error("The token is malformed or its signature is invalid.")]
    Invalid,
}

/// The signing key and every key that verifies, each known by its `kid`.
pub struct KeyRing {
    algorithm: jsonwebtoken::Algorithm,
    signing_kid: String,
    signing_key: EncodingKey,
    verification_keys: HashMap<String, DecodingKey>,
    /// The public keys for the JWKS; empty under HS256.
    published: Vec<PublishedJwk>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway_secs: u64,
    access_ttl_secs: i64,
    issuer: String,
    audience: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .field("verification_kids", &self.verification_keys.keys())
            .finish_non_exhaustive()
    }
}

/// A fresh `jti`: a UUIDv7, whose embedded millisecond timestamp is the
/// token's precise issue time.
pub fn new_token_id() -> Uuid {
    Uuid::now_v7()
}

/// A token id (UUIDv7) whose millisecond timestamp is later than `after`,
/// the user's "tokens valid after" time: a token issued once a revocation
/// committed must never look as old as it, even within the same
/// millisecond or when this instance's clock lags the one that revoked.
/// At worst the id is stamped one millisecond ahead of the clock.
pub fn new_token_id_after(after: DateTime<Utc>) -> Uuid {
    let earliest = after.timestamp_millis().saturating_add(1);
    if Utc::now().timestamp_millis() >= earliest {
        return new_token_id();
    }
    let (secs, millis) = (earliest.div_euclid(1000), earliest.rem_euclid(1000));
    let nanos = u32::try_from(millis).unwrap_or(0) * 1_000_000;
    let secs = u64::try_from(secs).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos))
}

/// The `kid` of an HS256 secret: the first 16 hex digits of its SHA-256, so
/// every holder of the secret computes the same id without learning more.
pub fn hmac_kid(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

/// The claims checks every ring shares.
struct ClaimRules<'a> {
    issuer: &'a str,
    audience: &'a str,
    access_ttl_secs: u64,
    leeway_secs: u64,
}

impl KeyRing {
    /// Builds the ring from settings: HS256 from `jwt.secret` (generated and
    /// kept in the data folder when unset outside production) and
    /// `jwt.previous_secrets`; the asymmetric algorithms from
    /// `jwt.private_key_file` and `jwt.public_key_files`.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let algorithm = settings.jwt.algorithm;
        let jwt = &settings.jwt;
        let rules = ClaimRules {
            issuer: &jwt.issuer,
            audience: &jwt.audience,
            access_ttl_secs: jwt.access_ttl_secs.get(),
            leeway_secs: jwt.leeway_secs.get(),
        };
        if algorithm != Algorithm::HS256 {
            return Self::asymmetric(algorithm, settings, &rules);
        }
        let current = load_hmac_secret(settings)?;
        let mut secrets = vec![current];
        for (index, previous) in jwt.previous_secrets.iter().enumerate() {
            let bytes = previous.expose_secret().as_bytes();
            if bytes.len() < MIN_SECRET_BYTES {
                return Err(SettingsError::new(
                    "jwt.previous_secrets",
                    format!("entry {index} is shorter than {MIN_SECRET_BYTES} bytes"),
                ));
            }
            secrets.push(SecretString::from(previous.expose_secret().to_owned()));
        }
        Ok(Self::hs256(
            &secrets,
            &jwt.issuer,
            &jwt.audience,
            jwt.access_ttl_secs.get(),
            jwt.leeway_secs.get(),
        ))
    }

    /// An HS256 ring: the first secret signs, all verify.
    pub fn hs256(
        secrets: &[SecretString],
        issuer: &str,
        audience: &str,
        access_ttl_secs: u64,
        leeway_secs: u64,
    ) -> Self {
        let verification_keys = secrets
            .iter()
            .map(|secret| {
                let bytes = secret.expose_secret().as_bytes();
                (hmac_kid(bytes), DecodingKey::from_secret(bytes))
            })
            .collect();
        let (signing_kid, signing_key) = secrets.first().map_or_else(
            || (String::new(), EncodingKey::from_secret(&[])),
            |secret| {
                let bytes = secret.expose_secret().as_bytes();
                (hmac_kid(bytes), EncodingKey::from_secret(bytes))
            },
        );
        let rules = ClaimRules {
            issuer,
            audience,
            access_ttl_secs,
            leeway_secs,
        };
        Self::assemble(
            Algorithm::HS256,
            signing_kid,
            signing_key,
            verification_keys,
            Vec::new(),
            &rules,
        )
    }

    /// An ES256, RS256 or EdDSA ring: the private key signs; it and every
    /// extra public key verify and are published.
    fn asymmetric(
        algorithm: Algorithm,
        settings: &Settings,
        rules: &ClaimRules<'_>,
    ) -> Result<Self, SettingsError> {
        let jwt = &settings.jwt;
        let path = jwt.private_key_file.as_ref().ok_or_else(|| {
            SettingsError::new(
                "jwt.private_key_file",
                format!("{algorithm} needs a private key (see `tessera keys generate`)"),
            )
        })?;
        let pem = read_pem(path, "jwt.private_key_file")?;
        let (signing_key, signing_jwk) = keys::load_private_key(algorithm, &pem).map_err(|m| {
            SettingsError::new("jwt.private_key_file", format!("{}: {m}", path.display()))
        })?;
        let mut public_keys = vec![signing_jwk];
        for path in &jwt.public_key_files {
            let pem = read_pem(path, "jwt.public_key_files")?;
            let jwk = keys::load_public_key(algorithm, &pem).map_err(|m| {
                SettingsError::new("jwt.public_key_files", format!("{}: {m}", path.display()))
            })?;
            if !public_keys.contains(&jwk) {
                public_keys.push(jwk);
            }
        }
        let mut verification_keys = HashMap::new();
        for jwk in &public_keys {
            let key = jwk
                .decoding_key()
                .map_err(|m| SettingsError::new("jwt.public_key_files", m))?;
            verification_keys.insert(jwk.thumbprint(), key);
        }
        let published = public_keys
            .iter()
            .map(|jwk| jwk.published(algorithm))
            .collect();
        Ok(Self::assemble(
            algorithm,
            public_keys[0].thumbprint(),
            signing_key,
            verification_keys,
            published,
            rules,
        ))
    }

    fn assemble(
        algorithm: Algorithm,
        signing_kid: String,
        signing_key: EncodingKey,
        verification_keys: HashMap<String, DecodingKey>,
        published: Vec<PublishedJwk>,
        rules: &ClaimRules<'_>,
    ) -> Self {
        let algorithm = match algorithm {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        };
        Self {
            algorithm,
            signing_kid,
            signing_key,
            verification_keys,
            published,
            leeway_secs: rules.leeway_secs,
            access_ttl_secs: i64::try_from(rules.access_ttl_secs).unwrap_or(i64::MAX),
            issuer: rules.issuer.to_owned(),
            audience: rules.audience.to_owned(),
        }
    }

    /// The public verification keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[PublishedJwk] {
        &self.published
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    /// Until when a token with these claims can still verify: `exp` plus the
    /// leeway. A revocation must be kept at least that long.
    pub fn verifiable_until(&self, claims: &Claims) -> DateTime<Utc> {
        let leeway = i64::try_from(self.leeway_secs).unwrap_or(i64::MAX);
        DateTime::from_timestamp(claims.exp.saturating_add(leeway), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Signs a fresh access token for a user.
    pub fn issue_access_token(
        &self,
        subject: TokenSubject<'_>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.sign_access_token(new_token_id(), subject)
    }

    /// Signs an access token whose `jti` (and so its issue time) was taken
    /// earlier with [`new_token_id`], e.g. inside the database transaction
    /// that created the session, so that a concurrent "log out everywhere"
    /// orders correctly against it.
    pub fn sign_access_token(
        &self,
        jti: Uuid,
        subject: TokenSubject<'_>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let issued_at = jti
            .get_timestamp()
            .map_or_else(|| Utc::now().timestamp(), |ts| ts.to_unix().0 as i64);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.to_owned(),
            exp: issued_at.saturating_add(self.access_ttl_secs),
            iat: issued_at,
            nbf: issued_at,
            jti: jti.to_string(),
            role: subject.role,
            username: subject.username.to_owned(),
            email_verified: subject.email_verified,
            amr: subject
                .sign_in
                .amr()
                .iter()
                .map(|value| (*value).to_owned())
                .collect(),
            aal: subject.sign_in.aal().to_owned(),
            sid: subject.session_id.map(str::to_owned),
            client_id: None,
            scope: None,
        };
        self.sign(claims)
    }

    /// Signs an access token for a service client: `sub` and `client_id`
    /// are the client, `role` is `service`, `scope` the granted scopes; no
    /// username, `amr`, `aal` or `sid`.
    pub fn issue_service_token(
        &self,
        client_id: &str,
        scope: &str,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let jti = new_token_id();
        let issued_at = jti
            .get_timestamp()
            .map_or_else(|| Utc::now().timestamp(), |ts| ts.to_unix().0 as i64);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: client_id.to_owned(),
            exp: issued_at.saturating_add(self.access_ttl_secs),
            iat: issued_at,
            nbf: issued_at,
            jti: jti.to_string(),
            role: Role::Service,
            username: String::new(),
            email_verified: false,
            amr: Vec::new(),
            aal: String::new(),
            sid: None,
            client_id: Some(client_id.to_owned()),
            scope: Some(scope.to_owned()),
        };
        self.sign(claims)
    }

    fn sign(&self, claims: Claims) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.signing_kid.clone());
        let token = encode(&header, &claims, &self.signing_key)?;
        Ok((token, claims))
    }

    /// The checks jsonwebtoken's `decode` made with the strict `Validation`
    /// tessera gave it (kept in this module's tests), at `now` (seconds
    /// since the epoch): `exp` and `nbf` whole, non-negative seconds; the
    /// token expired `leeway` seconds after `exp` and valid from `leeway`
    /// seconds before `nbf`; `iss` and `aud` the configured ones. The other
    /// registered claims (`iat`, `sub`, `jti`) are required by [`Claims`].
    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), TokenError> {
        let (Ok(exp), Ok(nbf)) = (u64::try_from(claims.exp), u64::try_from(claims.nbf)) else {
            return Err(TokenError::Invalid);
        };
        let leeway = self.leeway_secs;
        if exp < now.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iss != self.issuer || claims.aud != self.audience {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    /// Verifies signature and claims; no database is involved.
    ///
    /// Each part of the token is decoded once (jsonwebtoken's `decode`
    /// parses the header twice and the claims twice, and the `kid` needed
    /// a third parse of the header): the header for its `kid` and `alg`,
    /// the signature checked with the key the `kid` names under the
    /// configured algorithm, the claims read into [`Claims`], which
    /// requires every registered claim, and checked here
    /// ([`KeyRing::check_claims`]); a test holds the result to `decode`'s.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // `header.payload.signature`, split at the last dots as jsonwebtoken
        // splits it.
        let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = message.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let header: Header = decode_part(header)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .verification_keys
            .get(&kid)
            .ok_or(TokenError::UnknownKey)?;
        // The configured algorithm only, whatever the header says (`none`
        // does not even parse).
        if header.alg != self.algorithm {
            return Err(TokenError::Invalid);
        }
        let signed =
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, self.algorithm)
                .map_err(|_| TokenError::Invalid)?;
        if !signed {
            return Err(TokenError::Invalid);
        }
        let mut claims: Claims = decode_part(payload)?;
        self.check_claims(&claims, jsonwebtoken::get_current_timestamp())?;
        if claims.role == Role::Service {
            // A service token names its client; the `amr`/`aal` defaults
            // (for user tokens from before v1.1) do not apply to it.
            if claims.client_id.is_none() {
                return Err(TokenError::Invalid);
            }
            claims.amr.clear();
            claims.aal.clear();
        } else if claims.username.is_empty() {
            // A user's token always names the user.
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// A JSON part of a token (header or claims), base64url without padding.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let json = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)
}

/// The HS256 secret: `jwt.secret`, else `jwt.secret_file`, else (outside
/// production) a key generated once into `<data_dir>/jwt.key`.
fn load_hmac_secret(settings: &Settings) -> Result<SecretString, SettingsError> {
    let jwt = &settings.jwt;
    let (secret, key) = match (&jwt.secret, &jwt.secret_file) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::new(
                "jwt.secret",
                "set either jwt.secret or jwt.secret_file, not both",
            ));
        }
        (Some(secret), None) => (
            SecretString::from(secret.expose_secret().to_owned()),
            "jwt.secret",
        ),
        (None, Some(path)) => (
            read_secret_file(path, "jwt.secret_file")?,
            "jwt.secret_file",
        ),
        (None, None) => {
            if settings.server.env == DeployEnv::Production {
                return Err(SettingsError::new(
                    "jwt.secret",
                    "production (server.env) needs an explicit key: set jwt.secret or jwt.secret_file",
                ));
            }
            (
                generated_key_file(&settings.server.data_dir, "jwt.key", "jwt.secret")?,
                "server.data_dir",
            )
        }
    };
    if secret.expose_secret().len() < MIN_SECRET_BYTES {
        return Err(SettingsError::new(
            key,
            format!("the HS256 key must be at least {MIN_SECRET_BYTES} bytes"),
        ));
    }
    Ok(secret)
}

fn read_pem(path: &Path, key: &str) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(key, format!("cannot read {}: {e}", path.display())))
}

fn read_secret_file(path: &Path, key: &str) -> Result<SecretString, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::new(key, format!("cannot read {}: {e}", path.display())))?;
    // A trailing newline from `echo` or an editor is not part of the key.
    Ok(SecretString::from(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

/// Reads `<data_dir>/<file_name>`, creating it (mode 0600, 32 random bytes
/// base64url) on first start: the development default of a key whose
/// `setting` is unset.
pub fn generated_key_file(
    data_dir: &Path,
    file_name: &str,
    setting: &str,
) -> Result<SecretString, SettingsError> {
    let path = data_dir.join(file_name);
    if path.exists() {
        return read_secret_file(&path, "server.data_dir");
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        SettingsError::new(
            "server.data_dir",
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private_file(&path, secret.as_bytes()).map_err(|e| {
        SettingsError::new(
            "server.data_dir",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    tracing::warn!(
        path = %path.display(),
        "no {setting} configured: generated a key and kept it in the data folder; \
         set {setting} for production"
    );
    Ok(SecretString::from(secret))
}

/// Creates a new file readable by its owner only.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(role: Role) -> TokenSubject<'static> {
        TokenSubject {
            user_id: "u1",
            username: "alice",
            role,
            email_verified: false,
            sign_in: SignIn::Password,
            session_id: None,
        }
    }
    use jsonwebtoken::{Algorithm as Alg, EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

    /// The `Validation` jsonwebtoken's `decode` verified tokens with before
    /// `KeyRing::verify` checked the claims itself: every field set on
    /// purpose.
    fn strict_validation(
        algorithm: jsonwebtoken::Algorithm,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> jsonwebtoken::Validation {
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway_secs;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation
    }

    /// `verify` holds claims to what jsonwebtoken's `decode` held them to
    /// with the strict validation above: the same tokens pass, and the
    /// same fail for the same reason. Times keep 6 s from the leeway's
    /// edges, so a second ticking between the two checks changes nothing.
    #[test]
    fn verify_agrees_with_jsonwebtokens_decode_on_claims() {
        let ring = ring();
        let key = DecodingKey::from_secret(SECRET.as_bytes());
        let validation = strict_validation(Alg::HS256, "tessera", "tessera", 30);
        let t = now();
        let with = |name: &str, value: serde_json::Value| {
            let mut claims = valid_claims();
            claims[name] = value;
            claims
        };
        let without = |name: &str| {
            let mut claims = valid_claims();
            claims.as_object_mut().unwrap().remove(name);
            claims
        };
        let mut cases = vec![valid_claims()];
        for exp in [t - 100, t - 36, t - 24, t + 600, -5] {
            cases.push(with("exp", json!(exp)));
        }
        for nbf in [t + 100, t + 36, t + 24, t - 100, -1] {
            cases.push(with("nbf", json!(nbf)));
        }
        cases.push(with("exp", json!(1.0e10)));
        cases.push(with("exp", json!("never")));
        cases.push(with("iss", json!("someone-else")));
        cases.push(with("aud", json!("someone-else")));
        cases.push(with("aud", json!(["tessera"])));
        for name in ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"] {
            cases.push(without(name));
        }
        for claims in cases {
            let token = sign(&claims, SECRET);
            let ours = ring.verify(&token).map(drop).map_err(|e| format!("{e:?}"));
            let theirs = jsonwebtoken::decode::<Claims>(&token, &key, &validation)
                .map(drop)
                .map_err(|error| {
                    match error.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => "Expired",
                        jsonwebtoken::errors::ErrorKind::ImmatureSignature => "NotYetValid",
                        _ => "Invalid",
                    }
                    .to_owned()
                });
            assert_eq!(ours, theirs, "{claims}");
        }
    }

    fn ring() -> KeyRing {
        KeyRing::hs256(&[SecretString::from(SECRET)], "tessera", "tessera", 900, 30)
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn valid_claims() -> serde_json::Value {
        json!({
            "iss": "tessera", "aud": "tessera", "sub": "user-1",
            "exp": now() + 600, "iat": now(), "nbf": now(),
            "jti": Uuid::now_v7().to_string(), "role": "user", "username": "alice",
        })
    }

    fn sign(claims: &serde_json::Value, secret: &str) -> String {
        let mut header = Header::new(Alg::HS256);
        header.kid = Some(hmac_kid(secret.as_bytes()));
        encode(
            &header,
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let ring = ring();
        let (token, claims) = ring.issue_access_token(subject(Role::Admin)).unwrap();
        let verified = ring.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.exp - verified.iat, 900);
        assert_eq!(verified.nbf, verified.iat);
    }

    #[test]
    fn the_header_names_the_kid_and_typ() {
        let (token, _) = ring().issue_access_token(subject(Role::User)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some(hmac_kid(SECRET.as_bytes()).as_str())
        );
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.alg, Alg::HS256);
    }

    #[test]
    fn a_hand_signed_token_with_all_claims_verifies() {
        assert!(ring().verify(&sign(&valid_claims(), SECRET)).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(
            json!({"alg": "none", "typ": "JWT", "kid": hmac_kid(SECRET.as_bytes())}).to_string(),
        );
        let payload = URL_SAFE_NO_PAD.encode(valid_claims().to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(ring().verify(&token), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn another_algorithm_is_refused() {
        let mut header = Header::new(Alg::HS512);
        header.kid = Some(hmac_kid(SECRET.as_bytes()));
        let token = encode(
            &header,
            &valid_claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(ring().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = sign(&valid_claims(), SECRET);
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = valid_claims();
        claims["role"] = json!("admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(ring().verify(&forged), Err(TokenError::Invalid));
    }

    #[test]
    fn a_wrong_key_with_the_right_kid_is_refused() {
        let mut header = Header::new(Alg::HS256);
        header.kid = Some(hmac_kid(SECRET.as_bytes()));
        let token = encode(
            &header,
            &valid_claims(),
            &EncodingKey::from_secret(b"another-secret-another-secret-0123"),
        )
        .unwrap();
        assert_eq!(ring().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn an_unknown_or_missing_kid_is_refused() {
        let other = "another-secret-another-secret-0123";
        assert_eq!(
            ring().verify(&sign(&valid_claims(), other)),
            Err(TokenError::UnknownKey)
        );
        let token = encode(
            &Header::new(Alg::HS256),
            &valid_claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(ring().verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn an_expired_token_is_refused_beyond_the_leeway() {
        let mut claims = valid_claims();
        claims["exp"] = json!(now() - 31);
        assert_eq!(
            ring().verify(&sign(&claims, SECRET)),
            Err(TokenError::Expired)
        );
        claims["exp"] = json!(now() - 5);
        assert!(
            ring().verify(&sign(&claims, SECRET)).is_ok(),
            "within leeway"
        );
    }

    #[test]
    fn a_future_nbf_is_refused_beyond_the_leeway() {
        let mut claims = valid_claims();
        claims["nbf"] = json!(now() + 120);
        assert_eq!(
            ring().verify(&sign(&claims, SECRET)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn a_wrong_issuer_or_audience_is_refused() {
        for (claim, value) in [("iss", "someone-else"), ("aud", "another-service")] {
            let mut claims = valid_claims();
            claims[claim] = json!(value);
            assert_eq!(
                ring().verify(&sign(&claims, SECRET)),
                Err(TokenError::Invalid),
                "{claim}"
            );
        }
    }

    #[test]
    fn each_missing_claim_is_refused() {
        for claim in [
            "iss", "aud", "sub", "exp", "iat", "nbf", "jti", "role", "username",
        ] {
            let mut claims = valid_claims();
            claims.as_object_mut().unwrap().remove(claim);
            assert!(ring().verify(&sign(&claims, SECRET)).is_err(), "{claim}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "a.b.c", "not a token", "....", "eyJ.eyJ.sig"] {
            assert!(ring().verify(token).is_err(), "{token:?}");
        }
    }

    #[test]
    fn a_previous_secret_still_verifies() {
        let old = "retired-secret-retired-secret-01234";
        let ring = KeyRing::hs256(
            &[SecretString::from(SECRET), SecretString::from(old)],
            "tessera",
            "tessera",
            900,
            30,
        );
        assert!(ring.verify(&sign(&valid_claims(), old)).is_ok());
        assert_eq!(ring.signing_kid(), hmac_kid(SECRET.as_bytes()));
    }

    #[test]
    fn issued_at_has_millisecond_precision_from_the_jti() {
        let (_, claims) = ring().issue_access_token(subject(Role::User)).unwrap();
        let at = claims.issued_at();
        assert_eq!(at.timestamp(), claims.iat);
        assert!((Utc::now() - at).num_seconds() < 5);
    }

    #[test]
    fn a_token_id_after_a_revocation_in_this_millisecond_is_later_than_it() {
        let revoked_at = Utc::now() + chrono::TimeDelta::milliseconds(3);
        let claims = ring()
            .sign_access_token(new_token_id_after(revoked_at), subject(Role::User))
            .unwrap()
            .1;
        assert!(claims.issued_at().timestamp_millis() > revoked_at.timestamp_millis());
        assert_eq!(claims.issued_at().timestamp(), claims.iat);
    }

    #[test]
    fn debug_output_names_no_secret() {
        let text = format!("{:?}", ring());
        assert!(!text.contains(SECRET));
    }
}
