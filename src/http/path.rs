//! Path normalization: every route answers with or without a trailing
//! slash, and a run of slashes counts as one (`/users//me/` is `/users/me`).
//!
//! What actix-web's `NormalizePath::trim()` does, without its cost on the
//! common path: it runs a regular expression over every request's path
//! (`//+`, 1.5-3 % of the CPU of `GET /healthz` under load); this only
//! rewrites a path that has a trailing slash or a doubled one.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::http::uri::PathAndQuery;
use actix_web::middleware::Next;

/// Middleware: routes the request by its normalized path.
pub async fn normalize(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(uri) = normalized_uri(req.uri()) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
    next.call(req).await
}

/// The URI with its path normalized, query kept; `None` when the path is
/// already normal (or empty, as in `OPTIONS *`, which is left alone).
fn normalized_uri(uri: &Uri) -> Option<Uri> {
    let path = normalized_path(uri.path())?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// `path` without trailing slashes and with each run of slashes made one;
/// `None` when that is `path` itself.
fn normalized_path(path: &str) -> Option<String> {
    let trailing = path.len() > 1 && path.ends_with('/');
    if path.is_empty() || !(trailing || path.contains("//")) {
        return None;
    }
    let mut normal = String::with_capacity(path.len());
    for part in path.split('/').filter(|part| !part.is_empty()) {
        normal.push('/');
        normal.push_str(part);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_path_is_left_alone() {
        for path in ["/", "/healthz", "/users/me", "/users/{id}", "", "*"] {
            assert_eq!(normalized_path(path), None, "{path}");
        }
    }

    #[test]
    fn trailing_slashes_are_trimmed_and_runs_of_slashes_merged() {
        for (path, normal) in [
            ("/healthz/", "/healthz"),
            ("/users/me//", "/users/me"),
            ("//users///me", "/users/me"),
            ("//", "/"),
            ("///", "/"),
            ("/a//b/", "/a/b"),
        ] {
            assert_eq!(normalized_path(path).as_deref(), Some(normal), "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let uri: Uri = "/users/?limit=20&cursor=a/b".parse().unwrap();
        let normal = normalized_uri(&uri).unwrap();
        assert_eq!(normal.path(), "/users");
        assert_eq!(normal.query(), Some("limit=20&cursor=a/b"));
        assert_eq!(normalized_uri(&"/users?limit=20".parse().unwrap()), None);
    }
}
