//! Asymmetric signing (ES256, RS256, EdDSA): tokens that another service
//! verifies with the JWKS alone, key rotation, and the forgeries a
//! validator must refuse (algorithm confusion, unknown or removed keys).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;
use tessera::auth::keys::{generate_key_pair, load_public_key};
use tessera::settings;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, assert_problem, spawn_app_with};

backend_tests!(
    es256_tokens_verify_with_the_published_jwks,
    rs256_tokens_verify_with_the_published_jwks,
    eddsa_tokens_verify_with_the_published_jwks,
    jwks_lists_the_signing_and_retired_keys_with_kid_alg_and_use,
    a_token_from_a_retired_but_listed_key_is_accepted,
    a_token_from_a_removed_key_is_refused,
    hs256_signed_with_the_public_key_as_secret_is_refused,
    a_token_with_an_unknown_kid_is_refused,
    the_kid_is_the_rfc_7638_thumbprint_of_the_public_key,
);

/// A key pair written to a temporary folder.
struct KeyFiles {
    dir: tempfile::TempDir,
    private_pem: String,
    public_pem: String,
}

impl KeyFiles {
    fn new(algorithm: settings::Algorithm) -> Self {
        let (private_pem, public_pem) = generate_key_pair(algorithm).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("private.pem"), &private_pem).unwrap();
        std::fs::write(dir.path().join("public.pem"), &public_pem).unwrap();
        KeyFiles {
            dir,
            private_pem,
            public_pem,
        }
    }

    fn private_path(&self) -> std::path::PathBuf {
        self.dir.path().join("private.pem")
    }

    fn public_path(&self) -> std::path::PathBuf {
        self.dir.path().join("public.pem")
    }

    fn kid(&self, algorithm: settings::Algorithm) -> String {
        load_public_key(algorithm, &self.public_pem)
            .unwrap()
            .thumbprint()
    }

    fn encoding_key(&self, algorithm: Algorithm) -> EncodingKey {
        let pem = self.private_pem.as_bytes();
        match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem).unwrap(),
            _ => EncodingKey::from_ed_pem(pem).unwrap(),
        }
    }
}

/// A server signing with `current` and also accepting `retired` keys.
async fn spawn_signing(
    backend: Backend,
    algorithm: settings::Algorithm,
    current: &KeyFiles,
    retired: &[&KeyFiles],
) -> TestApp {
    let private = current.private_path();
    let public: Vec<_> = retired.iter().map(|k| k.public_path()).collect();
    spawn_app_with(backend, move |s| {
        s.jwt.algorithm = algorithm;
        s.jwt.secret = None;
        s.jwt.private_key_file = Some(private);
        s.jwt.public_key_files = public;
    })
    .await
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap()
}

/// What an independent validator does: find the token's `kid` in the JWKS
/// and verify with that key, the pinned algorithm and the contract claims.
async fn assert_verifies_with_jwks(
    backend: Backend,
    algorithm: settings::Algorithm,
    jwt_alg: Algorithm,
) {
    let keys = KeyFiles::new(algorithm);
    let app = spawn_signing(backend, algorithm, &keys, &[]).await;
    let user = app.user("alice").await;
    let header = jsonwebtoken::decode_header(&user.tokens.access).unwrap();
    assert_eq!(header.alg, jwt_alg);
    let set = jwks(&app).await;
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut validation = Validation::new(jwt_alg);
    validation.set_issuer(&["tessera"]);
    validation.set_audience(&["tessera"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        &user.tokens.access,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the JWKS key verifies the token")
    .claims;
    assert_eq!(claims["sub"], user.id);
    let verified = app.get("/auth/verify", Some(&user.tokens.access)).await;
    assert_eq!(verified.status(), 200);
}

async fn es256_tokens_verify_with_the_published_jwks(backend: Backend) {
    assert_verifies_with_jwks(backend, settings::Algorithm::ES256, Algorithm::ES256).await;
}

async fn rs256_tokens_verify_with_the_published_jwks(backend: Backend) {
    assert_verifies_with_jwks(backend, settings::Algorithm::RS256, Algorithm::RS256).await;
}

async fn eddsa_tokens_verify_with_the_published_jwks(backend: Backend) {
    assert_verifies_with_jwks(backend, settings::Algorithm::EdDSA, Algorithm::EdDSA).await;
}

async fn jwks_lists_the_signing_and_retired_keys_with_kid_alg_and_use(backend: Backend) {
    let (current, retired) = (
        KeyFiles::new(settings::Algorithm::ES256),
        KeyFiles::new(settings::Algorithm::ES256),
    );
    let app = spawn_signing(backend, settings::Algorithm::ES256, &current, &[&retired]).await;
    let response = app.get("/.well-known/jwks.json", None).await;
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&current.kid(settings::Algorithm::ES256).as_str()));
    assert!(kids.contains(&retired.kid(settings::Algorithm::ES256).as_str()));
    for key in keys {
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kty"], "EC");
        assert!(key.get("d").is_none(), "no private part: {key}");
    }
}

