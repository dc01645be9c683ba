//! The one error type of the HTTP surface, and the error policy.
//!
//! Policy:
//! - Code below the routes returns its own specific errors: each service its
//!   error enum ([`AccountError`], [`LoginError`], ...), storage
//!   [`StoreError`], settings [`crate::settings::SettingsError`]. The `From`
//!   impls at the end of this file are the one place they become an
//!   [`ApiError`]; handlers convert with `?`.
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
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::accounts::AccountError;
use crate::auth::password::HashError;
use secrecy::ExposeSecret;

use crate::auth::clients::ClientAuthError;
use crate::auth::mfa::TotpError;
use crate::auth::passkeys::PasskeyError;
use crate::auth::sessions::{
    AccessError, EndSessionError, ExchangeError, LoginError, MfaError, RefreshError,
};
use crate::db::StoreError;
use crate::db::users::Taken;
use crate::recovery::RecoveryError;

/// Defines [`ErrorCode`] from one table: each variant with its stable
/// snake_case code, its HTTP status and its problem title.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => ($code:literal, $status:ident, $title:literal),)+) => {
        /// The stable machine-readable codes, one per kind of failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, for the test that each one is documented and reachable.
            pub const ALL: [ErrorCode; [$(stringify!($variant)),+].len()] =
                [$(ErrorCode::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title,)+
                }
            }
        }
    };
}

