use secrecy::{ExposeSecret, SecretString};

/// A new password as NIST SP 800-63B asks: 8 to 128 characters, any
/// characters, no composition rules. Held as a secret: it never prints.
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
        assert!(Password::parse(secret("12345678")).is_ok());
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
    fn debug_output_hides_the_password() {
        let password = Password::parse(secret("hunter2hunter2")).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
