use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;

/// A position in the list of users (creation order: `created_at`, then
/// `id`): the last user a page showed. Clients treat it as opaque; it is
/// base64url of `<created_at>/<id>`, so it holds no secret and a forged one
/// only moves the reader to another place in the same list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: NaiveDateTime,
    pub id: String,
}

/// Longer than any cursor tessera writes (a timestamp and a 36-character
/// UUID, base64url): a longer value is refused before it is decoded.
const MAX_LEN: usize = 160;
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

impl UserCursor {
    pub fn encode(&self) -> String {
        let raw = format!("{}/{}", self.created_at.format(TIME_FORMAT), self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || "Not a cursor from this service's `next_cursor`.".to_owned();
        if text.len() > MAX_LEN {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let raw = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (time, id) = raw.split_once('/').ok_or_else(invalid)?;
        let created_at = NaiveDateTime::parse_from_str(time, TIME_FORMAT).map_err(|_| invalid())?;
        if id.is_empty() || id.contains(char::is_control) {
            return Err(invalid());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(time: &str) -> UserCursor {
        UserCursor {
            created_at: NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap_or_default(),
            id: "0190c6a2-7b3e-7cc1-9b1e-2f6a1d1c9e01".to_owned(),
        }
    }

    #[test]
    fn a_cursor_survives_its_own_encoding_to_the_microsecond() {
        for time in [
            "2026-12-04 10:00:00",
            "2026-12-04 10:00:00.5",
            "2026-12-04 10:00:00.123456",
        ] {
            let original = cursor(time);
            assert_eq!(UserCursor::parse(&original.encode()), Ok(original));
        }
    }

    #[test]
    fn garbage_and_overlong_cursors_are_refused() {
        let overlong = "A".repeat(MAX_LEN + 1);
        let no_id = URL_SAFE_NO_PAD.encode("2026-12-04T10:00:00/");
        let no_time = URL_SAFE_NO_PAD.encode("yesterday/abc");
        for text in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            no_id.as_str(),
            no_time.as_str(),
            overlong.as_str(),
        ] {
            assert!(UserCursor::parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
