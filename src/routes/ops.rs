//! Operational routes: liveness, readiness, the JWKS.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long readiness waits for the database before answering 503.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process answers; no database involved.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when a database round trip succeeds in time, else 503.
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let pool = state.pool.clone();
    let check = actix_web::rt::task::spawn_blocking(move || {
        let mut conn = pool
            .get_timeout(READINESS_TIMEOUT)
            .map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut *conn)
            .map_err(|e| e.to_string())
    });
    match tokio::time::timeout(READINESS_TIMEOUT, check).await {
        Ok(Ok(Ok(_))) => Ok(HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"}))),
        Ok(Ok(Err(cause))) => Err(ApiError::unavailable(format!("readiness: {cause}"))),
        Ok(Err(cause)) => Err(ApiError::unavailable(format!("readiness task: {cause}"))),
        Err(_) => Err(ApiError::unavailable("readiness: database check timed out")),
    }
}

/// How long validators may cache the JWKS. A key rotation publishes the new
/// key at least this long before signing with it (see SECURITY.md).
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// `GET /.well-known/jwks.json`: every public verification key (the signing
/// key and retired ones still accepted); none under HS256, whose secret must
/// never be published.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .json(json!({"keys": state.keys.jwks()}))
}
