//! The access log: one line per request, in the shape `tracing-subscriber`
//! gives every other line (text or JSON), but formatted here, straight into
//! a per-thread buffer, and handed to the log's writer thread.
//!
//! Through `tracing` the line cost about 4.7 µs of CPU per request as text
//! and 10 µs as JSON (BENCHMARKS.md): a field visitor per value, `Debug`
//! escaping of every string, the span's fields read back for JSON's `span`
//! and `spans`, the timestamp formatted from scratch. Here the fields are
//! known, the timestamp's date and time are formatted once a second per
//! thread, and the line is one copy into the writer's queue.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

use crate::settings::LogFormat;

/// Where access lines go, set once by [`super::init`]. Unset (tests that
/// build the app without the global subscriber), no line is written, as
/// `tracing` drops events when no subscriber is installed.
static SINK: OnceLock<Sink> = OnceLock::new();

struct Sink {
    writer: NonBlocking,
    format: LogFormat,
    ansi: bool,
}

/// Sends access lines to `writer`, the global subscriber's writer, in its
/// format. A second call is ignored, as a second subscriber is.
pub(super) fn install(writer: NonBlocking, format: LogFormat, ansi: bool) {
    let _ = SINK.set(Sink {
        writer,
        format,
        ansi,
    });
}

/// One request, as the access line reports it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
}

/// Per thread: the line being built, this thread's handle on the writer,
/// and the date and time of the current second, formatted.
struct Line {
    buffer: Vec<u8>,
    writer: Option<NonBlocking>,
    clock: Clock,
}

thread_local! {
    static LINE: RefCell<Line> = const {
        RefCell::new(Line {
            buffer: Vec::new(),
            writer: None,
            clock: Clock::new(),
        })
    };
}

/// Writes the access line of `entry`, stamped now. Never blocks: a full
/// queue drops the line and counts it (`tessera_log_lines_dropped_total`).
pub fn write(entry: &Entry<'_>) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let now = SystemTime::now();
    LINE.with(|line| {
        // Re-entered only if formatting logged, which it does not; skip
        // the line rather than panic if it ever did.
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        let Line {
            buffer,
            writer,
            clock,
        } = &mut *line;
        buffer.clear();
        let stamp = clock.stamp(now);
        match sink.format {
            LogFormat::Text => format_text(buffer, stamp, entry, sink.ansi),
            LogFormat::Json => format_json(buffer, stamp, entry),
        }
        let writer = writer.get_or_insert_with(|| sink.writer.clone());
        // The lossy writer only queues (or drops and counts): no error.
        let _ = writer.write_all(buffer);
    });
}

/// The UTC time of a line, as `tracing-subscriber`'s default timer writes
/// it: RFC 3339 with microseconds, `2026-12-07T06:58:00.045448Z`.
#[derive(Clone, Copy)]
pub(crate) struct Stamp {
    /// `2026-12-07T06:58:00.`: the same for a whole second.
    second: [u8; 20],
    micros: u32,
}

impl Stamp {
    fn write_to(&self, buffer: &mut Vec<u8>) {
        buffer.extend_from_slice(&self.second);
        push_padded(buffer, self.micros, 6);
        buffer.push(b'Z');
    }
}

/// Formats the date and time at most once a second.
struct Clock {
    unix_second: u64,
    second: [u8; 20],
}

impl Clock {
    const fn new() -> Self {
        Clock {
            unix_second: u64::MAX,
            second: [0; 20],
        }
    }

    fn stamp(&mut self, now: SystemTime) -> Stamp {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let unix_second = since_epoch.as_secs();
        if unix_second != self.unix_second {
            self.unix_second = unix_second;
            self.second = format_second(unix_second);
        }
        Stamp {
            second: self.second,
            micros: since_epoch.subsec_micros(),
        }
    }
}

fn format_second(unix_second: u64) -> [u8; 20] {
    let mut second = *b"1970-01-01T00:00:00.";
    let time = i64::try_from(unix_second)
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0));
    if let Some(time) = time {
        let mut text = Vec::with_capacity(20);
        let _ = write!(text, "{}.", time.format("%Y-%m-%dT%H:%M:%S"));
        if let Ok(formatted) = <[u8; 20]>::try_from(text.as_slice()) {
            second = formatted;
        }
    }
    second
}

