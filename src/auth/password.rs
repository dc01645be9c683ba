//! Argon2id hashing and verification, off the HTTP workers and bounded.
//!
//! Each hash holds `argon2_memory_kib` of memory for tens of milliseconds, so
//! at most one hash per core runs at a time (a semaphore), on the blocking
//! pool; further logins wait their turn without holding memory or a worker.
//! An unknown user verifies a dummy hash of the same cost, so it takes as long
//! as a wrong password. Hashes imported from Django are verified in their
//! own format ([`django`]) and flagged for replacement.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::auth::django;
use crate::settings::{PasswordSettings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("hashing task failed: {0}")]
    Task(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash was made with other parameters than the configured
    /// ones and should be replaced now that the password is known.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with the configured Argon2id cost.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
    waiting: Arc<AtomicUsize>,
    /// Where each hash's duration is reported, if anywhere.
    timer: Option<prometheus::Histogram>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Validates the `password.*` settings into Argon2 parameters.
    pub fn params_from(settings: &PasswordSettings) -> Result<Params, SettingsError> {
        Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| {
            let key = match e {
                argon2::Error::MemoryTooLittle | argon2::Error::MemoryTooMuch => {
                    "password.argon2_memory_kib"
                }
                argon2::Error::TimeTooSmall => "password.argon2_iterations",
                _ => "password.argon2_parallelism",
            };
            SettingsError::new(key, e.to_string())
        })
    }

    /// `concurrency`: how many hashes may run at once (one per core).
    pub fn new(settings: &PasswordSettings, concurrency: usize) -> Result<Self, SettingsError> {
        let params = Self::params_from(settings)?;
        let dummy_hash = hash_with(&params, b"tessera dummy password for unknown users")
            .map_err(|e| SettingsError::new("password.argon2_memory_kib", e.to_string()))?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
            waiting: Arc::new(AtomicUsize::new(0)),
            timer: None,
        })
    }

    /// Reports every hash's duration to `histogram`.
    pub fn with_timer(mut self, histogram: prometheus::Histogram) -> Self {
        self.timer = Some(histogram);
        self
    }

    /// How many hash jobs are queued or running right now.
    pub fn in_flight(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let params = self.params.clone();
        self.bounded(move || hash_with(&params, password.expose_secret().as_bytes()))
            .await
    }

    /// Checks `password` against `stored` (a PHC string), or against the
    /// dummy hash when there is no user, so both cases cost the same.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let params = self.params.clone();
        let dummy = Arc::clone(&self.dummy_hash);
        self.bounded(move || {
            let (phc, real) = match &stored {
                Some(phc) => (phc.as_str(), true),
                None => (&*dummy, false),
            };
            // Imported from Django: checked in its own format, and replaced
            // by a hash with the configured cost on success. An unusable
            // (`!`) password falls through and costs the dummy's work.
            if real && !phc.starts_with('!') && django::is_django_hash(phc) {
                let matches = django::verify(password.expose_secret().as_bytes(), phc);
                return Ok(Verification {
                    matches,
                    needs_rehash: matches,
                });
            }
            let Ok(parsed) = PasswordHash::new(phc) else {
                // An unusable stored hash never matches; still spend the work.
                let _ = verify_phc(&dummy, password.expose_secret());
                return Ok(Verification {
                    matches: false,
                    needs_rehash: false,
                });
            };
            let matches = Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(Verification {
                matches: matches && real,
                needs_rehash: matches && real && !uses_params(&parsed, &params),
            })
        })
        .await
    }

    /// Runs `work` on the blocking pool once one of the permits is free. The
    /// permit moves into the blocking task, so even if the request is
    /// dropped the bound holds until the hash actually finishes.
    async fn bounded<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let in_flight = InFlight::enter(&self.waiting);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Task(e.to_string()))?;
        let span = tracing::Span::current();
        let timer = self.timer.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let _in_flight = in_flight;
            let _timing = timer.as_ref().map(prometheus::Histogram::start_timer);
            work()
        })
        .await
        .map_err(|e| HashError::Task(e.to_string()))?
    }
}

/// Counts a hash job from the moment it queues until it finishes or is
/// abandoned before starting.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

fn verify_phc(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether a stored hash is Argon2id v1.3 with exactly the configured cost.
fn uses_params(hash: &PasswordHash<'_>, params: &Params) -> bool {
    let Ok(stored) = Params::try_from(hash) else {
        return false;
    };
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && stored.m_cost() == params.m_cost()
        && stored.t_cost() == params.t_cost()
        && stored.p_cost() == params.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory: u32) -> PasswordSettings {
        PasswordSettings {
            argon2_memory_kib: memory,
            argon2_iterations: 1,
            argon2_parallelism: 1,
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[actix_web::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(&settings(1024), 2).unwrap();
        let phc = hasher.hash(secret("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let right = hasher
            .verify(secret("correct horse"), Some(phc.clone()))
            .await
            .unwrap();
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(secret("wrong horse"), Some(phc))
            .await
            .unwrap();
        assert!(!wrong.matches);
    }

    #[actix_web::test]
    async fn an_unknown_user_never_matches_even_the_dummy_password() {
        let hasher = PasswordHasher::new(&settings(1024), 1).unwrap();
        let outcome = hasher
            .verify(secret("tessera dummy password for unknown users"), None)
            .await
            .unwrap();
        assert!(!outcome.matches);
    }

    #[actix_web::test]
    async fn a_hash_with_other_parameters_asks_for_a_rehash() {
        let old = PasswordHasher::new(&settings(1024), 1).unwrap();
        let phc = old.hash(secret("correct horse")).await.unwrap();
        let new = PasswordHasher::new(&settings(2048), 1).unwrap();
        let outcome = new
            .verify(secret("correct horse"), Some(phc))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[actix_web::test]
    async fn a_garbage_stored_hash_never_matches() {
        let hasher = PasswordHasher::new(&settings(1024), 1).unwrap();
        let outcome = hasher
            .verify(secret("anything"), Some("!unusable".to_owned()))
            .await
            .unwrap();
        assert!(!outcome.matches);
    }

    #[test]
    fn too_little_memory_names_the_setting() {
        let error = PasswordHasher::params_from(&settings(1)).unwrap_err();
        assert_eq!(error.key, "password.argon2_memory_kib");
    }
}
