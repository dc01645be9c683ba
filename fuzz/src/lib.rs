//! Shared fixtures and oracles for tessera's fuzz targets.
//!
//! Nothing here is fuzzed itself: it holds the key ring the token targets
//! verify against, an independent HS256 signer (so a target can build tokens
//! the ring must accept), and the checks run on every rendered problem body.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::ResponseError as _;
use actix_web::body::MessageBody as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use secrecy::SecretString;
use sha2::Sha256;
use tessera::auth::tokens::{Claims, KeyRing, hmac_kid};
use tessera::error::{ApiError, ErrorCode};

/// The signing secret of the ring (also used by `seeds/make_seeds.py`).
pub const CURRENT_SECRET: &str = "fuzz-current-secret-0123456789abcdef";
/// A retired secret the ring still verifies with.
pub const PREVIOUS_SECRET: &str = "fuzz-previous-secret-0123456789abcdef";
/// A secret the ring does not know.
pub const FOREIGN_SECRET: &str = "fuzz-foreign-secret-0123456789abcdef";
pub const ISSUER: &str = "tessera";
/// Deliberately different from the issuer, so a swap of the two is caught.
pub const AUDIENCE: &str = "tessera-api";
pub const ACCESS_TTL_SECS: u64 = 900;
pub const LEEWAY_SECS: u64 = 30;
/// Slack for the clock moving between the verifier's `now` and ours.
pub const CLOCK_SLACK_SECS: i64 = 5;

/// A ring of the current and the previous secret.
pub fn ring(leeway_secs: u64) -> KeyRing {
    KeyRing::hs256(
        &[
            SecretString::from(CURRENT_SECRET),
            SecretString::from(PREVIOUS_SECRET),
        ],
        ISSUER,
        AUDIENCE,
        ACCESS_TTL_SECS,
        leeway_secs,
    )
}

/// The ring with the configured default leeway, built once per process.
pub static RING: LazyLock<KeyRing> = LazyLock::new(|| ring(LEEWAY_SECS));

pub fn kid_of(secret: &str) -> String {
    hmac_kid(secret.as_bytes())
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The base64url (unpadded) HMAC-SHA256 of `message`: an HS256 signature
/// computed without jsonwebtoken, as an oracle independent of the verifier.
pub fn hs256_signature(secret: &str, message: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(message);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// What every token the ring accepts must satisfy, whatever its origin.
pub fn check_accepted_claims(ring: &KeyRing, claims: &Claims, leeway_secs: u64) {
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    let now = now();
    assert_eq!(claims.iss, ISSUER, "accepted a token of another issuer");
    assert_eq!(
        claims.aud, AUDIENCE,
        "accepted a token for another audience"
    );
    assert!(
        claims.exp.saturating_add(leeway) >= now - CLOCK_SLACK_SECS,
        "accepted an expired token: exp {} leeway {leeway} now {now}",
        claims.exp
    );
    assert!(
        claims.nbf.saturating_sub(leeway) <= now + CLOCK_SLACK_SECS,
        "accepted a token not valid yet: nbf {} leeway {leeway} now {now}",
        claims.nbf
    );
    // The helpers callers run on accepted claims must not panic either.
    let _ = claims.issued_at();
    let _ = ring.verifiable_until(claims);
}

/// Renders an error as the client would see it and checks its shape:
/// problem+json whose `status`, `code`, `title` and `type` agree, and, for a
/// body parser, only the two codes a parser may answer with.
pub fn render_problem(error: &ApiError) -> serde_json::Value {
    let code = error.code();
    let response = error.error_response();
    assert_eq!(response.status(), code.status());
    let bytes = match response.into_body().try_into_bytes() {
        Ok(bytes) => bytes,
        Err(_) => panic!("a problem body is not a single in-memory chunk"),
    };
    let body: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => panic!("a problem body is not JSON ({e}): {bytes:?}"),
    };
    assert_eq!(body["status"], u64::from(code.status().as_u16()));
    assert_eq!(body["code"], code.as_str());
    assert_eq!(
        body["type"],
        format!("urn:tessera:problem:{}", code.as_str())
    );
    body
}

/// The messages a body parser may put against a field. None is built from
/// the request's values; `Invalid value: expected ...` names a type.
fn is_known_field_message(message: &str) -> bool {
    matches!(
        message,
        "This field is required."
            | "Unknown field."
            | "Invalid value."
            | "Expected a JSON object, not an array."
    ) || (message.starts_with("Invalid value: expected ") && message.ends_with('.'))
}

/// Runs of at least this many ASCII digits count as "distinctive".
pub const DISTINCTIVE_DIGITS: usize = 12;

/// Every maximal run of at least [`DISTINCTIVE_DIGITS`] ASCII digits.
pub fn digit_runs(input: &[u8]) -> Vec<&str> {
    input
        .split(|b| !b.is_ascii_digit())
        .filter(|run| run.len() >= DISTINCTIVE_DIGITS)
        .filter_map(|run| std::str::from_utf8(run).ok())
        .collect()
}

/// Checks a body parser's error: the rendered body is well-formed, its code
/// is a parser's, its detail and messages are fixed texts, and no long digit
/// run of the input appears outside the field names (which name the
/// client's own keys, by design). `expected` is what the `expected ...`
/// message may mention, e.g. a struct name.
pub fn check_parser_error(error: &ApiError, input: &[u8]) {
    let body = render_problem(error);
    let detail = body["detail"].as_str().unwrap_or_default();
    let runs = digit_runs(input);
    match error.code() {
        ErrorCode::ParseError => {
            assert!(
                body.get("errors").is_none(),
                "a parse error has field errors"
            );
            assert!(
                detail.starts_with("The request body is not valid JSON: ")
                    || detail == "The request body is empty; a JSON object is expected.",
                "unexpected parse error detail: {detail:?}"
            );
            for run in &runs {
                assert!(
                    !detail.contains(run),
                    "the detail echoes input {run:?}: {detail:?}"
                );
            }
        }
        ErrorCode::ValidationFailed => {
            let Some(errors) = body["errors"].as_object() else {
                panic!("a validation error without field errors: {body}");
            };
            assert!(!errors.is_empty(), "a validation error with no field");
            let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
            assert_eq!(detail, format!("Invalid fields: {}.", fields.join(", ")));
            for (field, messages) in errors {
                let Some(messages) = messages.as_array() else {
                    panic!("messages of {field:?} are not a list: {body}");
                };
                assert!(!messages.is_empty());
                for message in messages {
                    let message = message.as_str().unwrap_or_default();
                    assert!(
                        is_known_field_message(message),
                        "unexpected message for {field:?}: {message:?}"
                    );
                    for run in &runs {
                        assert!(
                            !message.contains(run),
                            "a field message echoes input {run:?}: {message:?}"
                        );
                    }
                }
            }
        }
        other => panic!("a body parser answered {other:?}"),
    }
}

/// The whole rendered problem body, for the literal no-echo check.
pub fn rendered_text(error: &ApiError) -> String {
    render_problem(error).to_string()
}
