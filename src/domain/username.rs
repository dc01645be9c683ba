use std::fmt;

/// A username as Django's `UnicodeUsernameValidator` allows it: 1 to 150
/// letters, digits and `@ . + - _`. Case is kept for display; uniqueness and
/// login compare [`Username::canonical`].
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

pub const MAX_USERNAME_CHARS: usize = 150;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("This field may not be blank.".to_owned());
        }
        if raw.chars().count() > MAX_USERNAME_CHARS {
            return Err(format!(
                "Ensure this field has no more than {MAX_USERNAME_CHARS} characters."
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'))
        {
            return Err(
                "Enter a valid username: letters, numbers and @/./+/-/_ characters only."
                    .to_owned(),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and login compare.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Username").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_username_parses() {
        assert_eq!(Username::parse("alice_01").unwrap().as_str(), "alice_01");
    }

    #[test]
    fn django_punctuation_and_unicode_letters_are_allowed() {
        assert!(Username::parse("a.b+c-d_e@f").is_ok());
        assert!(Username::parse("José").is_ok());
    }

    #[test]
    fn blank_spaces_and_symbols_are_refused() {
        for bad in ["", " alice", "al ice", "alice!", "a/b", "a\u{0}"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn length_is_bounded_at_150_characters() {
        assert!(Username::parse(&"a".repeat(150)).is_ok());
        assert!(Username::parse(&"a".repeat(151)).is_err());
    }

    #[test]
    fn canonical_form_ignores_case() {
        assert_eq!(Username::parse("Alice").unwrap().canonical(), "alice");
    }
}
