//! Prometheus metrics (text exposition format 0.0.4), served by the admin listener.
//!
//! Every metric is named here (STYLE.md §8). The counters are plain atomics in one static
//! table indexed by fixed enums, so the hot path never locks or allocates, and every label
//! value comes from a fixed list: transports, the MCP methods in [`METHODS`] (anything else is
//! `other`), audit outcomes, denial kinds. The free-form labels (`reason` of auth failures,
//! `scope` of rate limits) take `&'static str` from the code, at most [`MAX_DYNAMIC`] distinct
//! values each (more fold into `other`). Tool names are never labels.
//!
//! What the relay state already counts (sessions, children, dropped lines, uptime) is read
//! at scrape time and passed to [`render`] as a [`Snapshot`].
//!
//! One request is counted exactly when its audit record is written: [`Measure`] rides in the
//! request's `Ticket` and counts on drop (outcome, latency, bytes); refusals are counted by
//! [`refused`] (no latency: they never reached a child).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Front transports (`Transport::as_str`), then `other`.
pub const TRANSPORTS: [&str; 6] = [
    "streamable_http",
    "sse",
    "websocket",
    "tcp",
    "stdio",
    "other",
];

/// MCP methods that get their own label value; anything else is `other`.
pub const METHODS: [&str; 20] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "other",
];

/// The audit outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Timeout,
    Cancelled,
    Denied,
    Refused,
    Unauthenticated,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Denied,
        Outcome::Refused,
        Outcome::Unauthenticated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
            Outcome::Unauthenticated => "unauthenticated",
        }
    }

    /// The outcome named like the audit record's `outcome` (unknown → `error`).
    pub fn of_audit(s: &str) -> Outcome {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .unwrap_or(Outcome::Error)
    }
}

/// What a policy denial was about (`mcp_relay_policy_denials_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    Method,
    Tool,
    Prompt,
    Resource,
}

impl DenialKind {
    const ALL: [DenialKind; 4] = [
        DenialKind::Method,
        DenialKind::Tool,
        DenialKind::Prompt,
        DenialKind::Resource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenialKind::Method => "method",
            DenialKind::Tool => "tool",
            DenialKind::Prompt => "prompt",
            DenialKind::Resource => "resource",
        }
    }
}

/// Why a supervised slot starts a new child (`mcp_relay_child_restarts_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// The previous child exited (or its remote link ended).
    Exited,
    /// The previous attempt failed to start or initialize.
    StartFailed,
}

/// Upper bounds (seconds) of the latency histogram; `+Inf` follows.
pub const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Distinct values kept for a free-form label (`reason`, `scope`); more count as `other`.
pub const MAX_DYNAMIC: usize = 32;

const T: usize = TRANSPORTS.len();
const M: usize = METHODS.len();
const O: usize = Outcome::ALL.len();
const B: usize = BUCKETS.len() + 1;

/// Counters keyed by a `&'static str` label, lock-free: a fixed array of write-once names.
struct Dynamic {
    names: [OnceLock<&'static str>; MAX_DYNAMIC],
    counts: [AtomicU64; MAX_DYNAMIC],
    other: AtomicU64,
}

impl Dynamic {
    const fn new() -> Dynamic {
        Dynamic {
            names: [const { OnceLock::new() }; MAX_DYNAMIC],
            counts: [const { AtomicU64::new(0) }; MAX_DYNAMIC],
            other: AtomicU64::new(0),
        }
    }

    fn inc(&self, name: &'static str) {
        for (slot, count) in self.names.iter().zip(&self.counts) {
            let held = match slot.get() {
                Some(n) => *n,
                None => *slot.get_or_init(|| name),
            };
            if held == name {
                count.fetch_add(1, Relaxed);
                return;
            }
        }
        self.other.fetch_add(1, Relaxed);
    }

