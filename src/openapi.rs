//! The frame of the OpenAPI 3.1 document served at `/openapi.json` (and
//! shown by Swagger UI at `/docs`), and the schema types the routes share.
//!
//! Each handler carries its own `#[utoipa::path]`: method, path, body,
//! parameters, security, and the responses particular to it; each route
//! module lists its handlers in its own `OpenApi` part, and the route table
//! (`routes::document`) hands the parts to [`assemble`]. This
//! module depends on no route. What every route shares is added here once,
//! by [`SharedResponses`]: the errors any
//! request can meet before it is routed (413, 414, 431) or after (500), the
//! `WWW-Authenticate` of every 401, the `Retry-After` of every 503 and the
//! `X-Request-Id` of every response. A test compares the document's
//! operations with the route table (`routes::route_table`), both ways.

use std::borrow::Cow;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::{ErrorCode, PROBLEM_JSON, problem_type};

/// The name of the security scheme that protected operations require.
pub const BEARER: &str = "bearer";
/// The security scheme of `POST /auth/exchange`: a legacy DRF key.
pub const DRF_TOKEN: &str = "drf_token";
/// A service client's id and secret by HTTP Basic (`client_secret_basic`).
pub const CLIENT_BASIC: &str = "client_basic";

/// The document, as generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tessera",
        description = "A stateless JWT-issuing authentication service.\n\n\
            Requests and responses are JSON. Every route also answers with a trailing \
            slash (`/users/` is `/users`). Errors are RFC 9457 problem details \
            (`application/problem+json`) with a stable `code`; validation errors add \
            `errors`, a map of field names to messages. A method a path does not serve \
            gets 405 with an `Allow` header.\n\n\
            Operations marked with the `bearer` security scheme need \
            `Authorization: Bearer <access token>`; `Authorization: Token <access token>` \
            (Django REST Framework's scheme) is accepted as an alias.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    components(schemas(Problem)),
    tags(
        (name = "auth", description = "Login, token refresh, logout, verification and introspection."),
        (name = "sessions", description = "The caller's sessions (one per login): listing and ending them."),
        (name = "oauth", description = "OAuth 2.0 for services: client credentials, revocation, server metadata."),
        (name = "mfa", description = "Second factors: TOTP enrolment, its recovery codes, and removal."),
        (name = "passkeys", description = "Passkeys (WebAuthn): registration, the list, removal, and the passwordless login."),
        (name = "recovery", description = "Password reset and email verification by mailed one-time links."),
        (name = "users", description = "Registration and user accounts."),
        (name = "ops", description = "Liveness, readiness and the public keys."),
    )
)]
pub struct ApiDoc;

/// The whole document: the frame above, every route module's part, then
/// the security schemes and the responses every operation shares.
pub fn assemble(
    parts: impl IntoIterator<Item = utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    for part in parts {
        document.merge(part);
    }
    BearerScheme.modify(&mut document);
    SharedResponses.modify(&mut document);
    document
}

/// A document as JSON bytes.
pub fn to_json(document: &utoipa::openapi::OpenApi) -> Vec<u8> {
    serde_json::to_vec(document).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document could not be serialized");
        b"{}".to_vec()
    })
}

