//! `/auth/*`: login, refresh, logout, logout-all, verify, introspect.

use actix_web::http::header::{self, HeaderValue};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::extract::{Authenticated, CurrentUser, check_not_revoked};
use crate::auth::refresh;
use crate::auth::throttle::client_address;
use crate::auth::tokens::{Claims, new_token_id};
use crate::db::{self, login_failures, refresh_tokens, revocations, users};
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::routes::body::{JsonBody, JsonOrFormBody, OptionalJsonBody};
use crate::state::AppState;

/// The OAuth 2.0 token response (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    refresh_expires_in: i64,
}

/// Sent with `Cache-Control: no-store`, as RFC 6749 §5.1 requires.
fn token_response(body: TokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(body)
}

/// A session opened in the database: the user as of that moment and the
/// `jti` stamped while their row was locked.
struct Session {
    user: users::User,
    jti: uuid::Uuid,
}

/// Signs the session's access token and answers with the pair.
fn token_pair(
    state: &AppState,
    session: Session,
    refresh_token: SecretString,
) -> ApiResult<HttpResponse> {
    let user = session.user;
    let role = Role::parse(&user.role).map_err(ApiError::internal)?;
    let (access_token, _) = state
        .keys
        .sign_access_token(session.jti, &user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    Ok(token_response(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.keys.access_ttl_secs(),
        refresh_token: refresh_token.expose_secret().to_owned(),
        refresh_expires_in: state.refresh_ttl.num_seconds(),
    }))
}

