//! Logging and request ids.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::metrics::Metrics;
use crate::settings::{LogFormat, Settings};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber: `RUST_LOG` if set, else `log.level`.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match settings.log_format() {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

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

/// Gives every request an id (echoed when the client's is valid), runs it in
/// a span carrying that id, sets `X-Request-Id` on the response, and logs one
/// line per request with route template, status and latency.
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
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or(""));
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let elapsed = started.elapsed();
    metrics.observe_request(method.as_str(), &route, response.status().as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            %method,
            route,
            status = response.status().as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
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
    fn request_ids_are_checked_for_length_and_alphabet() {
        assert!(is_valid_request_id(b"abc-123_X.y"));
        assert!(is_valid_request_id("a".repeat(128).as_bytes()));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id("a".repeat(129).as_bytes()));
        assert!(!is_valid_request_id(b"has space"));
        assert!(!is_valid_request_id(b"semi;colon"));
    }
}
