//! One full run: for each repetition, every system in turn (the order rotates each
//! repetition), each started fresh and taken through the selected workloads; then the report.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::config::Config;
use crate::http::Endpoint;
use crate::load::{self, Load, Target};
use crate::report::{Metric, Results};
use crate::systems::{self, Kind, Mode};

const SMALL_TEXT: usize = 24;
const BIG_TEXT: usize = 64 * 1024;

/// Runs every repetition and returns the markdown report.
pub(crate) async fn all(cfg: &Config) -> Result<String> {
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let mut res = Results::default();
    let n = cfg.systems.len();
    for rep in 0..cfg.reps {
        for i in 0..n {
            let kind = cfg.systems[(i + rep) % n];
            eprintln!("bench: rep {}/{} {}", rep + 1, cfg.reps, kind.name());
            if let Err(e) = system(cfg, kind, rep, &mut res).await {
                res.fail(kind, "start", rep, &e);
            }
            if kind.has_shared_mode() && "abde".chars().any(|w| cfg.wants(w)) {
                eprintln!(
                    "bench: rep {}/{} {} --session-mode shared",
                    rep + 1,
                    cfg.reps,
                    kind.name()
                );
                if let Err(e) = relay_shared(cfg, kind, rep, &mut res).await {
                    res.fail(kind, "start (shared mode)", rep, &e);
                }
            }
        }
    }
    let mut h = String::from("## mcp-relay benchmark results\n\n");
    let _ = writeln!(
        h,
        "{} CPUs, load average before the run: {}; {} repetition(s) × {:.1} s per workload \
         (+{} ms warm-up), medians; total {:.0} s; protocol {}; N = {} idle sessions.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        cfg.reps,
        cfg.window.as_secs_f64(),
        cfg.warmup.as_millis(),
        started.elapsed().as_secs_f64(),
        cfg.protocol,
        cfg.idle_sessions,
    );
    h.push_str("Versions:\n\n");
    for k in &cfg.systems {
        let _ = writeln!(h, "- {}: {}", k.name(), systems::version(*k, &cfg.paths));
    }
    Ok(res.render(&cfg.systems, &h))
}

/// Starts `kind` fresh and runs the selected workloads on it.
async fn system(cfg: &Config, kind: Kind, rep: usize, res: &mut Results) -> Result<()> {
    let logs = cfg.paths.root.join("target/bench-logs");
    let running = systems::start(kind, Mode::Default, &cfg.paths, &logs).await?;
    let target = match &running {
        Some(r) => Target::Http(&r.ep),
        None => Target::Stdio(&cfg.paths.fixture),
    };
    let pid = running.as_ref().map(|r| r.proc.pid());
    // A system whose only mode shares one child (or has none) is already in shared mode:
    // its (a), (b) and (d) figures also go in the shared-mode columns.
    let shared_only = kind.shared_child() || kind == Kind::FloorHttp;
    if kind.is_modern() {
        sessionless(cfg, kind, res);
    } else if cfg.wants('d') {
        match &running {
            None => res.note(kind, Metric::DTree0, "n/a (no server)"),
            Some(r) => {
                let (what, pid) = ("(d) idle memory", r.proc.pid());
                if let Some(own) = idle_memory(cfg, kind, what, &r.ep, pid, rep, res).await {
                    res.add(kind, Metric::DTree0, own.tree0_mib);
                    res.add(kind, Metric::DTreeN, own.tree_n_mib);
                    res.add(kind, Metric::DTreePerSession, own.tree_per_session);
                    res.add(kind, Metric::DSelfPerSession, own.self_per_session);
                    if shared_only {
                        res.add(kind, Metric::DSharedSelfPerSession, own.self_per_session);
                    }
                }
                if matches!(kind, Kind::Supergateway | Kind::Agentgateway) {
                    res.note(
                        kind,
                        Metric::DSharedSelfPerSession,
                        "n/a (per-session child only)",
                    );
                }
            }
        }
    }
    if kind == Kind::Supergateway {
        let na = "n/a (per-session child only)";
        res.note(kind, Metric::AP50Shared, na);
        res.note(kind, Metric::BRpsShared, na);
    }
    let cols = if shared_only {
        Columns::Both
    } else {
        Columns::PerSession
    };
    latency_throughput(cfg, (kind, target, pid), rep, res, cols).await;
    if cfg.wants('c') {
        let big = Load {
            text_len: BIG_TEXT,
            ..small_load(cfg, 8, 8, pid)
        };
        match load::run(target, &big).await {
            Ok(r) => res.add(kind, Metric::CRps, r.rps),
            Err(e) => res.fail(kind, "(c) 64 KiB", rep, &e),
        }
    }
    // The relay's (e) runs on a second relay process in shared mode: `relay_shared`.
    if cfg.wants('e') && !kind.is_relay() {
        shared(cfg, kind, target, pid, rep, res).await;
    }
    if cfg.wants('f') && !kind.is_modern() {
        match load::churn(target, cfg.window, &cfg.protocol).await {
            Ok((cps, p50_ms)) => {
                res.add(kind, Metric::FCps, cps);
                res.add(kind, Metric::FP50, p50_ms);
            }
            Err(e) => res.fail(kind, "(f) churn", rep, &e),
        }
    }
    drop(running);
    Ok(())
}

