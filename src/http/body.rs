//! Request body extractors that answer in problem+json and never echo a value
//! back (a mistyped password must not appear in an error message).
//!
//! Syntax errors are 400 `parse_error`; well-formed bodies with missing,
//! unknown or mistyped fields are 422 `validation_failed` naming the field;
//! a body over `server.max_body_bytes` is 413; a body that is not JSON (or,
//! where accepted, form data) is 415.

use std::future::Future;
use std::pin::Pin;

use actix_web::HttpMessage as _;
use actix_web::ResponseError;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode, FieldErrors};

/// Reads every request body in full (up to `limit` bytes) before routing.
///
/// actix answers as soon as a handler fails, e.g. on a bad token, even if the
/// body has not arrived yet, and then drops the connection without saying
/// `Connection: close`; a keep-alive client loses its next request. Reading
/// the (small, bounded) body first keeps every connection clean. A body over
/// the limit is refused with 413 and the connection is closed, as RFC 9112
/// §9.3 allows.
///
/// It also refuses, before any routing, a request target over
/// [`MAX_URI_BYTES`] (414) and a header block over [`MAX_HEADER_COUNT`]
/// fields or [`MAX_HEADER_BYTES`] (431): no route needs more, and a small
/// bound keeps every request's cost small.
pub async fn bound_request<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
    limit: usize,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if let Some(refusal) = oversized_head(&req) {
        return Ok(close_after(req.into_response(refusal.error_response())));
    }
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = req.take_payload();
        let read = tokio::time::timeout(BODY_TIMEOUT, async {
            let mut buffered = web::BytesMut::new();
            if declared.is_some_and(|length| length > limit) {
                return Err(ErrorCode::PayloadTooLarge);
            }
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|error| {
                    tracing::debug!(%error, "request body unreadable");
                    ErrorCode::ParseError
                })?;
                if buffered.len() + chunk.len() > limit {
                    return Err(ErrorCode::PayloadTooLarge);
                }
                buffered.extend_from_slice(&chunk);
            }
            Ok(buffered.freeze())
        })
        .await
        .unwrap_or(Err(ErrorCode::RequestTimeout));
        let body = match read {
            Ok(body) => body,
            Err(code) => {
                let detail = match code {
                    ErrorCode::PayloadTooLarge => "The request body is too large.",
                    ErrorCode::RequestTimeout => "The request body did not arrive in time.",
                    _ => "The request body could not be read.",
                };
                let response = ApiError::new(code, detail).error_response();
                return Ok(close_after(req.into_response(response)));
            }
        };
        req.set_payload(Payload::from(body));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 4096;
/// Most request header fields accepted.
pub const MAX_HEADER_COUNT: usize = 64;
/// Largest total of header names and values accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

fn oversized_head(req: &ServiceRequest) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!("The request target exceeds {MAX_URI_BYTES} bytes."),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "At most {MAX_HEADER_COUNT} header fields of {MAX_HEADER_BYTES} bytes in all are accepted."
            ),
        ));
    }
    None
}

fn close_after<B>(response: ServiceResponse<BoxBody>) -> ServiceResponse<EitherBody<B>> {
    let mut response = response.map_into_right_body();
    response
        .response_mut()
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    response
}

/// For optional request fields: absent means `None`, but an explicit `null`
/// is refused like any other wrong type ("This field may not be null." in
/// DRF's words), so a client never clears a field by accident. Use with
/// `#[serde(default, deserialize_with = "not_null")]`.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The field name DRF uses for errors that concern the whole body.
const NON_FIELD_ERRORS: &str = "non_field_errors";

/// A JSON body deserialized into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A JSON body if one was sent; an empty body is `None`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

/// A JSON or `application/x-www-form-urlencoded` body (RFC 7662 clients
/// send form data).
#[derive(Debug)]
pub struct JsonOrFormBody<T>(pub T);

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
    Other,
    Missing,
}

fn body_kind(req: &HttpRequest) -> BodyKind {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return BodyKind::Missing;
    };
    let Ok(mime) = value.to_str() else {
        return BodyKind::Other;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

fn unsupported_media_type(accepted: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("The request body must be {accepted}."),
    )
}

fn payload_error(error: actix_web::Error) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => {
            ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
        }
        _ => ApiError::new(ErrorCode::ParseError, "The request body could not be read."),
    }
}

type BodyFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// Reads the whole body (bounded by the app's `PayloadConfig`).
fn read_body(req: &HttpRequest, payload: &mut Payload) -> BodyFuture<web::Bytes> {
    let bytes = web::Bytes::from_request(req, payload);
    Box::pin(async move { bytes.await.map_err(payload_error) })
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind = body_kind(req);
        let bytes = read_body(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if kind != BodyKind::Json {
                return Err(unsupported_media_type("application/json"));
            }
            parse_json(&bytes).map(JsonBody)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind = body_kind(req);
        let bytes = read_body(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJsonBody(None));
            }
            if kind != BodyKind::Json {
                return Err(unsupported_media_type("application/json"));
            }
            parse_json(&bytes).map(|value| OptionalJsonBody(Some(value)))
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrFormBody<T> {
    type Error = ApiError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind = body_kind(req);
        let bytes = read_body(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            match kind {
                BodyKind::Json => parse_json(&bytes).map(JsonOrFormBody),
                BodyKind::Form => parse_form(&bytes).map(JsonOrFormBody),
                _ => Err(unsupported_media_type(
                    "application/json or application/x-www-form-urlencoded",
                )),
            }
        })
    }
}

