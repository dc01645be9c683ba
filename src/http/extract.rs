//! The bearer extractors.
//!
//! [`Authenticated`] is stateless: signature and claims, no database read;
//! it serves the read routes and `/auth/verify`. [`CurrentUser`] also consults
//! the database (the token's `jti` in the revocation table, the user's
//! existence and "tokens valid after" time); it serves the logout-sensitive
//! routes, and its user row is fresh, so a demoted admin is no admin there.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::SecretString;

use crate::auth::sessions::SessionOrigin;
use crate::auth::throttle::client_address;
use crate::auth::tokens::Claims;
use crate::db::users;
use crate::domain::Role;
use crate::error::ApiError;
use crate::state::AppState;

/// The token of the `Authorization` header: `Bearer <jwt>`, or DRF's
/// `Token <jwt>`. `Ok(None)` when no such credentials were sent.
pub fn presented_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token("The Authorization header is malformed."))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(ApiError::invalid_token(
            "The Authorization header must be `Bearer <token>`.",
        ));
    }
    Ok(Some(token))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("AppState missing from the app"))
}

/// Verifies the presented token without touching the database.
fn verify_stateless(req: &HttpRequest) -> Result<Claims, ApiError> {
    let token = presented_token(req)?.ok_or_else(ApiError::not_authenticated)?;
    state(req)?
        .keys
        .verify(token)
        .map_err(|e| ApiError::invalid_token(e.to_string()))
}

/// A user's token: a service client's gets 403 `user_token_required`.
fn user_only(claims: Claims) -> Result<Claims, ApiError> {
    if claims.role == Role::Service {
        return Err(ApiError::user_token_required());
    }
    Ok(claims)
}

/// A caller with any valid access token, a user's or a service client's,
/// checked statelessly (`GET /auth/verify`).
#[derive(Debug, Clone)]
pub struct AnyBearer(pub Claims);

impl FromRequest for AnyBearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(verify_stateless(req).map(AnyBearer))
    }
}

/// A user with a valid access token, checked statelessly; a service
/// client's token gets 403.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl Authenticated {
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(verify_stateless(req).and_then(user_only).map(Authenticated))
    }
}

/// A user whose token is valid and not revoked, with their current row; a
/// service client's token gets 403.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub claims: Claims,
    pub user: users::User,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin.as_str()
    }

    /// Whether the caller may act on the user `id`: themself, or any as admin.
    pub fn may_manage(&self, id: &str) -> bool {
        self.user.id == id || self.is_admin()
    }
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = verify_stateless(req)
            .and_then(user_only)
            .and_then(|claims| Ok((claims, state(req)?)));
        Box::pin(async move {
            let (claims, state) = verified?;
            let user = state.sessions.authorize(claims.clone()).await?;
            Ok(CurrentUser { claims, user })
        })
    }
}

/// For routes where a token is optional (registration): a present token must
/// be valid and unrevoked; an absent one is `None`.
#[derive(Debug, Clone)]
pub struct MaybeCurrentUser(pub Option<CurrentUser>);

impl FromRequest for MaybeCurrentUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        match presented_token(req) {
            Ok(None) => Box::pin(std::future::ready(Ok(MaybeCurrentUser(None)))),
            Err(error) => Box::pin(std::future::ready(Err(error))),
            Ok(Some(_)) => {
                let current = CurrentUser::from_request(req, payload);
                Box::pin(async move { Ok(MaybeCurrentUser(Some(current.await?))) })
            }
        }
    }
}

/// An `Authorization: Basic` header that cannot be read.
#[derive(Debug, Clone, Copy)]
pub struct MalformedBasic;

/// HTTP Basic credentials (RFC 7617) of a service client, each part
/// form-urlencoded as RFC 6749 §2.3.1 asks. `Ok(None)` when the
/// `Authorization` header is absent or of another scheme.
pub fn basic_credentials(
    req: &HttpRequest,
) -> Result<Option<(String, SecretString)>, MalformedBasic> {
    use base64::Engine as _;
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| MalformedBasic)?.trim();
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| MalformedBasic)?;
    let decoded = String::from_utf8(decoded).map_err(|_| MalformedBasic)?;
    let (id, secret) = decoded.split_once(':').ok_or(MalformedBasic)?;
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), SecretString::from(unescape(secret)))))
}

/// Where a login comes from: the client address (as below) and the
/// `User-Agent`, kept with the session it opens.
#[derive(Debug, Clone)]
pub struct RequestOrigin(pub SessionOrigin);

impl FromRequest for RequestOrigin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let address = match ClientAddress::from_request(req, payload).into_inner() {
            Ok(ClientAddress(address)) => address,
            Err(error) => return std::future::ready(Err(error)),
        };
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(RequestOrigin(SessionOrigin {
            user_agent,
            ip: address,
        })))
    }
}

/// The client's address, as login throttling counts it: the peer's, or
/// the one `X-Forwarded-For` names when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequest for ClientAddress {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(state(req).map(|state| {
            let forwarded_for = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok());
            ClientAddress(client_address(
                req.peer_addr().map(|peer| peer.ip()),
                forwarded_for,
                &state.trusted_proxies,
            ))
        }))
    }
}
