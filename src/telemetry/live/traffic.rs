//! Traffic windows computed from the audit records as they pass: requests and errors per
//! second over the last five minutes, and per server, tool, principal and refusal reason
//! ten-second buckets over the last ten minutes with a latency log-histogram (p50, p99).
//!
//! Owns: the windows, their bounds ([`MAX_KEYS`] keys per dimension, the rest counted under
//! [`OTHER`]; buckets kept only where there was traffic: at worst four dimensions of 129
//! keys of 60 buckets of about 190 bytes, under 6 MiB) and the [`TrafficView`] document.
//!
//! Counting rule: a call through the aggregate yields two records, the front's (transport of
//! the client, tool `a__echo`) and the named server's (transport `aggregate`, tool `echo`).
//! The named server's record counts only in the per-server dimension; the per-second series,
//! tools, principals and refusals count the front's record only, so each call counts once.
//! Records with outcome `unauthenticated` never create tool or principal keys (their names
//! come from an unknown caller). Keys whose buckets have all left the window are swept when
//! a dimension starts a new bucket, so stale keys do not hold places under the cap.
//! Does not own: the records (`live.rs` hands each one in, under its lock).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::telemetry::audit::Record;

/// Seconds the global per-second series covers.
pub(crate) const SECONDS: u64 = 300;
/// Width of a per-key bucket, in seconds.
pub(crate) const BUCKET_SECS: u64 = 10;
/// Buckets per key (ten minutes).
pub(crate) const BUCKETS: u64 = 60;
/// Keys kept per dimension; later ones are counted under [`OTHER`].
pub(crate) const MAX_KEYS: usize = 128;
/// The key that holds what did not fit.
pub(crate) const OTHER: &str = "(other)";
/// Rows per dimension in the view (the busiest).
const VIEW_ROWS: usize = 20;
/// Latency histogram bins: bin `i` holds latencies up to `0.1 ms · 2^(i/2)` (the last: more).
const BINS: usize = 40;

/// One second of the global series.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    at: u64,
    count: u32,
    errors: u32,
}

/// Ten seconds of one key.
#[derive(Debug, Clone)]
struct Bucket {
    at: u64,
    count: u32,
    errors: u32,
    hist: [u32; BINS],
}

/// The recent buckets of one key, oldest first.
#[derive(Debug, Default)]
struct Series(VecDeque<Bucket>);

/// A key per value of one dimension, and the bucket it last swept for stale keys.
#[derive(Debug, Default)]
struct Dimension(HashMap<String, Series>, u64);

/// All windows (see the module header). Times are seconds since the feed started.
#[derive(Debug)]
pub(crate) struct Traffic {
    seconds: Vec<Second>,
    servers: Dimension,
    tools: Dimension,
    principals: Dimension,
    refusals: Dimension,
}

/// What one record adds.
pub(crate) struct Sample<'a> {
    pub server: &'a str,
    pub tool: Option<&'a str>,
    pub principal: &'a str,
    /// The front's own record (not a named server's copy of an aggregate's request).
    pub front: bool,
    /// Not refused as unauthenticated (its tool and principal may become keys).
    pub known: bool,
    pub error: bool,
    /// The refusal's reason, when refused.
    pub refusal: Option<&'a str>,
    pub latency_ms: f64,
}

impl Sample<'_> {
    /// Reads a record.
    pub(crate) fn of(r: &Record) -> Sample<'_> {
        let refused = matches!(r.outcome, "denied" | "refused" | "unauthenticated");
        Sample {
            server: r.server.as_deref().unwrap_or(""),
            tool: r
                .name
                .as_deref()
                .filter(|_| r.method.as_deref() == Some("tools/call")),
            principal: &r.principal,
            front: r.transport != "aggregate",
            known: r.outcome != "unauthenticated",
            error: r.outcome != "ok",
            refusal: refused.then(|| r.reason.unwrap_or(r.outcome)),
            latency_ms: r.latency_ms,
        }
    }
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            seconds: vec![Second::default(); SECONDS as usize],
            servers: Dimension::default(),
            tools: Dimension::default(),
            principals: Dimension::default(),
            refusals: Dimension::default(),
        }
    }
}

