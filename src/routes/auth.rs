//! `/auth/*`: login, legacy-key exchange, refresh, logout, logout-all,
//! verify, introspect.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::auth::clients::AuthenticatedClient;
use crate::auth::sessions::{Introspector, SecondFactor, TokenStatus};
use crate::auth::tokens::Claims;
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON};
use crate::http::body::{JsonBody, JsonOrFormBody, OptionalJsonBody, not_null};
use crate::http::extract::{self, AnyBearer, ClientAddress, CurrentUser, RequestOrigin};
use crate::http::token::{TokenResponse, token_response};
use crate::openapi::{ClaimsSchema, Problem, RoleSchema};
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    login, verify_mfa, exchange, refresh, logout, logout_all, verify, introspect
))]
pub struct Api;

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username or the email address, in any case.
    #[schema(example = "alice")]
    username: String,
    #[schema(value_type = String, format = Password, example = "correct horse battery")]
    password: SecretString,
}

/// Log in: a username (or email) and password for a token pair.
///
/// Throttled attempts (per client address, in memory; per account, in the
/// database) get 429 before any password work. Unknown users cost the same
/// hash as wrong passwords and get the same answer.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Unknown user or wrong password, indistinguishably (`invalid_credentials`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "The right password on an account with a second factor (`mfa_required`, with the extension members `mfa_token` and `methods`: finish with `POST /auth/mfa/verify`), or an unverified email when `auth.require_verified_email` is on (`email_not_verified`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins for this account or from this address (`throttled`), even with the right password.", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a login may be tried again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn login(
    state: web::Data<AppState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let pair = state
        .sessions
        .login(&body.username, body.password, origin)
        .await?;
    Ok(token_response(pair))
}

/// The second step of a login: the `mfa_token` and one code (its schema
/// is [`MfaVerifySchema`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    mfa_token: SecretString,
    #[serde(default, deserialize_with = "not_null")]
    code: Option<SecretString>,
    #[serde(default, deserialize_with = "not_null")]
    recovery_code: Option<SecretString>,
}

