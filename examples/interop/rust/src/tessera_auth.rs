//! Verifying tessera access tokens in an actix-web service.
//!
//! Copy this file. Register a [`Verifier`] as app data and take a
//! [`TesseraUser`] argument in any handler that needs a caller:
//!
//! ```ignore
//! let verifier = web::Data::new(Verifier::es256("https://auth.example.com", Settings::default()));
//! App::new().app_data(verifier.clone()).route("/whoami", web::get().to(whoami))
//! async fn whoami(user: TesseraUser) -> impl Responder { user.0.sub }
//! ```
//!
//! The rules (docs/INTEGRATION.md explains each): the algorithm is pinned by
//! configuration, never read from the token; the key is picked by `kid`;
//! `exp`, `nbf`, `iat`, `iss`, `aud` and `sub` are required and `iss`/`aud`
//! must equal tessera's `jwt.issuer`/`jwt.audience`; a small leeway; the JWKS
//! is cached for its `Cache-Control: max-age` and fetched again when a token
//! names an unknown `kid` (at most once per cooldown).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

/// Used when the JWKS response carries no usable `Cache-Control: max-age`.
const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Least time between two fetches caused by an unknown `kid`.
const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);

/// The claims of a tessera access token. `iat` is a plain field on purpose:
/// jsonwebtoken's `required_spec_claims` does not know `iat`, so requiring
/// it is left to deserialization.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// `"user"` or `"admin"`.
    pub role: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
}

/// What the validator expects of tessera; the defaults are tessera's own.
#[derive(Debug, Clone)]
pub struct Settings {
    /// tessera's `jwt.issuer`.
    pub issuer: String,
    /// tessera's `jwt.audience`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "tessera".to_owned(),
            audience: "tessera".to_owned(),
            leeway_secs: 30,
        }
    }
}

/// Why no claims came out.
#[derive(Debug)]
pub enum VerifyError {
    /// The token is not acceptable: 401.
    Invalid(String),
    /// The keys could not be fetched: no verdict, 503.
    KeysUnavailable(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "invalid token: {why}"),
            Self::KeysUnavailable(why) => write!(f, "keys unavailable: {why}"),
        }
    }
}

/// tessera's `kid` for an HS256 secret: the first 16 hex digits of its SHA-256.
pub fn hs256_kid(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

enum Keys {
    /// HS256: the current secret and any retired ones, by `kid`.
    Hmac(HashMap<String, DecodingKey>),
    /// ES256: tessera's JWKS.
    Jwks(JwksCache),
}

/// Verifies tessera access tokens: signature and claims, no call to tessera
/// (except fetching the JWKS now and then).
pub struct Verifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
}

impl Verifier {
    /// HS256 with tessera's shared secret (and retired secrets still inside
    /// a rotation). tessera uses the secret's raw UTF-8 bytes.
    pub fn hs256(secrets: &[String], settings: &Settings) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for secret in secrets {
            let raw = secret.as_bytes();
            if raw.len() < 32 {
                return Err("an HS256 secret has at least 32 bytes".to_owned());
            }
            keys.insert(hs256_kid(raw), DecodingKey::from_secret(raw));
        }
        if keys.is_empty() {
            return Err("HS256 needs tessera's shared secret (jwt.secret)".to_owned());
        }
        Ok(Self::new(Algorithm::HS256, Keys::Hmac(keys), settings))
    }

    /// ES256 with the public keys from `{base_url}/.well-known/jwks.json`.
    pub fn es256(base_url: &str, settings: &Settings) -> Self {
        let url = format!("{}/.well-known/jwks.json", base_url.trim_end_matches('/'));
        Self::new(Algorithm::ES256, Keys::Jwks(JwksCache::new(url)), settings)
    }

    fn new(algorithm: Algorithm, keys: Keys, settings: &Settings) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm]; // pinned, whatever the token says
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        Self {
            algorithm,
            keys,
            validation,
        }
    }

    /// The verified claims of `token`.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        if header.alg != self.algorithm {
            // decode() refuses it too; refusing here saves a JWKS fetch.
            return Err(VerifyError::Invalid(format!(
                "alg {:?} refused",
                header.alg
            )));
        }
        let kid = header
            .kid
            .filter(|kid| !kid.is_empty())
            .ok_or_else(|| VerifyError::Invalid("the token has no kid".to_owned()))?;
        let key = match &self.keys {
            Keys::Hmac(keys) => keys.get(&kid).cloned(),
            Keys::Jwks(cache) => cache.key(&kid).await?,
        }
        .ok_or_else(|| VerifyError::Invalid(format!("unknown kid {kid:?}")))?;
        let claims = decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| VerifyError::Invalid(e.to_string()))?
            .claims;
        if claims.sub.is_empty() {
            return Err(VerifyError::Invalid("empty sub".to_owned()));
        }
        Ok(claims)
    }
}