impl Traffic {
    /// Counts one record at second `now`.
    pub(crate) fn add(&mut self, now: u64, s: &Sample<'_>) {
        let bin = bin_of(s.latency_ms);
        if s.front {
            let sec = &mut self.seconds[(now % SECONDS) as usize];
            if sec.at != now {
                *sec = Second {
                    at: now,
                    ..Second::default()
                };
            }
            sec.count += 1;
            sec.errors += u32::from(s.error);
            if s.known {
                self.principals.add(s.principal, now, s.error, bin);
                if let Some(tool) = s.tool {
                    self.tools.add(tool, now, s.error, bin);
                }
            }
            if let Some(reason) = s.refusal {
                self.refusals.add(reason, now, true, bin);
            }
        }
        self.servers.add(s.server, now, s.error, bin);
    }

    /// The document of the windows at second `now`; `started_ms` is the feed's start as a
    /// Unix time, so times can be given as Unix milliseconds.
    pub(crate) fn view(&mut self, now: u64, started_ms: u64) -> TrafficView {
        // Always the whole window; seconds before the feed started are empty.
        let per_second = (0..SECONDS)
            .map(|k| {
                let back = SECONDS - 1 - k;
                let (count, errors) = match now.checked_sub(back) {
                    Some(at) if self.seconds[(at % SECONDS) as usize].at == at => {
                        let s = self.seconds[(at % SECONDS) as usize];
                        (s.count, s.errors)
                    }
                    _ => (0, 0),
                };
                Point {
                    t: (started_ms + now * 1000).saturating_sub(back * 1000),
                    count,
                    errors,
                }
            })
            .collect();
        let rows = |d: &mut Dimension| d.rows(now, started_ms);
        let tools = rows(&mut self.tools);
        let top_tools = tools
            .iter()
            .map(|r| Top {
                name: r.key.clone(),
                count: r.count,
            })
            .take(10)
            .collect();
        TrafficView {
            now_ms: started_ms + now * 1000,
            bucket_seconds: BUCKET_SECS,
            per_second,
            servers: rows(&mut self.servers),
            principals: rows(&mut self.principals),
            refusals: rows(&mut self.refusals),
            tools,
            top_tools,
        }
    }
}

impl Dimension {
    fn add(&mut self, key: &str, now: u64, error: bool, bin: usize) {
        let slot = now / BUCKET_SECS;
        if slot != self.1 {
            self.1 = slot;
            self.sweep(slot);
        }
        if let Some(series) = self.0.get_mut(key) {
            return series.add(slot, error, bin);
        }
        // A new key allocates its name once; past the cap, it joins the others.
        let key = if self.0.len() < MAX_KEYS { key } else { OTHER };
        self.0
            .entry(key.to_owned())
            .or_default()
            .add(slot, error, bin);
    }

    /// Drops the keys without a bucket in the window ending at `slot`.
    fn sweep(&mut self, slot: u64) {
        self.0.retain(|_, s| {
            s.expire(slot);
            !s.0.is_empty()
        });
    }

    /// The busiest keys' rows (dropping keys without a bucket in the window).
    fn rows(&mut self, now: u64, started_ms: u64) -> Vec<Row> {
        self.sweep(now / BUCKET_SECS);
        let mut rows: Vec<Row> = self.0.iter().map(|(k, s)| s.row(k, started_ms)).collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(VIEW_ROWS);
        rows
    }
}

impl Series {
    fn add(&mut self, slot: u64, error: bool, bin: usize) {
        if self.0.back().is_none_or(|b| b.at != slot) {
            self.expire(slot);
            self.0.push_back(Bucket {
                at: slot,
                count: 0,
                errors: 0,
                hist: [0; BINS],
            });
        }
        if let Some(b) = self.0.back_mut() {
            b.count += 1;
            b.errors += u32::from(error);
            b.hist[bin] += 1;
        }
    }

    /// Drops the buckets older than the window ending at `slot`.
    fn expire(&mut self, slot: u64) {
        while self.0.front().is_some_and(|b| b.at + BUCKETS <= slot) {
            self.0.pop_front();
        }
    }