/// The text line, as `tracing-subscriber`'s default (full) format prints an
/// event in the request span:
/// `2026-12-07T06:58:00.045448Z  INFO request{request_id="…"}: tessera::telemetry: request method=GET route="/healthz" status=200 latency_ms=0.024`
pub(crate) fn format_text(buffer: &mut Vec<u8>, stamp: Stamp, entry: &Entry<'_>, ansi: bool) {
    // The styles `tracing-subscriber` uses on a terminal: dimmed timestamp
    // and target, green level, bold span name, italic field names.
    let (dim, green, bold, italic, reset) = if ansi {
        ("\x1b[2m", "\x1b[32m", "\x1b[1m", "\x1b[3m", "\x1b[0m")
    } else {
        ("", "", "", "", "")
    };
    let push = |buffer: &mut Vec<u8>, text: &str| buffer.extend_from_slice(text.as_bytes());
    push(buffer, dim);
    stamp.write_to(buffer);
    push(buffer, reset);
    push(buffer, " ");
    push(buffer, green);
    push(buffer, " INFO");
    push(buffer, reset);
    push(buffer, " ");
    push(buffer, bold);
    push(buffer, "request");
    push(buffer, reset);
    push(buffer, "{");
    push(buffer, italic);
    push(buffer, "request_id");
    push(buffer, reset);
    push(buffer, "=");
    push_quoted(buffer, entry.request_id);
    push(buffer, "}");
    push(buffer, ":");
    push(buffer, " ");
    push(buffer, dim);
    push(buffer, "tessera::telemetry");
    push(buffer, reset);
    push(buffer, ": request ");
    let field = |buffer: &mut Vec<u8>, name: &str| {
        push(buffer, italic);
        push(buffer, name);
        push(buffer, reset);
        push(buffer, "=");
    };
    field(buffer, "method");
    push_escaped(buffer, entry.method);
    push(buffer, " ");
    field(buffer, "route");
    push_quoted(buffer, entry.route);
    push(buffer, " ");
    field(buffer, "status");
    buffer.extend_from_slice(itoa::Buffer::new().format(entry.status).as_bytes());
    push(buffer, " ");
    field(buffer, "latency_ms");
    push_millis(buffer, entry.latency);
    push(buffer, "\n");
}

