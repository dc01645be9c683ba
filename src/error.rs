//! The one error type of the HTTP surface, and the error policy.
//!
//! Policy:
//! - Code below the routes returns its own specific errors (`diesel` errors,
//!   [`crate::settings::SettingsError`], token errors); handlers turn them into
//!   an [`ApiError`] with `?`.
//! - Every [`ApiError`] renders as RFC 9457 problem details
//!   (`application/problem+json`) with a stable snake_case `code` that clients
//!   may branch on; the list of codes is [`ErrorCode`].
//! - A 500 is opaque to the client ("internal error" and the request id); its
//!   cause goes to the log only. No body ever carries SQL, a stack trace, a
//!   password, a hash, a token or a key.
//! - Every 401 carries `WWW-Authenticate: Bearer realm="tessera"`, with
//!   `error="invalid_token"` when a token was presented (RFC 6750 §3).
//! - A lost database or an exhausted pool is a 503, never a hang or a 500.

use std::collections::BTreeMap;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The stable machine-readable codes, one per kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not well-formed JSON (or form data).
    ParseError,
    /// 400: a query string that cannot be read.
    InvalidQuery,
    /// 401: no credentials were presented.
    NotAuthenticated,
    /// 401: a token was presented but is invalid, expired or revoked.
    InvalidToken,
    /// 401: login with an unknown user or a wrong password (indistinguishable).
    InvalidCredentials,
    /// 403: authenticated, but not allowed to do this.
    PermissionDenied,
    /// 404: no such resource (or route).
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 409: a unique field (username, email) is taken.
    Conflict,
    /// 413: the body exceeds `server.max_body_bytes`.
    PayloadTooLarge,
    /// 414: the request target is longer than tessera accepts.
    UriTooLong,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 431: too many or too large request headers.
    HeadersTooLarge,
    /// 422: well-formed but invalid fields; `errors` says which.
    ValidationFailed,
    /// 400: the current password given for a password change is wrong.
    InvalidCurrentPassword,
    /// 429: too many failed logins.
    Throttled,
    /// 503: the database cannot be reached or the pool is exhausted.
    ServiceUnavailable,
    /// 500: a bug or an unexpected failure; details are in the log only.
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parse_error",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::InvalidCurrentPassword => "invalid_current_password",
            ErrorCode::Throttled => "throttled",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::InternalError => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::ParseError | ErrorCode::InvalidQuery | ErrorCode::InvalidCurrentPassword => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::NotAuthenticated
            | ErrorCode::InvalidToken
            | ErrorCode::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "Malformed request body",
            ErrorCode::InvalidQuery => "Invalid query string",
            ErrorCode::NotAuthenticated => "Authentication required",
            ErrorCode::InvalidToken => "Invalid token",
            ErrorCode::InvalidCredentials => "Invalid credentials",
            ErrorCode::PermissionDenied => "Permission denied",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UriTooLong => "URI too long",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::HeadersTooLarge => "Request header fields too large",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::InvalidCurrentPassword => "Current password is incorrect",
            ErrorCode::Throttled => "Too many requests",
            ErrorCode::ServiceUnavailable => "Service unavailable",
            ErrorCode::InternalError => "Internal server error",
        }
    }

    /// Every code, for the test that each one is documented and reachable.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidQuery,
        ErrorCode::NotAuthenticated,
        ErrorCode::InvalidToken,
        ErrorCode::InvalidCredentials,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::HeadersTooLarge,
        ErrorCode::ValidationFailed,
        ErrorCode::InvalidCurrentPassword,
        ErrorCode::Throttled,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalError,
    ];
}

/// Field name -> messages, as in DRF's validation errors.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An error answered to the client as problem+json.
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Option<FieldErrors>,
    /// Extra response headers (`Allow`, `Retry-After`, ...).
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// For 500s and 503s: what went wrong, for the log only.
    cause: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn not_authenticated() -> Self {
        Self::new(
            ErrorCode::NotAuthenticated,
            "Authentication credentials were not provided.",
        )
    }

    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, detail)
    }

    pub fn invalid_credentials() -> Self {
        Self::new(
            ErrorCode::InvalidCredentials,
            "No active account found with the given credentials.",
        )
    }

    pub fn permission_denied(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    pub fn validation(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        let mut error = Self::new(
            ErrorCode::ValidationFailed,
            format!("Invalid fields: {}.", fields.join(", ")),
        );
        error.errors = Some(errors);
        error
    }

    pub fn validation_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(FieldErrors::from([(
            field.to_owned(),
            vec![message.into()],
        )]))
    }

    pub fn conflict(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        let detail = if fields.is_empty() {
            "A unique field is already taken.".to_owned()
        } else {
            format!("Already taken: {}.", fields.join(", "))
        };
        let mut error = Self::new(ErrorCode::Conflict, detail);
        error.errors = Some(errors);
        error
    }

    /// An opaque 500; `cause` goes to the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut error = Self::new(ErrorCode::InternalError, "An internal error occurred.");
        error.cause = Some(cause.to_string());
        error
    }

    /// A 503; `cause` goes to the log only.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        let mut error = Self::new(
            ErrorCode::ServiceUnavailable,
            "The service is temporarily unavailable; retry shortly.",
        );
        error.cause = Some(cause.to_string());
        error
            .headers
            .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
        error
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with_errors(mut self, errors: FieldErrors) -> Self {
        self.errors = Some(errors);
        self
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .field("detail", &self.detail)
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
}

/// The problem `type` URI of a code: a URN, so no documentation host is implied.
pub fn problem_type(code: ErrorCode) -> String {
    format!("urn:tessera:problem:{}", code.as_str())
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// `WWW-Authenticate` for a 401 (RFC 6750 §3).
fn bearer_challenge(code: ErrorCode, detail: &str) -> HeaderValue {
    let value = match code {
        ErrorCode::InvalidToken => {
            let description: String = detail
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
                .collect();
            format!(
                "Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"{description}\""
            )
        }
        _ => "Bearer realm=\"tessera\"".to_owned(),
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer realm=\"tessera\""))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        match (&self.cause, status.is_server_error()) {
            (Some(cause), true) => {
                tracing::error!(code = self.code.as_str(), %cause, "request failed")
            }
            _ => {
                tracing::debug!(code = self.code.as_str(), detail = %self.detail, "request refused")
            }
        }
        let body = ProblemBody {
            type_: problem_type(self.code),
            title: self.code.title(),
            status: status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            errors: self.errors.as_ref(),
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                bearer_challenge(self.code, &self.detail),
            ));
        }
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        response.body(json)
    }
}

/// Database failures: a lost connection or a locked SQLite file is a 503, a
/// unique violation that escaped the explicit checks is a 409, the rest 500.
impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &error {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => {
                ApiError::unavailable(error)
            }
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ApiError::new(ErrorCode::Conflict, "A unique field is already taken.")
            }
            Error::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("terminating connection")
                    || info.message().contains("server closed the connection") =>
            {
                ApiError::unavailable(error)
            }
            _ => ApiError::internal(error),
        }
    }
}

impl From<crate::db::PoolError> for ApiError {
    fn from(error: crate::db::PoolError) -> Self {
        ApiError::unavailable(error)
    }
}
