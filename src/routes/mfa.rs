//! `/auth/mfa/totp*`: TOTP enrolment, confirmation and removal. The login's
//! second step, `POST /auth/mfa/verify`, is in `auth`, beside the login.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::auth::mfa::RemovalProof;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON};
use crate::http::body::{JsonBody, not_null};
use crate::http::extract::CurrentUser;
use crate::openapi::Problem;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(start_totp, confirm_totp, remove_totp))]
pub struct Api;

/// The account's password, asked again before its sign-in changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpStartRequest {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// What an authenticator app needs: type the secret or scan the URI.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentResponse {
    /// The shared secret, base32 (RFC 4648), 160 bits.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: String,
    /// `otpauth://totp/...` (SHA-1, 6 digits, 30 s), for a QR code.
    #[schema(
        example = "otpauth://totp/tessera:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=tessera"
    )]
    otpauth_uri: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

/// Shown once: each code signs in once in place of a TOTP code.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    #[schema(example = json!(["k7dm-3qpa-x9rt-2bnw"]))]
    recovery_codes: Vec<String>,
}

/// A current code, or the password, to remove TOTP (its schema is
/// [`TotpRemoveSchema`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpRemoveRequest {
    #[serde(default, deserialize_with = "not_null")]
    code: Option<SecretString>,
    #[serde(default, deserialize_with = "not_null")]
    password: Option<SecretString>,
}

/// A current TOTP code, or the account's password.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = TotpRemoveRequest)]
pub enum TotpRemoveSchema {
    Code(TotpCodeSchema),
    Password(TotpPasswordSchema),
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeSchema {
    #[schema(example = "123456")]
    code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpPasswordSchema {
    #[schema(format = Password)]
    password: String,
}

fn no_store(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    response
}

/// Start a TOTP enrolment.
///
/// A new secret, not active until `POST /auth/mfa/totp/confirm` gets a code
/// made from it; starting again replaces an unconfirmed one. The password
/// is asked again. The secret is stored encrypted (`mfa.encryption_key_file`).
#[utoipa::path(
    post,
    path = "/auth/mfa/totp",
    tag = "mfa",
    operation_id = "start_totp",
    security(("bearer" = [])),
    request_body = TotpStartRequest,
    responses(
        (status = 200, description = "The secret and its otpauth URI.", body = TotpEnrolmentResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 400, description = "Malformed JSON (`parse_error`), or a wrong password (`invalid_current_password`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "TOTP is off on this server (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "TOTP is already active (`conflict`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`password` is missing (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn start_totp(
    state: web::Data<AppState>,
    caller: CurrentUser,
    JsonBody(body): JsonBody<TotpStartRequest>,
) -> ApiResult<HttpResponse> {
    let enrolment = state.mfa.start_totp(&caller.user.id, body.password).await?;
    Ok(no_store(HttpResponse::Ok()).json(TotpEnrolmentResponse {
        secret: enrolment.secret.expose_secret().to_owned(),
        otpauth_uri: enrolment.otpauth_uri.expose_secret().to_owned(),
    }))
}

/// Confirm the TOTP enrolment with a first code.
///
/// Activates TOTP: from now on a login needs a code after the password.
/// Answers the 10 recovery codes, shown this once (only their hashes are
/// kept); each signs in once in place of a TOTP code.
#[utoipa::path(
    post,
    path = "/auth/mfa/totp/confirm",
    tag = "mfa",
    operation_id = "confirm_totp",
    security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 200, description = "TOTP is active; the recovery codes.", body = RecoveryCodesResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "TOTP is off on this server (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No enrolment was started (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "TOTP is already active (`conflict`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`code` is missing, wrong, expired or already used (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn confirm_totp(
    state: web::Data<AppState>,
    caller: CurrentUser,
    JsonBody(body): JsonBody<TotpCodeRequest>,
) -> ApiResult<HttpResponse> {
    let recovery_codes = state.mfa.confirm_totp(&caller.user.id, body.code).await?;
    Ok(no_store(HttpResponse::Ok()).json(RecoveryCodesResponse { recovery_codes }))
}

/// Remove TOTP.
///
/// With a current code or the password; the recovery codes go too, and a
/// login needs only the password again.
#[utoipa::path(
    delete,
    path = "/auth/mfa/totp",
    tag = "mfa",
    operation_id = "remove_totp",
    security(("bearer" = [])),
    request_body = TotpRemoveSchema,
    responses(
        (status = 204, description = "TOTP and the recovery codes are gone."),
        (status = 400, description = "Malformed JSON (`parse_error`), or a wrong password (`invalid_current_password`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "TOTP is off on this server (`permission_denied`), or a service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "TOTP is not active (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "Neither or both of `code` and `password`, or a wrong code (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn remove_totp(
    state: web::Data<AppState>,
    caller: CurrentUser,
    JsonBody(body): JsonBody<TotpRemoveRequest>,
) -> ApiResult<HttpResponse> {
    let proof = match (body.code, body.password) {
        (Some(code), None) => RemovalProof::Code(code),
        (None, Some(password)) => RemovalProof::Password(password),
        _ => {
            return Err(ApiError::validation_field(
                "code",
                "Give either a current code or the password.",
            ));
        }
    };
    state.mfa.remove_totp(&caller.user.id, proof).await?;
    Ok(HttpResponse::NoContent().finish())
}
