//! The bare reference handlers for `bench/load.sh`: `GET /verify` checks the
//! `Authorization: Bearer <jwt>` token exactly as tessera does (HS256 pinned,
//! issuer, audience, 30 s leeway, `exp`, `nbf`, `iat`, `iss`, `aud` and `sub`
//! required) and answers its `sub` as text; anything else is 401. `GET /hello`
//! answers `{"status":"ok"}` as JSON, as tessera's `/healthz` does: the
//! ceiling of a route that does nothing. No middleware, no logging, no metrics.
//!
//! Environment: `REFERENCE_BIND` (default 127.0.0.1:8090), `REFERENCE_SECRET`
//! (the HS256 key, required), `REFERENCE_ISSUER` and `REFERENCE_AUDIENCE`
//! (default `tessera`), `REFERENCE_WORKERS` (default: one per core).

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

/// The claims tessera's tokens carry, deserialized as tessera does.
#[derive(Deserialize)]
#[allow(dead_code, reason = "deserialized like tessera's claims, read in part")]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    role: String,
    username: String,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

async fn verify(req: HttpRequest, verifier: web::Data<Verifier>) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token.map(|token| decode::<Claims>(token, &verifier.key, &verifier.validation)) {
        Some(Ok(data)) => HttpResponse::Ok().body(data.claims.sub),
        _ => HttpResponse::Unauthorized().finish(),
    }
}

async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var("REFERENCE_SECRET")
        .map_err(|_| std::io::Error::other("REFERENCE_SECRET (the HS256 key) is required"))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.leeway = 30;
    validation.reject_tokens_expiring_in_less_than = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_issuer(&[env("REFERENCE_ISSUER", "tessera")]);
    validation.set_audience(&[env("REFERENCE_AUDIENCE", "tessera")]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    let verifier = web::Data::new(Verifier {
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
    });
    let workers = match std::env::var("REFERENCE_WORKERS") {
        Ok(value) => value
            .parse()
            .map_err(|_| std::io::Error::other("REFERENCE_WORKERS must be a number"))?,
        Err(_) => std::thread::available_parallelism().map_or(2, usize::from),
    };
    HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/verify", web::get().to(verify))
            .route("/hello", web::get().to(hello))
    })
    .workers(workers)
    .bind(env("REFERENCE_BIND", "127.0.0.1:8090"))?
    .run()
    .await
}