    fn row(&self, key: &str, started_ms: u64) -> Row {
        let mut hist = [0u32; BINS];
        let (mut count, mut errors) = (0u64, 0u64);
        let mut buckets = Vec::with_capacity(self.0.len());
        for b in &self.0 {
            count += u64::from(b.count);
            errors += u64::from(b.errors);
            hist.iter_mut().zip(b.hist).for_each(|(h, x)| *h += x);
            buckets.push(Point {
                t: started_ms + b.at * BUCKET_SECS * 1000,
                count: b.count,
                errors: b.errors,
            });
        }
        Row {
            key: key.to_owned(),
            count,
            errors,
            p50_ms: quantile(&hist, 0.5),
            p99_ms: quantile(&hist, 0.99),
            buckets,
        }
    }
}

/// The histogram bin of a latency.
fn bin_of(ms: f64) -> usize {
    if ms <= 0.1 || ms.is_nan() {
        return 0;
    }
    let i = (2.0 * (ms / 0.1).log2()).ceil();
    (i as usize).min(BINS - 1)
}

/// The upper bound of bin `i`, in milliseconds.
fn bound(i: usize) -> f64 {
    0.1 * 2f64.powf(i as f64 / 2.0)
}

/// The latency below which a fraction `q` of the histogram lies (a bin's upper bound), or
/// `None` when it is empty.
fn quantile(hist: &[u32; BINS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, &n) in hist.iter().enumerate() {
        seen += u64::from(n);
        if seen >= want {
            return Some((bound(i) * 1000.0).round() / 1000.0);
        }
    }
    Some(bound(BINS - 1))
}

/// The traffic view (`GET /ui/api/traffic`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrafficView {
    /// The view's time (Unix milliseconds).
    pub now_ms: u64,
    pub bucket_seconds: u64,
    /// Front requests and errors per second, the last five minutes, oldest first.
    pub per_second: Vec<Point>,
    /// Per server (`""`: the main path), the busiest first.
    pub servers: Vec<Row>,
    /// Per tool (`tools/call`), the busiest first.
    pub tools: Vec<Row>,
    /// Per principal (`""`: anonymous), the busiest first.
    pub principals: Vec<Row>,
    /// Refusals (outcome denied, refused, unauthenticated) per reason.
    pub refusals: Vec<Row>,
    /// The ten most called tools over the window.
    pub top_tools: Vec<Top>,
}

/// One point of a series: its start (Unix milliseconds), requests and errors.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    pub t: u64,
    pub count: u32,
    pub errors: u32,
}

