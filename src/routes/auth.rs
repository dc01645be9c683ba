//! `/auth/*`: login, legacy-key exchange, refresh, logout, logout-all,
//! verify, introspect.

use actix_web::http::header::{self, HeaderValue};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use diesel::Connection;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::django;
use crate::auth::extract::{self, Authenticated, CurrentUser, check_not_revoked};
use crate::auth::refresh;
use crate::auth::throttle::client_address;
use crate::auth::tokens::{Claims, new_token_id};
use crate::db::{self, legacy_tokens, login_failures, refresh_tokens, revocations, users};
use crate::domain::Role;
use crate::error::{ApiError, ApiResult, ErrorCode, PROBLEM_JSON};
use crate::openapi::{ClaimsSchema, Problem, RoleSchema};
use crate::routes::body::{JsonBody, JsonOrFormBody, OptionalJsonBody, not_null};
use crate::state::AppState;

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
/// transaction that holds the user's row lock. A disabled account gets no
/// session.
fn open_session(
    conn: &mut db::DbConnection,
    user_id: &str,
) -> diesel::QueryResult<Option<Session>> {
    Ok(users::find(conn, user_id)?
        .filter(|user| user.is_active)
        .map(|user| Session {
            user,
            jti: new_token_id(),
        }))
}

/// Stores the first refresh token of a new family and opens the session;
/// for a login or a legacy-key exchange, inside its transaction.
fn start_session(
    conn: &mut db::DbConnection,
    user_id: &str,
    refresh_hash: &str,
    ttl: chrono::TimeDelta,
) -> diesel::QueryResult<Option<Session>> {
    let now = db::now();
    refresh_tokens::insert(
        conn,
        &refresh_tokens::NewRefreshToken {
            token_hash: refresh_hash,
            family_id: &uuid::Uuid::new_v4().to_string(),
            user_id,
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    open_session(conn, user_id)
}

/// The client address throttling counts failures against (trusting
/// `X-Forwarded-For` only from the configured proxies), or 429 when that
/// address is throttled: checked before any password or key work.
fn unthrottled_address(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<std::net::IpAddr>, ApiError> {
    let forwarded_for = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let address = client_address(
        req.peer_addr().map(|peer| peer.ip()),
        forwarded_for,
        &state.throttle.trusted_proxies,
    );
    let retry = address.and_then(|ip| state.throttle.addresses.retry_after(ip, Instant::now()));
    if let Some(wait) = retry {
        state.metrics.throttled("address");
        return Err(throttled(wait));
    }
    Ok(address)
}

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username or the email address, in any case.
    #[schema(example = "alice")]
    username: String,
    #[schema(value_type = String, format = Password, example = "correct horse battery")]
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

/// Log in: a username (or email) and password for a token pair.
///
/// Throttled attempts (per client address, in memory; per account, in the
/// database) get 429 before any password work. Unknown users cost the same
/// hash as wrong passwords and get the same answer.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "Unknown user or wrong password, indistinguishably (`invalid_credentials`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins for this account or from this address (`throttled`), even with the right password.", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a login may be tried again."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let limits = &state.throttle;
    let address =
        unthrottled_address(&req, &state).inspect_err(|_| state.metrics.login("throttled"))?;
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
        state.metrics.login("throttled");
        state.metrics.throttled("account");
        return Err(throttled(wait));
    }
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = SecretString::from(body.password.expose_secret().to_owned());
    let outcome = state
        .hasher
        .verify(body.password, stored_hash)
        .await
        .map_err(ApiError::internal)?;
    // A disabled account (imported from Django with `is_active = false`)
    // answers exactly like a wrong password, after the same work.
    let user = match user {
        Some(user) if outcome.matches && user.is_active => user,
        _ => {
            if let Some(ip) = address {
                limits.addresses.record_failure(ip, Instant::now());
            }
            db::run(&state.pool, move |conn| {
                login_failures::record_failure(conn, &account, db::now(), window)
                    .map_err(ApiError::from)
            })
            .await?;
            state.metrics.login("invalid_credentials");
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
    let legacy_format = upgraded_hash
        .as_ref()
        .and_then(|_| django::algorithm(&user.password_hash));
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
            start_session(conn, &user.id, &refresh_hash, ttl)
        })
        .map_err(ApiError::from)
    })
    .await?
    .ok_or_else(ApiError::invalid_credentials)?;
    if let Some(format) = legacy_format {
        state.metrics.legacy_hash_upgraded(format);
    }
    state.metrics.login("success");
    state.metrics.token_pair_issued();
    token_pair(&state, session, refresh_token)
}

