//! Refresh tokens are opaque: 256 random bits, base64url-encoded for the
//! client, stored only as their SHA-256. A database leak yields no usable
//! token, and a fast hash suffices because the input has full entropy.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A fresh refresh token and the hash to store.
pub fn generate() -> (SecretString, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = SecretString::from(URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(token.expose_secret());
    zeroize::Zeroize::zeroize(&mut bytes);
    (token, hash)
}

/// The stored form of a refresh token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_differ() {
        let (a, hash_a) = generate();
        let (b, _) = generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose_secret()).unwrap().len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash(a.expose_secret()), hash_a);
        assert_eq!(hash_a.len(), 64);
    }
}
