//! The issues' targets, computed from the medians: each with the relay's figure, the
//! reference, the threshold and whether it is met. Issue 3: against the HTTP and stdio floors
//! and the peers; issue 21: against the relay floor (`floor-relay`), the HTTP floor and the
//! best peer's churn. The table against agentgateway is in `against.rs`.

use std::fmt::Write as _;

use crate::report::{fmt_num, Metric, Results};
use crate::systems::Kind;

/// Whether `a` and `b` (both known) pass `ok`.
fn cmp(a: Option<f64>, b: Option<f64>, ok: &dyn Fn(f64, f64) -> bool) -> Option<bool> {
    match (a, b) {
        (Some(a), Some(b)) => Some(ok(a, b)),
        _ => None,
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), fmt_num)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "n/a",
    }
}

/// The targets table for every single-server relay mode in the run (the multi-server relay,
/// the 2026-07-28 client and the authenticated relays are compared with `relay-sse` instead:
/// `report.rs`).
pub(crate) fn render(r: &Results, systems: &[Kind]) -> String {
    let mut s = String::from(
        "\n### Targets (issue 3)\n\n| relay mode | target | relay | reference | verdict |\n|---|---|---:|---:|---|\n",
    );
    let fig = |k, m| r.figure(systems, k, m);
    for k in systems.iter().copied().filter(|k| {
        k.is_relay() && !k.is_multi() && !k.is_modern() && !k.is_auth() && !k.is_fleet()
    }) {
        let mut row = |target: &str, a: Option<f64>, b: Option<f64>, ok: Option<bool>| {
            let _ = writeln!(
                s,
                "| {} | {target} | {} | {} | {} |",
                k.name(),
                show(a),
                show(b),
                verdict(ok)
            );
        };
        let (p50, http_p50) = (fig(k, Metric::AP50), fig(Kind::FloorHttp, Metric::AP50));
        row(
            "(a) p50 ≤ 1.5× floor-http p50 (µs)",
            p50,
            http_p50,
            cmp(p50, http_p50, &|a, b| a <= 1.5 * b),
        );
        let (rps, http_rps) = (fig(k, Metric::BRps), fig(Kind::FloorHttp, Metric::BRps));
        row(
            "(b) req/s C=32 ≥ 50% of floor-http",
            rps,
            http_rps,
            cmp(rps, http_rps, &|a, b| a >= 0.5 * b),
        );
        let c = fig(k, Metric::CRps);
        let peer = r.best_peer_figure(systems, Metric::CRps, true);
        row(
            "(c) 64 KiB req/s ≥ 5× best peer",
            c,
            peer,
            cmp(c, peer, &|a, b| a >= 5.0 * b),
        );
        let stdio = fig(Kind::FloorStdio, Metric::CRps);
        row(
            "(c) 64 KiB req/s ≥ 70% of floor-stdio",
            c,
            stdio,
            cmp(c, stdio, &|a, b| a >= 0.7 * b),
        );
        let own = fig(k, Metric::DSelfPerSession);
        let note = "(d) ≤ 64 KiB/idle session excl. children (per-session mode, for reference)";
        row(note, own, Some(64.0), own.map(|v| v <= 64.0));
        let own = fig(k, Metric::DSharedSelfPerSession);
        let note = "(d) ≤ 64 KiB/idle session excl. the child (shared mode)";
        row(note, own, Some(64.0), own.map(|v| v <= 64.0));
        // (e) has no threshold of its own: it is met when every answer of every repetition
        // came back verified; the reference is the best peer with a shared child.
        let e = fig(k, Metric::ERps);
        let peer = r.best_peer_figure(systems, Metric::ERps, true);
        let clean = e.map(|_| !r.failed(k, "(e) shared") && !r.failed(k, "start (shared mode)"));
        let _ = writeln!(
            s,
            "| {} | (e) shared mode: 1,000 sessions on one child, C=64, every answer verified \
             (req/s; reference: best peer) | {} | {} | {} |",
            k.name(),
            show(e),
            show(peer),
            verdict(clean)
        );
    }
    s
}

/// The targets of issue 21 for `relay-sse` and `relay-json` (each per-session and in shared
/// mode): (a) p50 ≤ 1.25× `floor-relay`; (b) C=32 req/s ≥ 80% of `floor-relay` and ≥ 50% of
/// `floor-http`; (f) churn ≥ 2× the best peer (and `relay-spare`'s churn, when in the run).
/// Nothing when neither relay mode is in the run.
pub(crate) fn render_floor(r: &Results, systems: &[Kind]) -> String {
    let relays = [Kind::RelaySse, Kind::RelayJson];
    if !relays.iter().any(|k| systems.contains(k)) {
        return String::new();
    }
    let mut s = String::from(
        "\n### Targets (issue 21)\n\n| relay mode | target | relay | reference | verdict |\n|---|---|---:|---:|---|\n",
    );
    let fig = |k, m| r.figure(systems, k, m);
    let floor_p50 = fig(Kind::FloorRelay, Metric::AP50);
    let (floor_rps, http_rps) = (
        fig(Kind::FloorRelay, Metric::BRps),
        fig(Kind::FloorHttp, Metric::BRps),
    );
    for k in relays.into_iter().filter(|k| systems.contains(k)) {
        let mut row = |target: &str, a: Option<f64>, b: Option<f64>, ok: Option<bool>| {
            let (name, a, b) = (k.name(), show(a), show(b));
            let _ = writeln!(s, "| {name} | {target} | {a} | {b} | {} |", verdict(ok));
        };
        for (mode, p50, rps) in [
            ("per-session", Metric::AP50, Metric::BRps),
            ("shared mode", Metric::AP50Shared, Metric::BRpsShared),
        ] {
            let (p50, rps) = (fig(k, p50), fig(k, rps));
            let t = format!("(a) p50, {mode}, ≤ 1.25× floor-relay p50 (µs)");
            row(
                &t,
                p50,
                floor_p50,
                cmp(p50, floor_p50, &|a, b| a <= 1.25 * b),
            );
            let t = format!("(b) req/s C=32, {mode}, ≥ 80% of floor-relay");
            row(
                &t,
                rps,
                floor_rps,
                cmp(rps, floor_rps, &|a, b| a >= 0.8 * b),
            );
            let t = format!("(b) req/s C=32, {mode}, ≥ 50% of floor-http");
            row(&t, rps, http_rps, cmp(rps, http_rps, &|a, b| a >= 0.5 * b));
        }
        let f = fig(k, Metric::FCps);
        let peer = r.best_peer_figure(systems, Metric::FCps, true);
        let t = "(f) churn cycles/s ≥ 2× best peer";
        row(t, f, peer, cmp(f, peer, &|a, b| a >= 2.0 * b));
    }
    if systems.contains(&Kind::RelaySpare) {
        let f = fig(Kind::RelaySpare, Metric::FCps);
        let peer = r.best_peer_figure(systems, Metric::FCps, true);
        let _ = writeln!(
            s,
            "| relay-spare | (f) churn cycles/s ≥ 2× best peer | {} | {} | {} |",
            show(f),
            show(peer),
            verdict(cmp(f, peer, &|a, b| a >= 2.0 * b))
        );
    }
    s
}
