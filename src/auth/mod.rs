//! Authentication: passwords, access tokens, refresh tokens, and the request
//! extractors that check them.

pub mod django;
pub mod extract;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod throttle;
pub mod tokens;
