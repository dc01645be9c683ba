//! The shape of every log line other than the access line: the lines of
//! `tracing-subscriber`'s default (full) text format and its flattened JSON
//! format, with the request being served shown as the span it used to be.
//!
//! The request is not a `tracing` span: creating one per request, and
//! entering and leaving it on every poll, cost 0.7-1.3 µs of a light
//! request's CPU (BENCHMARKS.md). Its id lives in a task-local
//! ([`super::RequestScope`]) instead, and these formatters write it where
//! the span was, as the outermost span: text
//! `… INFO request{request_id="…"}: tessera::db: message`, JSON
//! `"span":{"request_id":"…","name":"request"}` and `"spans":[…]`. Real
//! spans (a library's, under `RUST_LOG=debug`) follow it as before.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::LogFormat;

/// The event formatter of the global subscriber, in the configured format.
pub(super) struct Events {
    pub(super) format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Events
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A `log` record's own level and target, not the bridge's.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        super::with_request_id(|request_id| {
            let line = Line {
                meta,
                event,
                request_id,
            };
            match self.format {
                LogFormat::Text => line.text(ctx, writer),
                LogFormat::Json => line.json(ctx, writer),
            }
        })
    }
}

/// RFC 3339 UTC with microseconds, as `tracing-subscriber`'s default timer.
fn timestamp() -> impl fmt::Display {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")
}

/// Terminal styles, or nothing when the writer is not a terminal.
struct Styles {
    ansi: bool,
}

impl Styles {
    fn paint<'a>(&self, code: &'a str, text: &'a str) -> Painted<'a> {
        Painted {
            code: if self.ansi { code } else { "" },
            text,
        }
    }
}

struct Painted<'a> {
    code: &'a str,
    text: &'a str,
}

impl fmt::Display for Painted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            f.write_str(self.text)
        } else {
            write!(f, "\x1b[{}m{}\x1b[0m", self.code, self.text)
        }
    }
}

const DIMMED: &str = "2";
const BOLD: &str = "1";
const ITALIC: &str = "3";

/// The level as the default format pads and colours it.
fn level(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::TRACE => ("TRACE", "35"),
        Level::DEBUG => ("DEBUG", "34"),
        Level::INFO => (" INFO", "32"),
        Level::WARN => (" WARN", "33"),
        Level::ERROR => ("ERROR", "31"),
    }
}

/// One event, and the request it was logged for.
struct Line<'a> {
    meta: &'a Metadata<'a>,
    event: &'a Event<'a>,
    request_id: Option<&'a str>,
}

impl Line<'_> {
    /// `2026-12-08T02:10:00.123456Z  WARN request{request_id="…"}: span{a=1}: target: message field=value`
    fn text<S, N>(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let styles = Styles {
            ansi: writer.has_ansi_escapes(),
        };
        let (level_text, level_colour) = level(*self.meta.level());
        write!(
            writer,
            "{} {} ",
            styles.paint(DIMMED, &timestamp().to_string()),
            styles.paint(level_colour, level_text)
        )?;
        let mut spans = false;
        if let Some(id) = self.request_id {
            spans = true;
            write!(
                writer,
                "{}{}{}={:?}{}{}",
                styles.paint(BOLD, "request"),
                styles.paint(BOLD, "{"),
                styles.paint(ITALIC, "request_id"),
                id,
                styles.paint(BOLD, "}"),
                styles.paint(DIMMED, ":"),
            )?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                spans = true;
                write!(writer, "{}", styles.paint(BOLD, span.metadata().name()))?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(
                        writer,
                        "{}{}{}",
                        styles.paint(BOLD, "{"),
                        fields,
                        styles.paint(BOLD, "}")
                    )?;
                }
                write!(writer, "{}", styles.paint(DIMMED, ":"))?;
            }
        }
        if spans {
            writer.write_char(' ')?;
        }
        write!(
            writer,
            "{}{} ",
            styles.paint(DIMMED, self.meta.target()),
            styles.paint(DIMMED, ":")
        )?;
        ctx.format_fields(writer.by_ref(), self.event)?;
        writeln!(writer)
    }

    /// One flattened JSON object per line, members in `tracing-subscriber`'s
    /// order: `timestamp`, `level`, the event's fields (`message` among them),
    /// `target`, then the innermost span as `span` and all of them, outermost
    /// first, as `spans`.
    fn json<S, N>(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let mut object = JsonObject::default();
        object.member("timestamp", &timestamp().to_string());
        object.member("level", &self.meta.level().as_str());
        let mut fields = JsonFields(&mut object);
        self.event.record(&mut fields);
        object.member("target", &self.meta.target());

        let mut spans = Vec::new();
        if let Some(id) = self.request_id {
            spans.push(serde_json::json!({"request_id": id, "name": "request"}));
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // In JSON mode the span's fields were formatted as a JSON object.
                let mut members = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|fields| {
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(fields)
                            .ok()
                    })
                    .unwrap_or_default();
                members.insert("name".into(), span.metadata().name().into());
                spans.push(serde_json::Value::Object(members));
            }
        }
        if let Some(innermost) = spans.last() {
            object.member("span", innermost);
            object.member("spans", &spans);
        }
        writeln!(writer, "{}}}", object.text)
    }
}

