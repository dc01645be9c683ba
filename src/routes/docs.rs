//! `/openapi.json` and Swagger UI at `/docs`.
//!
//! Swagger UI's own files come from `utoipa-swagger-ui` (vendored: compiled
//! in, nothing is downloaded). Its `SwaggerUi` service is not used: it mounts
//! the UI at `/docs/` and its page loads its files relative to that, but the
//! app trims trailing slashes before routing, so `/docs/` *is* `/docs`, and a
//! redirect from one to the other would loop. Instead `/docs` answers the
//! page itself, with every file it loads rewritten to an absolute
//! `/docs/...` URL, which works whichever of `/docs` or `/docs/` the browser
//! shows.

use std::sync::Arc;

use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::Config;

use super::{Endpoint, document, on};
use crate::error::{ApiError, ApiResult};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI is served; its files are under `/docs/`.
pub const DOCS_PATH: &str = "/docs";

/// The document and the UI, mounted after the API's routes. Each value is
/// built once per worker, when the app is configured.
pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        (
            OPENAPI_PATH,
            vec![on(Method::GET, || {
                let document = web::Bytes::from(crate::openapi::to_json(&document()));
                web::to(move || {
                    let document = document.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(document)
                    }
                })
            })],
        ),
        (
            DOCS_PATH,
            vec![on(Method::GET, || {
                let ui = SwaggerUiFiles::new();
                web::to(move || {
                    let ui = ui.clone();
                    async move { ui.index() }
                })
            })],
        ),
        (
            "/docs/{file:.*}",
            vec![on(Method::GET, || {
                let ui = SwaggerUiFiles::new();
                web::to(move |file: web::Path<String>| {
                    let ui = ui.clone();
                    async move { ui.file(&file) }
                })
            })],
        ),
    ]
}

/// Swagger UI pointed at [`OPENAPI_PATH`].
#[derive(Clone)]
struct SwaggerUiFiles {
    config: Arc<Config<'static>>,
    index: web::Bytes,
}

impl SwaggerUiFiles {
    fn new() -> Self {
        let config = Arc::new(Config::new([OPENAPI_PATH]));
        let index = utoipa_swagger_ui::serve("index.html", config.clone())
            .ok()
            .flatten()
            .map(|file| absolute_asset_urls(&String::from_utf8_lossy(&file.bytes), DOCS_PATH))
            .unwrap_or_default();
        Self {
            config,
            index: web::Bytes::from(index),
        }
    }

    /// The page, whatever URL the browser shows for it.
    fn index(&self) -> ApiResult<HttpResponse> {
        if self.index.is_empty() {
            return Err(ApiError::internal("Swagger UI's index.html is missing"));
        }
        Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(self.index.clone()))
    }

    /// One of the UI's files (scripts, styles, icons, the initializer that
    /// names [`OPENAPI_PATH`]).
    fn file(&self, name: &str) -> ApiResult<HttpResponse> {
        let no_such_file = || ApiError::not_found("No such file.");
        if name.is_empty() || name == "index.html" {
            return self.index();
        }
        // The files are embedded, but a debug build reads them from disk:
        // nothing outside their folder may be named.
        if name.split('/').any(|part| part.is_empty() || part == "..") || name.contains('\\') {
            return Err(no_such_file());
        }
        let file = utoipa_swagger_ui::serve(name, self.config.clone())
            .map_err(ApiError::internal)?
            .ok_or_else(no_such_file)?;
        Ok(HttpResponse::Ok()
            .content_type(file.content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(file.bytes.into_owned()))
    }
}

/// Rewrites the relative `href="..."` and `src="..."` URLs of an HTML page
/// into absolute ones under `base`: `./swagger-ui.css` -> `/docs/swagger-ui.css`.
fn absolute_asset_urls(html: &str, base: &str) -> String {
    let mut out = String::with_capacity(html.len() + 128);
    let mut rest = html;
    while let Some(at) = ["href=\"", "src=\""]
        .iter()
        .filter_map(|attr| rest.find(attr).map(|i| i + attr.len()))
        .min()
    {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let relative = !(tail.starts_with('/')
            || tail.starts_with('#')
            || tail.starts_with("data:")
            || tail
                .split('"')
                .next()
                .is_some_and(|url| url.contains("://")));
        if relative {
            out.push_str(base);
            out.push('/');
            rest = tail.strip_prefix("./").unwrap_or(tail);
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_asset_urls_become_absolute() {
        let html = r##"<link href="./swagger-ui.css" /><link href="index.css"><script src="./a.js"></script><a href="https://x.org/y">x</a><a href="/abs">a</a><a href="#top">t</a>"##;
        assert_eq!(
            absolute_asset_urls(html, "/docs"),
            r##"<link href="/docs/swagger-ui.css" /><link href="/docs/index.css"><script src="/docs/a.js"></script><a href="https://x.org/y">x</a><a href="/abs">a</a><a href="#top">t</a>"##
        );
    }

    #[test]
    fn the_page_and_its_initializer_are_there() {
        let ui = SwaggerUiFiles::new();
        let index = String::from_utf8_lossy(&ui.index);
        assert!(
            index.contains(r#"src="/docs/swagger-ui-bundle.js""#),
            "{index}"
        );
        assert!(!index.contains("\"./"), "{index}");
        let initializer = utoipa_swagger_ui::serve("swagger-initializer.js", ui.config.clone())
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&initializer.bytes).contains(OPENAPI_PATH));
    }
}
