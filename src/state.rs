//! What every handler shares: built once at startup, read-only afterwards.

use chrono::TimeDelta;

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::KeyRing;
use crate::db::Pool;
use crate::settings::Registration;

pub struct AppState {
    pub pool: Pool,
    pub keys: KeyRing,
    pub hasher: PasswordHasher,
    pub registration: Registration,
    pub refresh_ttl: TimeDelta,
    pub refresh_reuse_grace: TimeDelta,
}