/// A JSON object written member by member, in order; `text` lacks the
/// closing brace.
#[derive(Default)]
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn member(&mut self, name: &str, value: &impl serde::Serialize) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        // Serializing a string, a number or a `Value` to a string cannot fail.
        if let (Ok(name), Ok(value)) = (serde_json::to_string(name), serde_json::to_string(value)) {
            self.text.push_str(&name);
            self.text.push(':');
            self.text.push_str(&value);
        }
    }
}

/// An event's fields as JSON members: numbers and booleans as such,
/// everything else as text (`Debug` for values recorded as `Debug`). The
/// `log.*` fields a `log` record carries are its metadata, shown already.
struct JsonFields<'a>(&'a mut JsonObject);

impl JsonFields<'_> {
    fn name(field: &Field) -> Option<&'static str> {
        let name = field.name();
        if name.starts_with("log.") {
            return None;
        }
        Some(name.strip_prefix("r#").unwrap_or(name))
    }

    fn member(&mut self, field: &Field, value: &impl serde::Serialize) {
        if let Some(name) = Self::name(field) {
            self.0.member(name, value);
        }
    }
}

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::telemetry::RequestScope;

    /// What the subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Logs one event, in a library-style span, while serving request
    /// `events-test`, and returns the line written in `format`.
    fn line_of_an_event_in_a_request(format: LogFormat) -> String {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(captured.clone())
            .event_format(Events { format });
        let log = || {
            let span = tracing::info_span!("outer", attempt = 2);
            let _entered = span.enter();
            tracing::warn!(user = "ada", count = 3_u64, "something happened");
        };
        let id = actix_web::http::header::HeaderValue::from_static("events-test");
        let run = || {
            super::super::CURRENT_REQUEST
                .sync_scope(id, RequestScope::current)
                .run(log)
        };
        match format {
            LogFormat::Text => tracing::subscriber::with_default(builder.finish(), run),
            LogFormat::Json => tracing::subscriber::with_default(
                builder
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .finish(),
                run,
            ),
        }
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_text_line_shows_the_request_as_the_outermost_span() {
        let line = line_of_an_event_in_a_request(LogFormat::Text);
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{line}"
        );
        assert_eq!(
            rest,
            " WARN request{request_id=\"events-test\"}:outer{attempt=2}: \
             tessera::telemetry::events::tests: something happened user=\"ada\" count=3\n"
        );
    }

    #[test]
    fn a_json_line_shows_the_request_as_the_outermost_span() {
        let line = line_of_an_event_in_a_request(LogFormat::Json);
        assert!(line.ends_with("}\n"), "{line:?}");
        let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let stamp = value["timestamp"].take();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp.as_str().unwrap()).is_ok(),
            "{line}"
        );
        assert_eq!(
            value,
            serde_json::json!({
                "timestamp": null,
                "level": "WARN",
                "message": "something happened",
                "user": "ada",
                "count": 3,
                "target": "tessera::telemetry::events::tests",
                "span": {"attempt": 2, "name": "outer"},
                "spans": [
                    {"request_id": "events-test", "name": "request"},
                    {"attempt": 2, "name": "outer"},
                ],
            })
        );
    }

    #[test]
    fn outside_a_request_no_span_is_shown() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(captured.clone())
            .event_format(Events {
                format: LogFormat::Json,
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("no request"));
        let bytes = captured.0.lock().unwrap().clone();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["message"], "no request");
        assert!(
            value.get("span").is_none() && value.get("spans").is_none(),
            "{value}"
        );
    }
}
