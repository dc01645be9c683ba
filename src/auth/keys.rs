//! Asymmetric key material: PEM parsing, public JWKs with RFC 7638
//! thumbprints as `kid`, and key-pair generation.
//!
//! Private keys are accepted as PKCS#8 (`BEGIN PRIVATE KEY`) and in the
//! legacy forms OpenSSL writes (`BEGIN EC PRIVATE KEY`, `BEGIN RSA PRIVATE
//! KEY`); public keys as SPKI (`BEGIN PUBLIC KEY`). Each key's `kid` is the
//! RFC 7638 thumbprint of its public JWK, so tessera, a validator reading the
//! JWKS and anyone holding the PEM compute the same id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::settings::Algorithm;

/// Smallest RSA modulus accepted (NIST SP 800-57: 2048 bits until 2030).
pub const MIN_RSA_BITS: usize = 2048;

/// The public half of a signing key, as a JWK (RFC 7517/7518/8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A JWK as published in the JWKS: the key plus `kid`, `alg` and `use`.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedJwk {
    #[serde(flatten)]
    pub key: PublicJwk,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members
    /// in lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> String {
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        let canonical = match self.kty {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.unwrap_or(""),
                field(&self.x),
                field(&self.y)
            ),
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                field(&self.e),
                field(&self.n)
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
                self.crv.unwrap_or(""),
                self.kty,
                field(&self.x)
            ),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    /// The key jsonwebtoken verifies with.
    pub fn decoding_key(&self) -> Result<DecodingKey, String> {
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        match self.kty {
            "EC" => DecodingKey::from_ec_components(&field(&self.x), &field(&self.y)),
            "RSA" => DecodingKey::from_rsa_components(&field(&self.n), &field(&self.e)),
            _ => DecodingKey::from_ed_components(&field(&self.x)),
        }
        .map_err(|e| e.to_string())
    }

    pub fn published(&self, algorithm: Algorithm) -> PublishedJwk {
        PublishedJwk {
            key: self.clone(),
            kid: self.thumbprint(),
            alg: algorithm.to_string(),
            use_: "sig",
        }
    }
}

fn ec_jwk(public: &p256::PublicKey) -> PublicJwk {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = public.to_encoded_point(false);
    PublicJwk {
        kty: "EC",
        crv: Some("P-256"),
        x: point.x().map(|x| b64(x)),
        y: point.y().map(|y| b64(y)),
        n: None,
        e: None,
    }
}

fn rsa_jwk(public: &rsa::RsaPublicKey) -> Result<PublicJwk, String> {
    use rsa::traits::PublicKeyParts;
    let bits = public.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(PublicJwk {
        kty: "RSA",
        crv: None,
        x: None,
        y: None,
        n: Some(b64(&public.n().to_bytes_be())),
        e: Some(b64(&public.e().to_bytes_be())),
    })
}

fn ed_jwk(public: &ed25519_dalek::VerifyingKey) -> PublicJwk {
    PublicJwk {
        kty: "OKP",
        crv: Some("Ed25519"),
        x: Some(b64(public.as_bytes())),
        y: None,
        n: None,
        e: None,
    }
}

/// Parses a private key PEM for `algorithm`: the key to sign with and its
/// public JWK.
pub fn load_private_key(
    algorithm: Algorithm,
    pem: &str,
) -> Result<(EncodingKey, PublicJwk), String> {
    match algorithm {
        Algorithm::ES256 => {
            use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            let key = p256::SecretKey::from_pkcs8_pem(pem)
                .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                .map_err(|_| "not a P-256 private key in PEM (PKCS#8 or SEC1)".to_owned())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            Ok((
                EncodingKey::from_ec_der(der.as_bytes()),
                ec_jwk(&key.public_key()),
            ))
        }
        Algorithm::RS256 => {
            use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
            use rsa::pkcs8::DecodePrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
                .map_err(|_| "not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_owned())?;
            let jwk = rsa_jwk(&key.to_public_key())?;
            let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
            Ok((EncodingKey::from_rsa_der(der.as_bytes()), jwk))
        }
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map_err(|_| "not an Ed25519 private key in PEM (PKCS#8)".to_owned())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            Ok((
                EncodingKey::from_ed_der(der.as_bytes()),
                ed_jwk(&key.verifying_key()),
            ))
        }
        Algorithm::HS256 => Err("HS256 uses jwt.secret, not a key file".to_owned()),
    }
}