    fn values(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<(&'static str, u64)> = self
            .names
            .iter()
            .zip(&self.counts)
            .filter_map(|(n, c)| n.get().map(|n| (*n, c.load(Relaxed))))
            .collect();
        let other = self.other.load(Relaxed);
        if other > 0 {
            v.push(("other", other));
        }
        v
    }
}

struct Metrics {
    requests: [AtomicU64; T * M * O],
    buckets: [AtomicU64; T * M * B],
    sum_micros: [AtomicU64; T * M],
    count: [AtomicU64; T * M],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    sessions_opened: AtomicU64,
    /// Open connections per front (`FRONTS`), and those refused at the connection cap.
    connections: [AtomicU64; 2],
    connections_refused: [AtomicU64; 2],
    restarts: [AtomicU64; 2],
    exits: [AtomicU64; 2],
    denials: [AtomicU64; 4],
    auth_failures: Dynamic,
    rate_limited: Dynamic,
}

static METRICS: Metrics = Metrics {
    requests: [const { AtomicU64::new(0) }; T * M * O],
    buckets: [const { AtomicU64::new(0) }; T * M * B],
    sum_micros: [const { AtomicU64::new(0) }; T * M],
    count: [const { AtomicU64::new(0) }; T * M],
    bytes_in: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
    sessions_opened: AtomicU64::new(0),
    connections: [const { AtomicU64::new(0) }; 2],
    connections_refused: [const { AtomicU64::new(0) }; 2],
    restarts: [const { AtomicU64::new(0) }; 2],
    exits: [const { AtomicU64::new(0) }; 2],
    denials: [const { AtomicU64::new(0) }; 4],
    auth_failures: Dynamic::new(),
    rate_limited: Dynamic::new(),
};

fn transport_index(t: &str) -> usize {
    TRANSPORTS.iter().position(|x| *x == t).unwrap_or(T - 1)
}

fn method_index(m: Option<&str>) -> usize {
    m.and_then(|m| METHODS[..M - 1].iter().position(|x| *x == m))
        .unwrap_or(M - 1)
}

fn outcome_index(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
}

fn count_request(t: usize, m: usize, outcome: Outcome, bytes_in: u64, bytes_out: u64) {
    METRICS.requests[(t * M + m) * O + outcome_index(outcome)].fetch_add(1, Relaxed);
    if bytes_in > 0 {
        METRICS.bytes_in.fetch_add(bytes_in, Relaxed);
    }
    if bytes_out > 0 {
        METRICS.bytes_out.fetch_add(bytes_out, Relaxed);
    }
}

fn observe(t: usize, m: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let b = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(B - 1);
    let tm = t * M + m;
    METRICS.buckets[tm * B + b].fetch_add(1, Relaxed);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    METRICS.sum_micros[tm].fetch_add(micros, Relaxed);
    METRICS.count[tm].fetch_add(1, Relaxed);
}

/// One admitted request, counted once when dropped (like its audit record): outcome
/// (`cancelled` when never answered), latency, bytes.
#[derive(Debug)]
pub struct Measure {
    transport: u8,
    method: u8,
    started: Instant,
    bytes_in: u64,
    answer: Option<(Outcome, u64)>,
    armed: bool,
}

impl Measure {
    /// Starts measuring a request of `method` that arrived over `transport` (`bytes_in` long).
    pub fn start(transport: &str, method: Option<&str>, bytes_in: usize) -> Measure {
        Measure {
            transport: transport_index(transport) as u8,
            method: method_index(method) as u8,
            started: Instant::now(),
            bytes_in: bytes_in as u64,
            answer: None,
            armed: true,
        }
    }

    /// Notes the answer (the last one wins, like the audit record).
    pub fn answered(&mut self, outcome: Outcome, bytes_out: usize) {
        self.answer = Some((outcome, bytes_out as u64));
    }