/// Reads the user and stamps the access token's `jti`, inside the
/// transaction that holds the user's row lock.
fn open_session(
    conn: &mut db::DbConnection,
    user_id: &str,
) -> diesel::QueryResult<Option<Session>> {
    Ok(users::find(conn, user_id)?.map(|user| Session {
        user,
        jti: new_token_id(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: SecretString,
}

/// A 429 with `Retry-After` in whole seconds (at least 1).
fn throttled(retry_after: Duration) -> ApiError {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    ApiError::new(
        ErrorCode::Throttled,
        format!("Too many failed login attempts; retry in {seconds} seconds."),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// The throttling key of a login attempt: the user, whichever identifier
/// named them, or the identifier itself when no user matches, so unknown
/// names are throttled exactly like real ones.
fn throttle_account(user: Option<&users::User>, identifier: &str) -> String {
    match user {
        Some(user) => format!("user:{}", user.id),
        None => format!("name:{identifier}"),
    }
}

/// `POST /auth/login`: username (or email) and password for a token pair.
///
/// Throttled attempts (per client address, in memory; per account, in the
/// database) get 429 before any password work. Unknown users cost the same
/// hash as wrong passwords and get the same answer.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let limits = &state.throttle;
    let forwarded_for = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let address = client_address(
        req.peer_addr().map(|peer| peer.ip()),
        forwarded_for,
        &limits.trusted_proxies,
    );
    if let Some(wait) = address.and_then(|ip| limits.addresses.retry_after(ip, Instant::now())) {
        return Err(throttled(wait));
    }
    let identifier = body.username.trim().to_lowercase();
    let (max_failures, window) = (limits.account_max_failures, limits.window);
    let (user, account, throttled_until) = db::run(&state.pool, move |conn| {
        let user = if identifier.is_empty() {
            None
        } else {
            users::find_by_login(conn, &identifier)?
        };
        let account = throttle_account(user.as_ref(), &identifier);
        let until =
            login_failures::throttled_until(conn, &account, db::now(), max_failures, window)?;
        Ok::<_, ApiError>((user, account, until))
    })
    .await?;
    if let Some(until) = throttled_until {
        let wait = (until - db::now()).to_std().unwrap_or_default();
        return Err(throttled(wait));
    }
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = SecretString::from(body.password.expose_secret().to_owned());
    let outcome = state
        .hasher
        .verify(body.password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if outcome.matches => user,
        _ => {
            if let Some(ip) = address {
                limits.addresses.record_failure(ip, Instant::now());
            }
            db::run(&state.pool, move |conn| {
                login_failures::record_failure(conn, &account, db::now(), window)
                    .map_err(ApiError::from)
            })
            .await?;
            return Err(ApiError::invalid_credentials());
        }
    };
    // A hash made with an outdated cost is replaced now that the password is
    // known; failing to make one only postpones the upgrade.
    let upgraded_hash = if outcome.needs_rehash {
        state
            .hasher
            .hash(password)
            .await
            .inspect_err(|error| tracing::warn!(%error, "could not upgrade a password hash"))
            .ok()
    } else {
        None
    };
    let (refresh_token, refresh_hash) = refresh::generate();
    let ttl = state.refresh_ttl;
    let session = db::run(&state.pool, move |conn| {
        conn.transaction(|conn| {
            // The password checked above must still be the user's: a password
            // change that committed meanwhile wins, and this login fails.
            if !users::lock_if_password_is(conn, &user.id, &user.password_hash)? {
                return Ok(None);
            }
            if let Some(new_hash) = &upgraded_hash {
                let changes = users::UserChanges {
                    password_hash: Some(new_hash),
                    ..Default::default()
                };
                users::update(conn, &user.id, &changes)?;
                tracing::info!(user_id = %user.id, "password hash upgraded to the configured cost");
            }
            login_failures::reset(conn, &account)?;
            let now = db::now();
            refresh_tokens::insert(
                conn,
                &refresh_tokens::NewRefreshToken {
                    token_hash: &refresh_hash,
                    family_id: &uuid::Uuid::new_v4().to_string(),
                    user_id: &user.id,
                    created_at: now,
                    expires_at: now + ttl,
                },
            )?;
            open_session(conn, &user.id)
        })
        .map_err(ApiError::from)
    })
    .await?
    .ok_or_else(ApiError::invalid_credentials)?;
    token_pair(&state, session, refresh_token)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: SecretString,
}

/// `POST /auth/refresh`: rotates the refresh token; a replayed one revokes
/// its whole family.
pub async fn refresh(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let presented_hash = refresh::hash(body.refresh_token.expose_secret());
    let (successor, successor_hash) = refresh::generate();
    let (ttl, grace) = (state.refresh_ttl, state.refresh_reuse_grace);
    let session = db::run(&state.pool, move |conn| {
        let now = db::now();
        let rotation = refresh_tokens::rotate(
            conn,
            &presented_hash,
            &successor_hash,
            now,
            ttl,
            grace,
            open_session,
        )?;
        Ok::<_, ApiError>(match rotation {
            refresh_tokens::Rotation::Rotated { session, .. } => session,
            refresh_tokens::Rotation::ReuseDetected { user_id } => {
                tracing::warn!(%user_id, "refresh token reuse detected: family revoked");
                None
            }
            refresh_tokens::Rotation::Invalid => None,
        })
    })
    .await?
    .ok_or_else(|| ApiError::invalid_token("The refresh token is invalid, expired or revoked."))?;
    token_pair(&state, session, successor)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

/// `POST /auth/logout`: revokes this access token and, if given, the family
/// of a refresh token of the same user.
pub async fn logout(
    state: web::Data<AppState>,
    current: CurrentUser,
    OptionalJsonBody(body): OptionalJsonBody<LogoutRequest>,
) -> ApiResult<HttpResponse> {
    let refresh_hash = body
        .and_then(|b| b.refresh_token)
        .map(|token| refresh::hash(token.expose_secret()));
    let claims = current.claims;
    let keep_until = state.keys.verifiable_until(&claims).naive_utc();
    db::run(&state.pool, move |conn| {
        revocations::revoke(conn, &claims.jti, &claims.sub, keep_until)?;
        if let Some(hash) = refresh_hash {
            refresh_tokens::revoke_family_of(conn, &hash, &claims.sub)?;
        }
        Ok::<_, ApiError>(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Makes every token of `user_id` issued before now fail on logout-sensitive
/// routes, and deletes all their refresh tokens.
pub fn revoke_all_tokens(conn: &mut db::DbConnection, user_id: &str) -> Result<(), ApiError> {
    // Truncated to the millisecond, the precision of `Claims::issued_at`: a
    // token issued after this call, even within the same millisecond, must
    // not look older than it.
    let now = {
        use chrono::{DurationRound, TimeDelta};
        let now = db::now();
        now.duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now)
    };
    users::update(
        conn,
        user_id,
        &users::UserChanges {
            tokens_valid_after: Some(now),
            ..Default::default()
        },
    )?;
    refresh_tokens::revoke_all_for_user(conn, user_id)?;
    Ok(())
}

/// `POST /auth/logout-all`.
pub async fn logout_all(
    state: web::Data<AppState>,
    current: CurrentUser,
) -> ApiResult<HttpResponse> {
    let claims = current.claims;
    let keep_until = state.keys.verifiable_until(&claims).naive_utc();
    db::run(&state.pool, move |conn| {
        conn.transaction(|conn| revoke_all_tokens(conn, &claims.sub))?;
        // The caller's own token too, even if issued within the same millisecond.
        revocations::revoke(conn, &claims.jti, &claims.sub, keep_until)?;
        Ok::<_, ApiError>(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /auth/verify`: stateless; for gateways' forward-auth.
pub async fn verify(Authenticated(claims): Authenticated) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Ok(value) = HeaderValue::from_str(&claims.sub) {
        response.insert_header(("X-User-Id", value));
    }
    response.insert_header(("X-User-Role", claims.role.as_str()));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response.json(claims)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    token: SecretString,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "RFC 7662 allows the hint; every token type is tried anyway"
    )]
    token_type_hint: Option<String>,
}

/// The RFC 7662 introspection response.
#[derive(Serialize, Default)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

impl Introspection {
    fn of_access_token(claims: Claims) -> Self {
        Self {
            active: true,
            token_type: Some("access_token"),
            sub: Some(claims.sub),
            username: Some(claims.username),
            role: Some(claims.role),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            jti: Some(claims.jti),
        }
    }
}

/// `POST /auth/introspect`: whether a token (access or refresh) is active,
/// revocation included. Anything invalid is just `{"active": false}`.
pub async fn introspect(
    state: web::Data<AppState>,
    _caller: CurrentUser,
    JsonOrFormBody(body): JsonOrFormBody<IntrospectRequest>,
) -> ApiResult<HttpResponse> {
    let token = body.token.expose_secret();
    let verified = state.keys.verify(token).ok();
    let refresh_hash = refresh::hash(token);
    let result = db::run(&state.pool, move |conn| {
        if let Some(claims) = verified {
            return match check_not_revoked(conn, &claims) {
                Ok(_) => Ok(Introspection::of_access_token(claims)),
                Err(error) if error.code() == crate::error::ErrorCode::InvalidToken => {
                    Ok(Introspection::default())
                }
                Err(error) => Err(error),
            };
        }
        let now = db::now();
        Ok(match refresh_tokens::find(conn, &refresh_hash)? {
            Some(row) if row.rotated_at.is_none() && row.expires_at > now => Introspection {
                active: true,
                token_type: Some("refresh_token"),
                sub: Some(row.user_id),
                exp: Some(row.expires_at.and_utc().timestamp()),
                iat: Some(row.created_at.and_utc().timestamp()),
                ..Default::default()
            },
            _ => Introspection::default(),
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(result))
}