/// A legacy DRF key, when it is not sent in the `Authorization` header.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The 40-hex-digit key of DRF's `authtoken_token`; anything else is
    /// refused like an unknown key (401 `invalid_token`).
    #[schema(value_type = String, example = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b")]
    token: SecretString,
}

/// Exchange a legacy DRF token for a token pair, once.
///
/// For clients of the Django REST Framework service tessera replaces: the
/// key DRF's `TokenAuthentication` issued (imported by `tessera import
/// django`), sent as `Authorization: Token <key>` or as `{"token": "<key>"}`,
/// becomes a normal token pair without a password (`Bearer <key>` works
/// too, for projects that renamed DRF's keyword). The key is retired by its
/// first exchange, and by a password change or "log out everywhere". On this
/// route alone the `Token` scheme carries a legacy key, not a JWT. After
/// `auth.legacy_exchange_until` every key is refused.
#[utoipa::path(
    post,
    path = "/auth/exchange",
    tag = "auth",
    operation_id = "exchange",
    request_body(content = Option<ExchangeRequest>, content_type = "application/json", description = "The key, unless it is sent as `Authorization: Token <key>`."),
    security((), ("drf_token" = [])),
    responses(
        (status = 200, description = "A token pair; the legacy key is now retired.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No key was sent (`not_authenticated`), or it is unknown, retired, of a disabled account, or the exchange has closed (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "An unknown or mistyped field (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many failed logins or exchanges from this address (`throttled`).", body = Problem, content_type = PROBLEM_JSON, headers(
            ("Retry-After" = i64, description = "Seconds until a new attempt may be made."),
        )),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn exchange(
    req: HttpRequest,
    state: web::Data<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<ExchangeRequest>,
) -> ApiResult<HttpResponse> {
    let key = match extract::presented_token(&req)? {
        Some(key) => SecretString::from(key.to_owned()),
        None => body
            .map(|body| body.token)
            .ok_or_else(ApiError::not_authenticated)?,
    };
    let refused =
        || ApiError::invalid_token("The legacy token is invalid or has already been exchanged.");
    if state
        .legacy_exchange_until
        .is_some_and(|until| chrono::Utc::now() >= until)
    {
        state.metrics.legacy_exchange("closed");
        return Err(ApiError::invalid_token(
            "Legacy token exchange has ended; log in with a username and password.",
        ));
    }
    let address = unthrottled_address(&req, &state)?;
    let limits = &state.throttle;
    let key_hash =
        django::is_drf_key(key.expose_secret()).then(|| refresh::hash(key.expose_secret()));
    let (refresh_token, refresh_hash) = refresh::generate();
    let ttl = state.refresh_ttl;
    let session = match key_hash {
        None => None,
        Some(key_hash) => {
            db::run(&state.pool, move |conn| {
                let exchanged = conn.transaction(|conn| {
                    // Retire first (the write claims the key), then lock the
                    // owner's row as a login or a password change does.
                    let Some(user_id) = legacy_tokens::retire(conn, &key_hash, db::now())? else {
                        return Ok(None);
                    };
                    if !users::lock(conn, &user_id)? {
                        return Ok(None);
                    }
                    // A disabled account gets no session; its key is left
                    // as it was.
                    start_session(conn, &user_id, &refresh_hash, ttl)?
                        .map(Some)
                        .ok_or(diesel::result::Error::RollbackTransaction)
                });
                match exchanged {
                    Err(diesel::result::Error::RollbackTransaction) => Ok(None),
                    other => other.map_err(ApiError::from),
                }
            })
            .await?
        }
    };
    let Some(session) = session else {
        if let Some(ip) = address {
            limits.addresses.record_failure(ip, Instant::now());
        }
        state.metrics.legacy_exchange("invalid");
        return Err(refused());
    };
    tracing::info!(user_id = %session.user.id, "legacy DRF token exchanged and retired");
    state.metrics.legacy_exchange("exchanged");
    state.metrics.token_pair_issued();
    token_pair(&state, session, refresh_token)
}

/// A refresh token to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// Refresh: rotates the refresh token into a new token pair.
///
/// The presented refresh token stops working; presenting it again (reuse)
/// revokes its whole family.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair.", body = TokenResponse, headers(
            ("Cache-Control" = String, description = "`no-store`"),
            ("Pragma" = String, description = "`no-cache`"),
        )),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The refresh token is unknown, expired, revoked or reused (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let presented_hash = refresh::hash(body.refresh_token.expose_secret());
    let (successor, successor_hash) = refresh::generate();
    let (ttl, grace) = (state.refresh_ttl, state.refresh_reuse_grace);
    let (session, outcome) = db::run(&state.pool, move |conn| {
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
            refresh_tokens::Rotation::Rotated { session, .. } => (session, "rotated"),
            refresh_tokens::Rotation::ReuseDetected { user_id } => {
                tracing::warn!(%user_id, "refresh token reuse detected: family revoked");
                (None, "reuse_detected")
            }
            refresh_tokens::Rotation::Invalid => (None, "invalid"),
        })
    })
    .await?;
    state.metrics.refresh(outcome);
    let session = session.ok_or_else(|| {
        ApiError::invalid_token("The refresh token is invalid, expired or revoked.")
    })?;
    state.metrics.token_pair_issued();
    token_pair(&state, session, successor)
}