    /// Counts nothing: the request was refused and the refusal is counted by [`refused`].
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (t, m) = (usize::from(self.transport), usize::from(self.method));
        let (outcome, out) = self.answer.unwrap_or((Outcome::Cancelled, 0));
        count_request(t, m, outcome, self.bytes_in, out);
        observe(t, m, self.started.elapsed());
    }
}

/// A request the relay refused itself (denied, unauthenticated, malformed, over a cap).
pub fn refused(transport: &str, method: Option<&str>, outcome: Outcome, bytes_in: usize) {
    count_request(
        transport_index(transport),
        method_index(method),
        outcome,
        bytes_in as u64,
        0,
    );
}

/// A failed authentication; `reason` is the wire reason (`missing_credential`, …).
pub fn auth_failure(reason: &'static str) {
    METRICS.auth_failures.inc(reason);
}

/// A request denied by the roles policy.
pub fn policy_denial(kind: DenialKind) {
    let i = DenialKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    METRICS.denials[i].fetch_add(1, Relaxed);
}

/// A request or connection shed by a rate limit of `scope` (e.g. `principal`, `ip`).
pub fn rate_limited(scope: &'static str) {
    METRICS.rate_limited.inc(scope);
}

/// The connection-oriented fronts: HTTP (Streamable HTTP, SSE, WebSocket) and TCP.
pub const FRONTS: [&str; 2] = ["http", "tcp"];

/// An open connection of `front` ([`FRONTS`]), counted until dropped.
#[derive(Debug)]
pub struct OpenConnection(usize);

/// A connection was accepted on `front` (`http` or `tcp`).
pub fn connection_opened(front: &'static str) -> OpenConnection {
    let i = FRONTS.iter().position(|f| *f == front).unwrap_or(0);
    METRICS.connections[i].fetch_add(1, Relaxed);
    OpenConnection(i)
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.connections[self.0].fetch_sub(1, Relaxed);
    }
}

/// A connection was refused at `--max-connections` on `front`.
pub fn connection_refused(front: &'static str) {
    let i = FRONTS.iter().position(|f| *f == front).unwrap_or(0);
    METRICS.connections_refused[i].fetch_add(1, Relaxed);
}

