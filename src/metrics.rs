//! Prometheus metrics, served at `GET /metrics`.
//!
//! Labels are bounded: routes are labelled by their template
//! (`/users/{id}`), never the raw path, and methods outside the standard set
//! are folded into `OTHER`, so no client can grow the series count.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tracing_appender::non_blocking::ErrorCounter;

/// Every metric tessera exports.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    tokens_issued: IntCounterVec,
    refreshes: IntCounterVec,
    throttled_logins: IntCounterVec,
    argon2_queue: IntGauge,
    argon2_seconds: Histogram,
    pool_size: IntGauge,
    pool_in_use: IntGauge,
    pool_wait_seconds: Histogram,
    legacy_hashes: IntGauge,
    legacy_upgrades: IntCounterVec,
    legacy_exchanges: IntCounterVec,
    emails: IntCounterVec,
    /// When the legacy-hash gauge was last counted (Unix seconds).
    legacy_counted_at: std::sync::atomic::AtomicI64,
    /// The log writer's count of dropped lines, once the server has a log.
    log_lines_dropped: Arc<OnceLock<ErrorCounter>>,
}

const LOG_LINES_DROPPED: &str = "tessera_log_lines_dropped_total";
const LOG_LINES_DROPPED_HELP: &str =
    "Log lines dropped because the log writer's queue was full (the writer could not keep up)";

/// `tessera_log_lines_dropped_total`, read from the log writer's own
/// counter at each scrape (0 while no log writer is attached, as in tests
/// that build the application without `telemetry::init`).
struct DroppedLogLines {
    desc: Desc,
    source: Arc<OnceLock<ErrorCounter>>,
}

