//! OAuth 2.0 endpoints: the token endpoint (`client_credentials` and
//! `refresh_token` grants, RFC 6749), token revocation (RFC 7009), and the
//! authorization server metadata (RFC 8414).
//!
//! The token and revocation endpoints answer their errors in RFC 6749 §5.2
//! form (`{"error","error_description"}`), which OAuth client libraries
//! read, rather than problem+json; a throttled client still gets the 429
//! problem that a throttled login gets.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::auth::clients::{AuthenticatedClient, ClientAuthError, ClientTokenError, ServiceToken};
use crate::auth::sessions::RefreshError;
use crate::error::{ApiError, OtherErrorFormat, PROBLEM_JSON};
use crate::http::body::{JsonOrFormBody, not_null};
use crate::http::extract::{self, ClientAddress};
use crate::http::token::{TokenResponse, no_store, token_response};
use crate::openapi::Problem;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(token, revoke, metadata))]
pub struct Api;

/// An RFC 6749 §5.2 error response.
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type` or `invalid_scope`.
    #[schema(example = "invalid_client")]
    error: &'static str,
    error_description: String,
}

/// An RFC 6749 §5.2 error: 400, or 401 for `invalid_client`.
#[derive(Debug)]
pub struct OAuthError {
    error: &'static str,
    description: String,
    /// Whether the client tried HTTP Basic (its 401 then says `Basic`).
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                "invalid_client",
                "Client authentication failed: unknown client, wrong secret, or no credentials.",
            )
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if self.error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status_code() == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge {
                "Basic realm=\"tessera\""
            } else {
                "Bearer realm=\"tessera\""
            };
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let mut response = response.json(OAuthErrorBody {
            error: self.error,
            error_description: self.description.clone(),
        });
        response.extensions_mut().insert(OtherErrorFormat);
        response
    }
}

/// What the token and revocation endpoints answer on failure: an RFC 6749
/// error, or a problem (429, 503, 500).
pub enum OAuthFailure {
    OAuth(OAuthError),
    Problem(ApiError),
}

impl From<OAuthError> for OAuthFailure {
    fn from(error: OAuthError) -> Self {
        OAuthFailure::OAuth(error)
    }
}

impl From<ClientAuthError> for OAuthFailure {
    fn from(error: ClientAuthError) -> Self {
        OAuthFailure::Problem(error.into())
    }
}

impl From<RefreshError> for OAuthFailure {
    fn from(error: RefreshError) -> Self {
        OAuthFailure::Problem(error.into())
    }
}

impl From<crate::db::StoreError> for OAuthFailure {
    fn from(error: crate::db::StoreError) -> Self {
        OAuthFailure::Problem(error.into())
    }
}

impl From<OAuthFailure> for actix_web::Error {
    fn from(failure: OAuthFailure) -> Self {
        match failure {
            OAuthFailure::OAuth(error) => error.into(),
            OAuthFailure::Problem(error) => error.into(),
        }
    }
}

type OAuthResult<T> = Result<T, actix_web::Error>;

/// A client's credentials as presented: HTTP Basic, the body, or none.
enum PresentedClient {
    Basic(String, SecretString),
    Body(String, SecretString),
    None,
}

/// Reads the client's credentials; both ways at once is `invalid_request`.
fn presented_client(
    req: &HttpRequest,
    body_id: Option<String>,
    body_secret: Option<SecretString>,
) -> Result<PresentedClient, OAuthError> {
    let basic = extract::basic_credentials(req)
        .map_err(|extract::MalformedBasic| OAuthError::invalid_client(true))?;
    match (basic, body_id, body_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "Authenticate the client with HTTP Basic or in the body, not both.",
        )),
        (Some((id, secret)), None, None) => Ok(PresentedClient::Basic(id, secret)),
        (None, Some(id), Some(secret)) => Ok(PresentedClient::Body(id, secret)),
        (None, Some(_), None) => Err(OAuthError::invalid_client(false)),
        (None, None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret without client_id.",
        )),
        (None, None, None) => Ok(PresentedClient::None),
    }
}

/// Authenticates the presented client; `None` when none was presented.
async fn authenticate(
    state: &AppState,
    presented: PresentedClient,
    address: Option<std::net::IpAddr>,
) -> Result<Option<AuthenticatedClient>, OAuthFailure> {
    let (id, secret, basic) = match presented {
        PresentedClient::Basic(id, secret) => (id, secret, true),
        PresentedClient::Body(id, secret) => (id, secret, false),
        PresentedClient::None => return Ok(None),
    };
    match state.clients.authenticate(&id, &secret, address).await {
        Ok(client) => Ok(Some(client)),
        Err(ClientAuthError::InvalidClient) => Err(OAuthError::invalid_client(basic).into()),
        Err(other) => Err(other.into()),
    }
}

/// The parameters of a token request (RFC 6749 §4.4.2, §6), as a form.
#[derive(Default, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials` or `refresh_token`.
    #[schema(example = "client_credentials")]
    grant_type: Option<String>,
    /// `client_credentials`: space-separated scopes, a subset of the
    /// client's (default: all of them).
    scope: Option<String>,
    /// `client_secret_post`: the client's id (else HTTP Basic).
    client_id: Option<String>,
    /// `client_secret_post`: the client's secret.
    #[schema(value_type = String, format = Password)]
    client_secret: Option<SecretString>,
    /// `refresh_token`: the refresh token to rotate.
    #[schema(value_type = String)]
    refresh_token: Option<SecretString>,
}

