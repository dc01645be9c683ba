//! `Username::parse`, `Email::parse` and `Password::parse` on arbitrary
//! text: never a panic, and what they accept keeps their documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::{ExposeSecret as _, SecretString};
use tessera::domain::{Email, Password, Username};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;
    let chars = text.chars().count();

    if let Ok(username) = Username::parse(text) {
        assert_eq!(username.as_str(), text);
        assert!((1..=150).contains(&chars), "username of {chars} characters");
        assert!(
            text.chars()
                .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        );
        let _ = username.canonical();
        let _ = format!("{username:?}");
    }

    if let Ok(email) = Email::parse(text) {
        assert_eq!(email.as_str(), text);
        assert!((5..=254).contains(&chars), "email of {chars} characters");
        let Some((local, domain)) = text.rsplit_once('@') else {
            panic!("accepted an email without @: {text:?}");
        };
        assert!(!local.is_empty() && local.chars().count() <= 64);
        assert!(domain.contains('.') && !domain.contains(".."));
        assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()));
        let _ = email.canonical();
        let _ = format!("{email:?}");
    }

    match Password::parse(SecretString::from(text)) {
        Ok(password) => {
            assert!((8..=128).contains(&chars), "password of {chars} characters");
            assert_eq!(format!("{password:?}"), "Password([redacted])");
            assert_eq!(password.into_secret().expose_secret(), text);
        }
        Err(message) => {
            assert!(!(8..=128).contains(&chars), "refused {chars} characters");
            assert!(
                matches!(
                    message.as_str(),
                    "Ensure this field has at least 8 characters."
                        | "Ensure this field has no more than 128 characters."
                ),
                "unexpected password error: {message:?}"
            );
        }
    }
});
