//! The shared store's breaker: after [`TRIP_AFTER`] consecutive failed operations the store
//! is skipped for about [`OPEN_FOR`] (jittered, so a fleet does not retry in step), then tried
//! again; one success closes it. Its transitions are the store's up/down state: the
//! `mcp_relay_store_up` gauge and one log line each way.
//!
//! Owns: counting failures and deciding when to skip. Does not own: what a skipped or failed
//! operation falls back to (`policy/rate_limit/shared.rs`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::telemetry::metrics;

/// Consecutive failures that open the breaker.
pub(super) const TRIP_AFTER: u32 = 5;

/// How long an open breaker skips the store (±25 %).
pub(super) const OPEN_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct Breaker {
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    up: AtomicBool,
}

impl Breaker {
    pub(super) fn new() -> Breaker {
        // The gauge starts at 1; a store a SIGHUP built and dropped must not reset it.
        metrics::store_configured();
        Breaker {
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            up: AtomicBool::new(true),
        }
    }

    /// Whether the store may be asked now (closed, or open long enough to try again).
    pub(super) fn allows(&self) -> bool {
        let open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        open.is_none_or(|until| Instant::now() >= until)
    }

    /// An operation succeeded: the breaker closes; a store that was down is up again.
    pub(super) fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if !self.up.swap(true, Ordering::Relaxed) {
            metrics::store_up(true);
            info!("shared store reachable again: fleet-wide limits back in force");
        }
    }

    /// Operation `op` failed or timed out. Returns whether this opened the breaker (the
    /// store's connection is then rebuilt before the next try).
    pub(super) fn failure(&self, op: &'static str, error: &dyn std::fmt::Display) -> bool {
        metrics::store_error(op);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < TRIP_AFTER {
            return false;
        }
        let jitter = rand::random_range(0.75..1.25);
        *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + OPEN_FOR.mul_f64(jitter));
        if self.up.swap(false, Ordering::Relaxed) {
            metrics::store_up(false);
            warn!(op, error = %error, "shared store unreachable: limits fall back until it answers");
        }
        true
    }

    /// Whether the store is considered up (no open breaker since the last success).
    #[cfg(test)]
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_open_it_and_one_success_closes_it() {
        let b = Breaker::new();
        for _ in 0..TRIP_AFTER - 1 {
            assert!(!b.failure("limit", &"refused"));
            assert!(b.allows());
        }
        assert!(b.failure("limit", &"refused"));
        assert!(!b.allows());
        assert!(!b.is_up());
        let text = metrics::render(&metrics::Snapshot::default());
        assert!(text.contains("\nmcp_relay_store_up 0\n"), "{text}");
        assert!(
            text.contains("mcp_relay_store_errors_total{op=\"limit\"} "),
            "{text}"
        );
        b.success();
        assert!(b.allows());
        assert!(b.is_up());
        let text = metrics::render(&metrics::Snapshot::default());
        assert!(text.contains("\nmcp_relay_store_up 1\n"), "{text}");
    }
}
