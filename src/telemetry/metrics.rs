//! Prometheus metrics (text exposition format 0.0.4), served by the admin listener.
//!
//! Every metric is named here (STYLE.md §8). The counters are plain atomics in one static
//! table indexed by fixed enums, so the hot path never locks or allocates, and every label
//! value comes from a fixed list: transports, the MCP methods in [`METHODS`] (anything else is
//! `other`), audit outcomes, denial kinds, and the names of the configured servers (at most
//! [`MAX_SERVERS`], registered once per server relay; more fold into `server="other"`; a
//! single-server relay's series have no `server` label). The free-form labels (`reason` of auth failures,
//! `scope` of rate limits) take `&'static str` from the code, at most [`MAX_DYNAMIC`] distinct
//! values each (more fold into `other`). Tool names are never labels.
//!
//! What the relay state already counts (sessions, children, dropped lines, uptime) is read
//! at scrape time and passed to [`render`] as a [`Snapshot`].
//!
//! One request is counted exactly when its audit record is written: [`Measure`] rides in the
//! request's `Ticket` and counts on drop (outcome, latency, bytes); refusals are counted by
//! [`refused`] (no latency: they never reached a child).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Front transports (`Transport::as_str`; `aggregate`: a named server's requests that came
/// through the aggregate), then `other`.
pub(crate) const TRANSPORTS: [&str; 7] = [
    "streamable_http",
    "sse",
    "websocket",
    "tcp",
    "stdio",
    "aggregate",
    "other",
];

/// MCP methods that get their own label value; anything else is `other`.
pub(crate) const METHODS: [&str; 20] = [
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
pub(crate) enum Outcome {
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

    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) fn of_audit(s: &str) -> Outcome {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .unwrap_or(Outcome::Error)
    }
}

/// What a policy denial was about (`mcp_relay_policy_denials_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenialKind {
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

    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) enum RestartReason {
    /// The previous child exited (or its remote link ended).
    Exited,
    /// The previous attempt failed to start or initialize.
    StartFailed,
}

/// Upper bounds (seconds) of the latency histogram; `+Inf` follows.
pub(crate) const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Distinct values kept for a free-form label (`reason`, `scope`); more count as `other`.
pub(crate) const MAX_DYNAMIC: usize = 32;

/// Distinct server names kept as `server` label values; more count as `other`.
pub(crate) const MAX_SERVERS: usize = 64;
/// The [`ServerLabel`] of servers past [`MAX_SERVERS`].
const OVERFLOW: u8 = MAX_SERVERS as u8 + 1;

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

/// The per-request series of one server (the unnamed one of a single-server relay, or a
/// named one): requests, latency histogram, policy denials.
struct Requests {
    requests: [AtomicU64; T * M * O],
    buckets: [AtomicU64; T * M * B],
    sum_micros: [AtomicU64; T * M],
    count: [AtomicU64; T * M],
    denials: [AtomicU64; 4],
}

impl Requests {
    const fn new() -> Requests {
        Requests {
            requests: [const { AtomicU64::new(0) }; T * M * O],
            buckets: [const { AtomicU64::new(0) }; T * M * B],
            sum_micros: [const { AtomicU64::new(0) }; T * M],
            count: [const { AtomicU64::new(0) }; T * M],
            denials: [const { AtomicU64::new(0) }; 4],
        }
    }
}

/// A named server's series, allocated when its relay registers it.
struct Named {
    name: Box<str>,
    table: Requests,
}

/// Which server's series a request counts in: the unnamed server, a named one, or `other`.
/// Resolved once per server relay ([`server_label`]), so the hot path only indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ServerLabel(u8);

struct Metrics {
    /// A single-server relay's series (no `server` label).
    unnamed: Requests,
    servers: [OnceLock<Box<Named>>; MAX_SERVERS],
    overflow: Requests,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    sessions_opened: AtomicU64,
    /// Open connections per front (`FRONTS`), and those refused at the connection cap.
    connections: [AtomicU64; 2],
    connections_refused: [AtomicU64; 2],
    restarts: [AtomicU64; 2],
    exits: [AtomicU64; 2],
    auth_failures: Dynamic,
    rate_limited: Dynamic,
}