/// Parses a JSON body strictly, mapping serde's errors to problem details.
///
/// Syntax first, then shape: the whole body is checked to be well-formed
/// JSON (UTF-8 included) before it is read into `T`, so a truncated body is
/// a 400 even when the part before the break names an unknown field, which
/// reading into `T` alone would report first (422). Request bodies are JSON
/// objects: serde would also read a struct from an array of its fields in
/// order, which no client means to send.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_json_syntax(bytes)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::validation(FieldErrors::from([(
            NON_FIELD_ERRORS.to_owned(),
            vec!["Expected a JSON object, not an array.".to_owned()],
        )])));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => field_error(&path, &inner.to_string()),
            _ => syntax_error(&inner),
        }
    })
}

/// 400 unless `bytes` is one well-formed JSON value in UTF-8, with nothing
/// but whitespace after it.
fn check_json_syntax(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::ParseError,
            "The request body is empty; a JSON object is expected.",
        ));
    }
    // serde_json does not check the UTF-8 of strings it skips.
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ApiError::new(
            ErrorCode::ParseError,
            "The request body is not valid JSON: it is not UTF-8.",
        )
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::de::IgnoredAny::deserialize(&mut deserializer).map_err(|error| syntax_error(&error))?;
    deserializer.end().map_err(|_| {
        ApiError::new(
            ErrorCode::ParseError,
            "The request body is not valid JSON: trailing characters after the object.",
        )
    })
}

fn syntax_error(error: &serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorCode::ParseError,
        format!(
            "The request body is not valid JSON: {}.",
            strip_position(&error.to_string())
        ),
    )
}

/// Parses an urlencoded form with the same error mapping.
pub fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(bytes));
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| field_error(&error.path().to_string(), &error.into_inner().to_string()))
}

fn form_urlencoded_parse(bytes: &[u8]) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(bytes)
}

fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |index| &message[..index])
}

/// Turns serde's data error into `{field: [message]}` without echoing the
/// offending value: `invalid type: string "hunter2", expected u32` would
/// otherwise leak whatever the client sent.
fn field_error(path: &str, message: &str) -> ApiError {
    let message = strip_position(message);
    let backticked = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let (field, text) = if let Some(name) = backticked("missing field `") {
        (join_path(path, &name), "This field is required.".to_owned())
    } else if let Some(name) = backticked("unknown field `") {
        let field = if path.ends_with(&name) {
            path.to_owned()
        } else {
            join_path(path, &name)
        };
        (field, "Unknown field.".to_owned())
    } else if let Some((_, expected)) = message.rsplit_once(", expected ") {
        (
            path.to_owned(),
            format!("Invalid value: expected {expected}."),
        )
    } else {
        (path.to_owned(), "Invalid value.".to_owned())
    };
    let field = if field.is_empty() || field == "." {
        NON_FIELD_ERRORS.to_owned()
    } else {
        field
    };
    ApiError::validation(FieldErrors::from([(field, vec![text])]))
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() || path == "." {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
    }

    fn code_of<T: std::fmt::Debug>(result: Result<T, ApiError>) -> ErrorCode {
        result.unwrap_err().code()
    }

    #[test]
    fn a_well_formed_body_parses() {
        let login: Login = parse_json(br#"{"username":"a","password":"b"}"#).unwrap();
        assert_eq!(login.username, "a");
    }

    #[test]
    fn a_syntax_error_after_an_unknown_field_is_a_parse_error() {
        for body in [
            &br#"{"admin": true, "username": "#[..],
            br#"{"admin": }"#,
            br#"{"admin": 1,}"#,
            b"{\"admin\": \"\xff\"}",
        ] {
            assert_eq!(code_of(parse_json::<Login>(body)), ErrorCode::ParseError);
        }
    }

    #[test]
    fn syntax_errors_are_parse_errors() {
        assert_eq!(
            code_of(parse_json::<Login>(b"{\"username\":")),
            ErrorCode::ParseError
        );
        assert_eq!(code_of(parse_json::<Login>(b"")), ErrorCode::ParseError);
        assert_eq!(
            code_of(parse_json::<Login>(br#"{"username":"a","password":"b"} x"#)),
            ErrorCode::ParseError
        );
    }

    #[test]
    fn missing_unknown_and_mistyped_fields_are_validation_errors() {
        for body in [
            &br#"{"username":"a"}"#[..],
            br#"{"username":"a","password":"b","admin":true}"#,
            br#"{"username":"a","password":12345678}"#,
            br#"[1,2]"#,
            br#" ["a", "b"]"#,
        ] {
            assert_eq!(
                code_of(parse_json::<Login>(body)),
                ErrorCode::ValidationFailed
            );
        }
    }

    #[test]
    fn a_mistyped_value_is_not_echoed() {
        let error = parse_json::<Login>(br#"{"username":"a","password":987654321}"#).unwrap_err();
        let response = actix_web::ResponseError::error_response(&error);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("987654321"));
    }
}
