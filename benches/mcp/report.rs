//! Collected figures (one value per repetition), medians, and the markdown report: the
//! results table, ratios of each relay mode to the best peer and to the floors, the
//! multi-server relay's paths and a 2026-07-28 client's translated calls against the single
//! relay's legacy sessions (ratio and µs per call), the authenticated relays against the
//! relay without authentication; the targets of issues 3 and 21 with whether each is met
//! (`targets.rs`) and the relay against agentgateway (`against.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::systems::Kind;

/// One reported figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Metric {
    AP50,
    AP99,
    /// (a) p50 with one child for every session (the relay: `Mode::Shared`).
    AP50Shared,
    BRps,
    /// (b) req/s with one child for every session (the relay: `Mode::Shared`).
    BRpsShared,
    /// CPU µs per call of the system's own process (children excluded) during (b).
    BCpu,
    CRps,
    DTree0,
    DTreeN,
    DTreePerSession,
    DSelfPerSession,
    /// Own RSS per idle session with one child shared by all (the relay: `Mode::Shared`).
    DSharedSelfPerSession,
    ERps,
    /// CPU µs per call of the system's own process (the child excluded) during (e).
    ECpu,
    EP50,
    EP99,
    FCps,
    FP50,
}

use Metric::*;

const COLUMNS: [(Metric, &str, bool); 18] = [
    (AP50, "(a) p50 µs", false),
    (AP99, "(a) p99 µs", false),
    (AP50Shared, "(a) p50 µs, shared mode", false),
    (BRps, "(b) req/s C=32", true),
    (BRpsShared, "(b) req/s C=32, shared mode", true),
    (BCpu, "(b) CPU µs/call excl. children", false),
    (CRps, "(c) 64 KiB req/s", true),
    (DTree0, "(d) tree MiB, 0 sess", false),
    (DTreeN, "(d) tree MiB, N sess", false),
    (DTreePerSession, "(d) KiB/sess tree", false),
    (DSelfPerSession, "(d) KiB/sess excl. children", false),
    (
        DSharedSelfPerSession,
        "(d) KiB/sess excl. child, shared mode",
        false,
    ),
    (ERps, "(e) shared req/s", true),
    (ECpu, "(e) CPU µs/call excl. child", false),
    (EP50, "(e) shared p50 µs", false),
    (EP99, "(e) shared p99 µs", false),
    (FCps, "(f) churn cycles/s", true),
    (FP50, "(f) cycle p50 ms", false),
];

/// Every figure and note gathered so far.
#[derive(Default)]
pub(crate) struct Results {
    values: HashMap<(Kind, Metric), Vec<f64>>,
    notes: HashMap<(Kind, Metric), String>,
    pub(crate) failures: Vec<String>,
}

impl Results {
    pub(crate) fn add(&mut self, k: Kind, m: Metric, v: f64) {
        self.values.entry((k, m)).or_default().push(v);
    }

    /// Whether `fail` recorded `what` for `k` in any repetition.
    pub(crate) fn failed(&self, k: Kind, what: &str) -> bool {
        let prefix = format!("{} {what} rep ", k.name());
        self.failures.iter().any(|f| f.starts_with(&prefix))
    }

    /// A reason shown instead of a figure (n/a, pending), kept if no figure arrives.
    pub(crate) fn note(&mut self, k: Kind, m: Metric, why: &str) {
        self.notes.entry((k, m)).or_insert_with(|| why.to_owned());
    }

    pub(crate) fn fail(&mut self, k: Kind, what: &str, rep: usize, err: &anyhow::Error) {
        let msg = format!("{} {what} rep {}: {err:#}", k.name(), rep + 1);
        eprintln!("bench: FAILED {msg}");
        self.failures.push(msg);
    }

    pub(crate) fn median(&self, k: Kind, m: Metric) -> Option<f64> {
        let mut v = self.values.get(&(k, m))?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }

    fn cell(&self, k: Kind, m: Metric) -> String {
        match self.median(k, m) {
            Some(v) => fmt_num(v),
            None => self
                .notes
                .get(&(k, m))
                .cloned()
                .unwrap_or_else(|| "–".to_owned()),
        }
    }

    /// The best peer's median for `m` (highest if `higher`, else lowest).
    fn best_peer(&self, systems: &[Kind], m: Metric, higher: bool) -> Option<(Kind, f64)> {
        let peers = systems.iter().filter(|k| k.is_peer());
        let vals = peers.filter_map(|k| Some((*k, self.median(*k, m)?)));
        if higher {
            vals.max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            vals.min_by(|a, b| a.1.total_cmp(&b.1))
        }
    }

