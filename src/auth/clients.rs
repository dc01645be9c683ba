//! Service clients (OAuth 2.0 client credentials, RFC 6749 §4.4): creating,
//! listing and deleting them (the CLI), authenticating one by its id and
//! secret (throttled like logins), issuing its access tokens, and checking
//! its bearer token on the logout-sensitive routes.
//!
//! A secret is 256 random bits, shown once and stored as its SHA-256: with
//! full entropy a fast hash suffices (no Argon2), and the comparison runs in
//! constant time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::auth::refresh;
use crate::auth::sessions::{AccessError, LoginThrottle, check_service_token};
use crate::auth::tokens::{Claims, KeyRing};
use crate::db::{self, Database, StoreError, login_failures, service_clients};
use crate::metrics::Metrics;
use crate::store_errors;

/// Longest client id looked up; anything longer is refused unread.
const MAX_CLIENT_ID_CHARS: usize = 128;
/// Longest client name.
const MAX_NAME_CHARS: usize = 200;

/// A stored client, without its secret.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A client whose credentials (or bearer token) were just checked.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client_id: String,
    pub scopes: Vec<String>,
}

/// An access token for a service client.
pub struct ServiceToken {
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// Why client authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// Too many failures for this client or from this address.
    #[error("throttled for {0:?}")]
    Throttled(Duration),
    /// Unknown client, wrong secret, or a deleted client: indistinguishable.
    #[error("invalid client credentials")]
    InvalidClient,
    #[error(transparent)]
    Store(StoreError),
}

/// Why a token could not be issued to an authenticated client.
#[derive(Debug, thiserror::Error)]
pub enum ClientTokenError {
    /// A requested scope the client does not have.
    #[error("a requested scope is not granted to this client")]
    InvalidScope,
    #[error("cannot sign the access token: {0}")]
    Signing(String),
}

/// Why a client could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateClientError {
    #[error("--name: must be 1 to {MAX_NAME_CHARS} characters")]
    InvalidName,
    #[error(
        "--scope: `{0}` is not an RFC 6749 scope token (printable ASCII, no space, quote or backslash)"
    )]
    InvalidScope(String),
    #[error(transparent)]
    Store(StoreError),
}

store_errors!(ClientAuthError, CreateClientError);

/// The service-client use cases.
pub struct ServiceClients {
    db: Database,
    throttle: Arc<LoginThrottle>,
    metrics: Arc<Metrics>,
}

/// Whether `scope` is an RFC 6749 §3.3 scope token.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split_whitespace().map(str::to_owned).collect()
}

