//! The Prometheus text exposition (format 0.0.4) of the counters in `metrics.rs` and the
//! relay state read at scrape time ([`Snapshot`]): every metric with `# HELP` and `# TYPE`,
//! labelled series only once non-zero.

use std::fmt::Write as _;
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