static METRICS: Metrics = Metrics {
    unnamed: Requests::new(),
    servers: [const { OnceLock::new() }; MAX_SERVERS],
    overflow: Requests::new(),
    bytes_in: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
    sessions_opened: AtomicU64::new(0),
    connections: [const { AtomicU64::new(0) }; 2],
    connections_refused: [const { AtomicU64::new(0) }; 2],
    restarts: [const { AtomicU64::new(0) }; 2],
    exits: [const { AtomicU64::new(0) }; 2],
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

/// The label of the server `name` (`None`: a single-server relay), registered on first use.
/// Server names come from the configuration only; past [`MAX_SERVERS`] names (reloads that
/// add servers), new ones share `server="other"`.
pub(crate) fn server_label(name: Option<&str>) -> ServerLabel {
    match name {
        None => ServerLabel(0),
        Some(name) => register(&METRICS.servers, name)
            .map_or(ServerLabel(OVERFLOW), |i| ServerLabel(i as u8 + 1)),
    }
}

/// The slot holding `name`, taking the first free one; `None` when all are taken.
fn register(slots: &[OnceLock<Box<Named>>], name: &str) -> Option<usize> {
    slots.iter().position(|slot| {
        let named = slot.get_or_init(|| {
            Box::new(Named {
                name: name.into(),
                table: Requests::new(),
            })
        });
        &*named.name == name
    })
}

fn table(server: ServerLabel) -> &'static Requests {
    match server.0 {
        0 => &METRICS.unnamed,
        OVERFLOW => &METRICS.overflow,
        i => METRICS.servers[usize::from(i) - 1]
            .get()
            .map_or(&METRICS.overflow, |n| &n.table),
    }
}

/// Every server's series with its label value (`None`: the unnamed server).
fn tables() -> impl Iterator<Item = (Option<&'static str>, &'static Requests)> {
    let named = METRICS
        .servers
        .iter()
        .filter_map(|s| s.get().map(|n| (Some(&*n.name), &n.table)));
    std::iter::once((None, &METRICS.unnamed))
        .chain(named)
        .chain(std::iter::once((Some("other"), &METRICS.overflow)))
}

fn count_request(
    server: ServerLabel,
    (t, m): (usize, usize),
    outcome: Outcome,
    bytes_in: u64,
    bytes_out: u64,
) {
    table(server).requests[(t * M + m) * O + outcome_index(outcome)].fetch_add(1, Relaxed);
    if bytes_in > 0 {
        METRICS.bytes_in.fetch_add(bytes_in, Relaxed);
    }
    if bytes_out > 0 {
        METRICS.bytes_out.fetch_add(bytes_out, Relaxed);
    }
}

fn observe(server: ServerLabel, t: usize, m: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let b = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(B - 1);
    let tm = t * M + m;
    let table = table(server);
    table.buckets[tm * B + b].fetch_add(1, Relaxed);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    table.sum_micros[tm].fetch_add(micros, Relaxed);
    table.count[tm].fetch_add(1, Relaxed);
}

/// One admitted request, counted once when dropped (like its audit record): outcome
/// (`cancelled` when never answered), latency, bytes.
#[derive(Debug)]
pub(crate) struct Measure {
    server: ServerLabel,
    transport: u8,
    method: u8,
    started: Instant,
    bytes_in: u64,
    answer: Option<(Outcome, u64)>,
    armed: bool,
}

impl Measure {
    /// Starts measuring a request of `method` to `server` that arrived over `transport`
    /// (`bytes_in` long).
    pub(crate) fn start(
        server: ServerLabel,
        transport: &str,
        method: Option<&str>,
        bytes_in: usize,
    ) -> Measure {
        Measure {
            server,
            transport: transport_index(transport) as u8,
            method: method_index(method) as u8,
            started: Instant::now(),
            bytes_in: bytes_in as u64,
            answer: None,
            armed: true,
        }
    }

    /// Notes the answer (the last one wins, like the audit record).
    pub(crate) fn answered(&mut self, outcome: Outcome, bytes_out: usize) {
        self.answer = Some((outcome, bytes_out as u64));
    }

    /// Counts nothing: the request was refused and the refusal is counted by [`refused`].
    pub(crate) fn disarm(&mut self) {
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
        count_request(self.server, (t, m), outcome, self.bytes_in, out);
        observe(self.server, t, m, self.started.elapsed());
    }
}

/// A request the relay refused itself (denied, unauthenticated, malformed, over a cap).
pub(crate) fn refused(
    server: ServerLabel,
    transport: &str,
    method: Option<&str>,
    outcome: Outcome,
    bytes_in: usize,
) {
    count_request(
        server,
        (transport_index(transport), method_index(method)),
        outcome,
        bytes_in as u64,
        0,
    );
}

/// A failed authentication; `reason` is the wire reason (`missing_credential`, …).
pub(crate) fn auth_failure(reason: &'static str) {
    METRICS.auth_failures.inc(reason);
}

/// A request to `server` denied by the roles policy.
pub(crate) fn policy_denial(server: ServerLabel, kind: DenialKind) {
    let i = DenialKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    table(server).denials[i].fetch_add(1, Relaxed);
}