/// What else to revoke at logout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// A refresh token of the same user, whose family is revoked too.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    refresh_token: Option<SecretString>,
}

/// Log out: revokes this access token.
///
/// If the body names a refresh token of the same user, that token's family
/// is revoked too. The body is optional.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    request_body(content = Option<LogoutRequest>, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out."),
        (status = 400, description = "The body is not well-formed JSON (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "An unknown or mistyped field (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
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
/// routes, deletes all their refresh tokens and retires their legacy DRF
/// keys.
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
    legacy_tokens::retire_all_for_user(conn, user_id, now)?;
    Ok(())
}

/// Log out everywhere.
///
/// Every token of the user issued before now stops working on the
/// logout-sensitive routes, and all their refresh tokens are revoked.
/// Stateless routes accept the older access tokens until they expire.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    operation_id = "logout_all",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every earlier token of the user is revoked."),
        (status = 401, description = "No token (`not_authenticated`), or an invalid, expired or revoked one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
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

/// Verify the access token: its claims, statelessly.
///
/// Checks the signature and claims only, with no database read, so a token
/// revoked by logout still verifies here until it expires. Usable as a
/// gateway's forward-auth target: the user's id and role are also headers.
#[utoipa::path(
    get,
    path = "/auth/verify",
    tag = "auth",
    operation_id = "verify",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's claims.", body = ClaimsSchema, headers(
            ("X-User-Id" = String, description = "The token's `sub`: the user's id."),
            ("X-User-Role" = RoleSchema, description = "The token's `role`."),
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 401, description = "No token (`not_authenticated`), or an invalid or expired one (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn verify(Authenticated(claims): Authenticated) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Ok(value) = HeaderValue::from_str(&claims.sub) {
        response.insert_header(("X-User-Id", value));
    }
    response.insert_header(("X-User-Role", claims.role.as_str()));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    response.json(claims)
}

/// The token to introspect (RFC 7662 §2.1).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// An access token or a refresh token.
    #[schema(value_type = String)]
    token: SecretString,
    /// `access_token` or `refresh_token`; accepted, but every kind is tried.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String)]
    #[allow(
        dead_code,
        reason = "RFC 7662 allows the hint; every token type is tried anyway"
    )]
    token_type_hint: Option<String>,
}

/// The RFC 7662 introspection response: `{"active": false}` alone for any
/// token that is invalid, expired or revoked; the other members only for
/// an active one (`username`, `role`, `nbf`, `iss`, `aud` and `jti` only
/// for an access token).
#[derive(Serialize, Default, ToSchema)]
pub struct Introspection {
    /// Whether the token is active.
    active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    token_type: Option<&'static str>,
    /// The user's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = RoleSchema, required = false)]
    role: Option<Role>,
    /// Expiry, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    exp: Option<i64>,
    /// Issue time, in seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
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

/// Introspect a token (RFC 7662): whether an access or refresh token is active.
///
/// Revocation is taken into account. Anything invalid, expired or revoked
/// is just `{"active": false}`. The body may be JSON or a form, as RFC 7662
/// clients send it.
#[utoipa::path(
    post,
    path = "/auth/introspect",
    tag = "auth",
    operation_id = "introspect",
    request_body(content(
        (IntrospectRequest = "application/json"),
        (IntrospectRequest = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether the token is active, and its claims if so.", body = Introspection, headers(
            ("Cache-Control" = String, description = "`no-store`"),
        )),
        (status = 400, description = "The body is not well-formed JSON or form data (`parse_error`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The caller's own token is missing (`not_authenticated`), or invalid, expired or revoked (`invalid_token`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, description = "The body is neither JSON nor form data (`unsupported_media_type`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A field is missing, unknown or mistyped (`validation_failed`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "The database is unreachable (`service_unavailable`).", body = Problem, content_type = PROBLEM_JSON),
    ),
)]
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
