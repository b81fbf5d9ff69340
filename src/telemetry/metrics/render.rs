//! The Prometheus text exposition (format 0.0.4) of the counters in `metrics.rs` and the
//! relay state read at scrape time ([`Snapshot`]): every metric with `# HELP` and `# TYPE`,
//! labelled series only once non-zero. A named server's per-request series start with its
//! `server` label; a single-server relay's have none.

use std::fmt::{Display, Write as _};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::*;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the format requires.
pub(super) fn esc(v: &str) -> String {
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
pub(crate) fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    requests(&mut out);
    durations(&mut out);
    for family in families(snap) {
        family.write(&mut out);
    }
    super::forward::render(&mut out);
    store_exposition(&mut out);
    out
}

/// `server="NAME",` for a named server's series, nothing for the unnamed server's.
fn server_label(server: Option<&str>) -> String {
    server.map_or_else(String::new, |s| format!("server=\"{}\",", esc(s)))
}

/// `mcp_relay_requests_total`: one series per (server, transport, method, outcome) once
/// non-zero.
fn requests(out: &mut String) {
    let n = "mcp_relay_requests_total";
    header(
        out,
        n,
        COUNTER,
        "JSON-RPC requests by server (named servers only), front transport, MCP method (others: `other`) and audit outcome.",
    );
    for (server, table) in tables() {
        let server = server_label(server);
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (o, outcome) in Outcome::ALL.iter().enumerate() {
                    let v = table.requests[(t * M + m) * O + o].load(Relaxed);
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "{n}{{{server}transport=\"{}\",method=\"{}\",outcome=\"{}\"}} {v}",
                            transport,
                            esc(method),
                            outcome.as_str()
                        );
                    }
                }
            }
        }
    }
}

/// `mcp_relay_request_duration_seconds`: one histogram per (server, transport, method) once
/// used.
fn durations(out: &mut String) {
    let n = "mcp_relay_request_duration_seconds";
    header(
        out,
        n,
        "histogram",
        "Time from admission to answer (or cancellation) of admitted requests.",
    );
    for (server, table) in tables() {
        let server = server_label(server);
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let tm = t * M + m;
                let count = table.count[tm].load(Relaxed);
                if count == 0 {
                    continue;
                }
                let labels = format!(
                    "{server}transport=\"{transport}\",method=\"{}\"",
                    esc(method)
                );
                let mut cumulative = 0;
                for b in 0..B {
                    cumulative += table.buckets[tm * B + b].load(Relaxed);
                    let le = BUCKETS.get(b).copied().unwrap_or(f64::INFINITY);
                    let _ = writeln!(
                        out,
                        "{n}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                        fmt_f64(le)
                    );
                }
                let sum = table.sum_micros[tm].load(Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "{n}_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "{n}_count{{{labels}}} {count}");
            }
        }
    }
}

/// `mcp_relay_policy_denials_total`: every kind for the unnamed server (as always), and the
/// non-zero kinds of each named server.
fn denials() -> Family {
    let mut series = Vec::new();
    for (server, table) in tables() {
        let label = server_label(server);
        for (k, kind) in DenialKind::ALL.iter().enumerate() {
            let v = table.denials[k].load(Relaxed);
            if server.is_none() || v > 0 {
                series.push((format!("{label}kind=\"{}\"", kind.as_str()), v.to_string()));
            }
        }
    }
    Family {
        name: "mcp_relay_policy_denials_total",
        kind: COUNTER,
        help: "Requests denied by the roles policy, by server (named servers only) and what was denied.",
        series,
    }
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

/// One metric family with at most one label: its `# HELP`/`# TYPE` and its series.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// (`label="value"`, or empty for the unlabelled series; the value's text).
    series: Vec<(String, String)>,
}

impl Family {
    /// An unlabelled family of one series.
    fn one(name: &'static str, kind: &'static str, help: &'static str, v: impl Display) -> Self {
        let series = vec![(String::new(), v.to_string())];
        Family {
            name,
            kind,
            help,
            series,
        }
    }

