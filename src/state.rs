//! What every handler shares: built once at startup, read-only afterwards.
//! The services do the work; the rest is what the HTTP edge itself reads.

use std::sync::Arc;

use ipnet::IpNet;

use crate::accounts::Accounts;
use crate::auth::clients::ServiceClients;
use crate::auth::mfa::Mfa;
use crate::auth::passkeys::Passkeys;
use crate::auth::password::PasswordHasher;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::KeyRing;
use crate::db::Database;
use crate::metrics::Metrics;
use crate::recovery::{Outbox, Recovery};
use crate::settings::Registration;

pub struct AppState {
    pub accounts: Accounts,
    pub sessions: Sessions,
    /// Service clients (client credentials).
    pub clients: ServiceClients,
    /// TOTP enrolment.
    pub mfa: Mfa,
    /// Passkey registration, removal and the login's verification.
    pub passkeys: Passkeys,
    pub recovery: Recovery,
    /// Queued mails, drained at shutdown.
    pub outbox: Arc<Outbox>,
    /// Verifies bearer tokens on every request, statelessly.
    pub keys: Arc<KeyRing>,
    pub db: Database,
    /// For its queue depth in `/metrics`.
    pub hasher: PasswordHasher,
    pub metrics: Arc<Metrics>,
    pub registration: Registration,
    /// `server.public_url`: the issuer and base of the OAuth metadata.
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` names the client address.
    pub trusted_proxies: Vec<IpNet>,
}
