//! The table "Against agentgateway" (issue 21): for `relay-sse` and `relay-json`, the relay's
//! figure, agentgateway's on the same child, and the ratio oriented so that > 1 means the relay
//! is better. Rendered only when agentgateway is in the run; how agentgateway is started is in
//! `agentgateway.rs`, the other tables in `report.rs` and `targets.rs`.

use std::fmt::Write as _;

use crate::report::{fmt_num, Metric, Results};
use crate::systems::Kind;

/// The rows: metric, its label, and whether higher is better.
const ROWS: [(Metric, &str, bool); 7] = [
    (Metric::AP50, "(a) p50 µs", false),
    (Metric::BRps, "(b) req/s C=32", true),
    (Metric::CRps, "(c) 64 KiB req/s", true),
    (Metric::ERps, "(e) shared req/s", true),
    (
        Metric::DTreePerSession,
        "(d) KiB/idle session, tree (children included)",
        false,
    ),
    (
        Metric::DSelfPerSession,
        "(d) KiB/idle session excl. children",
        false,
    ),
    (Metric::FCps, "(f) churn cycles/s", true),
];

/// The table, or nothing when agentgateway is not in the run.
pub(crate) fn render(r: &Results, systems: &[Kind]) -> String {
    if !systems.contains(&Kind::Agentgateway) {
        return String::new();
    }
    let mut s = String::from(
        "\n### Against agentgateway\n\n\
         Ratio oriented so that > 1 means the relay is better (for latency and memory: \
         agentgateway's figure ÷ the relay's).\n\n\
         | relay mode | metric | relay | agentgateway | ratio | relay ahead |\n\
         |---|---|---:|---:|---:|---|\n",
    );
    let show = |v: Option<f64>| v.map_or("–".to_owned(), fmt_num);
    for k in [Kind::RelaySse, Kind::RelayJson] {
        if !systems.contains(&k) {
            continue;
        }
        for (m, label, higher) in ROWS {
            let (ours, theirs) = (r.median(k, m), r.median(Kind::Agentgateway, m));
            let ratio = match (ours, theirs) {
                (Some(a), Some(b)) if higher && b > 0.0 => Some(a / b),
                (Some(a), Some(b)) if !higher && a > 0.0 => Some(b / a),
                _ => None,
            };
            let ahead = match ratio {
                Some(x) if x > 1.0 => "yes",
                Some(_) => "no",
                None => "n/a",
            };
            let _ = writeln!(
                s,
                "| {} | {label} | {} | {} | {} | {ahead} |",
                k.name(),
                show(ours),
                show(theirs),
                ratio.map_or("–".to_owned(), |x| format!("{x:.2}×")),
            );
        }
    }
    s
}
