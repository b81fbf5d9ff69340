//! The targets, computed from the medians: each with the relay's figure, the
//! reference, the threshold and whether it is met.

use std::fmt::Write as _;

use crate::report::{fmt_num, Metric, Results};
use crate::systems::Kind;

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
    let cmp = |a: Option<f64>, b: Option<f64>, ok: &dyn Fn(f64, f64) -> bool| match (a, b) {
        (Some(a), Some(b)) => Some(ok(a, b)),
        _ => None,
    };
    let show = |v: Option<f64>| v.map_or("–".to_owned(), fmt_num);
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
