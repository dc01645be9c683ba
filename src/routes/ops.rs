//! Operational routes: liveness, readiness, the JWKS.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::auth::keys::PublishedJwk;
use crate::error::{ApiError, ApiResult, PROBLEM_JSON};
use crate::openapi::{JwkSchema, Problem};
use crate::state::AppState;

/// This module's operations, for the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(jwks, healthz, metrics, readyz))]
pub struct Api;

/// How long readiness waits for the database before answering 503.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The process answers.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// The process answers and its database too.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(value_type = String, example = "ok")]
    database: &'static str,
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers; no database involved.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    operation_id = "healthz",
    responses((status = 200, description = "Alive.", body = Liveness)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Prometheus metrics in the text exposition format: requests and latency
/// by route template and status, logins by outcome, tokens issued,
/// refreshes and detected reuse, throttled logins, Argon2 queue depth and
/// hash time, database pool size, use and wait time, and the accounts still
/// holding an imported Django password hash.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format (version 0.0.4).", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    count_legacy_hashes(&state).await;
    let text = state
        .metrics
        .render(state.hasher.in_flight(), state.db.pool_state());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// Refreshes the legacy-hash gauge, at most once a minute and only if a
/// pooled connection is idle right now: a busy or unreachable database
/// leaves the last count in place rather than delaying the scrape, and no
/// scrape rate turns into a stream of table scans.
async fn count_legacy_hashes(state: &AppState) {
    if !state
        .metrics
        .legacy_count_due(chrono::Utc::now().timestamp())
    {
        return;
    }
    if let Some(count) = state
        .db
        .run_if_idle(crate::db::users::count_legacy_hashes)
        .await
    {
        state.metrics.set_legacy_hashes(count);
    }
}

/// Readiness: whether a database round trip succeeds within 2 seconds.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready: the database answers.", body = Readiness),
        (status = 503, description = "The database is unreachable or too slow (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state
        .db
        .ping(READINESS_TIMEOUT)
        .await
        .map_err(|cause| ApiError::unavailable(format!("readiness: {cause}")))?;
    Ok(HttpResponse::Ok().json(Readiness {
        database: "ok",
        status: "ok",
    }))
}

/// How long validators may cache the JWKS. A key rotation publishes the new
/// key at least this long before signing with it (see SECURITY.md).
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Serialize, ToSchema)]
pub struct Jwks<'a> {
    /// Empty under HS256.
    #[schema(value_type = Vec<JwkSchema>)]
    keys: &'a [PublishedJwk],
}

/// The public keys that verify tessera's tokens (JWKS).
///
/// Every public verification key: the signing key and retired ones still
/// accepted. None under HS256, whose secret must never be published.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "ops",
    operation_id = "jwks",
    responses(
        (status = 200, description = "The key set.", body = Jwks, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
    ),
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .json(Jwks {
            keys: state.keys.jwks(),
        })
}