impl ServiceClients {
    pub fn new(db: Database, throttle: Arc<LoginThrottle>, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            throttle,
            metrics,
        }
    }

    /// Creates a client; its secret is returned once and stored hashed.
    pub async fn create(
        &self,
        name: &str,
        scopes: &[String],
    ) -> Result<(ClientInfo, SecretString), CreateClientError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(CreateClientError::InvalidName);
        }
        let mut granted: Vec<String> = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split_whitespace()) {
            if !is_scope_token(scope) {
                return Err(CreateClientError::InvalidScope(scope.to_owned()));
            }
            if !granted.iter().any(|known| known == scope) {
                granted.push(scope.to_owned());
            }
        }
        let (secret, secret_hash) = refresh::generate();
        let client_id = uuid::Uuid::new_v4().to_string();
        let created_at = db::now();
        let info = ClientInfo {
            client_id: client_id.clone(),
            name: name.clone(),
            scopes: granted.clone(),
            created_at: created_at.and_utc(),
        };
        db::run(&self.db, move |conn| {
            service_clients::insert(
                conn,
                &service_clients::NewServiceClient {
                    client_id: &client_id,
                    name: &name,
                    secret_hash: &secret_hash,
                    scopes: &granted.join(" "),
                    created_at,
                },
            )
            .map_err(CreateClientError::from)
        })
        .await?;
        Ok((info, secret))
    }

    /// Every client, oldest first; never a secret.
    pub async fn list(&self) -> Result<Vec<ClientInfo>, StoreError> {
        let rows = db::run(&self.db, |conn| {
            service_clients::list(conn).map_err(StoreError::from)
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ClientInfo {
                scopes: split_scopes(&row.scopes),
                client_id: row.client_id,
                name: row.name,
                created_at: row.created_at.and_utc(),
            })
            .collect())
    }

    /// Deletes a client: its secret stops working at once, and its
    /// outstanding tokens fail on the logout-sensitive routes and in
    /// introspection. Whether it existed.
    pub async fn delete(&self, client_id: String) -> Result<bool, StoreError> {
        db::run(&self.db, move |conn| {
            service_clients::delete(conn, &client_id).map_err(StoreError::from)
        })
        .await
    }

    /// Checks a client's id and secret. Throttled like logins: per client
    /// (in the database, across instances) and per client address (the
    /// login throttle's counters); a throttled client is refused even with
    /// the right secret.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        if let Some(wait) =
            address.and_then(|ip| self.throttle.addresses.retry_after(ip, Instant::now()))
        {
            self.metrics.throttled("address");
            return Err(ClientAuthError::Throttled(wait));
        }
        if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_ID_CHARS {
            self.record_address_failure(address);
            return Err(ClientAuthError::InvalidClient);
        }
        let client_id = client_id.to_owned();
        let presented_hash = refresh::hash(secret.expose_secret());
        let (max_failures, window) = (self.throttle.account_max_failures, self.throttle.window);
        let outcome = db::run(&self.db, move |conn| {
            let account = format!("client:{client_id}");
            let now = db::now();
            if let Some(until) =
                login_failures::throttled_until(conn, &account, now, max_failures, window)?
            {
                let wait = (until - now).to_std().unwrap_or_default();
                return Ok(Err(ClientAuthError::Throttled(wait)));
            }
            let client = service_clients::find(conn, &client_id)?;
            let matches = client.as_ref().is_some_and(|client| {
                bool::from(
                    client
                        .secret_hash
                        .as_bytes()
                        .ct_eq(presented_hash.as_bytes()),
                )
            });
            match client {
                Some(client) if matches => {
                    login_failures::reset(conn, &account)?;
                    Ok(Ok(AuthenticatedClient {
                        client_id: client.client_id,
                        scopes: split_scopes(&client.scopes),
                    }))
                }
                _ => {
                    login_failures::record_failure(conn, &account, now, window)?;
                    Ok(Err(ClientAuthError::InvalidClient))
                }
            }
        })
        .await
        .map_err(|error: ClientAuthError| error)?;
        match &outcome {
            Err(ClientAuthError::InvalidClient) => self.record_address_failure(address),
            Err(ClientAuthError::Throttled(_)) => self.metrics.throttled("client"),
            _ => {}
        }
        outcome
    }

    /// The logout-sensitive check of a service client's bearer token: the
    /// client still exists and the token was not revoked.
    pub async fn authorize_token(
        &self,
        claims: Claims,
    ) -> Result<AuthenticatedClient, AccessError> {
        db::run(&self.db, move |conn| {
            check_service_token(conn, &claims)?;
            Ok(AuthenticatedClient {
                client_id: claims.sub,
                scopes: claims
                    .scope
                    .as_deref()
                    .map(split_scopes)
                    .unwrap_or_default(),
            })
        })
        .await
    }

    /// Signs an access token for `client` with `keys` and the requested
    /// scopes (a subset of its own), or all of its scopes when none are
    /// requested.
    pub fn issue_token(
        &self,
        keys: &KeyRing,
        client: &AuthenticatedClient,
        requested: Option<&str>,
    ) -> Result<ServiceToken, ClientTokenError> {
        let scopes = match requested.map(split_scopes) {
            Some(requested) if !requested.is_empty() => {
                if !requested.iter().all(|scope| client.scopes.contains(scope)) {
                    return Err(ClientTokenError::InvalidScope);
                }
                requested
            }
            _ => client.scopes.clone(),
        };
        let scope = scopes.join(" ");
        let (access_token, _) = keys
            .issue_service_token(&client.client_id, &scope)
            .map_err(|error| ClientTokenError::Signing(error.to_string()))?;
        self.metrics.service_token_issued();
        Ok(ServiceToken {
            access_token,
            expires_in: keys.access_ttl_secs(),
            scope,
        })
    }

    fn record_address_failure(&self, address: Option<IpAddr>) {
        if let Some(ip) = address {
            self.throttle.addresses.record_failure(ip, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("users:read"));
        assert!(is_scope_token("a!#[]~"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope_token(bad), "{bad}");
        }
    }
}
