//! Typed settings, layered as the contract says: the compiled-in
//! `config/default.toml`, then `config/default.toml` in the working directory,
//! then the file named by `TESSERA_CONFIG`, then `TESSERA__SECTION__KEY`
//! environment variables.
//!
//! Every struct denies unknown fields, so a misspelt key stops startup with a
//! message naming it instead of being silently ignored.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;

/// The committed defaults; the binary needs no file to run.
pub const DEFAULTS_TOML: &str = include_str!("../config/default.toml");

/// The longest duration any `_secs` setting may name: beyond it, date
/// arithmetic would overflow, and no real deployment wants more.
pub const MAX_DURATION_SECS: u64 = 10 * 366 * 24 * 3600;

/// Settings keys whose environment variable is a comma-separated list.
const LIST_KEYS: [&str; 4] = [
    "server.trusted_proxies",
    "jwt.previous_secrets",
    "jwt.public_key_files",
    "cors.allowed_origins",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub jwt: JwtSettings,
    pub auth: AuthSettings,
    pub password: PasswordSettings,
    pub cors: CorsSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: Option<usize>,
    pub data_dir: PathBuf,
    pub env: DeployEnv,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// `server.env`: `production` demands explicit, strong keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May carry a password (`postgres://user:pw@host/db`), hence secret.
    pub url: SecretString,
    pub pool_size: u32,
    pub connect_timeout_secs: u64,
    pub prune_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithm: String,
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub previous_secrets: Vec<SecretString>,
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub public_key_files: Vec<PathBuf>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub leeway_secs: u64,
    pub refresh_reuse_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Open,
    AdminOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub registration: Registration,
    pub login_max_failures: u32,
    pub address_max_failures: u32,
    pub login_window_secs: u64,
    /// After this moment `POST /auth/exchange` refuses every legacy DRF key
    /// (the cut-over); unset: exchange stays open.
    #[serde(default)]
    pub legacy_exchange_until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: Option<LogFormat>,
    pub level: String,
}

/// A setting that stops startup: the key it concerns and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{key}`: {message}")]
pub struct SettingsError {
    pub key: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Settings {
    /// Loads the layered settings from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let extra_file = std::env::var_os("TESSERA_CONFIG").map(PathBuf::from);
        Self::load_from(Path::new("config/default.toml"), extra_file.as_deref())
    }

    /// Only the compiled-in defaults: what tests start from.
    pub fn defaults() -> Result<Self, SettingsError> {
        Config::builder()
            .add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .map_err(config_error)
            .and_then(Self::validated)
    }

