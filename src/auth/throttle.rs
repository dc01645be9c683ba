//! Login throttling per client address (in memory, per instance) and the
//! client address itself, which `X-Forwarded-For` may name only when the
//! peer is a trusted proxy. Per-account throttling lives in the database
//! (`db::login_failures`) so that it holds across instances.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Most addresses tracked at once: a flood of spoofed or distinct addresses
/// cannot grow the table (about 64 bytes an entry) without bound.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Failed logins per client address within a window.
#[derive(Debug)]
pub struct AddressThrottle {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: Instant,
}

impl AddressThrottle {
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max_failures,
            window,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        // A panic while holding the lock cannot leave a Window half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `address` must wait, if it is throttled now.
    pub fn retry_after(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let entries = self.entries();
        let window = entries.get(&address)?;
        let ends = window.started + self.window;
        (window.failures >= self.max_failures && ends > now).then(|| ends - now)
    }

    pub fn record_failure(&self, address: IpAddr, now: Instant) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&address) {
            let period = self.window;
            entries.retain(|_, w| now.duration_since(w.started) < period);
            if entries.len() >= self.capacity {
                // Still full of live windows: forget one rather than grow.
                if let Some(evicted) = entries.keys().next().copied() {
                    entries.remove(&evicted);
                }
            }
        }
        let window = entries.entry(address).or_insert(Window {
            failures: 0,
            started: now,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                failures: 0,
                started: now,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Drops windows that have ended.
    pub fn prune(&self, now: Instant) {
        let period = self.window;
        self.entries()
            .retain(|_, w| now.duration_since(w.started) < period);
    }

    pub fn tracked(&self) -> usize {
        self.entries().len()
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in
/// which case the rightmost `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are client-supplied and forgeable).
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else {
        return Some(peer);
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_throttled_after_max_failures_until_the_window_ends() {
        let throttle = AddressThrottle::new(3, Duration::from_secs(60), 10);
        let start = Instant::now();
        for _ in 0..2 {
            throttle.record_failure(ip("10.0.0.1"), start);
        }
        assert_eq!(throttle.retry_after(ip("10.0.0.1"), start), None);
        throttle.record_failure(ip("10.0.0.1"), start);
        let wait = throttle.retry_after(ip("10.0.0.1"), start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(throttle.retry_after(ip("10.0.0.2"), start), None);
        assert_eq!(
            throttle.retry_after(ip("10.0.0.1"), start + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let throttle = AddressThrottle::new(3, Duration::from_secs(60), 100);
        let now = Instant::now();
        for i in 0..1000u32 {
            throttle.record_failure(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(throttle.tracked() <= 100);
        throttle.prune(now + Duration::from_secs(61));
        assert_eq!(throttle.tracked(), 0);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let header = Some("1.2.3.4, 5.6.7.8");
        assert_eq!(
            client_address(Some(ip("9.9.9.9")), header, &trusted),
            Some(ip("9.9.9.9"))
        );
        assert_eq!(
            client_address(Some(ip("10.1.1.1")), header, &trusted),
            Some(ip("5.6.7.8"))
        );
        assert_eq!(
            client_address(Some(ip("10.1.1.1")), Some("1.2.3.4, 10.2.2.2"), &trusted),
            Some(ip("1.2.3.4")),
            "trusted hops are skipped"
        );
        assert_eq!(
            client_address(Some(ip("10.1.1.1")), Some("garbage"), &trusted),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            client_address(Some(ip("10.1.1.1")), None, &trusted),
            Some(ip("10.1.1.1"))
        );
    }
}