    /// A family with one series per value of `label`.
    fn by<'a>(
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Self {
        let series = values
            .into_iter()
            .map(|(k, v)| (format!("{label}=\"{}\"", esc(k)), v.to_string()))
            .collect();
        Family {
            name,
            kind,
            help,
            series,
        }
    }

    fn write(&self, out: &mut String) {
        let name = self.name;
        header(out, name, self.kind, self.help);
        for (labels, v) in &self.series {
            let _ = if labels.is_empty() {
                writeln!(out, "{name} {v}")
            } else {
                writeln!(out, "{name}{{{labels}}} {v}")
            };
        }
    }
}

/// The families after the per-request ones, in exposition order. Long by design: one table
/// entry per family.
fn families(snap: &Snapshot) -> Vec<Family> {
    let load = |c: &AtomicU64| c.load(Relaxed);
    let mut all = vec![
        Family::by(
            "mcp_relay_request_bytes_total",
            COUNTER,
            "Bytes of JSON-RPC requests (in) and of their answers (out).",
            "direction",
            [("in", load(&METRICS.bytes_in)), ("out", load(&METRICS.bytes_out))],
        ),
        Family::one(
            "mcp_relay_sessions_active",
            GAUGE,
            "Sessions open now.",
            snap.sessions_active,
        ),
        Family::one(
            "mcp_relay_sessions_opened_total",
            COUNTER,
            "Sessions opened since start.",
            load(&METRICS.sessions_opened),
        ),
        Family::by(
            "mcp_relay_connections_open",
            GAUGE,
            "Client connections open now, by front (`http`, `tcp`).",
            "front",
            connections_open(),
        ),
        Family::by(
            "mcp_relay_connections_refused_total",
            COUNTER,
            "Connections closed at once because the listener's --max-connections was reached.",
            "front",
            FRONTS.into_iter().zip(METRICS.connections_refused.iter().map(load)),
        ),
        Family::one(
            "mcp_relay_children_running",
            GAUGE,
            "Child processes (or remote links) running now.",
            snap.children_running,
        ),
        Family::one(
            "mcp_relay_spare_children",
            GAUGE,
            "Per-session children started ahead of their sessions and ready (--spare-children); not in mcp_relay_children_running.",
            snap.spare_children,
        ),
        Family::by(
            "mcp_relay_child_restarts_total",
            COUNTER,
            "New children started by a supervised slot after the previous one exited or failed to start.",
            "reason",
            ["exited", "start_failed"].into_iter().zip(METRICS.restarts.iter().map(load)),
        ),
        Family::by(
            "mcp_relay_child_exits_total",
            COUNTER,
            "Children (or remote links) that ended: on their own (`unexpected`) or asked to (`stopped`).",
            "reason",
            ["unexpected", "stopped"].into_iter().zip(METRICS.exits.iter().map(load)),
        ),
        Family::one(
            "mcp_relay_child_dropped_lines_total",
            COUNTER,
            "Child stdout lines dropped as invalid.",
            snap.dropped_lines,
        ),
        Family::by(
            "mcp_relay_auth_failures_total",
            COUNTER,
            "Failed authentications by reason.",
            "reason",
            METRICS.auth_failures.values(),
        ),
        denials(),
        Family::by(
            "mcp_relay_rate_limited_total",
            COUNTER,
            "Requests or connections refused by a rate limit (or `overload` shedding), by scope.",
            "scope",
            METRICS.rate_limited.values(),
        ),
        Family::one(
            "mcp_relay_uptime_seconds",
            GAUGE,
            "Seconds since the relay started.",
            snap.uptime.as_secs_f64(),
        ),
    ];
    if let Some((used, budget)) = snap.memory {
        all.push(Family::one(
            "mcp_relay_memory_used_bytes",
            GAUGE,
            "Memory in use as overload shedding measures it.",
            used,
        ));
        all.push(Family::one(
            "mcp_relay_memory_budget_bytes",
            GAUGE,
            "The memory budget overload shedding measures against.",
            budget,
        ));
    }
    all.push(Family::one(
        "mcp_relay_overload_level",
        GAUGE,
        "0 normal, 1 no keep-alive (soft threshold), 2 shedding new work (hard threshold).",
        snap.overload_level,
    ));
    all
}