/// RFC 9457 problem details: the body of every error.
pub struct Problem;

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let codes = ErrorCode::ALL.map(ErrorCode::as_str);
        ObjectBuilder::new()
            .description(Some(
                "RFC 9457 problem details. Never carries a stack trace, SQL, a password, \
                 a hash or a secret; a 500 says no more than that it happened.",
            ))
            .property(
                "type",
                string()
                    .format(Some(SchemaFormat::Custom("uri".to_owned())))
                    .description(Some(
                        "A URN naming the kind of problem: `urn:tessera:problem:<code>`.",
                    ))
                    .examples([problem_type(ErrorCode::InvalidToken)]),
            )
            .required("type")
            .property(
                "title",
                string()
                    .description(Some("A short summary of the kind of problem."))
                    .examples(["Invalid token"]),
            )
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599))
                    .description(Some("The HTTP status code."))
                    .examples([401]),
            )
            .required("status")
            .property(
                "detail",
                string()
                    .description(Some("What went wrong with this request, for a person."))
                    .examples(["The token has been revoked."]),
            )
            .required("detail")
            .property(
                "code",
                string().enum_values(Some(codes)).description(Some(
                    "A stable, snake_case code that clients may branch on.",
                )),
            )
            .required("code")
            .property(
                "errors",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(ArrayBuilder::new().items(string())))
                    .description(Some(
                        "Validation (422) and conflict (409) errors: field name -> messages; \
                         `non_field_errors` concerns the whole body.",
                    ))
                    .examples([serde_json::json!({"email": ["Enter a valid email address."]})]),
            )
            .into()
    }
}

impl ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }
}

// The schemas below mirror types that lie below the routes (`domain::Role`,
// `auth::tokens::Claims`, `auth::keys::PublishedJwk`), which know nothing
// of HTTP; tests compare them with what those types serialize to.

/// A user's role.
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "lowercase")]
pub enum RoleSchema {
    User,
    Admin,
    /// A service client's token (client credentials).
    Service,
}

/// The verified claims of an access token.
#[derive(ToSchema)]
#[schema(as = Claims)]
#[expect(dead_code, reason = "a schema only")]
pub struct ClaimsSchema {
    /// Issuer (`jwt.issuer`).
    #[schema(example = "tessera")]
    iss: String,
    /// Audience (`jwt.audience`).
    #[schema(example = "tessera")]
    aud: String,
    /// The user's id, or a service client's id.
    #[schema(format = "uuid")]
    sub: String,
    /// Expiry, in seconds since the Unix epoch.
    exp: i64,
    /// Issue time, in seconds since the Unix epoch.
    iat: i64,
    /// Not valid before, in seconds since the Unix epoch.
    nbf: i64,
    /// The token's unique id (a UUIDv7).
    #[schema(format = "uuid")]
    jti: String,
    role: RoleSchema,
    /// The user's name; absent from a service token.
    #[schema(required = false)]
    username: String,
    /// Whether the user's email was verified when the token was issued.
    email_verified: bool,
    /// How the user signed in (RFC 8176): `["pwd"]`, `["pwd","otp"]`,
    /// `["pwd","mfa"]`, or `["hwk","user"]` for a passkey; absent from a
    /// service token.
    #[schema(example = json!(["pwd", "otp"]), required = false)]
    amr: Vec<String>,
    /// `aal1` (one factor) or `aal2` (two); absent from a service token.
    #[schema(example = "aal2", required = false)]
    aal: String,
    /// The session (refresh-token family) of a user's token.
    #[schema(format = "uuid", required = false)]
    sid: String,
    /// A service token's client id (equal to `sub`).
    #[schema(required = false)]
    client_id: String,
    /// A service token's scopes, space-separated.
    #[schema(required = false)]
    scope: String,
}

/// A public verification key (RFC 7517): EC P-256 (`crv`, `x`, `y`), RSA
/// (`n`, `e`) or Ed25519 (`crv`, `x`).
#[derive(ToSchema)]
#[schema(as = Jwk)]
#[expect(dead_code, reason = "a schema only")]
pub struct JwkSchema {
    /// Key type.
    #[schema(inline)]
    kty: KeyType,
    /// Curve (`P-256`, `Ed25519`), for EC and OKP keys.
    #[schema(required = false)]
    crv: String,
    /// base64url, for EC and OKP keys.
    #[schema(required = false)]
    x: String,
    /// base64url, for EC keys.
    #[schema(required = false)]
    y: String,
    /// RSA modulus, base64url.
    #[schema(required = false)]
    n: String,
    /// RSA exponent, base64url.
    #[schema(required = false)]
    e: String,
    /// The key id: its RFC 7638 thumbprint, as in the tokens' `kid` header.
    kid: String,
    /// The algorithm the key verifies.
    #[schema(example = "ES256")]
    alg: String,
    /// Always `sig`.
    #[schema(rename = "use", example = "sig")]
    use_: String,
}