/// The notes of a 2026-07-28 client's system for the workloads made of sessions: (d) idle
/// sessions, (e) sessions on a shared child, (f) session churn.
fn sessionless(cfg: &Config, kind: Kind, res: &mut Results) {
    let na = "n/a (2026-07-28: no sessions)";
    if cfg.wants('d') {
        res.note(kind, Metric::DTreePerSession, na);
    }
    if cfg.wants('e') {
        res.note(kind, Metric::ERps, na);
    }
    if cfg.wants('f') {
        res.note(kind, Metric::FCps, na);
    }
}

/// (e): many sessions on one shared child, where the system has such a mode (the relay's
/// shared-mode process is started by `relay_shared` and comes here with an HTTP target);
/// `pid` is the system's process, whose CPU time per call is measured.
async fn shared(
    cfg: &Config,
    kind: Kind,
    target: Target<'_>,
    pid: Option<u32>,
    rep: usize,
    res: &mut Results,
) {
    if matches!(kind, Kind::Supergateway | Kind::Agentgateway) {
        res.note(kind, Metric::ERps, "n/a (per-session child only)");
        res.note(kind, Metric::EP50, "n/a");
        res.note(kind, Metric::EP99, "n/a");
        return;
    }
    // The direct floor's "shared child" is one child with every request in flight on it.
    let sessions = if kind.shared_child() && matches!(target, Target::Stdio(_)) {
        1
    } else {
        cfg.shared_sessions
    };
    match load::run(target, &small_load(cfg, sessions, 64, pid)).await {
        Ok(r) => {
            res.add(kind, Metric::ERps, r.rps);
            if let Some(cpu) = r.cpu_us {
                res.add(kind, Metric::ECpu, cpu);
            }
            res.add(kind, Metric::EP50, r.p50_us);
            res.add(kind, Metric::EP99, r.p99_us);
        }
        Err(e) => res.fail(kind, "(e) shared", rep, &e),
    }
}

/// The relay again, started fresh with `--session-mode shared --children 1`: (a) and (b) on
/// its one child, (d) its own RSS per idle session (the child excluded), then (e) 1,000
/// sessions on its one child at C=64.
async fn relay_shared(cfg: &Config, kind: Kind, rep: usize, res: &mut Results) -> Result<()> {
    let logs = cfg.paths.root.join("target/bench-logs");
    let running = systems::start(kind, Mode::Shared, &cfg.paths, &logs)
        .await?
        .context("the relay has an HTTP endpoint")?;
    let (target, pid) = (Target::Http(&running.ep), Some(running.proc.pid()));
    latency_throughput(cfg, (kind, target, pid), rep, res, Columns::Shared).await;
    if cfg.wants('d') {
        let (ep, pid) = (&running.ep, running.proc.pid());
        let what = "(d) idle memory, shared mode";
        if let Some(own) = idle_memory(cfg, kind, what, ep, pid, rep, res).await {
            res.add(kind, Metric::DSharedSelfPerSession, own.self_per_session);
        }
    }
    if cfg.wants('e') {
        let pid = Some(running.proc.pid());
        shared(cfg, kind, Target::Http(&running.ep), pid, rep, res).await;
    }
    drop(running);
    Ok(())
}