    /// The markdown report.
    pub(crate) fn render(&self, systems: &[Kind], header: &str) -> String {
        let mut s = String::from(header);
        s.push_str("\n| system |");
        for (_, h, _) in COLUMNS {
            let _ = write!(s, " {h} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(COLUMNS.len()));
        for k in systems {
            let _ = write!(s, "\n| {} |", k.name());
            for (m, _, _) in COLUMNS {
                let _ = write!(s, " {} |", self.cell(*k, m));
            }
        }
        s.push_str("\n\n");
        s.push_str(&self.ratios(systems));
        s.push_str(&self.servers(systems));
        s.push_str(&self.eras(systems));
        s.push_str(&self.auth(systems));
        s.push_str(&self.fleet(systems));
        s.push_str(&self.console(systems));
        s.push_str(&self.spares(systems));
        s.push_str(&crate::targets::render(self, systems));
        s.push_str(&crate::targets::render_floor(self, systems));
        s.push_str(&crate::against::render(self, systems));
        if !self.failures.is_empty() {
            s.push_str("\n### Failures\n\n");
            for f in &self.failures {
                let _ = writeln!(s, "- {f}");
            }
        }
        s
    }

    /// Ratios of each relay mode to the best peer and to the three floors ("×" = how many times
    /// better the relay is; below 1 means worse); nothing if neither is in the run.
    fn ratios(&self, systems: &[Kind]) -> String {
        let references = [Kind::FloorHttp, Kind::FloorStdio, Kind::FloorRelay];
        if !systems
            .iter()
            .any(|k| k.is_peer() || references.contains(k))
        {
            return String::new(); // nothing to compare with: no table of dashes
        }
        let mut s = String::from(
            "### Ratios (relay ÷ reference, oriented so that > 1 means the relay is better)\n\n\
             | relay mode | metric | vs best peer | vs floor-http | vs floor-stdio | vs floor-relay |\n\
             |---|---|---:|---:|---:|---:|\n",
        );
        let metrics = [
            (AP50, false),
            (AP50Shared, false),
            (BRps, true),
            (BRpsShared, true),
            (CRps, true),
            (DSharedSelfPerSession, false),
            (ERps, true),
            (EP50, false),
            (FCps, true),
        ];
        for k in systems.iter().filter(|k| k.is_relay()) {
            for (m, higher) in metrics {
                let Some(r) = self.median(*k, m) else {
                    continue;
                };
                let ratio = |v: Option<f64>| match v {
                    Some(v) if higher => format!("{:.2}×", r / v),
                    Some(v) => format!("{:.2}×", v / r),
                    None => "–".to_owned(),
                };
                let peer = self.best_peer(systems, m, higher);
                let name = COLUMNS.iter().find(|c| c.0 == m).map_or("", |c| c.1);
                let _ = writeln!(
                    s,
                    "| {} | {name} | {} | {} | {} | {} |",
                    k.name(),
                    peer.map_or("–".to_owned(), |(pk, v)| format!(
                        "{} ({})",
                        ratio(Some(v)),
                        pk.name()
                    )),
                    ratio(self.figure(systems, Kind::FloorHttp, m)),
                    ratio(self.figure(systems, Kind::FloorStdio, m)),
                    ratio(self.figure(systems, Kind::FloorRelay, m)),
                );
            }
        }
        s
    }

    /// The multi-server relay's paths against `relay-sse`, and the aggregate against the
    /// per-server path of the same process (issue 16).
    fn servers(&self, systems: &[Kind]) -> String {
        let pairs = [
            (Kind::RelayAggregate, Kind::RelaySse),
            (Kind::RelayServer, Kind::RelaySse),
            (Kind::RelayAggregate, Kind::RelayServer),
        ];
        self.compare(
            systems,
            &pairs,
            "Several servers (issue 16): each path of the multi-server relay ÷ a reference",
        )
    }

    /// A 2026-07-28 client's stateless call through the relay in front of the legacy
    /// fixture (translated) against a legacy session's call on the same relay (issue 17), with
    /// SSE answers (the default) and with JSON answers (which the modern call gets when its
    /// answer comes first).
    fn eras(&self, systems: &[Kind]) -> String {
        self.compare(
            systems,
            &[
                (Kind::RelayModern, Kind::RelaySse),
                (Kind::RelayModern, Kind::RelayJson),
            ],
            "Client eras (issue 17): a 2026-07-28 call, translated, ÷ a legacy session's call",
        )
    }

    /// What a bearer token on every request costs: the relay with an HS256 JWT
    /// (`--jwt-secret`) and with its own ES256 access token (`[oauth_server]`, issue 18)
    /// against the same relay without authentication, and the two kinds of token against
    /// each other.
    fn auth(&self, systems: &[Kind]) -> String {
        self.compare(
            systems,
            &[
                (Kind::RelayJwt, Kind::RelaySse),
                (Kind::RelayOauth, Kind::RelaySse),
                (Kind::RelayOauth, Kind::RelayJwt),
            ],
            "Authentication: a bearer token on every request ÷ the relay without \
             authentication (relay-sse), and the relay's own token ÷ an HS256 JWT",
        )
    }

    /// A fleet (issue 19): a replica alone against the plain relay (tagged ids), a forwarded
    /// call against the same call made at its home replica, and limits in Redis against the
    /// same limits in memory (and in memory against none).
    fn fleet(&self, systems: &[Kind]) -> String {
        self.compare(
            systems,
            &[
                (Kind::RelayNode, Kind::RelaySse),
                (Kind::RelayForwarded, Kind::RelayNode),
                (Kind::RelayLimits, Kind::RelayJwt),
                (Kind::RelaySharedLimits, Kind::RelayLimits),
            ],
            "A fleet (issue 19): a replica alone ÷ the relay, a forwarded call ÷ a local \
             one, limits in memory ÷ none, limits in Redis ÷ in memory",
        )
    }

    /// The console's live feeds (issue 20): the relay with three console streams open against
    /// the same relay without an admin listener (the target: under 5 % of (b) throughput).
    fn console(&self, systems: &[Kind]) -> String {
        self.compare(
            systems,
            &[(Kind::RelayConsole, Kind::RelaySse)],
            "The console (issue 20): three live pages open ÷ the relay without the console \
             (target: (b) ratio ≥ 0.95)",
        )
    }

    /// Spare children: the relay keeping two per-session children started ahead against the
    /// same relay starting each child with its session (churn is where it shows).
    fn spares(&self, systems: &[Kind]) -> String {
        self.compare(
            systems,
            &[(Kind::RelaySpare, Kind::RelaySse)],
            "Spare children: `--spare-children 2` ÷ the relay starting each child with its \
             session",
        )
    }

    /// `(system, reference)` pairs of the run under a heading: the ratio, and what the
    /// system costs per call: for latencies and CPU times the difference of the medians, for
    /// throughputs the difference of 1 ÷ throughput (the time each call adds while the
    /// machine is busy). Nothing when no pair is in the run.
    fn compare(&self, systems: &[Kind], pairs: &[(Kind, Kind)], title: &str) -> String {
        let pairs: Vec<_> = pairs
            .iter()
            .filter(|(k, base)| systems.contains(k) && systems.contains(base))
            .collect();
        if pairs.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "\n### {title}\n\n\
             Ratio oriented so that > 1 means the system is better than the reference. Per \
             call: latencies and CPU times, the difference of the medians; throughputs, the \
             difference of 1 ÷ throughput (per cycle for (f)). Positive means the system costs \
             more.\n\n\
             | system | reference | metric | reference's | system's | ratio | per call |\n\
             |---|---|---|---:|---:|---:|---:|\n",
        );
        let metrics = [
            (AP50, false),
            (AP99, false),
            (BRps, true),
            (BCpu, false),
            (CRps, true),
            (ERps, true),
            (ECpu, false),
            (EP50, false),
            (EP99, false),
            (FCps, true),
        ];
        for &&(k, base_kind) in &pairs {
            for (m, higher) in metrics {
                let (Some(base), Some(v)) = (self.median(base_kind, m), self.median(k, m)) else {
                    continue;
                };
                let (ratio, extra_us) = if higher {
                    (v / base, 1e6 / v - 1e6 / base)
                } else {
                    (base / v, v - base)
                };
                let sign = if extra_us < 0.0 { "−" } else { "+" };
                let name = COLUMNS.iter().find(|c| c.0 == m).map_or("", |c| c.1);
                let _ = writeln!(
                    s,
                    "| {} | {} | {name} | {} | {} | {ratio:.2}× | {sign}{} µs |",
                    k.name(),
                    base_kind.name(),
                    fmt_num(base),
                    fmt_num(v),
                    fmt_num(extra_us.abs()),
                );
            }
        }
        s.push('\n');
        s
    }

    /// The median of `k` for `m` if `k` was part of the run.
    pub(crate) fn figure(&self, systems: &[Kind], k: Kind, m: Metric) -> Option<f64> {
        systems.contains(&k).then(|| self.median(k, m)).flatten()
    }

    pub(crate) fn best_peer_figure(
        &self,
        systems: &[Kind],
        m: Metric,
        higher: bool,
    ) -> Option<f64> {
        self.best_peer(systems, m, higher).map(|p| p.1)
    }
}

/// Three significant digits, thousands separated.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let rounded = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let (int, frac) = rounded.split_once('.').unwrap_or((&rounded, ""));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}