/// One key over the last ten minutes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub key: String,
    pub count: u64,
    pub errors: u64,
    /// Latency quantiles (a histogram bin's upper bound, within a factor of √2).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Its ten-second buckets with traffic, oldest first.
    pub buckets: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Top {
    pub name: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use serde_json::json;

    /// A record with the fields of `v` (what the audit file would show).
    fn rec(v: &Value) -> Record {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let leak =
            |k: &str| -> &'static str { Box::leak(s(k).unwrap_or_default().into_boxed_str()) };
        Record {
            outcome: leak("outcome"),
            server: s("server"),
            method: s("method"),
            name: s("name"),
            principal: s("principal").unwrap_or_default(),
            transport: leak("transport"),
            reason: s("reason").map(|r| &*Box::leak(r.into_boxed_str())),
            latency_ms: v.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0),
            ..Record::default()
        }
    }

    #[test]
    fn traffic_counts_requests_errors_and_latency_quantiles() {
        let mut t = Traffic::default();
        let ok = json!({"outcome": "ok", "server": "alpha", "method": "tools/call",
            "name": "echo", "principal": "ann", "transport": "tcp", "latency_ms": 3.0});
        let bad = json!({"outcome": "denied", "reason": "rbac_denied", "server": "alpha",
            "method": "tools/call", "name": "rm", "principal": "bob",
            "transport": "tcp", "latency_ms": 0.05});
        for _ in 0..99 {
            t.add(5, &Sample::of(&rec(&ok)));
        }
        t.add(6, &Sample::of(&rec(&bad)));
        let v = t.view(7, 1_000_000);
        assert_eq!(v.per_second.len(), SECONDS as usize);
        let last = &v.per_second[v.per_second.len() - 3..];
        assert_eq!((last[0].count, last[1].count, last[1].errors), (99, 1, 1));
        assert_eq!(v.servers[0].key, "alpha");
        assert_eq!((v.servers[0].count, v.servers[0].errors), (100, 1));
        let p50 = v.servers[0].p50_ms.unwrap();
        assert!((3.0..=3.0 * 1.5).contains(&p50), "{p50}");
        assert_eq!(v.top_tools[0].name, "echo");
        assert_eq!(v.refusals[0].key, "rbac_denied");
        assert_eq!(v.principals.len(), 2);
    }

    #[test]
    fn traffic_forgets_old_buckets_and_caps_keys() {
        let mut t = Traffic::default();
        for i in 0..(MAX_KEYS + 10) {
            let r = json!({"outcome": "ok", "principal": format!("p{i}"), "latency_ms": 1.0});
            t.add(0, &Sample::of(&rec(&r)));
        }
        assert_eq!(t.principals.0.len(), MAX_KEYS + 1);
        assert_eq!(t.principals.0[OTHER].0[0].count, 10);
        let later = t.view(BUCKETS * BUCKET_SECS + 1, 0);
        assert!(later.principals.is_empty());
        assert!(later.per_second.iter().all(|p| p.count == 0));
    }

    #[test]
    fn aggregate_copies_count_per_server_but_not_per_second() {
        let mut t = Traffic::default();
        let copy = json!({"outcome": "ok", "server": "beta", "transport": "aggregate"});
        t.add(1, &Sample::of(&rec(&copy)));
        let v = t.view(1, 0);
        assert_eq!(v.per_second.last().unwrap().count, 0);
        assert_eq!(v.servers[0].count, 1);
    }

    #[test]
    fn aggregate_calls_count_once_per_tool_principal_and_refusal() {
        let mut t = Traffic::default();
        let front = json!({"outcome": "denied", "reason": "rbac_denied", "method": "tools/call",
            "name": "beta__echo", "principal": "ann", "transport": "http"});
        let copy = json!({"outcome": "denied", "reason": "rbac_denied", "server": "beta",
            "method": "tools/call", "name": "echo", "principal": "ann",
            "transport": "aggregate"});
        t.add(1, &Sample::of(&rec(&front)));
        t.add(1, &Sample::of(&rec(&copy)));
        let v = t.view(1, 0);
        let keys = |rows: &[Row]| {
            rows.iter()
                .map(|r| (r.key.clone(), r.count))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&v.tools), vec![("beta__echo".to_owned(), 1)]);
        assert_eq!(keys(&v.principals), vec![("ann".to_owned(), 1)]);
        assert_eq!(keys(&v.refusals), vec![("rbac_denied".to_owned(), 1)]);
        assert_eq!(v.servers.len(), 2);
    }

    #[test]
    fn stale_keys_leave_on_the_record_path_and_unauthenticated_names_never_become_keys() {
        let mut t = Traffic::default();
        for i in 0..MAX_KEYS {
            let r = json!({"outcome": "ok", "principal": format!("p{i}"), "method": "tools/call",
                "name": format!("t{i}")});
            t.add(0, &Sample::of(&rec(&r)));
        }
        // Past the window, with no view built, a new principal gets its own key.
        let later = BUCKETS * BUCKET_SECS + 1;
        let r = json!({"outcome": "ok", "principal": "zed", "method": "tools/call",
            "name": "echo"});
        t.add(later, &Sample::of(&rec(&r)));
        assert_eq!(t.principals.0.len(), 1);
        assert!(t.principals.0.contains_key("zed"));
        assert!(t.tools.0.contains_key("echo"));
        let anon = json!({"outcome": "unauthenticated", "principal": "mallory",
            "method": "tools/call", "name": "made_up"});
        t.add(later, &Sample::of(&rec(&anon)));
        assert!(!t.principals.0.contains_key("mallory"));
        assert!(!t.tools.0.contains_key("made_up"));
        assert_eq!(t.view(later, 0).refusals[0].key, "unauthenticated");
    }

    #[test]
    fn latency_bins_grow_by_root_two() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(0.2), 2);
        assert_eq!(bin_of(1e9), BINS - 1);
        assert!(bound(2) >= 0.2 - 1e-9);
    }
}
