//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of
//! skew) and what keeps it safe at rest: secrets sealed with
//! XChaCha20-Poly1305 under `mfa.encryption_key_file` (bound to their user by
//! the associated data), recovery codes stored as SHA-256 hashes.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::settings::SettingsError;

/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
/// How many recovery codes an enrolment gives.
pub const RECOVERY_CODES: usize = 10;
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;

/// The key that seals TOTP secrets. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// A sealed secret that does not open: another key, another user, or a
/// damaged row.
#[derive(Debug, thiserror::Error)]
#[error("the stored TOTP secret cannot be decrypted with mfa.encryption_key_file")]
pub struct Unsealable;

impl SealingKey {
    /// The key from its text form: 32 bytes, base64url (what
    /// `generated_key_file` writes) or 64 hex digits.
    pub fn parse(text: &str, setting: &str) -> Result<Self, SettingsError> {
        let text = text.trim();
        let bytes = [hex::decode(text).ok(), URL_SAFE_NO_PAD.decode(text).ok()]
            .into_iter()
            .flatten()
            .find(|bytes| bytes.len() == 32)
            .ok_or_else(|| {
                SettingsError::new(
                    setting,
                    "the MFA encryption key must be 32 bytes, base64url or hex \
                     (e.g. `openssl rand -hex 32`)",
                )
            })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|e| SettingsError::new(setting, e.to_string()))?;
        Ok(Self(cipher))
    }

    pub fn from_file(path: &Path, setting: &str) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::new(setting, format!("cannot read {}: {e}", path.display()))
        })?;
        Self::parse(&text, setting)
    }

    /// `nonce || ciphertext`, base64url.
    fn seal(&self, user_id: &str, secret: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret,
            aad: user_id.as_bytes(),
        };
        // Encryption into a Vec cannot fail for a 20-byte message.
        let sealed = self
            .0
            .encrypt(&XNonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    fn open(&self, user_id: &str, sealed: &str) -> Result<Vec<u8>, Unsealable> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| Unsealable)?;
        if bytes.len() < 24 {
            return Err(Unsealable);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce = <[u8; 24]>::try_from(nonce).map_err(|_| Unsealable)?;
        let payload = Payload {
            msg: ciphertext,
            aad: user_id.as_bytes(),
        };
        self.0
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| Unsealable)
    }
}

/// A new enrolment: what the user's authenticator app needs, and the
/// sealed form to store.
pub struct NewSecret {
    /// Base32, for typing into an app.
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
    pub sealed: String,
}

/// A fresh secret for `account` (the username), sealed for `user_id`.
pub fn new_secret(
    key: &SealingKey,
    user_id: &str,
    issuer: &str,
    account: &str,
) -> Result<NewSecret, String> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let sealed = key.seal(user_id, &bytes);
    // otpauth labels may not contain a colon.
    let totp = totp(
        bytes,
        Some(issuer.replace(':', "")),
        account.replace(':', ""),
    )?;
    let uri = totp.to_url().map_err(|e| e.to_string())?;
    Ok(NewSecret {
        secret: SecretString::from(totp.secret().to_base32()),
        otpauth_uri: SecretString::from(uri),
        sealed,
    })
}

fn totp(secret: Vec<u8>, issuer: Option<String>, account: String) -> Result<totp_rs::Totp, String> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(issuer)
        .with_account_name(account)
        .build()
        .map_err(|e| e.to_string())
}

/// The time step `code` is valid for (now, or one step either side), if
/// any. The caller accepts a step only once.
pub fn matching_step(
    key: &SealingKey,
    user_id: &str,
    sealed: &str,
    code: &str,
    unix_time: u64,
) -> Result<Option<u64>, Unsealable> {
    let code = code.trim();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let secret = key.open(user_id, sealed)?;
    let totp = totp(secret, None, user_id.to_owned()).map_err(|_| Unsealable)?;
    Ok(totp.check(code, unix_time))
}

/// Ten recovery codes to show once (`xxxx-xxxx-xxxx-xxxx`, 80 random bits
/// each) and their stored hashes.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let chars: Vec<char> = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            let code = chars
                .chunks(4)
                .map(|chunk| chunk.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-");
            let hash = recovery_code_hash(&code);
            (code, hash)
        })
        .unzip()
}

/// The stored form of a recovery code: case, spaces and dashes do not
/// matter when it is typed back.
pub fn recovery_code_hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// The MFA key: `mfa.encryption_key_file`, else (outside production) one
/// generated once into `<data_dir>/mfa.key`; `None` in production without
/// one (TOTP enrolment is then refused).
pub fn load_key(
    key_file: Option<&Path>,
    data_dir: &Path,
    production: bool,
) -> Result<Option<SealingKey>, SettingsError> {
    match key_file {
        Some(path) => SealingKey::from_file(path, "mfa.encryption_key_file").map(Some),
        None if production => {
            tracing::warn!(
                "no mfa.encryption_key_file: TOTP enrolment is off; set it to turn it on"
            );
            Ok(None)
        }
        None => {
            let text = crate::auth::tokens::generated_key_file(
                data_dir,
                "mfa.key",
                "mfa.encryption_key_file",
            )?;
            SealingKey::parse(text.expose_secret(), "server.data_dir").map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::parse(&"ab".repeat(32), "test").unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user() {
        let key = key();
        let sealed = key.seal("u1", b"0123456789abcdefghij");
        assert_eq!(key.open("u1", &sealed).unwrap(), b"0123456789abcdefghij");
        assert!(key.open("u2", &sealed).is_err());
        let other = SealingKey::parse(&"cd".repeat(32), "test").unwrap();
        assert!(other.open("u1", &sealed).is_err());
    }

    #[test]
    fn a_code_of_this_step_matches_and_another_does_not() {
        let key = key();
        let new = new_secret(&key, "u1", "tessera", "alice").unwrap();
        let secret = totp_rs::Secret::try_from_base32(new.secret.expose_secret()).unwrap();
        let totp = totp(secret.as_bytes().to_vec(), None, "x".to_owned()).unwrap();
        let now = 1_800_000_000;
        let code = totp.generate(now).to_string();
        assert_eq!(
            matching_step(&key, "u1", &new.sealed, &code, now).unwrap(),
            Some(now / 30)
        );
        assert_eq!(
            matching_step(&key, "u1", &new.sealed, &code, now + 120).unwrap(),
            None
        );
        assert!(
            new.otpauth_uri
                .expose_secret()
                .starts_with("otpauth://totp/tessera:alice?")
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_regardless_of_case_and_dashes() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let typed = codes[0].to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&typed), hashes[0]);
    }
}
