//! The route table, and the answers for unknown routes and methods.
//!
//! Handlers are thin: extract, authorize, validate, call, map.

pub mod auth;
pub mod docs;
pub mod mfa;
pub mod oauth;
pub mod ops;
pub mod pages;
pub mod passkeys;
pub mod recovery;
pub mod sessions;
pub mod users;

use actix_web::http::{
    Method,
    header::{self, HeaderValue},
};
use actix_web::{HttpRequest, Resource, Route, web};
use utoipa::OpenApi as _;

use crate::error::{ApiError, ErrorCode};
use crate::telemetry::RouteTemplate;

/// A handler as the router mounts it.
type Handler = fn() -> Route;

/// One row of the route table: a path and the handler of each method.
type Endpoint = (&'static str, Vec<(Method, Handler)>);

fn on(method: Method, handler: Handler) -> (Method, Handler) {
    (method, handler)
}

/// The API's route table. [`configure`] mounts it and [`route_table`] lists
/// it, so the test that compares `/openapi.json` with [`route_table`]
/// compares it with the router itself.
fn endpoints() -> Vec<Endpoint> {
    vec![
        ("/healthz", vec![on(Method::GET, || web::to(ops::healthz))]),
        ("/readyz", vec![on(Method::GET, || web::to(ops::readyz))]),
        ("/metrics", vec![on(Method::GET, || web::to(ops::metrics))]),
        (
            "/.well-known/jwks.json",
            vec![on(Method::GET, || web::to(ops::jwks))],
        ),
        (
            "/.well-known/oauth-authorization-server",
            vec![on(Method::GET, || web::to(oauth::metadata))],
        ),
        (
            "/oauth/token",
            vec![on(Method::POST, || web::to(oauth::token))],
        ),
        (
            "/oauth/revoke",
            vec![on(Method::POST, || web::to(oauth::revoke))],
        ),
        (
            "/auth/sessions",
            vec![on(Method::GET, || web::to(sessions::list_sessions))],
        ),
        (
            "/auth/sessions/{id}",
            vec![on(Method::DELETE, || web::to(sessions::end_session))],
        ),
        (
            "/auth/login",
            vec![on(Method::POST, || web::to(auth::login))],
        ),
        (
            "/auth/exchange",
            vec![on(Method::POST, || web::to(auth::exchange))],
        ),
        (
            "/auth/refresh",
            vec![on(Method::POST, || web::to(auth::refresh))],
        ),
        (
            "/auth/logout",
            vec![on(Method::POST, || web::to(auth::logout))],
        ),
        (
            "/auth/logout-all",
            vec![on(Method::POST, || web::to(auth::logout_all))],
        ),
        (
            "/auth/verify",
            vec![on(Method::GET, || web::to(auth::verify))],
        ),
        (
            "/auth/introspect",
            vec![on(Method::POST, || web::to(auth::introspect))],
        ),
        (
            "/auth/mfa/totp",
            vec![
                on(Method::POST, || web::to(mfa::start_totp)),
                on(Method::DELETE, || web::to(mfa::remove_totp)),
            ],
        ),
        (
            "/auth/mfa/totp/confirm",
            vec![on(Method::POST, || web::to(mfa::confirm_totp))],
        ),
        (
            "/auth/mfa/verify",
            vec![on(Method::POST, || web::to(auth::verify_mfa))],
        ),
        (
            "/auth/passkeys",
            vec![on(Method::GET, || web::to(passkeys::list))],
        ),
        (
            "/auth/passkeys/{id}",
            vec![on(Method::DELETE, || web::to(passkeys::delete))],
        ),
        (
            "/auth/passkeys/register/start",
            vec![on(Method::POST, || web::to(passkeys::start_registration))],
        ),
        (
            "/auth/passkeys/register/finish",
            vec![on(Method::POST, || web::to(passkeys::finish_registration))],
        ),
        (
            "/auth/passkeys/login/start",
            vec![on(Method::POST, || web::to(passkeys::start_login))],
        ),
        (
            "/auth/passkeys/login/finish",
            vec![on(Method::POST, || web::to(passkeys::finish_login))],
        ),
        (
            "/auth/password-reset",
            vec![on(Method::POST, || {
                web::to(recovery::request_password_reset)
            })],
        ),
        (
            "/auth/password-reset/confirm",
            vec![on(Method::POST, || {
                web::to(recovery::confirm_password_reset)
            })],
        ),
        (
            "/auth/verify-email",
            vec![on(Method::POST, || web::to(recovery::verify_email))],
        ),
        (
            "/auth/verify-email/resend",
            vec![on(Method::POST, || web::to(recovery::resend_verification))],
        ),
        (
            "/users",
            vec![
                on(Method::GET, || web::to(users::list)),
                on(Method::POST, || web::to(users::create)),
            ],
        ),
        ("/users/me", vec![on(Method::GET, || web::to(users::me))]),
        (
            "/users/{id}",
            vec![
                on(Method::GET, || web::to(users::get)),
                on(Method::PATCH, || web::to(users::update)),
                on(Method::DELETE, || web::to(users::delete)),
            ],
        ),
        (
            "/users/{id}/password",
            vec![on(Method::PUT, || web::to(users::change_password))],
        ),
    ]
}

/// Every (method, path) of the API, as mounted by [`configure`]: what the
/// OpenAPI document describes. The document and Swagger UI themselves
/// (`docs::endpoints`) and the HTML pages (`pages::endpoints`) are served
/// too but not listed here.
pub fn route_table() -> Vec<(Method, &'static str)> {
    endpoints()
        .into_iter()
        .flat_map(|(path, routes)| routes.into_iter().map(move |(method, _)| (method, path)))
        .collect()
}

/// The OpenAPI document: every route module's operations in the shared
/// frame of [`crate::openapi`].
pub fn document() -> utoipa::openapi::OpenApi {
    crate::openapi::assemble([
        auth::Api::openapi(),
        mfa::Api::openapi(),
        passkeys::Api::openapi(),
        sessions::Api::openapi(),
        oauth::Api::openapi(),
        recovery::Api::openapi(),
        users::Api::openapi(),
        ops::Api::openapi(),
    ])
}

/// Mounts the API's route table, then `/openapi.json` and `/docs`. Trailing
/// slashes are trimmed before routing, so `/users/` reaches `/users`.
///
/// Every GET route also answers HEAD (RFC 9110 §9.3.2), with the same
/// status and headers and no body (actix drops the body of a HEAD answer).
///
/// Fixed paths are mounted before templated ones. actix-web tries the
/// resources in the order they were mounted, and a template (`/users/{id}`)
/// is matched with a regular expression (regex-lite's PikeVM, 1.5 % of the
/// CPU of `GET /auth/verify` for the one template that preceded it): in
/// this order no request to a fixed path runs one. A fixed path is also
/// what should win where both could match (`/users/me` over `/users/{id}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let extra = docs::endpoints().into_iter().chain(pages::endpoints());
    let (fixed, templated): (Vec<_>, Vec<_>) = endpoints()
        .into_iter()
        .chain(extra)
        .partition(|(path, _)| !path.contains('{'));
    for (path, routes) in fixed.into_iter().chain(templated) {
        let mut mounted = Vec::new();
        for (method, handler) in routes {
            if method == Method::GET {
                mounted.push((Method::HEAD, handler()));
            }
            mounted.push((method, handler()));
        }
        cfg.service(endpoint(path, mounted));
    }
}

/// A resource whose other methods get 405 with an `Allow` header, and
/// which tells the access log and the metrics its template.
fn endpoint(path: &'static str, routes: Vec<(Method, Route)>) -> Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path).app_data(RouteTemplate(path));
    for (method, route) in routes {
        resource = resource.route(route.method(method));
    }
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static(""));
        async move {
            Err::<actix_web::HttpResponse, _>(
                ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("Method {} is not allowed here.", req.method()),
                )
                .with_header(header::ALLOW, allow),
            )
        }
    }))
}

/// The app's default service: no such route.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("No such route."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document_json() -> serde_json::Value {
        serde_json::from_slice(&crate::openapi::to_json(&document())).unwrap()
    }

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let document = document_json();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(document["components"]["schemas"]["Problem"].is_object());
    }

    #[test]
    fn the_role_schema_lists_the_roles() {
        let document = document_json();
        let roles = &document["components"]["schemas"]["Role"]["enum"];
        let expected = [
            crate::domain::Role::User,
            crate::domain::Role::Admin,
            crate::domain::Role::Service,
        ]
        .map(|role| serde_json::to_value(role).unwrap());
        assert_eq!(roles, &serde_json::Value::from(expected.to_vec()));
    }
}
