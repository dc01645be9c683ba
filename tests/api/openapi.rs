//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`: the
//! document describes exactly the routes the router serves, with the
//! security each one enforces and the bodies and headers it answers, and the
//! UI loads with all its files.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tessera::error::ErrorCode;
use tessera::routes::route_table;

use crate::backend_tests;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app};

backend_tests!(
    the_document_is_openapi_3_1_json,
    the_document_lists_exactly_the_routes_the_router_serves,
    every_operation_has_a_success_response_and_problem_errors,
    documented_security_is_what_each_route_enforces,
    responses_match_their_documented_status_headers_and_schemas,
    swagger_ui_and_its_files_load,
);

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("application/json"));
    response.json().await.expect("the document is JSON")
}

/// Every operation of the document: (METHOD, path, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter_map(move |method| {
                item.get(*method)
                    .map(|operation| (method.to_uppercase(), path.clone(), operation.clone()))
            })
        })
        .collect()
}

/// The operation for (method, path), which must be documented.
fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

async fn the_document_is_openapi_3_1_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "{version}");
    assert_eq!(document["info"]["title"], "tessera");
    assert!(document["info"]["version"].is_string());
    let in_process = serde_json::to_value(tessera::routes::document()).unwrap();
    assert_eq!(
        document, in_process,
        "the served document is the generated one"
    );
}

async fn the_document_lists_exactly_the_routes_the_router_serves(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let routes = route_table();
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(method, path)| (method.to_string(), (*path).to_owned()))
        .collect();
    assert_eq!(
        routed.len(),
        routes.len(),
        "the route table repeats a route"
    );
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "documented but not served: {not_served:?}"
    );
    for own in ["/openapi.json", "/docs"] {
        assert!(
            document["paths"].get(own).is_none(),
            "{own} documents itself"
        );
    }
}

async fn every_operation_has_a_success_response_and_problem_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let name = format!("{method} {path}");
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(operation_ids.insert(id.to_owned()), "{name}: {id} twice");
        assert!(operation["summary"].is_string(), "{name} has no summary");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{name} has no 2xx response"
        );
        for (status, response) in responses {
            assert!(
                response["headers"].get("X-Request-Id").is_some(),
                "{name} {status}: no X-Request-Id"
            );
            if status.as_str() < "400" {
                continue;
            }
            let content = response["content"].as_object().expect("error content");
            // The OAuth endpoints answer RFC 6749 §5.2 errors, which OAuth
            // client libraries read, instead of problems (a 400 of
            // /oauth/revoke may be either: a body that does not parse is a
            // problem, a half pair of client credentials an OAuth error).
            let oauth = path.starts_with("/oauth/") && matches!(status.as_str(), "400" | "401");
            assert!(!content.is_empty(), "{name} {status}: no content");
            for (media_type, body) in content {
                let schema = match media_type.as_str() {
                    "application/json" if oauth => "#/components/schemas/OAuthErrorBody",
                    "application/problem+json" => "#/components/schemas/Problem",
                    other => panic!("{name} {status}: an error as {other}"),
                };
                assert_eq!(
                    body["schema"]["$ref"], schema,
                    "{name} {status} {media_type}"
                );
            }
            match status.as_str() {
                "401" => assert!(response["headers"].get("WWW-Authenticate").is_some()),
                "429" | "503" => assert!(response["headers"].get("Retry-After").is_some()),
                _ => {}
            }
        }
        for status in ["413", "414", "431", "500"] {
            assert!(responses.contains_key(status), "{name} lacks {status}");
        }
    }
    let codes: Vec<&str> =
        document["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("code enum")
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
    assert_eq!(codes, ErrorCode::ALL.map(ErrorCode::as_str));
}