/// A request or connection shed by a rate limit of `scope` (e.g. `principal`, `ip`).
pub(crate) fn rate_limited(scope: &'static str) {
    METRICS.rate_limited.inc(scope);
}

/// The connection-oriented fronts: HTTP (Streamable HTTP, SSE, WebSocket) and TCP.
pub(crate) const FRONTS: [&str; 2] = ["http", "tcp"];

/// An open connection of `front` ([`FRONTS`]), counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(usize);

/// A connection was accepted on `front` (`http` or `tcp`).
pub(crate) fn connection_opened(front: &'static str) -> OpenConnection {
    let i = front_index(front);
    METRICS.connections[i].fetch_add(1, Relaxed);
    OpenConnection(i)
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        METRICS.connections[self.0].fetch_sub(1, Relaxed);
    }
}

/// A connection was refused at `--max-connections` on `front`.
pub(crate) fn connection_refused(front: &'static str) {
    METRICS.connections_refused[front_index(front)].fetch_add(1, Relaxed);
}

fn front_index(front: &str) -> usize {
    FRONTS.iter().position(|f| *f == front).unwrap_or(0)
}

/// Open connections per front, for `/health`.
pub(crate) fn connections_open() -> [(&'static str, u64); 2] {
    [0, 1].map(|i| (FRONTS[i], METRICS.connections[i].load(Relaxed)))
}

/// A session was opened.
pub(crate) fn session_opened() {
    METRICS.sessions_opened.fetch_add(1, Relaxed);
}

/// A supervised slot starts a new child after the previous one exited or failed to start.
pub(crate) fn child_restarted(reason: RestartReason) {
    let i = match reason {
        RestartReason::Exited => 0,
        RestartReason::StartFailed => 1,
    };
    METRICS.restarts[i].fetch_add(1, Relaxed);
}

/// A child (or remote link) ended; `stopped`: the relay asked it to.
pub(crate) fn child_exited(stopped: bool) {
    METRICS.exits[usize::from(stopped)].fetch_add(1, Relaxed);
}

/// The relay state read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub sessions_active: u64,
    pub children_running: u64,
    /// Per-session children started ahead and ready (`--spare-children`).
    pub spare_children: u64,
    pub dropped_lines: u64,
    pub uptime: Duration,
    /// Overload shedding's (used, budget) bytes, when it has a budget.
    pub memory: Option<(u64, u64)>,
    /// 0 normal, 1 no keep-alive, 2 shedding.
    pub overload_level: u64,
}

mod forward;
mod render;
pub(crate) use forward::{forwarded, Forwarded};
pub(crate) use render::render;

#[cfg(test)]
mod tests;

// === The fleet's shared store (`cluster/store.rs`) ===

/// Whether a shared store is configured (its series are shown only then), whether it is
/// reachable, and its failed operations by kind (`admit`, `renew`, `release`).
struct StoreSeries {
    configured: std::sync::atomic::AtomicBool,
    up: AtomicU64,
    errors: Dynamic,
}

static STORE: StoreSeries = StoreSeries {
    configured: std::sync::atomic::AtomicBool::new(false),
    up: AtomicU64::new(1),
    errors: Dynamic::new(),
};

/// A shared store is configured: `mcp_relay_store_up` and its errors are exposed.
pub(crate) fn store_configured() {
    STORE.configured.store(true, Relaxed);
}

/// The shared store is reachable (`true`) or its breaker is open (`false`).
pub(crate) fn store_up(up: bool) {
    STORE.up.store(u64::from(up), Relaxed);
}

/// One failed (or timed out) store operation `op`.
pub(crate) fn store_error(op: &'static str) {
    STORE.errors.inc(op);
}

/// The store's series, when one is configured.
fn store_exposition(out: &mut String) {
    use std::fmt::Write as _;
    if !STORE.configured.load(Relaxed) {
        return;
    }
    let up = "mcp_relay_store_up";
    let _ = writeln!(out, "# HELP {up} 1 while the shared store of fleet limits answers, 0 while its breaker is open.");
    let _ = writeln!(out, "# TYPE {up} gauge\n{up} {}", STORE.up.load(Relaxed));
    let errors = "mcp_relay_store_errors_total";
    let _ = writeln!(
        out,
        "# HELP {errors} Shared store operations that failed or timed out, by operation."
    );
    let _ = writeln!(out, "# TYPE {errors} counter");
    for (op, n) in STORE.errors.values() {
        let _ = writeln!(out, "{errors}{{op=\"{op}\"}} {n}");
    }
}
