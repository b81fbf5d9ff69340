//! The fleet's forwarding metrics (`cluster/forward.rs`): `mcp_relay_forwarded_total{outcome}`
//! (every outcome always shown) and `mcp_relay_forward_seconds`, a histogram of the time from
//! receiving a request for another node's session to the owner's response head (or the
//! refusal); a stream's lifetime afterwards is not in it. Lock-free atomics like the rest of
//! `metrics.rs`; only the forwarding node counts (the owner counts the request itself).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::BUCKETS;

/// How one forward ended (`mcp_relay_forwarded_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    /// The owner answered (anything but 404).
    Ok,
    /// The owner is gone or does not know the session: 404.
    Unknown,
    /// The owner did not connect or answer in time: 503.
    Unavailable,
}

impl Forwarded {
    const ALL: [Forwarded; 3] = [Forwarded::Ok, Forwarded::Unknown, Forwarded::Unavailable];

    fn as_str(self) -> &'static str {
        match self {
            Forwarded::Ok => "ok",
            Forwarded::Unknown => "unknown",
            Forwarded::Unavailable => "unavailable",
        }
    }
}

const B: usize = BUCKETS.len() + 1;

static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static HISTOGRAM: [AtomicU64; B] = [const { AtomicU64::new(0) }; B];
static SUM_MICROS: AtomicU64 = AtomicU64::new(0);

/// One forward ended with `outcome` after `elapsed`.
pub(crate) fn forwarded(outcome: Forwarded, elapsed: Duration) {
    let i = Forwarded::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(0);
    COUNTS[i].fetch_add(1, Relaxed);
    let secs = elapsed.as_secs_f64();
    let b = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(B - 1);
    HISTOGRAM[b].fetch_add(1, Relaxed);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    SUM_MICROS.fetch_add(micros, Relaxed);
}

/// Both families, appended to the exposition.
pub(super) fn render(out: &mut String) {
    let n = "mcp_relay_forwarded_total";
    let _ = writeln!(
        out,
        "# HELP {n} Requests for another fleet node's session forwarded to it, by outcome (ok, unknown: 404, unavailable: 503)."
    );
    let _ = writeln!(out, "# TYPE {n} counter");
    for (o, c) in Forwarded::ALL.iter().zip(&COUNTS) {
        let _ = writeln!(out, "{n}{{outcome=\"{}\"}} {}", o.as_str(), c.load(Relaxed));
    }
    let n = "mcp_relay_forward_seconds";
    let _ = writeln!(
        out,
        "# HELP {n} Time from a request for another node's session to the owner's response head or the refusal."
    );
    let _ = writeln!(out, "# TYPE {n} histogram");
    let mut cumulative = 0;
    for (b, count) in HISTOGRAM.iter().enumerate() {
        cumulative += count.load(Relaxed);
        let le = BUCKETS
            .get(b)
            .map_or_else(|| "+Inf".to_owned(), |v| format!("{v}"));
        let _ = writeln!(out, "{n}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let sum = SUM_MICROS.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{n}_sum {sum}");
    let _ = writeln!(out, "{n}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `series` in `text`.
    fn value(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn every_outcome_is_shown_and_the_histogram_is_cumulative() {
        // The only test that counts forwards: the statics start at zero here.
        forwarded(Forwarded::Ok, Duration::from_millis(3));
        forwarded(Forwarded::Ok, Duration::from_millis(40));
        forwarded(Forwarded::Unavailable, Duration::from_secs(90));
        let mut out = String::new();
        render(&mut out);
        let n = "mcp_relay_forwarded_total";
        assert_eq!(value(&out, &format!("{n}{{outcome=\"ok\"}}")), 2);
        assert_eq!(value(&out, &format!("{n}{{outcome=\"unknown\"}}")), 0);
        assert_eq!(value(&out, &format!("{n}{{outcome=\"unavailable\"}}")), 1);
        let b = "mcp_relay_forward_seconds_bucket";
        assert_eq!(value(&out, &format!("{b}{{le=\"0.005\"}}")), 1);
        assert_eq!(value(&out, &format!("{b}{{le=\"0.05\"}}")), 2);
        assert_eq!(value(&out, &format!("{b}{{le=\"60\"}}")), 2);
        assert_eq!(value(&out, &format!("{b}{{le=\"+Inf\"}}")), 3);
        assert_eq!(value(&out, "mcp_relay_forward_seconds_count"), 3);
        assert!(out.contains("# TYPE mcp_relay_forward_seconds histogram"));
    }
}