/// The `mfa_token` and a TOTP code, or the `mfa_token` and a recovery code.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = MfaVerifyRequest)]
pub enum MfaVerifySchema {
    Totp(MfaVerifyWithCode),
    Recovery(MfaVerifyWithRecoveryCode),
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyWithCode {
    /// From the login's 403 `mfa_required` answer.
    mfa_token: String,
    /// A TOTP code from the authenticator app.
    #[schema(example = "123456")]
    code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyWithRecoveryCode {
    /// From the login's 403 `mfa_required` answer.
    mfa_token: String,
    /// One of the recovery codes, each usable once.
    #[schema(example = "k7dm-3qpa-x9rt-2bnw")]
    recovery_code: String,
}

/// Finish a login with its second factor.
///
/// After a 403 `mfa_required` from `POST /auth/login`: the `mfa_token` it
/// gave and a TOTP `code` (each accepted once) or a `recovery_code` (each
/// usable once). The tokens say `amr` `["pwd","otp"]` (or `["pwd","mfa"]`)
/// and `aal` `aal2`. Wrong codes count towards the login throttle; an
/// `mfa_token` lives 5 minutes and dies after 5 wrong codes.
#[utoipa::path(
    post,
    path = "/auth/mfa/verify",
    tag = "auth",
    operation_id = "verify_mfa",
    request_body = MfaVerifySchema,
    responses(
        (status = 200, description = "A token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "A wrong, expired or used code (`invalid_credentials`), or a dead `mfa_token` (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Neither or both of `code` and `recovery_code` (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many wrong codes or failed logins (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a code may be tried again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn verify_mfa(
    state: web::Data<AppState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<MfaVerifyRequest>,
) -> ApiResult<HttpResponse> {
    let factor = match (body.code, body.recovery_code) {
        (Some(code), None) => SecondFactor::Totp(code),
        (None, Some(code)) => SecondFactor::RecoveryCode(code),
        _ => {
            return Err(ApiError::validation_field(
                "code",
                "Give either a TOTP code or a recovery code.",
            ));
        }
    };
    let pair = state
        .sessions
        .verify_mfa(body.mfa_token, factor, origin)
        .await?;
    Ok(token_response(pair))
}

/// A legacy DRF key, when it is not sent in the `Authorization` header.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The 40-hex-digit key of DRF's `authtoken_token`; anything else is
    /// refused like an unknown key (401 `invalid_token`).
    #[schema(value_type = String, example = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b")]
    token: SecretString,
}

/// Exchange a legacy DRF token for a token pair, once.
///
/// For clients of the Django REST Framework service tessera replaces: the
/// key DRF's `TokenAuthentication` issued (imported by `tessera import
/// django`), sent as `Authorization: Token <key>` or as `{"token": "<key>"}`,
/// becomes a normal token pair without a password (`Bearer <key>` works
/// too, for projects that renamed DRF's keyword). The key is retired by its
/// first exchange, and by a password change or "log out everywhere". On this
/// route alone the `Token` scheme carries a legacy key, not a JWT. After
/// `auth.legacy_exchange_until` every key is refused.
#[utoipa::path(
    post,
    path = "/auth/exchange",
    tag = "auth",
    operation_id = "exchange",
    request_body(content = Option<ExchangeRequest>, content_type = "application/json", description = "The key, unless it is sent as `Authorization: Token <key>`."),
    security((), ("drf_token" = [])),
    responses(
        (status = 200, description = "A token pair; the legacy key is now retired.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No key was sent (`not_authenticated`), or it is unknown, retired, of a disabled account, or the exchange has closed (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "An unknown or mistyped field (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins or exchanges from this address (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a new attempt may be made."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn exchange(
    req: HttpRequest,
    state: web::Data<AppState>,
    RequestOrigin(origin): RequestOrigin,
    OptionalJsonBody(body): OptionalJsonBody<ExchangeRequest>,
) -> ApiResult<HttpResponse> {
    let key = match extract::presented_token(&req)? {
        Some(key) => SecretString::from(key.to_owned()),
        None => body
            .map(|body| body.token)
            .ok_or_else(ApiError::not_authenticated)?,
    };
    let pair = state.sessions.exchange(key, origin).await?;
    Ok(token_response(pair))
}

/// A refresh token to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// Refresh: rotates the refresh token into a new token pair.
///
/// The presented refresh token stops working; presenting it again (reuse)
/// revokes its whole family.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The refresh token is unknown, expired, revoked or reused (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let pair = state.sessions.refresh(body.refresh_token).await?;
    Ok(token_response(pair))
}

/// What else to revoke at logout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// A refresh token of the same user, whose family is revoked too.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    refresh_token: Option<SecretString>,
}

/// Log out: revokes this access token.
///
/// If the body names a refresh token of the same user, that token's family
/// is revoked too. The body is optional.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    request_body(content = Option<LogoutRequest>, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "An unknown or mistyped field (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn logout(
    state: web::Data<AppState>,
    current: CurrentUser,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> ApiResult<HttpResponse> {
    let refresh_token = body.and_then(|body| body.refresh_token);
    state.sessions.logout(current.claims, refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Log out everywhere.
///
/// Every token of the user issued before now stops working on the
/// logout-sensitive routes, and all their refresh tokens are revoked.
/// Stateless routes accept the older access tokens until they expire.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    operation_id = "logout_all",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every earlier token of the user is revoked."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn logout_all(
    state: web::Data<AppState>,
    current: CurrentUser,
) -> ApiResult<HttpResponse> {
    state.sessions.logout_all(current.claims).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Verify the access token: its claims, statelessly.
///
/// Checks the signature and claims only, with no database read, so a token
/// revoked by logout still verifies here until it expires. Usable as a
/// gateway's forward-auth target: the user's id and role are also headers.
#[utoipa::path(
    get,
    path = "/auth/verify",
    tag = "auth",
    operation_id = "verify",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's claims.", body = ClaimsSchema, headers(
            ("X-User-Id" = String, description = "The token's `sub`: the user's id (a service client's id for a service token)."),
            ("X-User-Role" = RoleSchema, description = "The token's `role`."),
            ("X-User-Aal" = String, description = "The token's `aal`: `aal1`, or `aal2` after a second factor."),
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 401, description = "No token (`not_authenticated`), or an invalid or expired one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn verify(AnyBearer(claims): AnyBearer) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Ok(value) = HeaderValue::from_str(&claims.sub) {
        response.insert_header((X_USER_ID, value));
    }
    response.insert_header((X_USER_ROLE, HeaderValue::from_static(claims.role.as_str())));
    if let Ok(value) = HeaderValue::from_str(&claims.aal) {
        response.insert_header((X_USER_AAL, value));
    }
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response.json(claims)
}

/// The headers `GET /auth/verify` answers with, for a gateway's
/// `auth_request`: the token's `sub`, `role` and `aal`. Names made once,
/// not parsed from text per request.
pub const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const X_USER_ROLE: HeaderName = HeaderName::from_static("x-user-role");
pub const X_USER_AAL: HeaderName = HeaderName::from_static("x-user-aal");

/// The token to introspect (RFC 7662 §2.1).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// An access token or a refresh token.
    #[schema(value_type = String)]
    token: SecretString,
    /// `access_token` or `refresh_token`; accepted, but every kind is tried.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    #[allow(
        dead_code,
        reason = "RFC 7662 allows the hint; every token type is tried anyway"
    )]
    token_type_hint: Option<String>,
    /// A service client's id, when it authenticates in the body
    /// (`client_secret_post`) rather than with HTTP Basic.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    client_id: Option<String>,
    /// That client's secret.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, format = Password)]
    client_secret: Option<SecretString>,
}

/// The RFC 7662 introspection response: `{"active": false}` alone for any
/// token that is invalid, expired or revoked; the other members only for
/// an active one (`username`, `role`, `nbf`, `iss`, `aud` and `jti` only
/// for an access token).
#[derive(Serialize, Default, ToSchema)]
pub struct Introspection {
    /// Whether the token is active.
    active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    token_type: Option<&'static str>,
    /// The user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = RoleSchema, required = false)]
    role: Option<Role>,
    /// Expiry, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    exp: Option<i64>,
    /// Issue time, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    jti: Option<String>,
    /// The session (refresh-token family) of a user's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    sid: Option<String>,
    /// The service client of a service token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    client_id: Option<String>,
    /// A service token's scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    scope: Option<String>,
}

impl Introspection {
    fn of(status: TokenStatus) -> Self {
        match status {
            TokenStatus::Access(claims) => Self::of_access_token(*claims),
            TokenStatus::Refresh {
                user_id,
                expires_at,
                issued_at,
                session_id,
            } => Self {
                active: true,
                token_type: Some("refresh_token"),
                sub: Some(user_id),
                sid: Some(session_id),
                exp: Some(expires_at),
                iat: Some(issued_at),
                ..Default::default()
            },
            TokenStatus::Inactive => Self::default(),
        }
    }

    fn of_access_token(claims: Claims) -> Self {
        Self {
            active: true,
            token_type: Some("access_token"),
            sub: Some(claims.sub),
            username: Some(claims.username).filter(|name| !name.is_empty()),
            role: Some(claims.role),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            jti: Some(claims.jti),
            sid: claims.sid,
            client_id: claims.client_id,
            scope: claims.scope,
        }
    }
}

/// Introspect a token (RFC 7662): whether an access or refresh token is active.
///
/// Revocation is taken into account. Anything invalid, expired or revoked
/// is just `{"active": false}`. The body may be JSON or a form, as RFC 7662
/// clients send it. Who may see what (RFC 7662 §2.1): a service client
/// (HTTP Basic, `client_id`/`client_secret` in the body, or its own bearer
/// token) or an admin sees any token; a user sees only their own tokens,
/// and `{"active": false}` for anyone else's.
#[utoipa::path(
    post,
    path = "/auth/introspect",
    tag = "auth",
    operation_id = "introspect",
    request_body(content(
        (IntrospectRequest = "application/json"),
        (IntrospectRequest = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = []), ("client_basic" = [])),
    responses(
        (status = 200, description = "Whether the token is active, and its claims if so.", body = Introspection, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 400, description = "The body is not well-formed JSON or form data (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No credentials (`not_authenticated`), the caller's own token is invalid, expired or revoked (`invalid_token`), or the client credentials are wrong (`invalid_client`, with a `Basic` challenge).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is neither JSON nor form data (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped, or a client id without its secret (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed client authentications for this client or from this address (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until the client may try again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    ClientAddress(address): ClientAddress,
    body: Result<JsonOrFormBody<IntrospectRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    // Without any credentials, the missing credentials come first.
    let body = match body {
        Ok(JsonOrFormBody(body)) => body,
        Err(_) if req.headers().get(header::AUTHORIZATION).is_none() => {
            return Err(ApiError::not_authenticated());
        }
        Err(error) => return Err(error),
    };
    let form_client = match (body.client_id, body.client_secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation_field(
                "client_secret",
                "Give both client_id and client_secret, or neither.",
            ));
        }
    };
    let viewer = match authenticated_client(&req, &state, form_client, address).await? {
        Some(_) => Introspector::Privileged,
        None => introspector_by_bearer(&req, &state).await?,
    };
    let status = state
        .sessions
        .introspect(body.token.expose_secret(), viewer)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Introspection::of(status)))
}

/// A service client authenticated by HTTP Basic or by credentials from the
/// body (not both); `None` when neither was sent.
pub async fn authenticated_client(
    req: &HttpRequest,
    state: &AppState,
    form_client: Option<(String, SecretString)>,
    address: Option<std::net::IpAddr>,
) -> ApiResult<Option<AuthenticatedClient>> {
    let basic = extract::basic_credentials(req).map_err(|extract::MalformedBasic| {
        ApiError::from(crate::auth::clients::ClientAuthError::InvalidClient)
    })?;
    let (id, secret) = match (basic, form_client) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation_field(
                "client_id",
                "Authenticate the client with HTTP Basic or in the body, not both.",
            ));
        }
        (Some(credentials), None) | (None, Some(credentials)) => credentials,
        (None, None) => return Ok(None),
    };
    Ok(Some(
        state.clients.authenticate(&id, &secret, address).await?,
    ))
}

/// The bearer of an introspection: a service client's token (checked
/// against its client), an admin's, or a user's.
async fn introspector_by_bearer(req: &HttpRequest, state: &AppState) -> ApiResult<Introspector> {
    let token = extract::presented_token(req)?.ok_or_else(ApiError::not_authenticated)?;
    let claims = state
        .keys
        .verify(token)
        .map_err(|e| ApiError::invalid_token(e.to_string()))?;
    if claims.role == Role::Service {
        state.clients.authorize_token(claims).await?;
        return Ok(Introspector::Privileged);
    }
    let user = state.sessions.authorize(claims).await?;
    Ok(if user.role == Role::Admin.as_str() {
        Introspector::Privileged
    } else {
        Introspector::User(user.id)
    })
}