/// Without a token, a route documented as needing the bearer scheme answers
/// 401 `not_authenticated`, and any other route answers something else; no
/// route of the table is missing from the router (404) or refuses its
/// method (405).
async fn documented_security_is_what_each_route_enforces(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = document(&app).await;
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    let description = scheme["description"].as_str().expect("description");
    assert!(description.contains("Token <jwt>"), "{description}");
    let mut secured = 0;
    for (method, path) in route_table() {
        let operation = operation(&document, method.as_str(), path);
        let requirements = operation["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let offers_bearer = requirements.iter().any(|r| r.get("bearer").is_some());
        // `POST /auth/exchange` takes a legacy DRF key, in the header or the body.
        let offers_drf_key = requirements.iter().any(|r| r.get("drf_token").is_some());
        // The OAuth endpoints take a service client's credentials (HTTP
        // Basic or in the body), or none.
        let offers_client_basic = requirements.iter().any(|r| r.get("client_basic").is_some());
        let anonymous_allowed = requirements.is_empty()
            || requirements
                .iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()));
        assert!(
            requirements.is_empty()
                || offers_bearer
                || ((offers_drf_key || offers_client_basic) && anonymous_allowed),
            "{method} {path}: {requirements:?}"
        );
        let url = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let method_of_reqwest = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let mut request = app.client.request(method_of_reqwest, app.url(&url));
        if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is not served: {status}"
        );
        if anonymous_allowed {
            assert_ne!(status, 401, "{method} {path} is documented as public");
        } else {
            secured += 1;
            assert_problem(response, 401, "not_authenticated").await;
        }
    }
    assert!(secured >= 10, "only {secured} secured routes");
}

