//! An actix-web service that accepts tessera's access tokens.
//!
//! ```sh
//! # serve: GET /whoami answers the caller's claims, 401 without a valid token
//! TESSERA_URL=http://127.0.0.1:8080 TESSERA_ALG=ES256 cargo run --release
//! TESSERA_ALG=HS256 TESSERA_JWT_SECRET=... BIND=127.0.0.1:9090 cargo run --release
//!
//! # validate one token, like examples/interop/{python,node} (exit 0 if as expected)
//! cargo run --release -- validate --base URL --alg ES256 --token T --expect valid
//! ```

mod tessera_auth;

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, web};

use tessera_auth::{Settings, TesseraUser, Verifier, VerifyError};

/// Any handler taking a `TesseraUser` runs only for a verified caller.
async fn whoami(user: TesseraUser) -> HttpResponse {
    HttpResponse::Ok().json(&user.0)
}

/// An admin-only route: the role comes from the verified token.
async fn admin_only(user: TesseraUser) -> HttpResponse {
    if user.is_admin() {
        HttpResponse::Ok().body("hello, admin\n")
    } else {
        HttpResponse::Forbidden().finish()
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn verifier(
    alg: &str,
    base: &str,
    secrets: &[String],
    settings: &Settings,
) -> Result<Verifier, String> {
    match alg {
        "HS256" => Verifier::hs256(secrets, settings),
        "ES256" => Ok(Verifier::es256(base, settings)),
        other => Err(format!("algorithm must be HS256 or ES256, not {other:?}")),
    }
}

fn settings_from_env() -> Settings {
    let defaults = Settings::default();
    Settings {
        issuer: env_or("TESSERA_ISSUER", &defaults.issuer),
        audience: env_or("TESSERA_AUDIENCE", &defaults.audience),
        leeway_secs: std::env::var("TESSERA_LEEWAY_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.leeway_secs),
    }
}

fn serve() -> std::io::Result<ExitCode> {
    let base = env_or("TESSERA_URL", "http://127.0.0.1:8080");
    let alg = env_or("TESSERA_ALG", "ES256");
    // The current secret first, then retired ones still inside a rotation.
    let secrets: Vec<String> = std::env::var("TESSERA_JWT_SECRET")
        .into_iter()
        .chain(
            std::env::var("TESSERA_JWT_PREVIOUS_SECRETS")
                .ok()
                .into_iter()
                .flat_map(|list| list.split(',').map(str::to_owned).collect::<Vec<_>>()),
        )
        .filter(|s| !s.is_empty())
        .collect();
    let verifier = match verifier(&alg, &base, &secrets, &settings_from_env()) {
        Ok(verifier) => web::Data::new(verifier),
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    let bind = env_or("BIND", "127.0.0.1:9090");
    eprintln!("listening on http://{bind} ({alg} tokens from {base})");
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .app_data(verifier.clone())
                .route("/whoami", web::get().to(whoami))
                .route("/admin", web::get().to(admin_only))
        })
        .bind(bind)?
        .run(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `validate --base URL --alg HS256|ES256 [--secret S]... --token T [--expect valid|invalid]`
fn validate(args: &[String]) -> ExitCode {
    let mut base = env_or("TESSERA_URL", "http://127.0.0.1:8080");
    let (mut alg, mut token, mut expect) = (String::new(), String::new(), "valid".to_owned());
    let mut secrets = Vec::new();
    let mut settings = settings_from_env();
    let mut pairs = args.chunks(2);
    while let Some([flag, value]) = pairs.next() {
        match flag.as_str() {
            "--base" => base.clone_from(value),
            "--alg" => alg.clone_from(value),
            "--secret" => secrets.push(value.clone()),
            "--token" => token.clone_from(value),
            "--expect" => expect.clone_from(value),
            "--issuer" => settings.issuer.clone_from(value),
            "--audience" => settings.audience.clone_from(value),
            "--leeway" => settings.leeway_secs = value.parse().unwrap_or(30),
            _ => {
                eprintln!("unknown option {flag}");
                return ExitCode::from(2);
            }
        }
    }
    if args.len() % 2 != 0 || token.is_empty() || !matches!(expect.as_str(), "valid" | "invalid") {
        eprintln!(
            "usage: validate --base URL --alg HS256|ES256 [--secret S] --token T [--expect valid|invalid]"
        );
        return ExitCode::from(2);
    }
    if secrets.is_empty() {
        secrets.extend(std::env::var("TESSERA_JWT_SECRET").ok());
    }
    let verifier = match verifier(&alg, &base, &secrets, &settings) {
        Ok(verifier) => verifier,
        Err(why) => {
            eprintln!("rust: no verdict ({why})");
            return ExitCode::from(2);
        }
    };
    let outcome = actix_web::rt::System::new().block_on(verifier.verify(&token));
    let outcome = match outcome {
        Ok(claims) => {
            println!("rust: valid sub={} role={}", claims.sub, claims.role);
            "valid"
        }
        Err(VerifyError::Invalid(why)) => {
            println!("rust: invalid ({why})");
            "invalid"
        }
        Err(VerifyError::KeysUnavailable(why)) => {
            eprintln!("rust: no verdict ({why})");
            return ExitCode::from(2);
        }
    };
    if outcome == expect {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("validate") => validate(&args[1..]),
        None | Some("serve") => serve().unwrap_or_else(|error| {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }),
        Some(other) => {
            eprintln!("unknown command {other:?}: use `serve` (the default) or `validate`");
            ExitCode::from(2)
        }
    }
}
