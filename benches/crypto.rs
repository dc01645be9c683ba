//! Micro-benchmarks of the per-request cryptography: issuing and verifying an
//! access token under each algorithm, Argon2id at the configured cost, and
//! refresh-token generation and hashing.
//!
//! Run with `cargo bench --bench crypto`. Timings are for BENCHMARKS.md,
//! never assertions.

#![allow(clippy::expect_used, reason = "a benchmark aborts on a broken fixture")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use tessera::auth::keys::generate_key_pair;
use tessera::auth::password::PasswordHasher;
use tessera::auth::refresh;
use tessera::auth::tokens::{KeyRing, SignIn, TokenSubject};
use tessera::domain::Role;
use tessera::settings::{Algorithm, Settings};

/// A key ring for `algorithm`, with a fresh key pair in `dir` if needed.
fn ring(algorithm: Algorithm, dir: &std::path::Path) -> KeyRing {
    let mut settings = Settings::defaults().expect("defaults");
    settings.jwt.algorithm = algorithm;
    settings.jwt.secret = Some(SecretString::from("benchmark-secret-0123456789abcdef-0123"));
    if algorithm != Algorithm::HS256 {
        let (private, _) = generate_key_pair(algorithm).expect("key pair");
        let path = dir.join(format!("{algorithm}.pem"));
        std::fs::write(&path, private).expect("write key");
        settings.jwt.private_key_file = Some(path);
    }
    KeyRing::from_settings(&settings).expect("key ring")
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    for algorithm in [
        Algorithm::HS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
    ] {
        let ring = ring(algorithm, dir.path());
        let (token, _) = ring
            .issue_access_token(TokenSubject {
                user_id: "0b7c7f7e-0000-4000-8000-000000000000",
                username: "alice",
                role: Role::User,
                email_verified: true,
                sign_in: SignIn::Password,
                session_id: None,
            })
            .expect("issue");
        c.bench_function(&format!("issue_access_token/{algorithm}"), |b| {
            b.iter(|| {
                ring.issue_access_token(TokenSubject {
                    user_id: black_box("0b7c7f7e"),
                    username: "alice",
                    role: Role::User,
                    email_verified: true,
                    sign_in: SignIn::Password,
                    session_id: None,
                })
            })
        });
        c.bench_function(&format!("verify_access_token/{algorithm}"), |b| {
            b.iter(|| ring.verify(black_box(&token)).expect("valid"))
        });
    }
}

fn passwords(c: &mut Criterion) {
    let settings = Settings::defaults().expect("defaults");
    let hasher = PasswordHasher::new(&settings.password, 1).expect("hasher");
    let system = actix_web::rt::System::new();
    let phc = system
        .block_on(hasher.hash(SecretString::from("correct horse battery")))
        .expect("hash");
    let mut group = c.benchmark_group("argon2id_default_cost");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("hash", |b| {
        b.iter(|| system.block_on(hasher.hash(SecretString::from("correct horse battery"))))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            system.block_on(hasher.verify(
                SecretString::from("correct horse battery"),
                Some(phc.clone()),
            ))
        })
    });
    group.finish();
}

fn refresh_tokens(c: &mut Criterion) {
    c.bench_function("refresh_token/generate", |b| b.iter(refresh::generate));
    let (token, _) = refresh::generate();
    let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
    c.bench_function("refresh_token/hash", |b| {
        b.iter(|| refresh::hash(black_box(&token)))
    });
}

criterion_group!(benches, tokens, passwords, refresh_tokens);
criterion_main!(benches);