impl TokenRequest {
    /// Reads a form body; a parameter given twice is `invalid_request`
    /// (RFC 6749 §3.2), unknown ones are ignored.
    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, OAuthError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "The body must be application/x-www-form-urlencoded.",
            ));
        }
        let mut request = TokenRequest::default();
        for (name, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            let duplicate = match name.as_ref() {
                "grant_type" => request.grant_type.replace(value).is_some(),
                "scope" => request.scope.replace(value).is_some(),
                "client_id" => request.client_id.replace(value).is_some(),
                "client_secret" => request
                    .client_secret
                    .replace(SecretString::from(value))
                    .is_some(),
                "refresh_token" => request
                    .refresh_token
                    .replace(SecretString::from(value))
                    .is_some(),
                _ => false,
            };
            if duplicate {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter `{name}` is given more than once."
                )));
            }
        }
        Ok(request)
    }
}

/// A service client's token response (RFC 6749 §4.4.3): no refresh token.
#[derive(Serialize, ToSchema)]
pub struct ClientTokenResponse {
    /// The access token, a JWT with `role: "service"`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// The access token's lifetime in seconds (`jwt.access_ttl_secs`).
    #[schema(example = 900)]
    expires_in: i64,
    /// The granted scopes, space-separated.
    #[schema(example = "users:read")]
    scope: String,
}

/// What the token endpoint answers: a service client's token, or (for
/// `grant_type=refresh_token`) a token pair.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenEndpointResponse {
    Client(ClientTokenResponse),
    Pair(TokenResponse),
}

fn client_token_response(token: ServiceToken) -> HttpResponse {
    no_store().json(ClientTokenResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        scope: token.scope,
    })
}

/// Get a token: client credentials, or a refresh (RFC 6749 §4.4, §6).
///
/// `grant_type=client_credentials`: a service client authenticates with
/// HTTP Basic (`client_secret_basic`, id and secret form-urlencoded) or
/// with `client_id` and `client_secret` in the body (`client_secret_post`),
/// not both, and gets an access token with `sub` = `client_id`,
/// `client_id`, `scope` and `role: "service"`, without a refresh token.
/// Failed client authentication is throttled like failed logins.
/// `grant_type=refresh_token` with `refresh_token` does what
/// `POST /auth/refresh` does. Errors are RFC 6749 §5.2 JSON.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    operation_id = "oauth_token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "For `client_credentials`, a token without a refresh token; for `refresh_token`, a new token pair.", body = TokenEndpointResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "`invalid_request` (not a form, a missing or repeated parameter, credentials both ways), `invalid_grant` (a refresh token that is unknown, expired, revoked or reused), `unsupported_grant_type` or `invalid_scope`.", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`: unknown client, wrong secret, or no credentials; with `WWW-Authenticate: Basic realm=\"tessera\"` when HTTP Basic was used.", body = OAuthErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"tessera\"` after HTTP Basic, else `Bearer realm=\"tessera\"`."),
        )),
        (status = 429, description = "Too many failed client authentications for this client or from this address (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until the client may try again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    ClientAddress(address): ClientAddress,
    body: web::Bytes,
) -> OAuthResult<HttpResponse> {
    let request = TokenRequest::parse(&req, &body)?;
    let grant_type = request
        .grant_type
        .ok_or_else(|| OAuthError::invalid_request("The parameter `grant_type` is missing."))?;
    match grant_type.as_str() {
        "client_credentials" => {
            let presented = presented_client(&req, request.client_id, request.client_secret)?;
            let client = authenticate(&state, presented, address)
                .await?
                .ok_or_else(|| OAuthError::invalid_client(false))?;
            let token = state
                .clients
                .issue_token(&state.keys, &client, request.scope.as_deref())
                .map_err(|error| match error {
                    ClientTokenError::InvalidScope => OAuthFailure::OAuth(OAuthError::new(
                        "invalid_scope",
                        "A requested scope is not granted to this client.",
                    )),
                    ClientTokenError::Signing(cause) => {
                        OAuthFailure::Problem(ApiError::internal(cause))
                    }
                })?;
            Ok(client_token_response(token))
        }
        "refresh_token" => {
            let refresh_token = request.refresh_token.ok_or_else(|| {
                OAuthError::invalid_request("The parameter `refresh_token` is missing.")
            })?;
            let pair =
                state
                    .sessions
                    .refresh(refresh_token)
                    .await
                    .map_err(|error| match error {
                        RefreshError::InvalidToken => OAuthFailure::OAuth(OAuthError::new(
                            "invalid_grant",
                            "The refresh token is invalid, expired or revoked.",
                        )),
                        other => OAuthFailure::from(other),
                    })?;
            Ok(token_response(pair))
        }
        _ => Err(OAuthFailure::OAuth(OAuthError::new(
            "unsupported_grant_type",
            "Supported grant types: client_credentials, refresh_token.",
        ))
        .into()),
    }
}

