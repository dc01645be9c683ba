//! Authentication: passwords, access tokens, refresh tokens, throttling,
//! and the session use cases built on them ([`sessions`]).

pub mod clients;
pub mod django;
pub mod keys;
pub mod mfa;
pub mod passkeys;
pub mod password;
pub mod refresh;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod totp;
