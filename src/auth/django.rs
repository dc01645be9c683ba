//! Django's password hash formats, verified so that imported users log in
//! with their old passwords (and are then re-hashed with tessera's Argon2id).
//!
//! Formats, as `django.contrib.auth.hashers` writes them:
//! - `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` (Django's default) and
//!   `pbkdf2_sha1$...`: PBKDF2-HMAC over the UTF-8 password and salt, with
//!   the digest's own output length;
//! - `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`: argon2-cffi's PHC
//!   string behind Django's `argon2` prefix (`argon2i` from old Django too);
//! - `bcrypt_sha256$$2b$<cost>$...`: bcrypt over the hex SHA-256 of the
//!   password; `bcrypt$$2b$<cost>$...`: bcrypt over the password itself;
//! - `!...`: an unusable password (`set_unusable_password`): never matches.
//!
//! Every comparison is constant-time; anything malformed simply does not
//! match.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

// The most work a stored hash may ask for, well above Django's defaults
// (PBKDF2 1,000,000 iterations in 5.2; Argon2 100 MiB, 2 passes, 8 lanes;
// bcrypt cost 12): a forged or corrupt row must not pin a core for minutes
// or allocate gigabytes. A hash beyond them never matches.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_ITERATIONS: u32 = 16;
const MAX_ARGON2_LANES: u32 = 16;
const MAX_BCRYPT_COST: u32 = 16;

/// The Django algorithms (the part of a stored hash before the first `$`)
/// that [`verify`] checks.
const ALGORITHMS: [&str; 5] = [
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "bcrypt",
];

/// The Django algorithm `encoded` was made with, if it is one [`verify`]
/// checks.
pub fn algorithm(encoded: &str) -> Option<&'static str> {
    let (name, _) = encoded.split_once('$')?;
    ALGORITHMS.iter().copied().find(|known| *known == name)
}

/// Whether `encoded` is in one of Django's formats (including unusable
/// passwords) rather than tessera's own PHC string.
pub fn is_django_hash(encoded: &str) -> bool {
    encoded.starts_with('!') || algorithm(encoded).is_some()
}

/// Whether `key` has the shape of a DRF `authtoken` key: 40 hex digits.
pub fn is_drf_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `password` against a Django-format hash.
pub fn verify(password: &[u8], encoded: &str) -> bool {
    let Some((algorithm, rest)) = encoded.split_once('$') else {
        return false;
    };
    match algorithm {
        "pbkdf2_sha256" => verify_pbkdf2(password, rest, 32, pbkdf2::pbkdf2_hmac::<Sha256>),
        "pbkdf2_sha1" => verify_pbkdf2(password, rest, 20, pbkdf2::pbkdf2_hmac::<sha1::Sha1>),
        "argon2" => verify_argon2(password, rest),
        "bcrypt_sha256" => {
            let prehashed = hex::encode(Sha256::digest(password));
            verify_bcrypt(&prehashed, rest)
        }
        "bcrypt" => verify_bcrypt(password, rest),
        _ => false,
    }
}

/// argon2-cffi's PHC string without its leading `$`, within the cost caps.
fn verify_argon2(password: &[u8], rest: &str) -> bool {
    let phc = format!("${rest}");
    let Ok(parsed) = PasswordHash::new(&phc) else {
        return false;
    };
    let within_caps = argon2::Params::try_from(&parsed).is_ok_and(|params| {
        params.m_cost() <= MAX_ARGON2_MEMORY_KIB
            && params.t_cost() <= MAX_ARGON2_ITERATIONS
            && params.p_cost() <= MAX_ARGON2_LANES
    });
    within_caps && Argon2::default().verify_password(password, &parsed).is_ok()
}

/// A bcrypt hash (`$2b$<cost>$...`), within the cost cap.
fn verify_bcrypt(password: impl AsRef<[u8]>, hash: &str) -> bool {
    let within_cap = hash
        .parse::<bcrypt::HashParts>()
        .is_ok_and(|parts| parts.get_cost() <= MAX_BCRYPT_COST);
    within_cap && bcrypt::verify(password, hash).unwrap_or(false)
}

