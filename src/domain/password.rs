use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

/// Passwords too common to accept (NIST SP 800-63B §5.1.1.2: values from
/// breach corpuses): the 8-to-128-character entries of zxcvbn's list of the
/// 30,000 most common passwords (MIT licence), lower-cased, one a line.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// The list as a set, built on first use.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().collect());

/// A new password as NIST SP 800-63B asks: 8 to 128 characters, any
/// characters, no composition rules, and not one of the most common
/// passwords (compared case-insensitively). Held as a secret: it never prints.
pub struct Password(SecretString);

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

impl Password {
    pub fn parse(raw: SecretString) -> Result<Self, String> {
        let chars = raw.expose_secret().chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!(
                "Ensure this field has at least {MIN_PASSWORD_CHARS} characters."
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!(
                "Ensure this field has no more than {MAX_PASSWORD_CHARS} characters."
            ));
        }
        if COMMON.contains(raw.expose_secret().to_lowercase().as_str()) {
            return Err(
                "This password is too common: it is among the most used passwords, \
                 which attackers try first. Choose a longer or less predictable one."
                    .to_owned(),
            );
        }
        Ok(Self(raw))
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn eight_to_128_characters_are_accepted() {
        assert!(Password::parse(secret("k3v9-q2x")).is_ok());
        assert!(Password::parse(secret(&"x".repeat(128))).is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(Password::parse(secret("ééééééé")).is_err());
        assert!(Password::parse(secret("éééééééé")).is_ok());
        assert!(Password::parse(secret(&"é".repeat(128))).is_ok());
    }

    #[test]
    fn too_short_and_too_long_are_refused() {
        assert!(Password::parse(secret("1234567")).is_err());
        assert!(Password::parse(secret(&"x".repeat(129))).is_err());
    }

    #[test]
    fn a_common_password_is_refused_in_any_case() {
        for common in [
            "12345678",
            "password1",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
        ] {
            let error = Password::parse(secret(common)).unwrap_err();
            assert!(error.contains("too common"), "{common}: {error}");
        }
    }

    #[test]
    fn the_common_list_is_lower_case_and_within_the_length_rules() {
        assert!(COMMON.len() > 10_000);
        for entry in COMMON.iter() {
            assert_eq!(*entry, entry.to_lowercase());
            assert!((MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&entry.chars().count()));
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse(secret("hunter2hunter2")).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