/// A load of small calls (24-character texts).
fn small_load(cfg: &Config, sessions: usize, concurrency: usize, pid: Option<u32>) -> Load {
    Load {
        sessions,
        concurrency,
        text_len: SMALL_TEXT,
        warmup: cfg.warmup,
        window: cfg.window,
        protocol: cfg.protocol.clone(),
        cpu_pid: pid,
    }
}

/// Which columns (a) and (b) go to: the per-session ones, the shared-mode ones (the relay's
/// shared-mode process), or both (a system whose only mode shares one child, or has none).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Columns {
    PerSession,
    Shared,
    Both,
}

/// (a) sequential latency and (b) throughput at C=32 on 8 sessions, into `cols`.
async fn latency_throughput(
    cfg: &Config,
    (kind, target, pid): (Kind, Target<'_>, Option<u32>),
    rep: usize,
    res: &mut Results,
    cols: Columns,
) {
    let (own, shared) = (cols != Columns::Shared, cols != Columns::PerSession);
    let label = if own { "" } else { ", shared mode" };
    if cfg.wants('a') {
        match load::run(target, &small_load(cfg, 1, 1, pid)).await {
            Ok(r) if own => {
                res.add(kind, Metric::AP50, r.p50_us);
                res.add(kind, Metric::AP99, r.p99_us);
                if shared {
                    res.add(kind, Metric::AP50Shared, r.p50_us);
                }
            }
            Ok(r) => res.add(kind, Metric::AP50Shared, r.p50_us),
            Err(e) => res.fail(kind, &format!("(a) latency{label}"), rep, &e),
        }
    }
    if cfg.wants('b') {
        match load::run(target, &small_load(cfg, 8, 32, pid)).await {
            Ok(r) if own => {
                res.add(kind, Metric::BRps, r.rps);
                if let Some(cpu) = r.cpu_us {
                    res.add(kind, Metric::BCpu, cpu);
                }
                if shared {
                    res.add(kind, Metric::BRpsShared, r.rps);
                }
            }
            Ok(r) => res.add(kind, Metric::BRpsShared, r.rps),
            Err(e) => res.fail(kind, &format!("(b) throughput{label}"), rep, &e),
        }
    }
}

/// Workload (d) figures of one process tree.
struct Idle {
    tree0_mib: f64,
    tree_n_mib: f64,
    tree_per_session: f64,
    self_per_session: f64,
}

/// (d): RSS at 0 and at N idle sessions; a failure is recorded and gives `None`.
async fn idle_memory(
    cfg: &Config,
    kind: Kind,
    what: &str,
    ep: &Endpoint,
    pid: u32,
    rep: usize,
    res: &mut Results,
) -> Option<Idle> {
    let n = cfg.idle_sessions;
    match load::idle_memory(ep, pid, n, &cfg.protocol).await {
        Ok(m) => {
            let per = |a: u64, b: u64| (a as f64 - b as f64) / n as f64;
            Some(Idle {
                tree0_mib: m.tree0_kib as f64 / 1024.0,
                tree_n_mib: m.tree_n_kib as f64 / 1024.0,
                tree_per_session: per(m.tree_n_kib, m.tree0_kib),
                self_per_session: per(m.self_n_kib, m.self0_kib),
            })
        }
        Err(e) => {
            res.fail(kind, what, rep, &e);
            None
        }
    }
}
