//! `/auth/passkeys*`: registering, listing and removing passkeys (bearer),
//! and the passwordless login with a discoverable passkey (no auth).
//!
//! Each ceremony is two calls: `start` answers a `ceremony_id` and the
//! `publicKey` options for `navigator.credentials.create()` or `.get()`
//! (binary members base64url-encoded, as `PublicKeyCredential.toJSON()`
//! writes them), and `finish` takes the `ceremony_id` and the credential.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};
use webauthn_rs_proto::{PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions};

use crate::auth::passkeys::MAX_NAME_CHARS;
use crate::db::passkeys::StoredPasskey;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON};
use crate::http::body::JsonBody;
use crate::http::extract::{CurrentUser, RequestOrigin};
use crate::http::token::{TokenResponse, token_response};
use crate::openapi::Problem;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    start_registration,
    finish_registration,
    list,
    delete,
    start_login,
    finish_login
))]
pub struct Api;

/// The name a passkey gets when its registration names none.
const DEFAULT_NAME: &str = "Passkey";

/// RFC 3339 UTC with a `Z`.
fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A registered passkey.
#[derive(Serialize, ToSchema)]
pub struct PasskeyResponse {
    #[schema(format = "uuid")]
    id: String,
    #[schema(example = "MacBook Touch ID")]
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// The last passwordless login with it; `null` until then.
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

impl From<StoredPasskey> for PasskeyResponse {
    fn from(stored: StoredPasskey) -> Self {
        Self {
            id: stored.id,
            name: stored.name,
            created_at: rfc3339(stored.created_at),
            last_used_at: stored.last_used_at.map(rfc3339),
        }
    }
}

/// A registration's first half.
#[derive(Serialize, ToSchema)]
pub struct RegistrationOptionsResponse {
    /// Names this ceremony in `POST /auth/passkeys/register/finish`; valid
    /// for 5 minutes, once.
    ceremony_id: String,
    /// `PublicKeyCredentialCreationOptions` for `navigator.credentials.create()`
    /// (WebAuthn Level 3 JSON: `PublicKeyCredential.parseCreationOptionsFromJSON`).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: PublicKeyCredentialCreationOptions,
}

/// A registration's second half.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinishRequest {
    /// From `POST /auth/passkeys/register/start`.
    ceremony_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.create()` gave,
    /// as its `toJSON()` writes it.
    #[schema(value_type = Object)]
    credential: RegisterPublicKeyCredential,
    /// A label for the list; `Passkey` if absent. 1 to 64 characters.
    #[serde(default)]
    #[schema(example = "MacBook Touch ID")]
    name: Option<String>,
}

/// A login's first half.
#[derive(Serialize, ToSchema)]
pub struct LoginOptionsResponse {
    /// Names this ceremony in `POST /auth/passkeys/login/finish`; valid for
    /// 5 minutes, once.
    ceremony_id: String,
    /// `PublicKeyCredentialRequestOptions` for `navigator.credentials.get()`:
    /// no `allowCredentials`, the authenticator offers its discoverable
    /// passkeys for this RP id.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: PublicKeyCredentialRequestOptions,
}

/// A login's second half.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFinishRequest {
    /// From `POST /auth/passkeys/login/start`.
    ceremony_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.get()` gave, as
    /// its `toJSON()` writes it (with `response.userHandle`).
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
}

fn no_store(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    response
}

/// A passkey's name: trimmed, 1 to 64 characters, no control characters.
fn passkey_name(name: Option<String>) -> ApiResult<String> {
    let Some(name) = name else {
        return Ok(DEFAULT_NAME.to_owned());
    };
    let name = name.trim();
    let length = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&length) || name.chars().any(char::is_control) {
        return Err(ApiError::validation_field(
            "name",
            format!("1 to {MAX_NAME_CHARS} characters, without control characters."),
        ));
    }
    Ok(name.to_owned())
}

/// Start registering a passkey.
///
/// Answers the options for `navigator.credentials.create()`: user
/// verification required, a discoverable credential required (the login
/// finds the account through it), the caller's
/// registered passkeys excluded.
#[utoipa::path(
    post,
    path = "/auth/passkeys/register/start",
    tag = "passkeys",
    operation_id = "start_passkey_registration",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ceremony id and the creation options.", body = RegistrationOptionsResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn start_registration(
    state: web::Data<AppState>,
    caller: CurrentUser,
) -> ApiResult<HttpResponse> {
    let start = state
        .passkeys
        .start_registration(&caller.user.id, &caller.user.username)
        .await?;
    Ok(
        no_store(HttpResponse::Ok()).json(RegistrationOptionsResponse {
            ceremony_id: start.ceremony_id,
            public_key: start.options.public_key,
        }),
    )
}

