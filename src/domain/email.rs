use std::fmt;

/// An email address, checked for shape (RFC 5321 lengths, one `@`, a dotted
/// domain, no spaces) but not for deliverability. Uniqueness compares the
/// case-folded [`Email::canonical`] form.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

const MAX_EMAIL_CHARS: usize = 254;
const MAX_LOCAL_CHARS: usize = 64;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        const INVALID: &str = "Enter a valid email address.";
        if raw.is_empty() {
            return Err("This field may not be blank.".to_owned());
        }
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!(
                "Ensure this field has no more than {MAX_EMAIL_CHARS} characters."
            ));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(INVALID.to_owned());
        };
        let local_ok = !local.is_empty()
            && local.chars().count() <= MAX_LOCAL_CHARS
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let no_controls = raw.chars().all(|c| !c.is_whitespace() && !c.is_control());
        let no_specials = !local.chars().any(|c| {
            matches!(
                c,
                '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
            )
        });
        if local_ok && domain_ok && no_controls && no_specials {
            Ok(Self(raw.to_owned()))
        } else {
            Err(INVALID.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and login compare.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_parse() {
        for ok in ["a@example.com", "first.last+tag@sub.example.org", "x@b.co"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa mple.com",
            "a@@example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-example.com",
            "a@example..com",
            "a<b>@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn length_is_bounded() {
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
        let too_long = format!("a@{}.com", "b".repeat(250));
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn canonical_form_ignores_case() {
        assert_eq!(
            Email::parse("A@Example.COM").unwrap().canonical(),
            "a@example.com"
        );
    }
}