impl Collector for DroppedLogLines {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let dropped = self.source.get().map_or(0, ErrorCounter::dropped_lines);
        let counter = IntCounter::new(LOG_LINES_DROPPED, LOG_LINES_DROPPED_HELP)
            .unwrap_or_else(|_| unreachable!("static metric definition"));
        counter.inc_by(u64::try_from(dropped).unwrap_or(u64::MAX));
        counter.collect()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// How often `/metrics` recounts the accounts on a Django hash (a scan of
/// `users`).
pub const LEGACY_COUNT_INTERVAL_SECS: i64 = 60;

/// Buckets from 0.1 ms to 10 s: token checks, queries and hashes alike.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable!("static metric definition"));
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric =
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("static metric definition"));
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let metric =
        Histogram::with_opts(opts).unwrap_or_else(|_| unreachable!("static metric definition"));
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "tessera_http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let _ = registry.register(Box::new(http_duration.clone()));
        let log_lines_dropped = Arc::new(OnceLock::new());
        let _ = registry.register(Box::new(DroppedLogLines {
            desc: Desc::new(
                LOG_LINES_DROPPED.to_owned(),
                LOG_LINES_DROPPED_HELP.to_owned(),
                Vec::new(),
                std::collections::HashMap::new(),
            )
            .unwrap_or_else(|_| unreachable!("static metric definition")),
            source: Arc::clone(&log_lines_dropped),
        }));
        Self {
            http_requests: counter(
                &registry,
                "tessera_http_requests_total",
                "HTTP requests by method, route template and status",
                &["method", "route", "status"],
            ),
            http_duration,
            logins: counter(
                &registry,
                "tessera_logins_total",
                "Login attempts by outcome",
                &["outcome"],
            ),
            tokens_issued: counter(
                &registry,
                "tessera_tokens_issued_total",
                "Tokens issued by kind",
                &["kind"],
            ),
            refreshes: counter(
                &registry,
                "tessera_refreshes_total",
                "Refresh-token presentations by outcome (rotated, reuse_detected, invalid)",
                &["outcome"],
            ),
            throttled_logins: counter(
                &registry,
                "tessera_throttled_logins_total",
                "Logins refused with 429, by what was throttled",
                &["scope"],
            ),
            argon2_queue: gauge(
                &registry,
                "tessera_argon2_in_flight",
                "Password hashes queued or running",
            ),
            argon2_seconds: histogram(
                &registry,
                "tessera_argon2_duration_seconds",
                "Time to hash or verify one password",
            ),
            pool_size: gauge(
                &registry,
                "tessera_db_pool_connections",
                "Open database connections",
            ),
            pool_in_use: gauge(
                &registry,
                "tessera_db_pool_connections_in_use",
                "Database connections checked out",
            ),
            pool_wait_seconds: histogram(
                &registry,
                "tessera_db_pool_wait_seconds",
                "Time a statement waited for a database thread and a pooled connection",
            ),
            legacy_hashes: gauge(
                &registry,
                "tessera_legacy_password_hashes",
                "Accounts whose password is still in an imported Django hash format",
            ),
            legacy_upgrades: counter(
                &registry,
                "tessera_legacy_password_upgrades_total",
                "Imported Django password hashes replaced by Argon2id at login, by format",
                &["format"],
            ),
            legacy_exchanges: counter(
                &registry,
                "tessera_legacy_token_exchanges_total",
                "Legacy DRF token exchanges by outcome (exchanged, invalid, closed)",
                &["outcome"],
            ),
            emails: counter(
                &registry,
                "tessera_emails_total",
                "Mails by kind and outcome (sent; retried: an attempt failed and another is due; failed: given up or unrenderable; dropped: the queue was full)",
                &["kind", "outcome"],
            ),
            legacy_counted_at: std::sync::atomic::AtomicI64::new(i64::MIN),
            log_lines_dropped,
            registry,
        }
    }

    /// Reports the log writer's dropped lines as
    /// `tessera_log_lines_dropped_total`; the first writer attached stays.
    pub fn count_dropped_log_lines(&self, dropped: ErrorCounter) {
        let _ = self.log_lines_dropped.set(dropped);
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.http_requests
            .with_label_values(&[method, route, status_label(status)])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// `outcome`: success, invalid_credentials or throttled.
    pub fn login(&self, outcome: &str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    /// An access and a refresh token went out.
    pub fn token_pair_issued(&self) {
        self.tokens_issued.with_label_values(&["access"]).inc();
        self.tokens_issued.with_label_values(&["refresh"]).inc();
    }

    /// A service client's access token (client credentials).
    pub fn service_token_issued(&self) {
        self.tokens_issued.with_label_values(&["service"]).inc();
    }

    /// `outcome`: rotated, reuse_detected or invalid.
    pub fn refresh(&self, outcome: &str) {
        self.refreshes.with_label_values(&[outcome]).inc();
    }

    /// `scope`: account or address.
    pub fn throttled(&self, scope: &str) {
        self.throttled_logins.with_label_values(&[scope]).inc();
    }

    /// An imported hash in `format` (one of `auth::django`'s algorithms, so
    /// the label set is bounded) was upgraded; the gauge of remaining ones
    /// goes down with it.
    pub fn legacy_hash_upgraded(&self, format: &'static str) {
        self.legacy_upgrades.with_label_values(&[format]).inc();
        // Live between the periodic recounts.
        self.legacy_hashes.dec();
    }

    /// A mail of `kind` was sent, retried, failed or dropped.
    pub fn email(&self, kind: &str, outcome: &str) {
        self.emails.with_label_values(&[kind, outcome]).inc();
    }

    /// `outcome`: exchanged, invalid or closed (after the cut-over).
    pub fn legacy_exchange(&self, outcome: &str) {
        self.legacy_exchanges.with_label_values(&[outcome]).inc();
    }

    /// Whether the legacy-hash gauge is due for a recount (at most once a
    /// minute, whatever the scrape rate); true for exactly one caller.
    pub fn legacy_count_due(&self, now_secs: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.legacy_counted_at.load(Ordering::Relaxed);
        now_secs.saturating_sub(last) >= LEGACY_COUNT_INTERVAL_SECS
            && self
                .legacy_counted_at
                .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// How many accounts still hold a legacy hash, as last counted.
    pub fn set_legacy_hashes(&self, count: i64) {
        self.legacy_hashes.set(count);
    }

    /// The histogram the password hasher reports each hash's time to.
    pub fn argon2_timer(&self) -> Histogram {
        self.argon2_seconds.clone()
    }

    /// The histogram `db::run` reports pool waits to.
    pub fn pool_wait_timer(&self) -> Histogram {
        self.pool_wait_seconds.clone()
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, argon2_in_flight: usize, pool: r2d2::State) -> String {
        self.argon2_queue
            .set(i64::try_from(argon2_in_flight).unwrap_or(i64::MAX));
        self.pool_size.set(i64::from(pool.connections));
        self.pool_in_use.set(i64::from(
            pool.connections.saturating_sub(pool.idle_connections),
        ));
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Status codes as static labels (no allocation per request): the codes
/// tessera answers with, and a class for anything else.
fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 18] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (414, "414"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (503, "503"),
    ];
    KNOWN.iter().find(|(code, _)| *code == status).map_or(
        match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        |(_, label)| label,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that holds every write until the test lets it go.
    struct Stalled(std::sync::mpsc::Receiver<()>);

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn dropped(metrics: &Metrics) -> u64 {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut buffer)
            .unwrap();
        String::from_utf8(buffer)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("tessera_log_lines_dropped_total "))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn lines_a_full_log_queue_drops_are_counted() {
        let metrics = Metrics::new();
        assert_eq!(dropped(&metrics), 0, "no writer yet");
        let (release, held) = std::sync::mpsc::channel();
        let (mut writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(1)
            .finish(Stalled(held));
        metrics.count_dropped_log_lines(writer.error_counter());
        for _ in 0..10 {
            std::io::Write::write_all(&mut writer, b"line\n").unwrap();
        }
        // At most one line in the writer and one in the queue.
        assert!(dropped(&metrics) >= 8);
        drop(release);
        drop(guard);
    }
}