/// Finish registering a passkey.
///
/// Verifies the authenticator's response against the ceremony (its
/// challenge, `webauthn.origin`, `webauthn.rp_id`, user verification) and
/// stores the passkey. The ceremony is spent, whatever the outcome.
#[utoipa::path(
    post,
    path = "/auth/passkeys/register/finish",
    tag = "passkeys",
    operation_id = "finish_passkey_registration",
    security(("bearer" = [])),
    request_body = RegistrationFinishRequest,
    responses(
        (status = 201, description = "The passkey is registered.", body = PasskeyResponse),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "This credential is already registered (`conflict`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A missing or malformed field, an unknown, used, expired or another user's `ceremony_id`, a `credential` that does not verify, or a bad `name` (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn finish_registration(
    state: web::Data<AppState>,
    caller: CurrentUser,
    JsonBody(body): JsonBody<RegistrationFinishRequest>,
) -> ApiResult<HttpResponse> {
    let name = passkey_name(body.name)?;
    let stored = state
        .passkeys
        .finish_registration(&caller.user.id, body.ceremony_id, body.credential, name)
        .await?;
    Ok(HttpResponse::Created().json(PasskeyResponse::from(stored)))
}

/// List the caller's passkeys.
#[utoipa::path(
    get,
    path = "/auth/passkeys",
    tag = "passkeys",
    operation_id = "list_passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's passkeys, oldest first.", body = Vec<PasskeyResponse>),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn list(state: web::Data<AppState>, caller: CurrentUser) -> ApiResult<HttpResponse> {
    let passkeys = state.passkeys.list(&caller.user.id).await?;
    Ok(HttpResponse::Ok().json(
        passkeys
            .into_iter()
            .map(PasskeyResponse::from)
            .collect::<Vec<_>>(),
    ))
}

/// Remove one of the caller's passkeys.
///
/// It can no longer sign in. Another user's passkey is not found.
#[utoipa::path(
    delete,
    path = "/auth/passkeys/{id}",
    tag = "passkeys",
    operation_id = "delete_passkey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id.", format = "uuid")),
    responses(
        (status = 204, description = "The passkey is gone."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "The caller has no passkey of that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.passkeys.delete(&caller.user.id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Start a passwordless login with a passkey.
///
/// Answers the options for `navigator.credentials.get()`, with no
/// `allowCredentials`: the authenticator offers its discoverable passkeys
/// for this RP id, and the one chosen names its account.
#[utoipa::path(
    post,
    path = "/auth/passkeys/login/start",
    tag = "passkeys",
    operation_id = "start_passkey_login",
    responses(
        (status = 200, description = "The ceremony id and the request options.", body = LoginOptionsResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn start_login(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let start = state.passkeys.start_login().await?;
    Ok(no_store(HttpResponse::Ok()).json(LoginOptionsResponse {
        ceremony_id: start.ceremony_id,
        public_key: start.options.public_key,
    }))
}

/// Finish a passwordless login with a passkey.
///
/// Verifies the assertion against the ceremony (spent, whatever the
/// outcome) and the passkey its credential id names, whose owner the user
/// handle must be; then answers a token pair saying `amr`
/// `["hwk","user"]` and `aal` `aal2` (a passkey requires user verification:
/// no second factor is asked). Every refusal is the same 401, and counts
/// towards the address throttle.
#[utoipa::path(
    post,
    path = "/auth/passkeys/login/finish",
    tag = "passkeys",
    operation_id = "finish_passkey_login",
    request_body = LoginFinishRequest,
    responses(
        (status = 200, description = "A token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "An unknown, used or expired ceremony, an unknown or removed passkey, an assertion that does not verify (another origin or RP id, a bad signature), or a disabled account, indistinguishably (`invalid_credentials`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "An unverified email when `auth.require_verified_email` is on (`email_not_verified`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or malformed (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins from this address (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a login may be tried again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn finish_login(
    state: web::Data<AppState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<LoginFinishRequest>,
) -> ApiResult<HttpResponse> {
    let pair = state
        .sessions
        .login_with_passkey(&state.passkeys, body.ceremony_id, &body.credential, origin)
        .await?;
    Ok(token_response(pair))
}