    fn load_from(local_file: &Path, extra_file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml));
        if local_file.is_file() {
            builder = builder.add_source(File::from(local_file).format(FileFormat::Toml));
        }
        if let Some(path) = extra_file {
            if !path.is_file() {
                return Err(SettingsError::new(
                    "TESSERA_CONFIG",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        // No `try_parsing`: it would turn a numeric-looking secret into a
        // number. Lists are split here instead.
        let environment = Environment::with_prefix("TESSERA")
            .prefix_separator("__")
            .separator("__");
        for key in LIST_KEYS {
            let variable = format!("TESSERA__{}", key.replace('.', "__").to_uppercase());
            if let Ok(value) = std::env::var(&variable) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder = builder.set_override(key, items).map_err(config_error)?;
            }
        }
        builder
            .add_source(environment)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(config_error)
            .and_then(Self::validated)
    }

    /// Checks what types alone cannot say, naming the key at fault.
    fn validated(self) -> Result<Self, SettingsError> {
        self.bind_address()?;
        self.jwt_algorithm()?;
        if self.server.workers == Some(0) {
            return Err(SettingsError::new("server.workers", "must be at least 1"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(SettingsError::new(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        for origin in &self.cors.allowed_origins {
            let valid = origin == "*"
                || ((origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin
                        .trim_end_matches('/')
                        .split_once("://")
                        .is_some_and(|(_, host)| host.contains('/')));
            if !valid {
                return Err(SettingsError::new(
                    "cors.allowed_origins",
                    format!("`{origin}` is not an origin such as https://app.example.com"),
                ));
            }
        }
        crate::auth::throttle::parse_trusted_proxies(&self.server.trusted_proxies)
            .map_err(|m| SettingsError::new("server.trusted_proxies", m))?;
        for (key, value) in [
            ("auth.login_max_failures", self.auth.login_max_failures),
            ("auth.address_max_failures", self.auth.address_max_failures),
        ] {
            if value == 0 || value > 1_000_000 {
                return Err(SettingsError::new(key, "must be between 1 and 1000000"));
            }
        }
        if self.auth.login_window_secs == 0 {
            return Err(SettingsError::new(
                "auth.login_window_secs",
                "must be at least 1",
            ));
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError::new(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        if self.database.connect_timeout_secs == 0 {
            return Err(SettingsError::new(
                "database.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.database.prune_interval_secs == 0 {
            return Err(SettingsError::new(
                "database.prune_interval_secs",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("jwt.access_ttl_secs", self.jwt.access_ttl_secs),
            ("jwt.refresh_ttl_secs", self.jwt.refresh_ttl_secs),
        ] {
            if value == 0 {
                return Err(SettingsError::new(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            ("jwt.access_ttl_secs", self.jwt.access_ttl_secs),
            ("jwt.refresh_ttl_secs", self.jwt.refresh_ttl_secs),
            ("jwt.leeway_secs", self.jwt.leeway_secs),
            (
                "jwt.refresh_reuse_grace_secs",
                self.jwt.refresh_reuse_grace_secs,
            ),
            ("auth.login_window_secs", self.auth.login_window_secs),
            (
                "database.prune_interval_secs",
                self.database.prune_interval_secs,
            ),
            (
                "database.connect_timeout_secs",
                self.database.connect_timeout_secs,
            ),
            (
                "server.shutdown_timeout_secs",
                self.server.shutdown_timeout_secs,
            ),
        ] {
            if value > MAX_DURATION_SECS {
                return Err(SettingsError::new(
                    key,
                    format!("must be at most {MAX_DURATION_SECS} (ten years)"),
                ));
            }
        }
        if self.jwt.issuer.is_empty() {
            return Err(SettingsError::new("jwt.issuer", "must not be empty"));
        }
        if self.jwt.audience.is_empty() {
            return Err(SettingsError::new("jwt.audience", "must not be empty"));
        }
        crate::auth::password::PasswordHasher::params_from(&self.password)?;
        crate::db::DatabaseUrl::parse(&self.database.url)?;
        Ok(self)
    }

    pub fn bind_address(&self) -> Result<SocketAddr, SettingsError> {
        self.server.bind.parse().map_err(|_| {
            SettingsError::new(
                "server.bind",
                format!(
                    "`{}` is not a socket address such as 127.0.0.1:8080",
                    self.server.bind
                ),
            )
        })
    }

    pub fn jwt_algorithm(&self) -> Result<Algorithm, SettingsError> {
        match self.jwt.algorithm.as_str() {
            "HS256" => Ok(Algorithm::HS256),
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(SettingsError::new(
                "jwt.algorithm",
                format!("`{other}` is not one of HS256, RS256, ES256, EdDSA"),
            )),
        }
    }

    /// `log.format`, or its default for `server.env`.
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(match self.server.env {
            DeployEnv::Production => LogFormat::Json,
            DeployEnv::Development => LogFormat::Text,
        })
    }

    pub fn workers(&self) -> usize {
        self.server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
    }
}

/// `config` names the key in its messages (`missing field ... for key ...`);
/// keep that text but make it one line.
fn config_error(error: config::ConfigError) -> SettingsError {
    let text = error.to_string().replace('\n', " ");
    let key = match &error {
        config::ConfigError::Type { key: Some(key), .. } => key.clone(),
        config::ConfigError::NotFound(key) => key.clone(),
        config::ConfigError::At { key: Some(key), .. } => key.clone(),
        _ => "settings".to_owned(),
    };
    SettingsError::new(key, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_defaults_match_the_contract() {
        let settings = Settings::defaults().unwrap();
        assert_eq!(settings.server.bind, "127.0.0.1:8080");
        assert_eq!(settings.jwt.access_ttl_secs, 900);
        assert_eq!(settings.jwt.refresh_ttl_secs, 1_209_600);
        assert_eq!(settings.jwt.leeway_secs, 30);
        assert_eq!(settings.jwt.refresh_reuse_grace_secs, 0);
        assert_eq!(settings.password.argon2_memory_kib, 19_456);
        assert_eq!(settings.database.pool_size, 8);
        assert_eq!(settings.auth.registration, Registration::Open);
        assert_eq!(settings.jwt_algorithm().unwrap(), Algorithm::HS256);
    }

    #[test]
    fn an_unknown_key_in_a_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(&file, "[server]\nbindd = \"0.0.0.0:1\"\n").unwrap();
        let error = Settings::load_from(Path::new("/nonexistent"), Some(&file)).unwrap_err();
        assert!(error.to_string().contains("bindd"), "{error}");
    }

    #[test]
    fn an_unknown_algorithm_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(&file, "[jwt]\nalgorithm = \"none\"\n").unwrap();
        let error = Settings::load_from(Path::new("/nonexistent"), Some(&file)).unwrap_err();
        assert_eq!(error.key, "jwt.algorithm");
    }

    #[test]
    fn an_absurd_lifetime_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(&file, "[jwt]\nrefresh_ttl_secs = 10000000000000\n").unwrap();
        let error = Settings::load_from(Path::new("/nonexistent"), Some(&file)).unwrap_err();
        assert_eq!(error.key, "jwt.refresh_ttl_secs");
    }

    #[test]
    fn a_missing_config_file_is_refused() {
        let error = Settings::load_from(Path::new("/nonexistent"), Some(Path::new("/nope.toml")))
            .unwrap_err();
        assert_eq!(error.key, "TESSERA_CONFIG");
    }
}
