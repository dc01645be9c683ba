//! Argon2id hashing and verification, off the HTTP workers and bounded.
//!
//! Each hash holds `argon2_memory_kib` of memory for tens of milliseconds, so
//! at most one hash per core runs at a time (a semaphore), on dedicated
//! threads at a lower CPU priority than the HTTP workers, in working memory
//! that is reused; further logins wait their turn without holding memory or
//! a worker.
//! An unknown user verifies a dummy hash of the same cost, so it takes as long
//! as a wrong password. Hashes imported from Django are verified in their
//! own format ([`django`]) and flagged for replacement.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{Output, PasswordHash, PasswordVerifier, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::auth::django;
use crate::settings::{PasswordSettings, SettingsError};
use crate::threads::Threads;

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
    threads: Arc<Threads>,
    memory: Arc<Memory>,
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
    /// `concurrency`: how many hashes may run at once (one per core).
    pub fn new(settings: &PasswordSettings, concurrency: usize) -> Result<Self, SettingsError> {
        let params = settings.params.clone();
        // The dummy's memory is given back at once: idle, tessera holds none.
        let mut startup_memory = vec![Block::default(); params.block_count()];
        let dummy_hash = hash_with(
            &params,
            b"tessera dummy password for unknown users",
            &mut startup_memory,
        )
        .map_err(|e| SettingsError::new("password.argon2_memory_kib", e.to_string()))?;
        drop(startup_memory);
        let threads =
            Threads::start("tessera-argon2", concurrency, lower_priority).map_err(|e| {
                SettingsError::new("password", format!("cannot start the hashing threads: {e}"))
            })?;
        Ok(Self {
            threads: Arc::new(threads),
            memory: Arc::new(Memory::new(params.block_count())),
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
        let (params, memory) = (self.params.clone(), Arc::clone(&self.memory));
        self.bounded(move || {
            memory.with(|blocks| hash_with(&params, password.expose_secret().as_bytes(), blocks))
        })
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
        let memory = Arc::clone(&self.memory);
        self.bounded(move || {
            let password = password.expose_secret().as_bytes();
            let (phc, real) = match &stored {
                Some(phc) => (phc.as_str(), true),
                None => (&*dummy, false),
            };
            // Imported from Django: checked in its own format, and replaced
            // by a hash with the configured cost on success. An unusable
            // (`!`) password falls through and costs the dummy's work.
            if real && !phc.starts_with('!') && django::is_django_hash(phc) {
                let matches = django::verify(password, phc);
                return Ok(Verification {
                    matches,
                    needs_rehash: matches,
                });
            }
            let Ok(parsed) = PasswordHash::new(phc) else {
                // An unusable stored hash never matches; still spend the work.
                if let Ok(dummy) = PasswordHash::new(&dummy) {
                    let _ = memory.with(|blocks| verify_with(&params, password, &dummy, blocks));
                }
                return Ok(Verification {
                    matches: false,
                    needs_rehash: false,
                });
            };
            let matches = memory.with(|blocks| verify_with(&params, password, &parsed, blocks));
            Ok(Verification {
                matches: matches && real,
                needs_rehash: matches && real && !uses_params(&parsed, &params),
            })
        })
        .await
    }

    /// Runs `work` on a hashing thread once one of the permits is free. The
    /// permit moves into the job, so even if the request is dropped the
    /// bound holds until the hash actually finishes.
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
        let request = crate::telemetry::RequestScope::current();
        let timer = self.timer.clone();
        self.threads
            .call(move || {
                request.run(|| {
                    let timing = timer.as_ref().map(prometheus::Histogram::start_timer);
                    let outcome = work();
                    // Counted out before the caller hears back, so that what it
                    // does next (a /metrics scrape, another hash) sees this one
                    // finished.
                    drop(timing);
                    drop(in_flight);
                    drop(permit);
                    outcome
                })
            })
            .await
            .map_err(|e| HashError::Task(e.to_string()))?
    }
}

/// The hashing threads run at a lower CPU priority (nice 10) than the HTTP
/// workers, so that on a busy machine a login flood slows logins, not token
/// verification.
///
/// Nice 10 for the calling thread (Linux applies nice per thread); where
/// that is refused, hashing simply runs at the normal priority.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    // The crate maps 0..=99 onto nice 19..=-20: 22 is nice 10.
    let Ok(value) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    let lowered = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    );
    if let Err(error) = lowered {
        tracing::debug!(?error, "could not lower the hashing thread's priority");
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

/// Argon2's working memory (`argon2_memory_kib`), kept between hashes and
/// reused: at most one buffer per permit ever exists, so memory under a
/// login flood stays at cores x cost instead of growing with the allocator's
/// caches of freed buffers.
struct Memory {
    blocks: usize,
    free: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl Memory {
    fn new(blocks: usize) -> Self {
        Self {
            blocks,
            free: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` with a buffer of the configured size, then keeps it.
    fn with<T>(&self, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let taken = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut buffer = taken.unwrap_or_else(|| vec![Block::default(); self.blocks]);
        let result = work(&mut buffer);
        if let Ok(mut free) = self.free.lock() {
            free.push(buffer);
        }
        result
    }
}

/// Argon2 of `password` with `salt` into an output of `len` bytes, in
/// `memory` (of `params.block_count()` blocks).
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
    memory: &mut [Block],
) -> argon2::password_hash::Result<Output> {
    let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut *memory)
            .map_err(Into::into)
    })
}

/// A new PHC string for `password` with the configured cost.
fn hash_with(params: &Params, password: &[u8], memory: &mut [Block]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hash = compute(&argon2, password, salt.as_salt(), len, memory)
        .and_then(|output| {
            Ok(PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: argon2::password_hash::ParamsString::try_from(params)?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            }
            .to_string())
        })
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    Ok(hash)
}

/// Whether `password` matches `stored`. A hash with the configured cost is
/// recomputed in `memory` and compared in constant time (`Output`'s
/// equality); any other (an older cost, to be upgraded) allocates its own.
fn verify_with(
    params: &Params,
    password: &[u8],
    stored: &PasswordHash<'_>,
    memory: &mut [Block],
) -> bool {
    if !uses_params(stored, params) {
        return Argon2::default().verify_password(password, stored).is_ok();
    }
    let (Some(salt), Some(expected), Ok(stored_params)) =
        (stored.salt, stored.hash, Params::try_from(stored))
    else {
        return false;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, stored_params);
    compute(&argon2, password, salt, expected.len(), memory).is_ok_and(|output| output == expected)
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
        PasswordSettings::new(memory, 1, 1).unwrap()
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

    #[actix_web::test]
    async fn hashes_interoperate_with_the_reference_argon2_implementation() {
        let hasher = PasswordHasher::new(&settings(1024), 2).unwrap();
        let ours = hasher.hash(secret("correct horse")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let params = Params::new(1024, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            b"battery staple",
            &salt,
        )
        .unwrap()
        .to_string();
        let right = hasher.verify(secret("battery staple"), Some(theirs.clone()));
        assert!(right.await.unwrap().matches);
        let wrong = hasher.verify(secret("battery stapler"), Some(theirs));
        assert!(!wrong.await.unwrap().matches);
    }

    #[actix_web::test]
    async fn working_memory_is_reused_between_hashes() {
        let hasher = PasswordHasher::new(&settings(1024), 2).unwrap();
        for _ in 0..5 {
            hasher.hash(secret("correct horse")).await.unwrap();
            hasher.verify(secret("correct horse"), None).await.unwrap();
        }
        // One at a time: one buffer, made once and kept.
        assert_eq!(hasher.memory.free.lock().unwrap().len(), 1);
    }
}