/// A minimal JSON Schema check for the keywords the document uses.
fn check_schema(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unexpected $ref {reference}"))?;
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: {reference} is not in the document"));
        }
        return check_schema(document, target, value, at);
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        let matching = one_of
            .iter()
            .filter(|option| check_schema(document, option, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {matching} of oneOf match {value}"));
        }
        return Ok(());
    }
    if let Some(types) = match &schema["type"] {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).collect()),
        _ => None,
    } {
        let fits = |kind: &str| match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|kind| fits(kind)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: required `{name}` is missing from {value}"));
            }
        }
        for (name, member) in object {
            let at = format!("{at}.{name}");
            match (properties.get(name), &schema["additionalProperties"]) {
                (Some(property), _) => check_schema(document, property, member, &at)?,
                (None, Value::Bool(false)) => {
                    return Err(format!("{at}: not in the schema"));
                }
                (None, Value::Object(_)) => {
                    check_schema(document, &schema["additionalProperties"], member, &at)?
                }
                (None, _) if !properties.is_empty() => {
                    return Err(format!("{at}: not among the documented properties"));
                }
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            check_schema(document, schema, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

/// Asserts that `response` is documented for (method, path): its status,
/// every header documented for it, its content type and its body's schema.
/// Returns the body (`Null` when there is none).
async fn assert_documented(
    document: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> Value {
    let status = response.status().as_u16().to_string();
    let name = format!("{method} {path} -> {status}");
    let spec = &operation(document, method, path)["responses"][&status];
    assert!(spec.is_object(), "{name} is not documented");
    for header in spec["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(h, _)| h)
    {
        assert!(
            response.headers().contains_key(header.as_str()),
            "{name}: documented header {header} is missing"
        );
    }
    let content_type = content_type(&response);
    let body = response.bytes().await.unwrap();
    let Some(content) = spec["content"].as_object() else {
        assert!(body.is_empty(), "{name}: an undocumented body");
        return Value::Null;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let media = content
        .get(essence)
        .unwrap_or_else(|| panic!("{name}: {essence} is not documented"));
    let value: Value = serde_json::from_slice(&body).expect("a JSON body");
    if let Err(mismatch) = check_schema(document, &media["schema"], &value, "body") {
        panic!("{name}: {mismatch}");
    }
    value
}

async fn responses_match_their_documented_status_headers_and_schemas(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let doc = &doc;
    let admin = app.admin("root").await;

    // Registration, login and refresh.
    let new_user = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD});
    let alice = assert_documented(
        doc,
        "POST",
        "/users",
        app.post_json("/users", None, &new_user).await,
    )
    .await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let conflict = assert_documented(
        doc,
        "POST",
        "/users",
        app.post_json("/users", None, &new_user).await,
    )
    .await;
    assert_eq!(conflict["code"], "conflict");
    let invalid = json!({"username": "bob", "email": "nope", "password": "short"});
    let invalid = assert_documented(
        doc,
        "POST",
        "/users",
        app.post_json("/users", None, &invalid).await,
    )
    .await;
    assert_eq!(invalid["code"], "validation_failed");
    let credentials = json!({"username": "alice", "password": PASSWORD});
    let tokens = assert_documented(
        doc,
        "POST",
        "/auth/login",
        app.post_json("/auth/login", None, &credentials).await,
    )
    .await;
    let wrong = json!({"username": "alice", "password": "not the password"});
    assert_documented(
        doc,
        "POST",
        "/auth/login",
        app.post_json("/auth/login", None, &wrong).await,
    )
    .await;
    let oversized = json!({"username": "alice", "password": "x".repeat(70_000)});
    let too_large = assert_documented(
        doc,
        "POST",
        "/auth/login",
        app.post_json("/auth/login", None, &oversized).await,
    )
    .await;
    assert_eq!(too_large["code"], "payload_too_large");
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let tokens = assert_documented(
        doc,
        "POST",
        "/auth/refresh",
        app.post_json("/auth/refresh", None, &refresh).await,
    )
    .await;
    // Not a replay of `refresh`: that would revoke the new one too.
    let unknown = json!({"refresh_token": "not a refresh token"});
    assert_documented(
        doc,
        "POST",
        "/auth/refresh",
        app.post_json("/auth/refresh", None, &unknown).await,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let access = access.as_str();

    // Reading users, as a user and as an admin.
    for token in [access, admin.tokens.access.as_str()] {
        let page = assert_documented(
            doc,
            "GET",
            "/users",
            app.get("/users?limit=5", Some(token)).await,
        )
        .await;
        assert_eq!(page["total"], 2);
    }
    assert_documented(
        doc,
        "GET",
        "/users",
        app.get("/users?limit=0", Some(access)).await,
    )
    .await;
    assert_documented(
        doc,
        "GET",
        "/users",
        app.get("/users?limit=many", Some(access)).await,
    )
    .await;
    assert_documented(doc, "GET", "/users", app.get("/users", None).await).await;
    assert_documented(
        doc,
        "GET",
        "/users/me",
        app.get("/users/me", Some(access)).await,
    )
    .await;
    for id in [alice_id.as_str(), admin.id.as_str(), "no-such-user"] {
        let path = format!("/users/{id}");
        assert_documented(
            doc,
            "GET",
            "/users/{id}",
            app.get(&path, Some(access)).await,
        )
        .await;
    }
    let long_target = format!("/healthz?padding={}", "x".repeat(5000));
    assert_documented(doc, "GET", "/healthz", app.get(&long_target, None).await).await;

    // Changing users.
    let alice_path = format!("/users/{alice_id}");
    let admin_path = format!("/users/{}", admin.id);
    let patch = |path: &str, token: &str, body: Value| {
        let (path, token) = (path.to_owned(), token.to_owned());
        let app = &app;
        async move {
            app.send_json(reqwest::Method::PATCH, &path, Some(&token), &body)
                .await
        }
    };
    let renamed = patch(&alice_path, access, json!({"username": "alice2"})).await;
    assert_documented(doc, "PATCH", "/users/{id}", renamed).await;
    let forbidden = patch(&admin_path, access, json!({"username": "mine"})).await;
    assert_documented(doc, "PATCH", "/users/{id}", forbidden).await;
    let taken = patch(&alice_path, access, json!({"email": "root@example.com"})).await;
    assert_documented(doc, "PATCH", "/users/{id}", taken).await;

    // Verification and introspection.
    assert_documented(
        doc,
        "GET",
        "/auth/verify",
        app.get("/auth/verify", Some(access)).await,
    )
    .await;
    let with_token_scheme = app
        .client
        .get(app.url("/auth/verify"))
        .header("Authorization", format!("Token {access}"))
        .send()
        .await
        .unwrap();
    assert_documented(doc, "GET", "/auth/verify", with_token_scheme).await;
    assert_documented(
        doc,
        "GET",
        "/auth/verify",
        app.get("/auth/verify", Some("not.a.jwt")).await,
    )
    .await;
    let introspect = |body: reqwest::RequestBuilder| async move { body.send().await.unwrap() };
    let url = app.url("/auth/introspect");
    for token in [access, tokens["refresh_token"].as_str().unwrap(), "garbage"] {
        let as_json = app
            .client
            .post(&url)
            .bearer_auth(access)
            .json(&json!({"token": token}));
        let answer =
            assert_documented(doc, "POST", "/auth/introspect", introspect(as_json).await).await;
        assert_eq!(answer["active"], token != "garbage");
        let as_form = app
            .client
            .post(&url)
            .bearer_auth(access)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        assert_documented(doc, "POST", "/auth/introspect", introspect(as_form).await).await;
    }
    let as_text = app
        .client
        .post(&url)
        .bearer_auth(access)
        .header("content-type", "text/plain")
        .body("token");
    assert_documented(doc, "POST", "/auth/introspect", introspect(as_text).await).await;

    // Password, logout, deletion.
    let password_path = format!("{alice_path}/password");
    let put_password = |body: Value| {
        let (app, path) = (&app, password_path.clone());
        async move {
            app.send_json(reqwest::Method::PUT, &path, Some(access), &body)
                .await
        }
    };
    let wrong_current =
        put_password(json!({"current_password": "nope nope", "new_password": "a new password"}))
            .await;
    assert_documented(doc, "PUT", "/users/{id}/password", wrong_current).await;
    let changed =
        put_password(json!({"current_password": PASSWORD, "new_password": "a new password"})).await;
    assert_documented(doc, "PUT", "/users/{id}/password", changed).await;
    let revoked = app
        .post_json("/auth/logout", Some(access), &json!({}))
        .await;
    assert_documented(doc, "POST", "/auth/logout", revoked).await;
    let credentials = json!({"username": "alice2", "password": "a new password"});
    let tokens = assert_documented(
        doc,
        "POST",
        "/auth/login",
        app.post_json("/auth/login", None, &credentials).await,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let logout = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_documented(doc, "POST", "/auth/logout", logout).await;
    let tokens = assert_documented(
        doc,
        "POST",
        "/auth/login",
        app.post_json("/auth/login", None, &credentials).await,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let logout_all = app
        .post_json("/auth/logout-all", Some(access), &json!({}))
        .await;
    assert_documented(doc, "POST", "/auth/logout-all", logout_all).await;
    let admin_token = admin.tokens.access.as_str();
    let delete = |path: String| {
        let app = &app;
        async move {
            app.client
                .delete(app.url(&path))
                .bearer_auth(admin_token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_documented(
        doc,
        "DELETE",
        "/users/{id}",
        delete(alice_path.clone()).await,
    )
    .await;
    assert_documented(doc, "DELETE", "/users/{id}", delete(alice_path).await).await;

    // Operations.
    for path in ["/healthz", "/readyz", "/.well-known/jwks.json"] {
        assert_documented(doc, "GET", path, app.get(path, None).await).await;
    }
}

/// The JWKS schema fits the keys of every asymmetric algorithm (the test
/// servers sign with HS256, whose JWKS is empty).
#[test]
fn published_keys_match_the_jwk_schema() {
    use tessera::auth::keys::{generate_key_pair, load_public_key};
    use tessera::settings::Algorithm;
    let document = serde_json::to_value(tessera::routes::document()).unwrap();
    let schema = json!({"$ref": "#/components/schemas/Jwks"});
    for algorithm in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let (_, public_pem) = generate_key_pair(algorithm).unwrap();
        let key = load_public_key(algorithm, &public_pem)
            .unwrap()
            .published(algorithm);
        let jwks = json!({"keys": [key]});
        if let Err(mismatch) = check_schema(&document, &schema, &jwks, "jwks") {
            panic!("{algorithm}: {mismatch}");
        }
    }
}

/// The `href` and `src` URLs of a page.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            urls.push(rest.split('"').next().unwrap_or("").to_owned());
        }
    }
    urls
}

async fn swagger_ui_and_its_files_load(backend: Backend) {
    let app = spawn_app(backend).await;
    for page in ["/docs", "/docs/", "/docs/index.html"] {
        let response = app.get(page, None).await;
        assert_eq!(response.status(), 200, "{page}");
        assert!(content_type(&response).starts_with("text/html"), "{page}");
        let html = response.text().await.unwrap();
        let urls = linked_urls(&html);
        assert!(
            urls.iter().any(|url| url == "/docs/swagger-ui-bundle.js"),
            "{urls:?}"
        );
        for url in urls {
            // The page answers at `/docs` too, where a relative URL would
            // resolve against `/`.
            assert!(url.starts_with("/docs/"), "{page} links {url}");
            let file = app.get(&url, None).await;
            assert_eq!(file.status(), 200, "{url}");
            assert!(!file.bytes().await.unwrap().is_empty(), "{url}");
        }
    }
    let bundle = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(bundle.status(), 200);
    assert!(content_type(&bundle).contains("javascript"));
    let initializer = app.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(initializer.status(), 200);
    let initializer = initializer.text().await.unwrap();
    assert!(initializer.contains("\"/openapi.json\""), "{initializer}");
    assert_problem(
        app.get("/docs/no-such-file.js", None).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/docs/..%2FCargo.toml", None).await,
        404,
        "not_found",
    )
    .await;
}
