//! `/auth/sessions`: the caller's live sessions (one per login, i.e. per
//! refresh-token family), and ending one.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::auth::sessions::SessionInfo;
use crate::error::{ApiResult, PROBLEM_JSON};
use crate::http::extract::CurrentUser;
use crate::openapi::Problem;
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list_sessions, end_session))]
pub struct Api;

/// A live session: a login and the refreshes that followed it.
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    /// The session id (the access tokens' `sid`).
    #[schema(format = "uuid")]
    id: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    created_at: String,
    /// The login, or the latest refresh; RFC 3339, UTC.
    #[schema(format = DateTime)]
    last_used_at: String,
    /// The `User-Agent` of the login (at most 256 characters).
    user_agent: Option<String>,
    /// The client address of the login (trusted proxies honoured).
    ip: Option<String>,
    /// Whether the caller's own access token belongs to this session.
    current: bool,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl From<SessionInfo> for SessionResponse {
    fn from(session: SessionInfo) -> Self {
        Self {
            id: session.id,
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used_at),
            user_agent: session.user_agent,
            ip: session.ip,
            current: session.current,
        }
    }
}

/// List the caller's live sessions.
///
/// Sessions not ended and with an unexpired refresh token, most recently
/// used first; `current` marks the one of the caller's token.
#[utoipa::path(
    get,
    path = "/auth/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live sessions.", body = [SessionResponse], headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    caller: CurrentUser,
) -> ApiResult<HttpResponse> {
    let sessions = state
        .sessions
        .list_sessions(caller.user.id, caller.claims.sid)
        .await?;
    let body: Vec<SessionResponse> = sessions.into_iter().map(SessionResponse::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// End a session.
///
/// Its refresh tokens are revoked and its access tokens fail on the
/// logout-sensitive routes; the caller's other sessions go on. A user may
/// end their own sessions, an admin anyone's; another user's session is
/// 404, as if it did not exist.
#[utoipa::path(
    delete,
    path = "/auth/sessions/{id}",
    tag = "sessions",
    operation_id = "end_session",
    params(("id" = String, Path, description = "The session's id.", format = "uuid")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "A service client's token (`user_token_required`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No live session of the caller with that id (`not_found`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn end_session(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let is_admin = caller.is_admin();
    state
        .sessions
        .end_session(caller.user.id, is_admin, id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
