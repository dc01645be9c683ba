//! The OAuth 2.0 token response (RFC 6749 §5.1), shared by every route that
//! issues tokens: the password and MFA logins, the exchange, the refresh,
//! the passkey login and `/oauth/token`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::sessions::TokenPair;

/// The OAuth 2.0 token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token, a JWT.
    access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// The access token's lifetime in seconds (`jwt.access_ttl_secs`).
    #[schema(example = 900)]
    expires_in: i64,
    /// An opaque refresh token; each use rotates it.
    refresh_token: String,
    /// The refresh token's lifetime in seconds (`jwt.refresh_ttl_secs`).
    #[schema(example = 1209600)]
    refresh_expires_in: i64,
}

/// A 200 that no cache may keep, as RFC 6749 §5.1 requires of a response
/// carrying tokens.
pub fn no_store() -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    response
}

/// A token pair as the token response, sent with `Cache-Control: no-store`.
pub fn token_response(pair: TokenPair) -> HttpResponse {
    no_store().json(TokenResponse {
        access_token: pair.access_token,
        token_type: "Bearer",
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token.expose_secret().to_owned(),
        refresh_expires_in: pair.refresh_expires_in,
    })
}