/// Signs the contract claims for `user_id` with `key` under `kid`.
fn sign_with(
    app: &TestApp,
    key: &EncodingKey,
    algorithm: Algorithm,
    kid: &str,
    user_id: &str,
) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &app.claims_for(user_id), key).unwrap()
}

async fn a_token_from_a_retired_but_listed_key_is_accepted(backend: Backend) {
    let (current, retired) = (
        KeyFiles::new(settings::Algorithm::EdDSA),
        KeyFiles::new(settings::Algorithm::EdDSA),
    );
    let app = spawn_signing(backend, settings::Algorithm::EdDSA, &current, &[&retired]).await;
    let token = sign_with(
        &app,
        &retired.encoding_key(Algorithm::EdDSA),
        Algorithm::EdDSA,
        &retired.kid(settings::Algorithm::EdDSA),
        "someone",
    );
    assert_eq!(app.get("/auth/verify", Some(&token)).await.status(), 200);
}

async fn a_token_from_a_removed_key_is_refused(backend: Backend) {
    let (current, removed) = (
        KeyFiles::new(settings::Algorithm::EdDSA),
        KeyFiles::new(settings::Algorithm::EdDSA),
    );
    let app = spawn_signing(backend, settings::Algorithm::EdDSA, &current, &[]).await;
    let token = sign_with(
        &app,
        &removed.encoding_key(Algorithm::EdDSA),
        Algorithm::EdDSA,
        &removed.kid(settings::Algorithm::EdDSA),
        "someone",
    );
    assert_problem(
        app.get("/auth/verify", Some(&token)).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn hs256_signed_with_the_public_key_as_secret_is_refused(backend: Backend) {
    let keys = KeyFiles::new(settings::Algorithm::ES256);
    let app = spawn_signing(backend, settings::Algorithm::ES256, &keys, &[]).await;
    let kid = keys.kid(settings::Algorithm::ES256);
    for secret in [keys.public_pem.as_bytes(), kid.as_bytes()] {
        let token = sign_with(
            &app,
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
            &kid,
            "someone",
        );
        assert_problem(
            app.get("/auth/verify", Some(&token)).await,
            401,
            "invalid_token",
        )
        .await;
    }
}

async fn a_token_with_an_unknown_kid_is_refused(backend: Backend) {
    let keys = KeyFiles::new(settings::Algorithm::ES256);
    let app = spawn_signing(backend, settings::Algorithm::ES256, &keys, &[]).await;
    let token = sign_with(
        &app,
        &keys.encoding_key(Algorithm::ES256),
        Algorithm::ES256,
        "not-a-known-kid",
        "someone",
    );
    assert_problem(
        app.get("/auth/verify", Some(&token)).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn the_kid_is_the_rfc_7638_thumbprint_of_the_public_key(backend: Backend) {
    let keys = KeyFiles::new(settings::Algorithm::ES256);
    let app = spawn_signing(backend, settings::Algorithm::ES256, &keys, &[]).await;
    let user = app.user("alice").await;
    let header = jsonwebtoken::decode_header(&user.tokens.access).unwrap();
    let set = jwks(&app).await;
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    // jsonwebtoken computes RFC 7638 thumbprints for EC keys independently.
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
        header.kid.unwrap()
    );
}