/// Parses a public key PEM (SPKI) for `algorithm`.
pub fn load_public_key(algorithm: Algorithm, pem: &str) -> Result<PublicJwk, String> {
    match algorithm {
        Algorithm::ES256 => {
            use p256::pkcs8::DecodePublicKey;
            p256::PublicKey::from_public_key_pem(pem)
                .map(|key| ec_jwk(&key))
                .map_err(|_| "not a P-256 public key in PEM (SPKI)".to_owned())
        }
        Algorithm::RS256 => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::pkcs8::DecodePublicKey;
            let key = rsa::RsaPublicKey::from_public_key_pem(pem)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
                .map_err(|_| "not an RSA public key in PEM (SPKI or PKCS#1)".to_owned())?;
            rsa_jwk(&key)
        }
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                .map(|key| ed_jwk(&key))
                .map_err(|_| "not an Ed25519 public key in PEM (SPKI)".to_owned())
        }
        Algorithm::HS256 => Err("HS256 has no public keys".to_owned()),
    }
}

/// A new key pair for `algorithm`: (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_key_pair(algorithm: Algorithm) -> Result<(String, String), String> {
    use rand_core::OsRng;
    let line_ending = p256::pkcs8::LineEnding::LF;
    match algorithm {
        Algorithm::ES256 => {
            use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let key = p256::SecretKey::random(&mut OsRng);
            let private = key.to_pkcs8_pem(line_ending).map_err(|e| e.to_string())?;
            let public = key
                .public_key()
                .to_public_key_pem(line_ending)
                .map_err(|e| e.to_string())?;
            Ok((private.to_string(), public))
        }
        Algorithm::RS256 => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let key =
                rsa::RsaPrivateKey::new(&mut OsRng, MIN_RSA_BITS).map_err(|e| e.to_string())?;
            let private = key.to_pkcs8_pem(line_ending).map_err(|e| e.to_string())?;
            let public = key
                .to_public_key()
                .to_public_key_pem(line_ending)
                .map_err(|e| e.to_string())?;
            Ok((private.to_string(), public))
        }
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes};
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            // RFC 8410 §7's PKCS#8 v1 form, without the optional public key:
            // `SigningKey::to_pkcs8_pem` writes v2 (OneAsymmetricKey with the
            // public key), which OpenSSL 3.0 and Python's `cryptography`
            // refuse. Both forms are read.
            let keypair = KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            };
            let private = keypair
                .to_pkcs8_pem(line_ending)
                .map_err(|e| e.to_string())?;
            let public = key
                .verifying_key()
                .to_public_key_pem(line_ending)
                .map_err(|e| e.to_string())?;
            Ok((private.to_string(), public))
        }
        Algorithm::HS256 => Err("HS256 keys are secrets: set jwt.secret".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_loads_and_the_halves_agree() {
        for algorithm in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let (private, public) = generate_key_pair(algorithm).unwrap();
            assert!(private.contains("BEGIN PRIVATE KEY"), "{algorithm}");
            let (_, from_private) = load_private_key(algorithm, &private).unwrap();
            let from_public = load_public_key(algorithm, &public).unwrap();
            assert_eq!(from_private, from_public, "{algorithm}");
            assert!(from_public.decoding_key().is_ok());
        }
    }

    #[test]
    fn a_generated_ed25519_key_is_pkcs8_v1_without_the_public_key() {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, KeypairBytes};
        let (private, _) = generate_key_pair(Algorithm::EdDSA).unwrap();
        let decoded = KeypairBytes::from_pkcs8_pem(&private).unwrap();
        assert!(decoded.public_key.is_none(), "a v2 key: {private}");
    }

    #[test]
    fn an_ed25519_key_in_pkcs8_v2_form_still_loads() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let v2 = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let (_, public) = load_private_key(Algorithm::EdDSA, &v2).unwrap();
        assert_eq!(public, ed_jwk(&key.verifying_key()));
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let (es_private, es_public) = generate_key_pair(Algorithm::ES256).unwrap();
        assert!(load_private_key(Algorithm::EdDSA, &es_private).is_err());
        assert!(load_private_key(Algorithm::RS256, &es_private).is_err());
        assert!(load_public_key(Algorithm::EdDSA, &es_public).is_err());
        assert!(load_private_key(Algorithm::ES256, "garbage").is_err());
    }

    #[test]
    fn the_thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let jwk = PublicJwk {
            kty: "RSA",
            crv: None,
            x: None,
            y: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".to_owned()),
            e: Some("AQAB".to_owned()),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
