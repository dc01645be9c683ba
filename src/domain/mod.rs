//! Request values parsed once at the edge into types that cannot hold an
//! invalid value. Pure code: no I/O, no HTTP.

mod cursor;
mod email;
mod password;
mod role;
mod username;

pub use cursor::UserCursor;
pub use email::Email;
pub use password::Password;
pub use role::Role;
pub use username::Username;