/// `<iterations>$<salt>$<base64 hash>`, the hash `output_len` bytes of
/// `derive` (PBKDF2-HMAC with Django's digest).
fn verify_pbkdf2(
    password: &[u8],
    rest: &str,
    output_len: usize,
    derive: fn(&[u8], &[u8], u32, &mut [u8]),
) -> bool {
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
        return false;
    }
    let Ok(expected) = STANDARD.decode(expected) else {
        return false;
    };
    if expected.len() != output_len {
        return false;
    }
    let mut derived = vec![0u8; output_len];
    derive(password, salt.as_bytes(), iterations, &mut derived);
    derived.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // PBKDF2-HMAC("password", salt "c2FsdHNhbHQ", 1000 iterations), computed
    // by Python's hashlib.pbkdf2_hmac, in Django's layout.
    const PBKDF2_SHA256: &str =
        "pbkdf2_sha256$1000$c2FsdHNhbHQ$ktByBul+sK99l1Vv8KpQZPQxBCHYNTZU3KchUDowwKw=";
    const PBKDF2_SHA1: &str = "pbkdf2_sha1$1000$c2FsdHNhbHQ$3YLhmFVDVSNezpH9ML1YDjrrmJw=";

    fn pbkdf2_sha256_of(password: &str, salt: &str, iterations: u32) -> String {
        let mut derived = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.as_bytes(),
            salt.as_bytes(),
            iterations,
            &mut derived,
        );
        format!(
            "pbkdf2_sha256${iterations}${salt}${}",
            STANDARD.encode(derived)
        )
    }

    #[test]
    fn pbkdf2_sha256_matches_its_password_only() {
        let encoded = pbkdf2_sha256_of("correct horse", "c2FsdHNhbHQ", 1000);
        assert!(verify(b"correct horse", &encoded));
        assert!(!verify(b"correct horsE", &encoded));
    }

    #[test]
    fn python_reference_vectors_verify() {
        assert!(verify(b"password", PBKDF2_SHA256));
        assert!(verify(b"password", PBKDF2_SHA1));
        assert!(!verify(b"Password", PBKDF2_SHA1));
    }

    #[test]
    fn bcrypt_formats_verify() {
        let plain = bcrypt::hash("correct horse", 4).unwrap();
        assert!(verify(b"correct horse", &format!("bcrypt${plain}")));
        assert!(!verify(b"wrong", &format!("bcrypt${plain}")));
        let prehashed = hex::encode(Sha256::digest(b"correct horse"));
        let sha = bcrypt::hash(prehashed, 4).unwrap();
        assert!(verify(b"correct horse", &format!("bcrypt_sha256${sha}")));
        // bcrypt_sha256 is not plain bcrypt of the password.
        assert!(!verify(b"correct horse", &format!("bcrypt${sha}")));
    }

    #[test]
    fn unusable_and_malformed_hashes_never_match() {
        for encoded in [
            "!",
            "!Xa8Rk0UoKjO3zB1cZ0",
            "",
            "pbkdf2_sha256$",
            "pbkdf2_sha256$abc$salt$hash",
            "pbkdf2_sha256$0$salt$AAAA",
            "pbkdf2_sha256$99999999999$salt$AAAA",
            "pbkdf2_sha256$1000$salt$not base64",
            "pbkdf2_sha256$1000$salt$AAAA",
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
            "argon2$garbage",
            "bcrypt$garbage",
        ] {
            assert!(!verify(b"password", encoded), "{encoded:?}");
        }
    }

    #[test]
    fn hashes_asking_for_excessive_work_never_match() {
        // Well-formed, but beyond the caps: refused without doing the work.
        assert!(!verify(
            b"password",
            "argon2$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert!(!verify(
            b"password",
            "bcrypt$$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234"
        ));
    }

    #[test]
    fn formats_are_recognised_by_prefix() {
        assert!(is_django_hash("pbkdf2_sha256$1$a$b"));
        assert!(is_django_hash("argon2$argon2id$v=19$m=8,t=1,p=1$a$b"));
        assert!(is_django_hash("!unusable"));
        assert!(!is_django_hash("$argon2id$v=19$m=19456,t=2,p=1$a$b"));
    }
}
