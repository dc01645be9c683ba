//! Logging and request ids.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

mod access;
mod events;

use crate::metrics::Metrics;
use crate::settings::{LogFormat, Settings};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Log lines queued for the writer thread before further ones are dropped
/// (and counted): 1-3 MiB of access-log lines (text or JSON), 80 ms of
/// them at 100,000 requests per second.
const LOG_QUEUE_LINES: usize = 8192;

/// Keeps the log's writer thread alive: dropping it writes out the lines
/// still queued (within a second) and stops the thread. Hold it until the
/// process has nothing left to log.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: WorkerGuard,
    dropped: ErrorCounter,
}

impl LogGuard {
    /// How many lines the full queue made the writer drop.
    pub fn dropped_lines(&self) -> ErrorCounter {
        self.dropped.clone()
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `log.level`.
///
/// Lines are formatted on the thread that logs them and written to stderr
/// by a writer thread, through a bounded queue: a request never waits on
/// the terminal, pipe or file behind stderr. When the queue is full a line
/// is dropped and counted (`tessera_log_lines_dropped_total`) rather than
/// slowing the requests down.
pub fn init(settings: &Settings) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("tessera-log")
        // Buffered: the writer thread writes each batch of lines it drains
        // from the queue with one system call when it flushes.
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let dropped = writer.error_counter();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    access::install(writer.clone(), settings.log_format(), ansi);
    let format = settings.log_format();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .event_format(events::Events { format });
    let _ = match format {
        // Span fields (a library's spans) as JSON objects, for `spans`.
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard {
        _writer: guard,
        dropped,
    }
}

/// The route template a resource was mounted at (`/users/{id}`), kept in
/// the resource's app data: the access log and the metrics read it from
/// the routed request, instead of `match_pattern()` matching the path
/// against the route table again and allocating the pattern per request.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// An incoming request id worth echoing: 1-128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh request id: a random (version 4) UUID. Its bits come from the
/// thread-local CSPRNG rather than `Uuid::new_v4`'s one `getrandom` system
/// call per id, which showed as 2.5-4 % of the CPU of `GET /auth/verify` under
/// load; the id looks the same.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

tokio::task_local! {
    /// The id of the request being served: set while its handler runs, and
    /// on the database and hashing threads while they work for it.
    static CURRENT_REQUEST: HeaderValue;
}

/// The request the current code works for, if any: taken on the request's
/// task ([`RequestScope::current`]) and carried onto the thread that does
/// blocking work for it ([`RequestScope::run`]), so that what is logged
/// there names the request too.
#[derive(Default)]
pub struct RequestScope(Option<HeaderValue>);

impl RequestScope {
    pub fn current() -> Self {
        Self(CURRENT_REQUEST.try_with(HeaderValue::clone).ok())
    }

    /// Runs `work` as part of this request.
    pub fn run<R>(self, work: impl FnOnce() -> R) -> R {
        match self.0 {
            Some(id) => CURRENT_REQUEST.sync_scope(id, work),
            None => work(),
        }
    }
}

/// Calls `f` with the id of the request the current code works for.
fn with_request_id<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    let id = CURRENT_REQUEST.try_with(HeaderValue::clone).ok();
    f(id.as_ref().and_then(|id| id.to_str().ok()))
}

/// Gives every request an id (echoed when the client's is valid), serves it
/// with that id in scope ([`RequestScope`]), sets `X-Request-Id` on the
/// response, and logs one line per request with route template, status and
/// latency.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    metrics: std::sync::Arc<Metrics>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|value| is_valid_request_id(value.as_bytes()))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let started = Instant::now();
    let mut call = std::pin::pin!(CURRENT_REQUEST.scope(id, next.call(req)));
    let mut response = call.as_mut().await?;
    // The scope hands its value back between polls and after the last.
    let id = call.take_value().unwrap_or_else(new_request_id);
    let route = response
        .request()
        .app_data::<RouteTemplate>()
        .map_or("<unmatched>", |template| template.0);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.observe_request(method.as_str(), route, status, elapsed);
    // On when the filter lets target `tessera::telemetry` through at info
    // (the target and level of the request span this line once belonged to).
    if tracing::enabled!(target: "tessera::telemetry", tracing::Level::INFO) {
        access::write(&access::Entry {
            // Valid ids (checked or generated) are visible ASCII.
            request_id: id.to_str().unwrap_or(""),
            method: method.as_str(),
            route,
            status,
            latency: elapsed,
        });
    }
    response.headers_mut().insert(REQUEST_ID, id);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_v4_uuids() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.hyphenated().to_string(), id.to_str().unwrap());
            assert!(is_valid_request_id(id.as_bytes()));
        }
    }

    #[test]
    fn the_request_scope_carries_the_id_onto_another_thread() {
        let id = HeaderValue::from_static("scope-test");
        let scope = CURRENT_REQUEST.sync_scope(id, RequestScope::current);
        let seen =
            std::thread::spawn(move || scope.run(|| with_request_id(|id| id.map(str::to_owned))))
                .join()
                .unwrap();
        assert_eq!(seen.as_deref(), Some("scope-test"));
    }

    #[test]
    fn outside_a_request_there_is_no_request_id() {
        let seen = RequestScope::current().run(|| with_request_id(|id| id.map(str::to_owned)));
        assert_eq!(seen, None);
    }

    #[test]
    fn request_ids_are_checked_for_length_and_alphabet() {
        assert!(is_valid_request_id(b"abc-123_X.y"));
        assert!(is_valid_request_id("a".repeat(128).as_bytes()));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id("a".repeat(129).as_bytes()));
        assert!(!is_valid_request_id(b"has space"));
        assert!(!is_valid_request_id(b"semi;colon"));
    }
}