/// Open connections per front, for `/health`.
pub fn connections_open() -> [(&'static str, u64); 2] {
    [0, 1].map(|i| (FRONTS[i], METRICS.connections[i].load(Relaxed)))
}

/// A session was opened.
pub fn session_opened() {
    METRICS.sessions_opened.fetch_add(1, Relaxed);
}

/// A supervised slot starts a new child after the previous one exited or failed to start.
pub fn child_restarted(reason: RestartReason) {
    let i = match reason {
        RestartReason::Exited => 0,
        RestartReason::StartFailed => 1,
    };
    METRICS.restarts[i].fetch_add(1, Relaxed);
}

/// A child (or remote link) ended; `stopped`: the relay asked it to.
pub fn child_exited(stopped: bool) {
    METRICS.exits[usize::from(stopped)].fetch_add(1, Relaxed);
}

/// The relay state read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub sessions_active: u64,
    pub children_running: u64,
    pub dropped_lines: u64,
    pub uptime: Duration,
    /// Overload shedding's (used, budget) bytes, when it has a budget.
    pub memory: Option<(u64, u64)>,
    /// 0 normal, 1 no keep-alive, 2 shedding.
    pub overload_level: u64,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the format requires.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// The whole exposition. Labelled series appear once they are non-zero; unlabelled ones
/// and fixed small label sets always.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let n = "mcp_relay_requests_total";
    header(
        &mut out,
        n,
        "counter",
        "JSON-RPC requests by front transport, MCP method (others: `other`) and audit outcome.",
    );
    for (t, transport) in TRANSPORTS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                let v = METRICS.requests[(t * M + m) * O + o].load(Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "{n}{{transport=\"{}\",method=\"{}\",outcome=\"{}\"}} {v}",
                        transport,
                        esc(method),
                        outcome.as_str()
                    );
                }
            }
        }
    }
    let n = "mcp_relay_request_duration_seconds";
    header(
        &mut out,
        n,
        "histogram",
        "Time from admission to answer (or cancellation) of admitted requests.",
    );
    for (t, transport) in TRANSPORTS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            let tm = t * M + m;
            let count = METRICS.count[tm].load(Relaxed);
            if count == 0 {
                continue;
            }
            let labels = format!("transport=\"{transport}\",method=\"{}\"", esc(method));
            let mut cumulative = 0;
            for b in 0..B {
                cumulative += METRICS.buckets[tm * B + b].load(Relaxed);
                let le = BUCKETS.get(b).copied().unwrap_or(f64::INFINITY);
                let _ = writeln!(
                    out,
                    "{n}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    fmt_f64(le)
                );
            }
            let sum = METRICS.sum_micros[tm].load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{n}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{n}_count{{{labels}}} {count}");
        }
    }
    let n = "mcp_relay_request_bytes_total";
    header(
        &mut out,
        n,
        "counter",
        "Bytes of JSON-RPC requests (in) and of their answers (out).",
    );
    let _ = writeln!(
        out,
        "{n}{{direction=\"in\"}} {}",
        METRICS.bytes_in.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "{n}{{direction=\"out\"}} {}",
        METRICS.bytes_out.load(Relaxed)
    );
    gauge(
        &mut out,
        "mcp_relay_sessions_active",
        "Sessions open now.",
        snap.sessions_active,
    );
    counter(
        &mut out,
        "mcp_relay_sessions_opened_total",
        "Sessions opened since start.",
        METRICS.sessions_opened.load(Relaxed),
    );
    let n = "mcp_relay_connections_open";
    header(
        &mut out,
        n,
        "gauge",
        "Client connections open now, by front (`http`, `tcp`).",
    );
    for (front, v) in connections_open() {
        let _ = writeln!(out, "{n}{{front=\"{front}\"}} {v}");
    }
    let refused: Vec<(&str, u64)> = [0, 1]
        .map(|i| (FRONTS[i], METRICS.connections_refused[i].load(Relaxed)))
        .to_vec();
    labelled(
        &mut out,
        "mcp_relay_connections_refused_total",
        "Connections closed at once because the listener's --max-connections was reached.",
        "front",
        &refused,
    );
    gauge(
        &mut out,
        "mcp_relay_children_running",
        "Child processes (or remote links) running now.",
        snap.children_running,
    );
    let n = "mcp_relay_child_restarts_total";
    header(
        &mut out,
        n,
        "counter",
        "New children started by a supervised slot after the previous one exited or failed to start.",
    );
    for (i, reason) in ["exited", "start_failed"].iter().enumerate() {
        let v = METRICS.restarts[i].load(Relaxed);
        let _ = writeln!(out, "{n}{{reason=\"{reason}\"}} {v}");
    }
    let n = "mcp_relay_child_exits_total";
    header(
        &mut out,
        n,
        "counter",
        "Children (or remote links) that ended: on their own (`unexpected`) or asked to (`stopped`).",
    );
    for (i, reason) in ["unexpected", "stopped"].iter().enumerate() {
        let v = METRICS.exits[i].load(Relaxed);
        let _ = writeln!(out, "{n}{{reason=\"{reason}\"}} {v}");
    }
    counter(
        &mut out,
        "mcp_relay_child_dropped_lines_total",
        "Child stdout lines dropped as invalid.",
        snap.dropped_lines,
    );
    labelled(
        &mut out,
        "mcp_relay_auth_failures_total",
        "Failed authentications by reason.",
        "reason",
        &METRICS.auth_failures.values(),
    );
    let n = "mcp_relay_policy_denials_total";
    header(
        &mut out,
        n,
        "counter",
        "Requests denied by the roles policy, by what was denied.",
    );
    for (i, kind) in DenialKind::ALL.iter().enumerate() {
        let v = METRICS.denials[i].load(Relaxed);
        let _ = writeln!(out, "{n}{{kind=\"{}\"}} {v}", kind.as_str());
    }
    labelled(
        &mut out,
        "mcp_relay_rate_limited_total",
        "Requests or connections refused by a rate limit (or `overload` shedding), by scope.",
        "scope",
        &METRICS.rate_limited.values(),
    );
    let n = "mcp_relay_uptime_seconds";
    header(&mut out, n, "gauge", "Seconds since the relay started.");
    let _ = writeln!(out, "{n} {}", snap.uptime.as_secs_f64());
    if let Some((used, budget)) = snap.memory {
        gauge(
            &mut out,
            "mcp_relay_memory_used_bytes",
            "Memory in use as overload shedding measures it.",
            used,
        );
        gauge(
            &mut out,
            "mcp_relay_memory_budget_bytes",
            "The memory budget overload shedding measures against.",
            budget,
        );
    }
    gauge(
        &mut out,
        "mcp_relay_overload_level",
        "0 normal, 1 no keep-alive (soft threshold), 2 shedding new work (hard threshold).",
        snap.overload_level,
    );
    out
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {v}");
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {v}");
}

