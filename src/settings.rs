//! Typed settings, layered as the contract says: the compiled-in
//! `config/default.toml`, then `config/default.toml` in the working directory,
//! then the file named by `TESSERA_CONFIG`, then `TESSERA__SECTION__KEY`
//! environment variables.
//!
//! Every struct denies unknown fields, so a misspelt key stops startup with a
//! message naming it instead of being silently ignored. Values are parsed
//! once, here, into the types the rest of the service uses (a socket
//! address, an algorithm, IP ranges, a database URL, bounded durations and
//! counts), so a bad value stops startup naming its key and nothing
//! downstream parses a setting again.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::TimeDelta;
use config::{Config, Environment, File, FileFormat};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

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
    pub email: EmailSettings,
    #[serde(default)]
    pub mfa: MfaSettings,
    pub webauthn: WebauthnSettings,
}

/// `webauthn.*`: passkeys. The relying party is the site whose pages call
/// the WebAuthn API; a passkey only works on the origin and RP id it was
/// made for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnSettings {
    /// The RP id: the origin's host or a registrable suffix of it.
    #[serde(deserialize_with = "non_empty")]
    pub rp_id: String,
    /// The web origin (scheme, host and port) the ceremonies run on.
    #[serde(deserialize_with = "web_origin")]
    pub origin: webauthn_rs::prelude::Url,
    /// The name an authenticator shows for the site.
    #[serde(deserialize_with = "non_empty")]
    pub rp_name: String,
}

/// `mfa.*`: multi-factor authentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettings {
    /// 32 bytes (base64url or hex) that encrypt the TOTP secrets at rest;
    /// unset outside production: generated into `<data_dir>/mfa.key`.
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(deserialize_with = "socket_address")]
    pub bind: SocketAddr,
    pub workers: Option<NonZeroUsize>,
    pub data_dir: PathBuf,
    pub env: DeployEnv,
    pub max_body_bytes: BodyLimit,
    pub shutdown_timeout_secs: Secs,
    #[serde(default)]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The base of the links tessera puts in mails and pages.
    #[serde(deserialize_with = "base_url")]
    pub public_url: String,
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
    pub url: DatabaseUrl,
    pub pool_size: NonZeroU32,
    pub connect_timeout_secs: Secs<1>,
    pub prune_interval_secs: Secs<1>,
}

/// `database.url`, parsed: which backend, and where. A PostgreSQL URL may
/// carry a password, so it stays secret and `Debug` hides it.
#[derive(Clone, Deserialize)]
#[serde(try_from = "SecretString")]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            DatabaseUrl::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

impl TryFrom<SecretString> for DatabaseUrl {
    type Error = String;

    fn try_from(url: SecretString) -> Result<Self, String> {
        let url = url.expose_secret();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/tessera.db".into());
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(SecretString::from(url.to_owned())))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}

impl DatabaseUrl {
    /// Parses a URL given anywhere but the settings (a CLI flag, a test).
    pub fn parse(url: &str) -> Result<Self, String> {
        Self::try_from(SecretString::from(url.to_owned()))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

/// `jwt.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Algorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        [
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .find(|algorithm| algorithm.as_str() == name)
        .ok_or_else(|| format!("`{name}` is not one of HS256, RS256, ES256, EdDSA"))
    }
}

impl TryFrom<String> for Algorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithm: Algorithm,
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub previous_secrets: Vec<SecretString>,
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub public_key_files: Vec<PathBuf>,
    #[serde(deserialize_with = "non_empty")]
    pub issuer: String,
    #[serde(deserialize_with = "non_empty")]
    pub audience: String,
    pub access_ttl_secs: Secs<1>,
    pub refresh_ttl_secs: Secs<1>,
    pub leeway_secs: Secs,
    pub refresh_reuse_grace_secs: Secs,
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
    pub login_max_failures: FailureLimit,
    pub address_max_failures: FailureLimit,
    pub login_window_secs: Secs<1>,
    /// After this moment `POST /auth/exchange` refuses every legacy DRF key
    /// (the cut-over); unset: exchange stays open.
    #[serde(default)]
    pub legacy_exchange_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The link a password-reset mail carries, with `{token}`; unset:
    /// tessera's own page, `<server.public_url>/reset-password?token=...`.
    #[serde(default, deserialize_with = "link_template")]
    pub reset_url: Option<String>,
    /// The link a verification mail carries, with `{token}`; unset:
    /// `<server.public_url>/verify-email?token=...`.
    #[serde(default, deserialize_with = "link_template")]
    pub verify_url: Option<String>,
    pub reset_ttl_secs: Secs<60>,
    pub verify_ttl_secs: Secs<60>,
    /// When true, an account whose email is not verified cannot log in
    /// (403 `email_not_verified`), and login by email uses only verified
    /// (or imported) addresses.
    pub require_verified_email: bool,
    /// Password-reset requests for one address within `login_window_secs`
    /// before further requests send nothing (the answer stays 202).
    pub reset_max_requests: FailureLimit,
}