/// The JSON line, as `tracing-subscriber`'s JSON format (flattened event)
/// prints an event in the request span.
pub(crate) fn format_json(buffer: &mut Vec<u8>, stamp: Stamp, entry: &Entry<'_>) {
    let push = |buffer: &mut Vec<u8>, text: &str| buffer.extend_from_slice(text.as_bytes());
    push(buffer, r#"{"timestamp":""#);
    stamp.write_to(buffer);
    push(buffer, r#"","level":"INFO","message":"request","method":"#);
    push_quoted(buffer, entry.method);
    push(buffer, r#","route":"#);
    push_quoted(buffer, entry.route);
    push(buffer, r#","status":"#);
    buffer.extend_from_slice(itoa::Buffer::new().format(entry.status).as_bytes());
    push(buffer, r#","latency_ms":"#);
    push_millis(buffer, entry.latency);
    push(buffer, r#","target":"tessera::telemetry","span":"#);
    let span_start = buffer.len();
    push(buffer, r#"{"request_id":"#);
    push_quoted(buffer, entry.request_id);
    push(buffer, r#","name":"request"}"#);
    let span_end = buffer.len();
    push(buffer, r#","spans":["#);
    buffer.extend_from_within(span_start..span_end);
    push(buffer, "]}\n");
}

/// Milliseconds with microsecond precision: `0.024`, `12.500`.
fn push_millis(buffer: &mut Vec<u8>, latency: Duration) {
    let micros = latency.as_micros();
    buffer.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    buffer.push(b'.');
    push_padded(buffer, u32::try_from(micros % 1000).unwrap_or(0), 3);
}

/// `value` in decimal, left-padded with zeros to `width` digits.
fn push_padded(buffer: &mut Vec<u8>, value: u32, width: usize) {
    let mut formatter = itoa::Buffer::new();
    let digits = formatter.format(value);
    buffer.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    buffer.extend_from_slice(digits.as_bytes());
}

/// `"text"`, escaped for JSON (which also reads as Rust's `Debug` of a
/// string for the printable ASCII that request ids, methods and route
/// templates are made of).
fn push_quoted(buffer: &mut Vec<u8>, text: &str) {
    buffer.push(b'"');
    push_escaped(buffer, text);
    buffer.push(b'"');
}

/// `text` with `"`, `\` and control characters escaped as JSON does.
fn push_escaped(buffer: &mut Vec<u8>, text: &str) {
    let mut rest = text.as_bytes();
    // Runs with nothing to escape (the whole of a request id, a method or a
    // route template) are copied in one go.
    while let Some(at) = rest.iter().position(|&byte| needs_escape(byte)) {
        buffer.extend_from_slice(&rest[..at]);
        push_escape(buffer, rest[at]);
        rest = &rest[at + 1..];
    }
    buffer.extend_from_slice(rest);
}

fn needs_escape(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | 0..=0x1f | 0x7f)
}

/// The JSON escape of a byte that [`needs_escape`].
fn push_escape(buffer: &mut Vec<u8>, byte: u8) {
    match byte {
        b'"' => buffer.extend_from_slice(b"\\\""),
        b'\\' => buffer.extend_from_slice(b"\\\\"),
        b'\n' => buffer.extend_from_slice(b"\\n"),
        b'\r' => buffer.extend_from_slice(b"\\r"),
        b'\t' => buffer.extend_from_slice(b"\\t"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buffer.extend_from_slice(b"\\u00");
            buffer.push(HEX[usize::from(byte >> 4)]);
            buffer.push(HEX[usize::from(byte & 0xf)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "access-log-test-1",
            method: "GET",
            route: "/users/{id}",
            status: 401,
            latency: Duration::from_micros(12_345),
        }
    }

    fn stamp_at(unix_micros: u64) -> Stamp {
        let mut clock = Clock::new();
        clock.stamp(UNIX_EPOCH + Duration::from_micros(unix_micros))
    }

    #[test]
    fn the_timestamp_is_rfc3339_utc_with_microseconds() {
        let mut buffer = Vec::new();
        stamp_at(1_796_626_748_000_042).write_to(&mut buffer);
        assert_eq!(buffer, b"2026-12-07T06:59:08.000042Z");
    }

    #[test]
    fn the_clock_reformats_when_the_second_changes() {
        let mut clock = Clock::new();
        let first = clock.stamp(UNIX_EPOCH + Duration::from_secs(59));
        let second = clock.stamp(UNIX_EPOCH + Duration::from_secs(60));
        assert_eq!(&first.second, b"1970-01-01T00:00:59.");
        assert_eq!(&second.second, b"1970-01-01T00:01:00.");
    }

    #[test]
    fn the_text_line_has_tracing_subscribers_shape() {
        let mut buffer = Vec::new();
        format_text(
            &mut buffer,
            stamp_at(1_796_626_748_045_448),
            &entry(),
            false,
        );
        assert_eq!(
            String::from_utf8(buffer).unwrap(),
            "2026-12-07T06:59:08.045448Z  INFO request{request_id=\"access-log-test-1\"}: \
             tessera::telemetry: request method=GET route=\"/users/{id}\" status=401 \
             latency_ms=12.345\n"
        );
    }

    #[test]
    fn the_text_line_on_a_terminal_is_styled_and_says_the_same() {
        let mut buffer = Vec::new();
        format_text(&mut buffer, stamp_at(0), &entry(), true);
        let line = String::from_utf8(buffer).unwrap();
        assert!(line.contains("\x1b[32m INFO\x1b[0m"), "{line:?}");
        let mut plain = line.clone();
        for code in ["\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[3m", "\x1b[32m"] {
            plain = plain.replace(code, "");
        }
        let mut unstyled = Vec::new();
        format_text(&mut unstyled, stamp_at(0), &entry(), false);
        assert_eq!(plain.as_bytes(), unstyled);
    }

    #[test]
    fn the_json_line_is_json_with_tracing_subscribers_members() {
        let mut buffer = Vec::new();
        format_json(&mut buffer, stamp_at(1_796_626_748_045_448), &entry());
        assert_eq!(buffer.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&buffer).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "timestamp": "2026-12-07T06:59:08.045448Z",
                "level": "INFO",
                "message": "request",
                "method": "GET",
                "route": "/users/{id}",
                "status": 401,
                "latency_ms": 12.345,
                "target": "tessera::telemetry",
                "span": {"request_id": "access-log-test-1", "name": "request"},
                "spans": [{"request_id": "access-log-test-1", "name": "request"}],
            })
        );
    }

    #[test]
    fn latency_keeps_microseconds_with_leading_zeros() {
        let mut buffer = Vec::new();
        push_millis(&mut buffer, Duration::from_micros(7));
        assert_eq!(buffer, b"0.007");
        buffer.clear();
        push_millis(&mut buffer, Duration::from_nanos(1_234_999_999));
        assert_eq!(buffer, b"1234.999");
    }

    #[test]
    fn strings_are_escaped_for_json() {
        let mut buffer = Vec::new();
        push_quoted(&mut buffer, "a\"b\\c\nd\u{1}");
        assert_eq!(buffer, br#""a\"b\\c\nd\u0001""#);
        let parsed: String = serde_json::from_slice(&buffer).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}");
    }
}
