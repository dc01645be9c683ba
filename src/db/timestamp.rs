//! Timestamps read from SQLite without diesel's search through layouts.
//!
//! SQLite has no timestamp type: diesel writes a `Timestamp` as text in one
//! layout (`%F %T%.f`, e.g. `2026-12-07 15:04:05.123456`) and reads it back
//! by trying eighteen `strftime` layouts in turn with `parse_from_str`, which
//! parses the layout string itself on every call: 6.6 % of the CPU of
//! `GET /users?limit=20` (three timestamps a row, BENCHMARKS.md). [`Stamp`]
//! reads diesel's own layout directly and hands any other text (or a Julian
//! day number) to diesel's reader, so what is accepted is unchanged.
//! PostgreSQL's binary timestamps go to diesel's reader as they are.
//!
//! Use it on a row struct's field: `#[diesel(deserialize_as = Stamp)]`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

use super::MultiBackend;

/// A `Timestamp` column's value, read as described in the module's docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct Stamp(pub NaiveDateTime);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if let Some(parsed) = parse_diesel_layout(value.read_text()) {
            return Ok(Stamp(parsed));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(
        value: <MultiBackend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS`, optionally followed by `.` and 1 to 9 digits of
/// fraction: the layout diesel writes. `None` for anything else, including
/// values chrono would still accept (a leap second, a longer year), which
/// then take diesel's path.
fn parse_diesel_layout(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    let (head, fraction) = bytes.split_at_checked(19)?;
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b' '
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            // At most 9 digits: the scale is 10^(9 - len), at most 10^8.
            let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
            number(digits)? * scale
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&head[0..4])?).ok()?,
        number(&head[5..7])?,
        number(&head[8..10])?,
    )?;
    let time = NaiveTime::from_hms_nano_opt(
        number(&head[11..13])?,
        number(&head[14..16])?,
        number(&head[17..19])?,
        nanos,
    )?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What diesel's own SQLite reader makes of `text` (its first layout).
    fn chrono(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%F %T%.f").unwrap()
    }

    #[test]
    fn diesel_layout_reads_as_chrono_reads_it() {
        for text in [
            "2026-12-07 15:04:05",
            "2026-12-07 15:04:05.1",
            "2026-12-07 15:04:05.123",
            "2026-12-07 15:04:05.123456",
            "2026-12-07 15:04:05.123456789",
            "1970-01-01 00:00:00.000001",
            "2024-02-29 23:59:59.999999",
        ] {
            assert_eq!(parse_diesel_layout(text), Some(chrono(text)), "{text}");
        }
    }

    #[test]
    fn what_diesel_writes_reads_back() {
        let now = chrono::Utc::now().naive_utc();
        let written = now.format("%F %T%.f").to_string();
        assert_eq!(parse_diesel_layout(&written), Some(now));
    }

    #[test]
    fn sqlite_values_in_any_layout_diesel_reads_are_read() {
        use diesel::dsl::sql;
        use diesel::prelude::*;

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for (value, expected) in [
            ("'2026-12-07 15:04:05.25'", "2026-12-07 15:04:05.25"),
            ("'2026-12-07T15:04:05Z'", "2026-12-07 15:04:05"),
            ("'2026-12-07 15:04'", "2026-12-07 15:04:00"),
            ("2440587.5", "1970-01-01 00:00:00"),
        ] {
            let read: Stamp = diesel::select(sql::<Timestamp>(value))
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(read.0, chrono(expected), "{value}");
        }
        let garbage =
            diesel::select(sql::<Timestamp>("'yesterday'")).get_result::<Stamp>(&mut conn);
        assert!(garbage.is_err());
    }

    #[test]
    fn other_layouts_and_bad_values_are_left_to_diesel() {
        for text in [
            "",
            "2026-12-07",
            "2026-12-07T15:04:05",
            "2026-12-07 15:04:05Z",
            "2026-12-07 15:04:05+00:00",
            "2026-12-07 15:04:05.",
            "2026-12-07 15:04:05.1234567890",
            "2026-12-07 15:04",
            "2026-02-30 15:04:05",
            "2026-12-07 24:00:00",
            "2026-12-07 23:59:60",
            "2026-1a-07 15:04:05",
            "+2026-12-07 15:04:0",
            "2459000.5",
        ] {
            assert_eq!(parse_diesel_layout(text), None, "{text}");
        }
    }
}