fn labelled(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    header(out, name, "counter", help);
    for (k, v) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", esc(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one series in an exposition.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn methods_outside_the_list_are_other() {
        assert_eq!(METHODS[method_index(Some("tools/call"))], "tools/call");
        assert_eq!(METHODS[method_index(Some("x/evil\"\n"))], "other");
        assert_eq!(METHODS[method_index(None)], "other");
        assert_eq!(METHODS[method_index(Some("other"))], "other");
        assert_eq!(TRANSPORTS[transport_index("websocket")], "websocket");
        assert_eq!(TRANSPORTS[transport_index("carrier-pigeon")], "other");
    }

    #[test]
    fn a_measure_counts_once_with_outcome_latency_and_bytes() {
        // Unit tests share the static table: use a transport/method pair no other test uses.
        let snap = Snapshot::default();
        let before = render(&snap);
        let series = "mcp_relay_requests_total{transport=\"tcp\",method=\"prompts/get\",outcome=\"timeout\"}";
        let base = value(&before, series).unwrap_or(0.0);
        {
            let mut m = Measure::start("tcp", Some("prompts/get"), 10);
            m.answered(Outcome::Timeout, 7);
        }
        {
            let mut m = Measure::start("tcp", Some("prompts/get"), 10);
            m.disarm();
        }
        let text = render(&snap);
        assert_eq!(value(&text, series), Some(base + 1.0));
        let count =
            "mcp_relay_request_duration_seconds_count{transport=\"tcp\",method=\"prompts/get\"}";
        assert!(value(&text, count).unwrap_or(0.0) >= 1.0, "{text}");
        let inf = "mcp_relay_request_duration_seconds_bucket{transport=\"tcp\",method=\"prompts/get\",le=\"+Inf\"}";
        assert_eq!(value(&text, inf), value(&text, count));
    }

    #[test]
    fn unanswered_measures_are_cancelled() {
        let series = "mcp_relay_requests_total{transport=\"stdio\",method=\"tasks/cancel\",outcome=\"cancelled\"}";
        let base = value(&render(&Snapshot::default()), series).unwrap_or(0.0);
        drop(Measure::start("stdio", Some("tasks/cancel"), 1));
        assert_eq!(
            value(&render(&Snapshot::default()), series),
            Some(base + 1.0)
        );
    }

    #[test]
    fn dynamic_labels_are_capped() {
        let d = Dynamic::new();
        const NAMES: [&str; 40] = [
            "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3",
            "b4", "b5", "b6", "b7", "b8", "b9", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
            "c8", "c9", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9",
        ];
        for n in NAMES {
            d.inc(n);
        }
        d.inc("a0");
        let v = d.values();
        assert_eq!(v.len(), MAX_DYNAMIC + 1);
        assert_eq!(v[0], ("a0", 2));
        assert_eq!(v.last(), Some(&("other", 8)));
    }

    #[test]
    fn every_metric_has_help_and_type_and_snapshot_values_show() {
        rate_limited("unit_test_scope");
        let snap = Snapshot {
            sessions_active: 3,
            children_running: 2,
            dropped_lines: 5,
            uptime: Duration::from_secs(7),
            memory: Some((10, 100)),
            overload_level: 0,
        };
        let text = render(&snap);
        for name in [
            "mcp_relay_requests_total",
            "mcp_relay_request_duration_seconds",
            "mcp_relay_request_bytes_total",
            "mcp_relay_sessions_active",
            "mcp_relay_sessions_opened_total",
            "mcp_relay_children_running",
            "mcp_relay_child_restarts_total",
            "mcp_relay_child_exits_total",
            "mcp_relay_child_dropped_lines_total",
            "mcp_relay_auth_failures_total",
            "mcp_relay_policy_denials_total",
            "mcp_relay_rate_limited_total",
            "mcp_relay_uptime_seconds",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert_eq!(value(&text, "mcp_relay_sessions_active"), Some(3.0));
        assert_eq!(value(&text, "mcp_relay_children_running"), Some(2.0));
        assert_eq!(
            value(&text, "mcp_relay_child_dropped_lines_total"),
            Some(5.0)
        );
        assert_eq!(value(&text, "mcp_relay_uptime_seconds"), Some(7.0));
        assert_eq!(value(&text, "mcp_relay_memory_budget_bytes"), Some(100.0));
        assert_eq!(value(&text, "mcp_relay_overload_level"), Some(0.0));
        assert!(value(
            &text,
            "mcp_relay_rate_limited_total{scope=\"unit_test_scope\"}"
        )
        .is_some_and(|v| v >= 1.0));
        assert!(text.ends_with('\n'));
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("mcp_relay_")));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
