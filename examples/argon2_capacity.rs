//! The raw Argon2id capacity of this machine, for `bench/load.sh`: one
//! thread per core hashes a password in a loop, with tessera's configured
//! cost (`Settings::load`: `config/default.toml`, `TESSERA_CONFIG`,
//! `TESSERA__PASSWORD__*`) and its working memory reused as tessera reuses
//! it, outside any server. Prints one line:
//!
//! `ARGON2 threads=2 hashes=... seconds=... per_hash_ms=... capacity_per_s=...`
//!
//! Usage: `cargo run --release --example argon2_capacity -- [SECONDS] [THREADS]`
//! (5 seconds, one thread per core). A measurement, never an assertion.

#![allow(clippy::print_stdout, reason = "the figure is the program's output")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Version};
use tessera::settings::Settings;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args
        .next()
        .map_or(Ok(5.0), |s| s.parse())
        .map_err(|e| format!("SECONDS: {e}"))?;
    let threads: usize = match args.next() {
        Some(s) => s.parse().map_err(|e| format!("THREADS: {e}"))?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let params = Settings::load().map_err(|e| e.to_string())?.password.params;
    let stop = Arc::new(AtomicBool::new(false));
    let hashes = Arc::new(AtomicU64::new(0));
    let busy_nanos = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, hashes, busy_nanos, params) = (
                Arc::clone(&stop),
                Arc::clone(&hashes),
                Arc::clone(&busy_nanos),
                params.clone(),
            );
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let mut out = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    argon2
                        .hash_password_into_with_memory(
                            b"bench-password-0123456789",
                            b"a sixteen-byte salt",
                            &mut out,
                            &mut memory,
                        )
                        .map_err(|e| e.to_string())?;
                    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    busy_nanos.fetch_add(nanos, Ordering::Relaxed);
                    hashes.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| "a hashing thread panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let hashes = hashes.load(Ordering::Relaxed);
    let per_hash_ms = busy_nanos.load(Ordering::Relaxed) as f64 / hashes.max(1) as f64 / 1e6;
    println!(
        "ARGON2 threads={threads} hashes={hashes} seconds={elapsed:.2} per_hash_ms={per_hash_ms:.2} capacity_per_s={:.1} m_kib={} t={} p={}",
        hashes as f64 / elapsed,
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
    );
    Ok(())
}