#[derive(ToSchema)]
#[expect(dead_code, reason = "a schema only")]
enum KeyType {
    #[schema(rename = "EC")]
    Ec,
    #[schema(rename = "RSA")]
    Rsa,
    #[schema(rename = "OKP")]
    Okp,
}

/// The `bearer` scheme: an access JWT, or DRF's `Token` alias.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `/auth/login` or `/auth/refresh`: \
                         `Authorization: Bearer <jwt>`. `Authorization: Token <jwt>` \
                         (Django REST Framework's scheme) is accepted as an alias. \
                         A missing token is 401 `not_authenticated`; an invalid, expired \
                         or revoked one is 401 `invalid_token`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A service client (`tessera client create`): HTTP Basic with the \
                         `client_id` and `client_secret` (`client_secret_basic`, RFC 6749 \
                         §2.3.1). Wrong credentials are `invalid_client` (401); failures \
                         are throttled like failed logins.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            DRF_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "Only for `POST /auth/exchange`: a legacy Django REST Framework key \
                 imported by `tessera import django`, as `Authorization: Token <40-hex key>`.",
            ))),
        );
    }
}

/// Adds what every operation shares (see the module documentation), and
/// writes optional request bodies as such.
struct SharedResponses;

/// Errors any request can get, whichever route it names.
const EVERY_ROUTE: [(u16, &str); 4] = [
    (
        413,
        "The request body exceeds `server.max_body_bytes` (`payload_too_large`); \
         any request with a body is read, and refused, before routing.",
    ),
    (
        414,
        "The request target exceeds 4096 bytes (`uri_too_long`).",
    ),
    (
        431,
        "More than 64 header fields, or over 16 KiB of them (`headers_too_large`).",
    ),
    (
        500,
        "An unexpected failure (`internal_error`); the cause is logged, not answered.",
    ),
];

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                optional_body_is_absent_not_null(operation);
                add_shared_responses(operation);
            }
        }
    }
}

/// `Option<T>` as a request body makes utoipa write `oneOf: [null, T]`; an
/// optional body is absent, not `null` (which would be refused), so the
/// schema is just `T`, in a body that is not required.
fn optional_body_is_absent_not_null(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let not_null: Vec<_> = one_of
            .items
            .iter()
            .filter(|item| {
                !matches!(item, RefOr::T(Schema::Object(object))
                    if object.schema_type == SchemaType::Type(Type::Null))
            })
            .cloned()
            .collect();
        if let [only] = not_null.as_slice() {
            content.schema = Some(only.clone());
        }
    }
}

fn add_shared_responses(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    for (status, description) in EVERY_ROUTE {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description).into());
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some(description))
                .build()
        };
        response.headers.insert(
            "X-Request-Id".to_owned(),
            header(
                "The request's id: the one sent, if it was 1-128 characters of \
                 `[A-Za-z0-9._-]`, else a new one.",
            ),
        );
        match status.as_str() {
            "401" => {
                // An operation that says more (the OAuth endpoints' `Basic`
                // challenge) keeps its own description.
                response
                    .headers
                    .entry("WWW-Authenticate".to_owned())
                    .or_insert_with(|| {
                        header(
                            "`Bearer realm=\"tessera\"`, plus `error=\"invalid_token\"` and \
                             `error_description` when a token was sent (RFC 6750 §3); \
                             `Basic realm=\"tessera\"` for wrong client credentials \
                             sent with HTTP Basic (`invalid_client`).",
                        )
                    });
            }
            "503" => {
                response
                    .headers
                    .entry("Retry-After".to_owned())
                    .or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(i64::schema())
                            .description(Some("Seconds to wait before retrying."))
                            .build()
                    });
            }
            _ => {}
        }
    }
}

/// An error response: problem details with `description`.
fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
}
