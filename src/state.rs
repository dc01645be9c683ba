//! What every handler shares: built once at startup, read-only afterwards.

use chrono::TimeDelta;

use crate::auth::password::PasswordHasher;
use crate::auth::throttle::AddressThrottle;
use crate::auth::tokens::KeyRing;
use crate::db::Database;
use crate::metrics::Metrics;
use crate::settings::Registration;

pub struct AppState {
    pub pool: Database,
    pub keys: KeyRing,
    pub hasher: PasswordHasher,
    pub registration: Registration,
    pub refresh_ttl: TimeDelta,
    pub refresh_reuse_grace: TimeDelta,
    pub throttle: LoginThrottle,
    pub metrics: Metrics,
    /// `auth.legacy_exchange_until`: when legacy DRF keys stop working.
    pub legacy_exchange_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The login throttling settings and the per-address counters.
pub struct LoginThrottle {
    pub addresses: AddressThrottle,
    pub account_max_failures: i32,
    pub window: TimeDelta,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}