/// `email.transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// Each message, its link included, goes to the log at `info`.
    Log,
    /// Sent through `email.smtp_url`.
    Smtp,
    /// Nothing is sent.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required` or
    /// `smtps://user:pass@host:465`; may carry a password.
    pub smtp_url: Option<SecretString>,
    pub from: String,
    pub templates_dir: Option<PathBuf>,
    /// Mails waiting to be sent at most; beyond, a mail is dropped (logged
    /// and counted) rather than slowing the request that caused it.
    pub queue_capacity: NonZeroUsize,
    /// Delivery attempts of one mail before it is given up (logged, counted).
    pub max_attempts: NonZeroU32,
    /// The wait before the first retry; it doubles with each attempt.
    pub retry_initial_secs: Secs<1>,
}

/// `password.*`: the Argon2id cost, checked by the `argon2` crate itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "PasswordCost")]
pub struct PasswordSettings {
    pub params: argon2::Params,
}

/// `password.*` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordCost {
    argon2_memory_kib: u32,
    argon2_iterations: u32,
    argon2_parallelism: u32,
}

impl TryFrom<PasswordCost> for PasswordSettings {
    type Error = String;

    fn try_from(cost: PasswordCost) -> Result<Self, String> {
        Self::new(
            cost.argon2_memory_kib,
            cost.argon2_iterations,
            cost.argon2_parallelism,
        )
    }
}

impl PasswordSettings {
    /// An Argon2id cost; the error names the setting at fault.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, String> {
        argon2::Params::new(memory_kib, iterations, parallelism, None)
            .map(|params| Self { params })
            .map_err(|error| {
                let key = match error {
                    argon2::Error::MemoryTooLittle | argon2::Error::MemoryTooMuch => {
                        "argon2_memory_kib"
                    }
                    argon2::Error::TimeTooSmall => "argon2_iterations",
                    _ => "argon2_parallelism",
                };
                format!("password.{key}: {error}")
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    #[serde(default)]
    pub allowed_origins: Vec<Origin>,
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

/// A `_secs` setting: whole seconds, at least `MIN`, at most
/// [`MAX_DURATION_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "u64")]
pub struct Secs<const MIN: u64 = 0>(u64);

impl<const MIN: u64> TryFrom<u64> for Secs<MIN> {
    type Error = String;

    fn try_from(secs: u64) -> Result<Self, String> {
        if secs < MIN {
            Err(format!("must be at least {MIN}"))
        } else if secs > MAX_DURATION_SECS {
            Err(format!("must be at most {MAX_DURATION_SECS} (ten years)"))
        } else {
            Ok(Self(secs))
        }
    }
}

impl<const MIN: u64> Secs<MIN> {
    pub fn new(secs: u64) -> Result<Self, String> {
        Self::try_from(secs)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }

    /// As a `chrono` span; bounded, so it cannot overflow.
    pub fn time_delta(self) -> TimeDelta {
        // At most ten years: always representable.
        TimeDelta::try_seconds(i64::try_from(self.0).unwrap_or(i64::MAX)).unwrap_or(TimeDelta::MAX)
    }
}

/// `auth.*_max_failures`: 1 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct FailureLimit(u32);

impl TryFrom<u32> for FailureLimit {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, String> {
        if (1..=1_000_000).contains(&value) {
            Ok(Self(value))
        } else {
            Err("must be between 1 and 1000000".to_owned())
        }
    }
}

impl FailureLimit {
    pub fn new(value: u32) -> Result<Self, String> {
        Self::try_from(value)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// `server.max_body_bytes`: at least 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "usize")]
pub struct BodyLimit(usize);

impl TryFrom<usize> for BodyLimit {
    type Error = String;

    fn try_from(bytes: usize) -> Result<Self, String> {
        if bytes < 1024 {
            Err("must be at least 1024".to_owned())
        } else {
            Ok(Self(bytes))
        }
    }
}

impl BodyLimit {
    pub fn get(self) -> usize {
        self.0
    }
}

/// A `server.trusted_proxies` entry: an address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxy(pub IpNet);

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
            .map(Self)
            .map_err(|_| format!("`{entry}` is not an IP address or CIDR range"))
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(entry: String) -> Result<Self, String> {
        entry.parse()
    }
}

/// A `cors.allowed_origins` entry: `scheme://host[:port]`, or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Origin {
    Any,
    Exact(String),
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(origin: String) -> Result<Self, String> {
        if origin == "*" {
            return Ok(Origin::Any);
        }
        let trimmed = origin.trim_end_matches('/');
        let valid = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
            && !trimmed
                .split_once("://")
                .is_some_and(|(_, host)| host.is_empty() || host.contains('/'));
        if valid {
            Ok(Origin::Exact(trimmed.to_owned()))
        } else {
            Err(format!(
                "`{origin}` is not an origin such as https://app.example.com"
            ))
        }
    }
}

fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not a socket address such as 127.0.0.1:8080"
        ))
    })
}

