//! `/auth/password-reset*`, `/auth/verify-email*`: account recovery and
//! email verification over JSON. tessera's own HTML pages for the same
//! links are in `pages`.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::domain::{Email, Password};
use crate::error::{ApiError, ApiResult, PROBLEM_JSON};
use crate::http::body::JsonBody;
use crate::http::extract::{ClientAddress, CurrentUser};
use crate::openapi::Problem;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(
    request_password_reset,
    confirm_password_reset,
    verify_email,
    resend_verification
))]
pub struct Api;

/// Where to send a reset link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = Email, example = "alice@example.com")]
    email: String,
}

/// Ask for a password-reset mail.
///
/// Always 202 with an empty body, in about the same time, whether the
/// address belongs to an account, to a disabled one, to none, or is
/// throttled: nobody learns which addresses have accounts. A known address
/// gets a mail with a single-use link (`auth.reset_ttl_secs`, 30 minutes by
/// default). Throttled per address (`auth.reset_max_requests`) and per
/// client address.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "recovery",
    operation_id = "request_password_reset",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted: a mail goes out if the address has an active account."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`email` is missing or no address at all (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn request_password_reset(
    state: web::Data<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<PasswordResetRequest>,
) -> ApiResult<HttpResponse> {
    let email = Email::parse(&body.email)
        .map_err(|message| ApiError::validation_field("email", message))?;
    state
        .recovery
        .request_password_reset(email.as_str(), client);
    Ok(HttpResponse::Accepted().finish())
}

/// A reset token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirmation {
    /// The token of the reset link.
    #[schema(value_type = String)]
    token: SecretString,
    /// 8 to 128 characters, not a common password.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    new_password: SecretString,
}

/// Set a new password with a reset token.
///
/// The token works once and expires; every earlier token of the user
/// (access, refresh, legacy) is revoked, as a password change does, and the
/// email counts as verified.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "recovery",
    operation_id = "confirm_password_reset",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 204, description = "The password is changed; the user's earlier tokens are revoked."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The token is unknown, used, expired, or of a disabled account (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, or the new password breaks the rules (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn confirm_password_reset(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<PasswordResetConfirmation>,
) -> ApiResult<HttpResponse> {
    let password = Password::parse(body.new_password)
        .map_err(|message| ApiError::validation_field("new_password", message))?;
    state
        .recovery
        .confirm_password_reset(body.token, password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A verification or email-change token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    #[schema(value_type = String)]
    token: SecretString,
}

/// Confirm an email address.
///
/// A verification token marks the account's email verified; an
/// email-change token replaces the email with the confirmed new one. Each
/// works once.
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = "recovery",
    operation_id = "verify_email",
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "Confirmed."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The token is unknown, used or expired, or the address changed since (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The new address was taken by another account meanwhile (`conflict`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`token` is missing (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn verify_email(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<VerifyEmailRequest>,
) -> ApiResult<HttpResponse> {
    state.recovery.verify_email(body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a new verification mail.
///
/// For the caller's unverified email, or their pending new address; the
/// earlier link stops working.
#[utoipa::path(
    post,
    path = "/auth/verify-email/resend",
    tag = "recovery",
    operation_id = "resend_verification",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is on its way."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`): this route is for users.", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The email is verified and no change is pending (`conflict`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn resend_verification(
    state: web::Data<AppState>,
    caller: CurrentUser,
) -> ApiResult<HttpResponse> {
    state.recovery.resend_verification(caller.user.id).await?;
    Ok(HttpResponse::Accepted().finish())
}
