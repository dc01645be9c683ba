//! A fixed set of named threads fed from one queue, for the blocking work
//! that must stay off the HTTP workers: database statements ([`crate::db`])
//! and password hashing ([`crate::auth::password`]).
//!
//! Why not tokio's blocking pool: it starts a thread for every job that
//! finds none idle, per HTTP worker, so under load dozens of threads take
//! turns on two cores and every request wakes one of them up and puts it
//! back to sleep. A fixed set sized to the work's real concurrency (the
//! pooled connections, the hashing permits) stays busy under load, and a
//! thread that has just finished a job spins briefly on the queue before it
//! parks, so back-to-back jobs do not pay for a wake-up each.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A unit of work for the threads.
type Job = Box<dyn FnOnce() + Send>;

/// The work ended without an answer: it panicked (a bug, reported by the
/// panic hook), or its thread was gone.
#[derive(Debug, thiserror::Error)]
#[error("the {0} threads stopped before the work was done")]
pub struct Stopped(pub &'static str);

/// Why [`Threads::call_within`] has no result.
#[derive(Debug, thiserror::Error)]
pub enum NotRun {
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// No thread took the work within the wait; it was withdrawn and will
    /// not run.
    #[error("no {name} thread was free within {waited:?}")]
    Busy {
        name: &'static str,
        waited: Duration,
    },
}

/// The sending end of the queue; the threads end once every clone of it has
/// been dropped and the queue is drained.
pub struct Threads {
    name: &'static str,
    jobs: crossbeam_channel::Sender<Job>,
}

impl Threads {
    /// Starts `count` (at least one) threads named `name`, each running
    /// `setup` once before its first job.
    pub fn start(name: &'static str, count: usize, setup: fn()) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for _ in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    setup();
                    for job in queue {
                        // A panic is a bug; it is reported by the panic hook,
                        // the job's caller sees `Stopped`, the thread lives on.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { name, jobs })
    }

    /// Queues `job` for the next free thread.
    fn submit(&self, job: Job) -> Result<(), Stopped> {
        self.jobs.send(job).map_err(|_| Stopped(self.name))
    }

    /// Runs `work` on one of the threads and waits for its result without
    /// blocking the caller's thread.
    pub async fn call<T, F>(&self, work: F) -> Result<T, Stopped>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            // The caller may have gone (a dropped request): nobody to tell.
            let _ = done.send(work());
        }))?;
        result.await.map_err(|_| Stopped(self.name))
    }

    /// Like [`Threads::call`], but gives up when no thread has started the
    /// work within `wait` (all of them busy or stuck): the work is withdrawn
    /// (the thread that later takes it from the queue skips it) and the
    /// answer is [`NotRun::Busy`]. Work that has started is waited for
    /// however long it takes. `work` is told how long it was queued.
    pub async fn call_within<T, F>(&self, wait: Duration, work: F) -> Result<T, NotRun>
    where
        F: FnOnce(Duration) -> T + Send + 'static,
        T: Send + 'static,
    {
        const QUEUED: u8 = 0;
        const STARTED: u8 = 1;
        const WITHDRAWN: u8 = 2;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let claim = Arc::clone(&state);
        let queued = Instant::now();
        let result = self.call(move || {
            claim
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then(|| work(queued.elapsed()))
        });
        tokio::pin!(result);
        let outcome = match tokio::time::timeout(wait, &mut result).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let withdrawn = state
                    .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if withdrawn {
                    return Err(NotRun::Busy {
                        name: self.name,
                        waited: wait,
                    });
                }
                result.await
            }
        };
        // `None` only for withdrawn work, which returned above.
        outcome?.ok_or(NotRun::Stopped(Stopped(self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_call_returns_the_work_s_result_from_a_named_thread() {
        let threads = Threads::start("tessera-test", 2, || {}).unwrap();
        let name = threads
            .call(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tessera-test"));
    }

    #[actix_web::test]
    async fn a_panicking_job_is_reported_and_the_thread_serves_the_next() {
        let threads = Threads::start("tessera-test", 1, || {}).unwrap();
        let failed = threads.call(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(Stopped("tessera-test"))));
        assert_eq!(threads.call(|| 7).await.unwrap(), 7);
    }

    #[actix_web::test]
    async fn work_no_thread_starts_in_time_is_withdrawn_and_never_runs() {
        let threads = Threads::start("tessera-test", 1, || {}).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let busy = threads.call(move || blocked.recv().ok());
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let waited = Duration::from_millis(50);
        let (busy, late) = tokio::join!(busy, async {
            let late = threads
                .call_within(waited, move |_| flag.store(true, Ordering::SeqCst))
                .await;
            release.send(()).unwrap();
            late
        });
        assert!(busy.unwrap().is_some());
        assert!(matches!(late, Err(NotRun::Busy { waited: w, .. }) if w == waited));
        // The thread is free again: the withdrawn job was skipped.
        assert_eq!(threads.call(|| 1).await.unwrap(), 1);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[actix_web::test]
    async fn work_started_in_time_is_waited_for_past_the_wait() {
        let threads = Threads::start("tessera-test", 1, || {}).unwrap();
        let answer = threads
            .call_within(Duration::from_millis(20), |queued| {
                std::thread::sleep(Duration::from_millis(80));
                queued < Duration::from_millis(20)
            })
            .await
            .unwrap();
        assert!(answer);
    }

    #[actix_web::test]
    async fn setup_runs_on_every_thread_before_its_first_job() {
        thread_local!(static READY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        let threads = Threads::start("tessera-test", 3, || READY.set(true)).unwrap();
        for _ in 0..12 {
            assert!(threads.call(|| READY.get()).await.unwrap());
        }
    }
}