/// An `http(s)://` URL, kept without its trailing slash.
fn base_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    let trimmed = text.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() => Ok(trimmed.to_owned()),
        _ => Err(serde::de::Error::custom(format!(
            "`{text}` is not a URL such as https://auth.example.com"
        ))),
    }
}

/// A link template: an `http(s)://` URL with a `{token}` placeholder.
fn link_template<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let valid =
        (text.starts_with("https://") || text.starts_with("http://")) && text.contains("{token}");
    if valid {
        Ok(Some(text))
    } else {
        Err(serde::de::Error::custom(format!(
            "`{text}` is not a link with {{token}}, such as https://app.example.com/reset?token={{token}}"
        )))
    }
}

/// A web origin: `http(s)://host[:port]`, no path.
fn web_origin<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<webauthn_rs::prelude::Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    let invalid = || {
        serde::de::Error::custom(format!(
            "`{text}` is not an origin such as https://auth.example.com"
        ))
    };
    let url = webauthn_rs::prelude::Url::parse(&text).map_err(|_| invalid())?;
    let is_origin = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if is_origin { Ok(url) } else { Err(invalid()) }
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(text)
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
    }

    /// `log.format`, or its default for `server.env`.
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(match self.server.env {
            DeployEnv::Production => LogFormat::Json,
            DeployEnv::Development => LogFormat::Text,
        })
    }

    pub fn workers(&self) -> usize {
        self.server.workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, usize::from),
            usize::from,
        )
    }
}

/// `config` names the key in its messages (`missing field ... for key ...`);
/// keep that text but make it one line.
fn config_error(error: config::ConfigError) -> SettingsError {
    let (key, text) = match &error {
        config::ConfigError::Type { key: Some(key), .. } => (key.clone(), error.to_string()),
        config::ConfigError::NotFound(key) => (key.clone(), error.to_string()),
        // A value our own types refused: their message, under the key.
        config::ConfigError::At {
            key: Some(key),
            error: inner,
            ..
        } => (key.clone(), inner.to_string()),
        _ => ("settings".to_owned(), error.to_string()),
    };
    SettingsError::new(key, text.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_defaults_match_the_contract() {
        let settings = Settings::defaults().unwrap();
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.jwt.access_ttl_secs.get(), 900);
        assert_eq!(settings.jwt.refresh_ttl_secs.get(), 1_209_600);
        assert_eq!(settings.jwt.leeway_secs.get(), 30);
        assert_eq!(settings.jwt.refresh_reuse_grace_secs.get(), 0);
        assert_eq!(settings.password.params.m_cost(), 19_456);
        assert_eq!(settings.password.params.t_cost(), 2);
        assert_eq!(settings.password.params.p_cost(), 1);
        assert_eq!(settings.database.pool_size.get(), 8);
        assert_eq!(settings.auth.registration, Registration::Open);
        assert_eq!(settings.jwt.algorithm, Algorithm::HS256);
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
    fn trusted_proxies_accept_addresses_and_ranges() {
        for entry in ["127.0.0.1", "::1", "172.16.0.0/12"] {
            assert!(entry.parse::<TrustedProxy>().is_ok(), "{entry}");
        }
        assert!("nope".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn too_little_argon2_memory_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(&file, "[password]\nargon2_memory_kib = 1\n").unwrap();
        let error = Settings::load_from(Path::new("/nonexistent"), Some(&file)).unwrap_err();
        assert!(
            error.to_string().contains("password.argon2_memory_kib"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_config_file_is_refused() {
        let error = Settings::load_from(Path::new("/nonexistent"), Some(Path::new("/nope.toml")))
            .unwrap_err();
        assert_eq!(error.key, "TESSERA_CONFIG");
    }
}
