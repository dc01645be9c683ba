//! Building the application: settings -> database, keys, hasher -> a bound
//! HTTP server. Tests build it on port 0 and read [`Application::port`].

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, ResponseError, web};

use crate::accounts::Accounts;
use crate::auth::clients::ServiceClients;
use crate::auth::mfa::Mfa;
use crate::auth::passkeys::Passkeys;
use crate::auth::password::PasswordHasher;
use crate::auth::sessions::{LoginThrottle, SessionPolicy, Sessions};
use crate::auth::throttle::{AddressThrottle, MAX_TRACKED_ADDRESSES};
use crate::auth::tokens::KeyRing;
use crate::db::Database;
use crate::email::Mailer;
use crate::error::{ApiError, ErrorCode, PROBLEM_JSON};
use crate::metrics::Metrics;
use crate::recovery::{Links, Outbox, Recovery, ResetThrottle};
use crate::settings::{Origin, Settings, SettingsError};
use crate::state::AppState;
use crate::telemetry;

/// How long a stopping server waits for queued mails to go out.
const MAIL_DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    prune_interval: Duration,
}

/// Why the application could not start: a setting (named), or the listener.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot listen on `server.bind`: {0}")]
    Bind(std::io::Error),
}

impl Application {
    /// Connects and migrates the database, loads the keys, binds the
    /// listener, and wires the routes. Nothing is served until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let state = web::Data::from(Arc::new(build_state(&settings).await?));
        let shared = state.clone();
        let listener = TcpListener::bind(settings.server.bind).map_err(StartupError::Bind)?;
        let port = listener.local_addr().map_err(StartupError::Bind)?.port();
        let max_body = settings.server.max_body_bytes.get();
        let allowed_origins = settings.cors.allowed_origins.clone();
        let server = HttpServer::new(move || {
            let metrics = Arc::clone(&state.metrics);
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|error, _| {
                    ApiError::new(
                        ErrorCode::InvalidQuery,
                        format!("Invalid query string: {error}."),
                    )
                    .into()
                }))
                .configure(crate::routes::configure)
                .default_service(web::to(crate::routes::not_found))
                .wrap(from_fn(move |req, next| {
                    crate::http::body::bound_request(req, next, max_body)
                }))
                .wrap(from_fn(crate::http::path::normalize))
                .wrap(cors(&allowed_origins))
                .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
                .wrap(from_fn(move |req, next| {
                    telemetry::request_id(req, next, Arc::clone(&metrics))
                }))
        })
        .workers(settings.workers())
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .shutdown_timeout(settings.server.shutdown_timeout_secs.get())
        .listen(listener)
        .map_err(StartupError::Bind)?
        .run();
        Ok(Self {
            server,
            port,
            state: shared,
            prune_interval: settings.database.prune_interval_secs.duration(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Reports the log writer's dropped lines in `/metrics`.
    pub fn count_dropped_log_lines(&self, dropped: tracing_appender::non_blocking::ErrorCounter) {
        self.state.metrics.count_dropped_log_lines(dropped);
    }

    /// Serves until SIGINT/SIGTERM (actix drains in-flight requests), pruning
    /// expired rows in the background meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let pruner = actix_web::rt::spawn(prune_forever(self.state, self.prune_interval));
        let result = self.server.await;
        pruner.abort();
        // Mails the last requests queued, within a bounded wait.
        state.outbox.drain(MAIL_DRAIN_DEADLINE).await;
        result
    }
}

/// Everything the handlers share, built from settings; a bad setting or an
/// unreachable database is an error naming the setting.
pub async fn build_state(settings: &Settings) -> Result<AppState, SettingsError> {
    let metrics = Arc::new(Metrics::new());
    let keys = Arc::new(KeyRing::from_settings(settings)?);
    let hasher = PasswordHasher::new(
        &settings.password,
        std::thread::available_parallelism().map_or(1, usize::from),
    )?
    .with_timer(metrics.argon2_timer());
    let (db, applied) = Database::open(&settings.database, Some(metrics.pool_wait_timer())).await?;
    for migration in applied {
        tracing::info!(%migration, backend = settings.database.url.backend_name(), "applied migration");
    }
    let auth = &settings.auth;
    let throttle = Arc::new(LoginThrottle {
        addresses: AddressThrottle::new(
            auth.address_max_failures.get(),
            auth.login_window_secs.duration(),
            MAX_TRACKED_ADDRESSES,
        ),
        account_max_failures: i32::try_from(auth.login_max_failures.get()).unwrap_or(i32::MAX),
        window: auth.login_window_secs.time_delta(),
    });
    let totp_key = crate::auth::totp::load_key(
        settings.mfa.encryption_key_file.as_deref(),
        &settings.server.data_dir,
        settings.server.env == crate::settings::DeployEnv::Production,
    )?;
    let policy = SessionPolicy {
        refresh_ttl: settings.jwt.refresh_ttl_secs.time_delta(),
        refresh_reuse_grace: settings.jwt.refresh_reuse_grace_secs.time_delta(),
        legacy_exchange_until: auth.legacy_exchange_until,
        require_verified_email: auth.require_verified_email,
        totp_key: totp_key.clone(),
    };
    let mailer = Mailer::start(&settings.email, settings.server.env, Arc::clone(&metrics))?;
    let links = Links {
        public_url: settings.server.public_url.clone(),
        reset_url: auth.reset_url.clone(),
        verify_url: auth.verify_url.clone(),
    };
    let outbox = Arc::new(Outbox::new(
        mailer,
        links,
        auth.reset_ttl_secs.time_delta(),
        auth.verify_ttl_secs.time_delta(),
    ));
    let reset_throttle = ResetThrottle {
        addresses: AddressThrottle::new(
            auth.address_max_failures.get(),
            auth.login_window_secs.duration(),
            MAX_TRACKED_ADDRESSES,
        ),
        max_per_address: i32::try_from(auth.reset_max_requests.get()).unwrap_or(i32::MAX),
        window: auth.login_window_secs.time_delta(),
    };
    Ok(AppState {
        accounts: Accounts::new(db.clone(), hasher.clone(), Arc::clone(&outbox)),
        recovery: Recovery::new(
            db.clone(),
            hasher.clone(),
            Arc::clone(&outbox),
            reset_throttle,
        ),
        outbox,
        passkeys: Passkeys::new(db.clone(), &settings.webauthn)?,
        mfa: Mfa::new(
            db.clone(),
            hasher.clone(),
            totp_key,
            settings.jwt.issuer.clone(),
        ),
        clients: ServiceClients::new(db.clone(), Arc::clone(&throttle), Arc::clone(&metrics)),
        sessions: Sessions::new(
            db.clone(),
            Arc::clone(&keys),
            hasher.clone(),
            throttle,
            Arc::clone(&metrics),
            policy,
        ),
        keys,
        db,
        hasher,
        metrics,
        registration: auth.registration,
        public_url: settings.server.public_url.clone(),
        trusted_proxies: settings
            .server
            .trusted_proxies
            .iter()
            .map(|proxy| proxy.0)
            .collect(),
    })
}

/// CORS for browser clients: the configured origins (or any, with `*`),
/// bearer tokens rather than cookies (no credentials), preflights cached.
fn cors(allowed_origins: &[Origin]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            telemetry::REQUEST_ID,
        ])
        .expose_headers([
            telemetry::REQUEST_ID,
            header::LOCATION,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            crate::routes::auth::X_USER_ID,
            crate::routes::auth::X_USER_ROLE,
            crate::routes::auth::X_USER_AAL,
        ])
        .max_age(3600);
    for origin in allowed_origins {
        cors = match origin {
            Origin::Any => cors.allow_any_origin(),
            Origin::Exact(origin) => cors.allowed_origin(origin),
        };
    }
    cors
}

/// Prunes expired tokens and throttling windows every `interval`, forever.
async fn prune_forever(state: web::Data<AppState>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        match state.sessions.prune_expired().await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned expired tokens"),
            Err(error) => tracing::warn!(%error, "pruning expired tokens failed"),
        }
    }
}

/// Turns any error response that is not problem+json yet (actix's own 404,
/// 405, 413, ...) into one, so clients see one error format.
fn problem_for_bare_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let other_format = response
        .response()
        .extensions()
        .contains::<crate::error::OtherErrorFormat>();
    if is_problem || other_format {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let code = ErrorCode::ALL
        .into_iter()
        .find(|code| code.status() == status && *code != ErrorCode::InvalidCurrentPassword)
        .unwrap_or(if status.is_server_error() {
            ErrorCode::InternalError
        } else {
            ErrorCode::ParseError
        });
    let detail = status.canonical_reason().unwrap_or("Error").to_owned();
    let (request, _) = response.into_parts();
    let problem = ApiError::new(code, format!("{detail}.")).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, problem).map_into_right_body(),
    ))
}
