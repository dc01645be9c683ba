use serde::{Deserialize, Serialize};

/// A user's role, or `service` for a service client's token; travels in
/// the `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    /// A service client (client-credentials grant), never a user's role.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    /// A user's role: `user` or `admin` (never `service`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err("Must be \"user\" or \"admin\".".to_owned()),
        }
    }
}