/// A token to revoke (RFC 7009 §2.1).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An access token or a refresh token.
    #[schema(value_type = String)]
    token: SecretString,
    /// `access_token` or `refresh_token`; accepted, but both are tried.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    #[allow(
        dead_code,
        reason = "RFC 7009 allows the hint; every token type is tried anyway"
    )]
    token_type_hint: Option<String>,
    /// `client_secret_post`: a service client's id (else HTTP Basic, or none).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    client_id: Option<String>,
    /// That client's secret.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, format = Password)]
    client_secret: Option<SecretString>,
}

/// Revoke a token (RFC 7009).
///
/// A refresh token revokes its whole family (its session ends); an access
/// token is revoked by its `jti` and then fails on the logout-sensitive
/// routes. Whoever holds a token may revoke it; a service client may
/// authenticate (HTTP Basic or body), and wrong client credentials are
/// `invalid_client`. An unknown, invalid or already revoked token is 200
/// too, as RFC 7009 §2.2 asks.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    operation_id = "oauth_revoke",
    request_body(content(
        (RevokeRequest = "application/x-www-form-urlencoded"),
        (RevokeRequest = "application/json"),
    )),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke."),
        (status = 400, description = "The body is not well-formed JSON or form data (`parse_error`, problem+json), or `invalid_request` (RFC 6749 §5.2 JSON): client credentials in the body without their pair, or given both in the body and by HTTP Basic.", content(
            (Problem = "application/problem+json"),
            (OAuthErrorBody = "application/json"),
        )),
        (status = 401, description = "`invalid_client`: the client credentials presented are wrong (RFC 6749 §5.2 JSON).", body = OAuthErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"tessera\"` after HTTP Basic, else `Bearer realm=\"tessera\"`."),
        )),
        (status = 415, description = "The body is neither a form nor JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed client authentications (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until the client may try again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    ClientAddress(address): ClientAddress,
    JsonOrFormBody(body): JsonOrFormBody<RevokeRequest>,
) -> OAuthResult<HttpResponse> {
    let presented = presented_client(&req, body.client_id, body.client_secret)?;
    authenticate(&state, presented, address).await?;
    state
        .sessions
        .revoke_token(body.token.expose_secret())
        .await
        .map_err(OAuthFailure::from)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The authorization server metadata (RFC 8414 §2).
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    /// `server.public_url`: the URL the document was fetched under, minus
    /// `/.well-known/oauth-authorization-server`.
    #[schema(example = "https://auth.example.com")]
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Empty: tessera has no authorization endpoint.
    response_types_supported: Vec<&'static str>,
}

/// The OAuth 2.0 authorization server metadata (RFC 8414).
///
/// How OAuth client libraries find the token, introspection, revocation
/// and JWKS endpoints. Every URL is absolute, built on `server.public_url`,
/// which is also the `issuer`.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "oauth_metadata",
    responses(
        (status = 200, description = "The metadata document.", body = ServerMetadata, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
    ),
)]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let base = state.public_url.trim_end_matches('/');
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(ServerMetadata {
            issuer: base.to_owned(),
            token_endpoint: format!("{base}/oauth/token"),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            introspection_endpoint: format!("{base}/auth/introspect"),
            revocation_endpoint: format!("{base}/oauth/revoke"),
            grant_types_supported: vec!["client_credentials", "refresh_token"],
            token_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            introspection_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
            ],
            revocation_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            response_types_supported: Vec::new(),
        })
}