error_codes! {
    /// 400: the body is not well-formed JSON (or form data).
    ParseError => ("parse_error", BAD_REQUEST, "Malformed request body"),
    /// 400: a query string that cannot be read.
    InvalidQuery => ("invalid_query", BAD_REQUEST, "Invalid query string"),
    /// 401: no credentials were presented.
    NotAuthenticated => ("not_authenticated", UNAUTHORIZED, "Authentication required"),
    /// 401: a token was presented but is invalid, expired or revoked.
    InvalidToken => ("invalid_token", UNAUTHORIZED, "Invalid token"),
    /// 401: login with an unknown user or a wrong password (indistinguishable).
    InvalidCredentials => ("invalid_credentials", UNAUTHORIZED, "Invalid credentials"),
    /// 401: a service client's id or secret is wrong (introspection).
    InvalidClient => ("invalid_client", UNAUTHORIZED, "Invalid client credentials"),
    /// 403: authenticated, but not allowed to do this.
    PermissionDenied => ("permission_denied", FORBIDDEN, "Permission denied"),
    /// 403: a service client's token on a route for users (`/users`,
    /// sessions, MFA, logout...).
    UserTokenRequired => ("user_token_required", FORBIDDEN, "User token required"),
    /// 403: the right password, but the email must be verified first
    /// (`auth.require_verified_email`).
    EmailNotVerified => ("email_not_verified", FORBIDDEN, "Email not verified"),
    /// 403: the right password on an account with a second factor; the
    /// extension members `mfa_token` and `methods` say how to go on.
    MfaRequired => ("mfa_required", FORBIDDEN, "Second factor required"),
    /// 404: no such resource (or route).
    NotFound => ("not_found", NOT_FOUND, "Not found"),
    /// 405: the route exists, the method does not.
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed"),
    /// 408: the request body did not arrive in time.
    RequestTimeout => ("request_timeout", REQUEST_TIMEOUT, "Request timeout"),
    /// 409: a unique field (username, email) is taken.
    Conflict => ("conflict", CONFLICT, "Conflict"),
    /// 413: the body exceeds `server.max_body_bytes`.
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "Payload too large"),
    /// 414: the request target is longer than tessera accepts.
    UriTooLong => ("uri_too_long", URI_TOO_LONG, "URI too long"),
    /// 415: the body is not `application/json`.
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
    /// 431: too many or too large request headers.
    HeadersTooLarge => ("headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, "Request header fields too large"),
    /// 422: well-formed but invalid fields; `errors` says which.
    ValidationFailed => ("validation_failed", UNPROCESSABLE_ENTITY, "Validation failed"),
    /// 400: the current password given for a password change is wrong.
    InvalidCurrentPassword => ("invalid_current_password", BAD_REQUEST, "Current password is incorrect"),
    /// 429: too many failed logins.
    Throttled => ("throttled", TOO_MANY_REQUESTS, "Too many requests"),
    /// 503: the database cannot be reached or the pool is exhausted.
    ServiceUnavailable => ("service_unavailable", SERVICE_UNAVAILABLE, "Service unavailable"),
    /// 500: a bug or an unexpected failure; details are in the log only.
    InternalError => ("internal_error", INTERNAL_SERVER_ERROR, "Internal server error"),
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
    /// RFC 9457 extension members (`mfa_token`, `methods`); never logged.
    extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
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
            extensions: None,
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

    /// Adds an RFC 9457 extension member to the problem body.
    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions
            .get_or_insert_default()
            .insert(name.to_owned(), value);
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
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extensions: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// The problem `type` URI of a code: a URN, so no documentation host is implied.
pub fn problem_type(code: ErrorCode) -> String {
    format!("urn:tessera:problem:{}", code.as_str())
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Marks an error response that deliberately is not problem+json (the RFC
/// 6749 §5.2 errors of the OAuth endpoints), so that the app's error handler
/// leaves it as it is.
pub struct OtherErrorFormat;

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
            extensions: self.extensions.as_deref(),
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

/// Database failures: a lost connection, an exhausted pool or a locked
/// SQLite file is a 503, a unique violation that escaped the explicit
/// checks is a 409, the rest 500.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        let query = match &error {
            StoreError::Unavailable(_) => return ApiError::unavailable(error),
            StoreError::Query(query) => query,
        };
        match query {
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

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        ApiError::internal(error)
    }
}

/// A 429 with `Retry-After` in whole seconds (at least 1).
pub fn throttled(retry_after: Duration) -> ApiError {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    ApiError::new(
        ErrorCode::Throttled,
        format!("Too many failed login attempts; retry in {seconds} seconds."),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// 409 naming the taken fields, in DRF's words.
fn taken(taken: &Taken) -> ApiError {
    let mut errors = FieldErrors::new();
    if taken.username {
        errors.insert(
            "username".into(),
            vec!["A user with that username already exists.".into()],
        );
    }
    if taken.email {
        errors.insert(
            "email".into(),
            vec!["A user with that email already exists.".into()],
        );
    }
    ApiError::conflict(errors)
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Taken(fields) => taken(&fields),
            AccountError::NotFound => ApiError::not_found("No user with that id."),
            AccountError::WrongPassword => {
                let message = "The current password is incorrect.";
                ApiError::new(ErrorCode::InvalidCurrentPassword, message).with_errors(
                    FieldErrors::from([("current_password".to_owned(), vec![message.to_owned()])]),
                )
            }
            AccountError::Hashing(error) => error.into(),
            AccountError::Store(error) => error.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Throttled(wait) => throttled(wait),
            LoginError::InvalidCredentials => ApiError::invalid_credentials(),
            LoginError::EmailNotVerified => ApiError::new(
                ErrorCode::EmailNotVerified,
                "Confirm your email address first: follow the link in the verification mail, \
                 or ask for a new one (POST /auth/verify-email/resend).",
            ),
            LoginError::MfaRequired(challenge) => ApiError::new(
                ErrorCode::MfaRequired,
                "The password is right; this account also needs its second factor: \
                 POST /auth/mfa/verify with the mfa_token and a code.",
            )
            .with_extension(
                "mfa_token",
                serde_json::Value::from(challenge.mfa_token.expose_secret()),
            )
            .with_extension("methods", serde_json::Value::from(challenge.methods)),
            LoginError::Hashing(error) => error.into(),
            LoginError::Signing(cause) | LoginError::Internal(cause) => ApiError::internal(cause),
            LoginError::Store(error) => error.into(),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(error: MfaError) -> Self {
        match error {
            MfaError::InvalidChallenge => ApiError::invalid_token(
                "The mfa_token is unknown, used, expired or spent on too many wrong codes; \
                 log in again.",
            ),
            MfaError::WrongCode => ApiError::new(
                ErrorCode::InvalidCredentials,
                "The code is wrong, expired or already used.",
            ),
            MfaError::Throttled(wait) => throttled(wait),
            MfaError::Unsealable(error) => ApiError::internal(error),
            MfaError::Signing(cause) => ApiError::internal(cause),
            MfaError::Store(error) => error.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(error: PasskeyError) -> Self {
        match error {
            PasskeyError::UnknownCeremony => ApiError::validation_field(
                "ceremony_id",
                "Unknown, already used or expired: start again.",
            ),
            PasskeyError::Rejected(cause) => {
                tracing::info!(%cause, "passkey registration refused");
                ApiError::validation_field(
                    "credential",
                    "The authenticator's response does not verify for this ceremony.",
                )
            }
            PasskeyError::AlreadyRegistered => ApiError::conflict(FieldErrors::from([(
                "credential".to_owned(),
                vec!["This passkey is already registered.".to_owned()],
            )])),
            PasskeyError::NotFound => ApiError::not_found("No passkey with that id."),
            PasskeyError::UserGone => ApiError::invalid_token("The token's user no longer exists."),
            PasskeyError::Internal(cause) => ApiError::internal(cause),
            PasskeyError::Store(error) => error.into(),
        }
    }
}

impl From<TotpError> for ApiError {
    fn from(error: TotpError) -> Self {
        match error {
            TotpError::Disabled => ApiError::permission_denied(
                "TOTP is off on this server: its operator has not set mfa.encryption_key_file.",
            ),
            TotpError::AlreadyActive => ApiError::new(
                ErrorCode::Conflict,
                "TOTP is already active on this account; remove it first to enrol again.",
            ),
            TotpError::NotEnrolled => {
                ApiError::not_found("This account has no TOTP enrolment (POST /auth/mfa/totp).")
            }
            TotpError::WrongCode => {
                ApiError::validation_field("code", "The code is wrong, expired or already used.")
            }
            TotpError::WrongPassword => ApiError::new(
                ErrorCode::InvalidCurrentPassword,
                "The password is not correct.",
            ),
            TotpError::UserGone => ApiError::invalid_token("The token's user no longer exists."),
            TotpError::Unsealable(error) => ApiError::internal(error),
            TotpError::Hashing(error) => error.into(),
            TotpError::Internal(cause) => ApiError::internal(cause),
            TotpError::Store(error) => error.into(),
        }
    }
}

impl From<ExchangeError> for ApiError {
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::Closed => ApiError::invalid_token(
                "Legacy token exchange has ended; log in with a username and password.",
            ),
            ExchangeError::Throttled(wait) => throttled(wait),
            ExchangeError::InvalidKey => ApiError::invalid_token(
                "The legacy token is invalid or has already been exchanged.",
            ),
            ExchangeError::Signing(cause) => ApiError::internal(cause),
            ExchangeError::Store(error) => error.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::InvalidToken => {
                ApiError::invalid_token("The refresh token is invalid, expired or revoked.")
            }
            RefreshError::Signing(cause) => ApiError::internal(cause),
            RefreshError::Store(error) => error.into(),
        }
    }
}

impl From<RecoveryError> for ApiError {
    fn from(error: RecoveryError) -> Self {
        match error {
            RecoveryError::InvalidToken => {
                ApiError::invalid_token("The link is invalid, has expired or was already used.")
            }
            RecoveryError::Taken(fields) => taken(&fields),
            RecoveryError::AlreadyVerified => ApiError::new(
                ErrorCode::Conflict,
                "The email address is already verified, and no change is pending.",
            ),
            RecoveryError::NotFound => {
                ApiError::invalid_token("The token's user no longer exists.")
            }
            RecoveryError::Hashing(error) => error.into(),
            RecoveryError::Store(error) => error.into(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::UserGone => ApiError::invalid_token("The token's user no longer exists."),
            AccessError::Revoked => ApiError::invalid_token("The token has been revoked."),
            AccessError::Store(error) => error.into(),
        }
    }
}

impl From<EndSessionError> for ApiError {
    fn from(error: EndSessionError) -> Self {
        match error {
            EndSessionError::NotFound => ApiError::not_found("No such session."),
            EndSessionError::Store(error) => error.into(),
        }
    }
}

/// Client authentication outside the token endpoint (introspection): a
/// problem, with a `Basic` challenge.
impl From<ClientAuthError> for ApiError {
    fn from(error: ClientAuthError) -> Self {
        match error {
            ClientAuthError::Throttled(wait) => throttled(wait),
            ClientAuthError::InvalidClient => ApiError::new(
                ErrorCode::InvalidClient,
                "The client id or secret is wrong, or the client was deleted.",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            ),
            ClientAuthError::Store(error) => error.into(),
        }
    }
}

impl ApiError {
    /// 403 `user_token_required`: a service token on a route for users.
    pub fn user_token_required() -> Self {
        Self::new(
            ErrorCode::UserTokenRequired,
            "This route is for users; a service client's token is not accepted here.",
        )
    }
}