struct CachedKeys {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    max_age: Duration,
}

/// tessera's JWKS, cached for its `Cache-Control: max-age`, fetched again on
/// an unknown `kid` at most once per [`UNKNOWN_KID_COOLDOWN`].
struct JwksCache {
    url: String,
    client: reqwest::Client,
    cached: RwLock<CachedKeys>,
    /// One fetch at a time; concurrent requests wait for it.
    fetching: Mutex<()>,
}

impl JwksCache {
    fn new(url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            url,
            client,
            cached: RwLock::new(CachedKeys {
                keys: HashMap::new(),
                fetched_at: None,
                max_age: DEFAULT_JWKS_MAX_AGE,
            }),
            fetching: Mutex::new(()),
        }
    }

    /// The key with this `kid`; `Ok(None)` if tessera does not publish it.
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, VerifyError> {
        if let Some(found) = self.lookup(kid, true).await {
            return Ok(found);
        }
        let _one_fetch = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(found) = self.lookup(kid, true).await {
            return Ok(found);
        }
        self.fetch().await?;
        Ok(self.lookup(kid, false).await.flatten())
    }

    /// `Some(answer)` when the cache can answer without a fetch.
    async fn lookup(&self, kid: &str, may_fetch: bool) -> Option<Option<DecodingKey>> {
        let cached = self.cached.read().await;
        let age = cached.fetched_at.map(|at| at.elapsed());
        let fresh = age.is_some_and(|age| age < cached.max_age);
        match cached.keys.get(kid) {
            Some(key) if fresh || !may_fetch => Some(Some(key.clone())),
            None if !may_fetch => Some(None),
            // Unknown kid in a fresh set: refetch only after the cooldown.
            None if fresh && age.is_some_and(|age| age < UNKNOWN_KID_COOLDOWN) => Some(None),
            _ => None,
        }
    }

    async fn fetch(&self) -> Result<(), VerifyError> {
        let unavailable = |e: reqwest::Error| VerifyError::KeysUnavailable(e.to_string());
        let response = self
            .client
            .get(&self.url)
            .header(header::ACCEPT.as_str(), "application/json")
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?;
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL.as_str())
            .and_then(|value| value.to_str().ok())
            .and_then(cache_max_age)
            .unwrap_or(DEFAULT_JWKS_MAX_AGE);
        let set: JwkSet = response.json().await.map_err(unavailable)?;
        let keys = set
            .keys
            .iter()
            .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
            .filter(|jwk| matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::ES256)))
            .filter(|jwk| {
                matches!(&jwk.algorithm, AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256)
            })
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                Some((kid, DecodingKey::from_jwk(jwk).ok()?))
            })
            .collect();
        *self.cached.write().await = CachedKeys {
            keys,
            fetched_at: Some(Instant::now()),
            max_age,
        };
        Ok(())
    }
}

/// How long a response may be cached per its `Cache-Control` header.
pub fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            max_age = secs.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    max_age
}

/// A caller with a valid tessera access token. Take it as a handler argument.
#[derive(Debug, Clone)]
pub struct TesseraUser(pub Claims);

impl TesseraUser {
    pub fn is_admin(&self) -> bool {
        self.0.role == "admin"
    }
}

/// The refusal: 401 with `WWW-Authenticate` (RFC 6750), or 503 when the
/// keys could not be fetched. `token_sent` is false when the request had no
/// bearer token at all (then the challenge carries no error code).
#[derive(Debug)]
pub struct AuthError {
    pub error: VerifyError,
    pub token_sent: bool,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self.error {
            VerifyError::Invalid(_) => StatusCode::UNAUTHORIZED,
            VerifyError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let VerifyError::Invalid(_) = self.error {
            // The reason is not sent: the client learns only that the token failed.
            let challenge = if self.token_sent {
                r#"Bearer realm="api", error="invalid_token""#
            } else {
                r#"Bearer realm="api""#
            };
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let title = match (&self.error, self.token_sent) {
            (VerifyError::KeysUnavailable(_), _) => "keys unavailable",
            (VerifyError::Invalid(_), true) => "invalid token",
            (VerifyError::Invalid(_), false) => "authentication required",
        };
        response.json(serde_json::json!({ "status": self.status_code().as_u16(), "title": title }))
    }
}

impl FromRequest for TesseraUser {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| AuthError {
                error: VerifyError::KeysUnavailable(
                    "no Verifier registered as app data".to_owned(),
                ),
                token_sent: false,
            })?;
            let token = token.ok_or_else(|| AuthError {
                error: VerifyError::Invalid("no bearer token".to_owned()),
                token_sent: false,
            })?;
            verifier
                .verify(&token)
                .await
                .map(TesseraUser)
                .map_err(|error| AuthError {
                    error,
                    token_sent: true,
                })
        })
    }
}
