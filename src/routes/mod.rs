//! The route table, and the answers for unknown routes and methods.
//!
//! Handlers are thin: extract, authorize, validate, call, map.

pub mod auth;
pub mod body;
pub mod ops;
pub mod users;

use actix_web::http::{
    Method,
    header::{self, HeaderValue},
};
use actix_web::{HttpRequest, Resource, Route, web};

use crate::error::{ApiError, ErrorCode};

/// Every route: (path, [(method, handler)]). Trailing slashes are trimmed
/// before routing, so `/users/` reaches `/users`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint(
        "/healthz",
        vec![(Method::GET, web::to(ops::healthz))],
    ))
    .service(endpoint(
        "/readyz",
        vec![(Method::GET, web::to(ops::readyz))],
    ))
    .service(endpoint(
        "/.well-known/jwks.json",
        vec![(Method::GET, web::to(ops::jwks))],
    ))
    .service(endpoint(
        "/auth/login",
        vec![(Method::POST, web::to(auth::login))],
    ))
    .service(endpoint(
        "/auth/refresh",
        vec![(Method::POST, web::to(auth::refresh))],
    ))
    .service(endpoint(
        "/auth/logout",
        vec![(Method::POST, web::to(auth::logout))],
    ))
    .service(endpoint(
        "/auth/logout-all",
        vec![(Method::POST, web::to(auth::logout_all))],
    ))
    .service(endpoint(
        "/auth/verify",
        vec![(Method::GET, web::to(auth::verify))],
    ))
    .service(endpoint(
        "/auth/introspect",
        vec![(Method::POST, web::to(auth::introspect))],
    ))
    .service(endpoint(
        "/users",
        vec![
            (Method::GET, web::to(users::list)),
            (Method::POST, web::to(users::create)),
        ],
    ))
    .service(endpoint(
        "/users/me",
        vec![(Method::GET, web::to(users::me))],
    ))
    .service(endpoint(
        "/users/{id}",
        vec![
            (Method::GET, web::to(users::get)),
            (Method::PATCH, web::to(users::update)),
            (Method::DELETE, web::to(users::delete)),
        ],
    ))
    .service(endpoint(
        "/users/{id}/password",
        vec![(Method::PUT, web::to(users::change_password))],
    ));
}

/// A resource whose other methods get 405 with an `Allow` header.
fn endpoint(path: &str, routes: Vec<(Method, Route)>) -> Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path);
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
