//! `BENCH_MODE=soak`: the relay in shared mode (`--session-mode shared --children 1`) holding
//! many sessions for a long time, each called once per period (spread evenly over it), every
//! answer verified, its memory sampled as it goes. Writes `results/soak/soak.csv` (one row per
//! sample) and `results/soak/soak.md` (the figures and the verdict); `scripts/plot_soak.py`
//! draws the CSV. Also the pieces the scale mode (`children.rs`) shares: `BENCH_MODE` itself,
//! starting a relay with given flags, and reading a process's descriptors and limits.
//! It does not touch the benchmark's systems or report (`systems.rs`, `report.rs`).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::config::Config;
use crate::guard::Proc;
use crate::http::{Conn, Endpoint, Session};
use crate::msg::{self, ToolCall};
use crate::procs;

/// The harness's modes besides the benchmark: `BENCH_MODE=soak` or `BENCH_MODE=children`.
pub(crate) enum Mode {
    Soak,
    Children,
}

impl Mode {
    /// `None` for the benchmark itself (`BENCH_MODE` unset, empty or `bench`).
    pub(crate) fn from_env() -> Result<Option<Self>> {
        match std::env::var("BENCH_MODE").unwrap_or_default().trim() {
            "" | "bench" => Ok(None),
            "soak" => Ok(Some(Mode::Soak)),
            "children" => Ok(Some(Mode::Children)),
            other => bail!("BENCH_MODE={other:?}: use soak, children or bench"),
        }
    }

    /// Runs the mode; its report is printed and written under `results/soak/`.
    pub(crate) async fn run(self, cfg: &Config) -> Result<()> {
        let out = cfg.paths.root.join("results/soak");
        std::fs::create_dir_all(&out)?;
        let (name, report) = match self {
            Mode::Soak => ("soak.md", soak(cfg, &out).await?),
            Mode::Children => ("children.md", crate::children::run(cfg).await?),
        };
        println!("\n{report}");
        std::fs::write(out.join(name), report)?;
        eprintln!("bench: written to {}", out.join(name).display());
        Ok(())
    }
}

/// A numeric setting from the environment, or its default.
pub(crate) fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name}={v:?} is not valid")),
        _ => Ok(default),
    }
}

/// `mcp-relay serve --listen 127.0.0.1:PORT ARGS -- FIXTURE`, stderr to
/// `target/bench-logs/LOG.log`, once it accepts connections (30 s at most).
pub(crate) async fn start_relay(
    cfg: &Config,
    args: &[String],
    log: &str,
) -> Result<(Proc, Endpoint)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let logs = cfg.paths.root.join("target/bench-logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{log}.log"));
    let file = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(&cfg.paths.relay);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .arg("--")
        .arg(&cfg.paths.fixture);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    let mut proc = Proc::new(cmd.spawn().context("spawn the relay")?);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = proc.exited() {
            bail!(
                "the relay exited during startup ({status}); see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!("the relay did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ep = Endpoint {
        addr,
        path: "/mcp".to_owned(),
        call: ToolCall::new("echo"),
        modern: false,
        bearer: None,
        home: None,
    };
    Ok((proc, ep))
}

/// Open file descriptors of `pid` (entries of /proc/PID/fd).
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `pid`'s (soft, hard) limit on open files, as /proc/PID/limits says it.
pub(crate) fn nofile_limit(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} soft / {} hard",
                f.get(3).unwrap_or(&"?"),
                f.get(4).unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The soak's settings (env: `BENCH_SOAK_*`).
struct Plan {
    sessions: usize,
    hold: Duration,
    period: Duration,
    sample: Duration,
    lanes: usize,
    /// Calls per session made back to back before the hold: see `prefill`.
    prefill: usize,
}

impl Plan {
    fn from_env() -> Result<Self> {
        Ok(Self {
            sessions: env_num("BENCH_SOAK_SESSIONS", 10_000usize)?.max(1),
            hold: Duration::from_secs_f64(env_num("BENCH_SOAK_SECS", 600.0f64)?.max(1.0)),
            period: Duration::from_secs_f64(env_num("BENCH_SOAK_PERIOD_SECS", 60.0f64)?.max(0.1)),
            sample: Duration::from_secs_f64(env_num("BENCH_SOAK_SAMPLE_SECS", 5.0f64)?.max(0.1)),
            lanes: env_num("BENCH_SOAK_LANES", 32usize)?.max(1),
            prefill: env_num("BENCH_SOAK_PREFILL_CALLS", 32usize)?,
        })
    }

    /// The relay's flags: shared mode on one child, and a session cap above the soak's count
    /// (the default `--max-sessions` is 10,000: exactly the soak's, with no room to spare);
    /// then `BENCH_SOAK_RELAY_ARGS` (split at whitespace), e.g. `--response-mode json`.
    fn relay_args(&self) -> Vec<String> {
        let cap = self.sessions + self.sessions / 10 + 16;
        let extra = std::env::var("BENCH_SOAK_RELAY_ARGS").unwrap_or_default();
        [
            "--session-mode",
            "shared",
            "--children",
            "1",
            "--max-sessions",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([cap.to_string()])
        .chain(extra.split_whitespace().map(str::to_owned))
        .collect()
    }
}

/// One memory sample.
#[derive(Clone)]
struct Row {
    t: f64,
    phase: &'static str,
    own_kib: u64,
    tree_kib: u64,
    procs: usize,
    fds: usize,
    calls: u64,
    errors: u64,
}

/// What the load and the sampler share.
#[derive(Default)]
struct Shared {
    calls: AtomicU64,
    errors: AtomicU64,
    /// Largest delay of a call behind its due time, in ms.
    late_ms: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    phase: Mutex<&'static str>,
    rows: Mutex<Vec<Row>>,
}

impl Shared {
    fn set_phase(&self, p: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    fn error(&self, e: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 5 {
            first.push(format!("{e:#}"));
        }
    }
}

/// Samples the relay's tree every `every` until aborted.
fn sampler(
    pid: u32,
    start: Instant,
    every: Duration,
    sh: Arc<Shared>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let (tree_kib, own_kib, procs) = procs::tree_rss_kib(pid);
            let row = Row {
                t: start.elapsed().as_secs_f64(),
                phase: *sh.phase.lock().unwrap_or_else(|e| e.into_inner()),
                own_kib,
                tree_kib,
                procs,
                fds: fd_count(pid),
                calls: sh.calls.load(Ordering::Relaxed),
                errors: sh.errors.load(Ordering::Relaxed),
            };
            sh.rows.lock().unwrap_or_else(|e| e.into_inner()).push(row);
        }
    })
}

/// Opens `n` sessions over `lanes` connections; session `i` is in lane `i % lanes`.
async fn open_all(
    ep: &Endpoint,
    n: usize,
    lanes: usize,
    protocol: &str,
) -> Result<Vec<Vec<Session>>> {
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (ep, protocol) = (ep.clone(), protocol.to_owned());
        let count = (n + lanes - 1 - lane) / lanes;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ep).await?;
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                out.push(conn.initialize(&protocol).await?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(lanes);
    for t in tasks {
        all.push(t.await.context("open task")??);
    }
    Ok(all)
}

/// Part of the warm-up: `rounds` verified calls on every session, back to back (one closed
/// loop per lane). A session of the relay keeps up to 32 finished POST streams for
/// `Last-Event-ID` replay (`KEPT_STREAMS` in `src/session.rs`; about 0.5 KiB each for an
/// echo answer), so its memory grows with its first 32 calls and is flat after: at one call
/// a minute that is 32 minutes, longer than the soak. The prefill brings every session to
/// that steady state first, as if it had lived that long.
async fn prefill(
    ep: &Endpoint,
    lanes: &[Vec<Session>],
    rounds: usize,
    sh: &Arc<Shared>,
) -> Result<()> {
    let mut tasks = Vec::new();
    for (lane, sessions) in lanes.iter().enumerate() {
        let (ep, sessions, sh, width) = (ep.clone(), sessions.clone(), sh.clone(), lanes.len());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ep).await?;
            for round in 0..rounds as u64 {
                for (k, s) in sessions.iter().enumerate() {
                    let id = (1 << 40) + round * (1 << 20) + (lane + k * width) as u64;
                    let text = msg::text_for(id, 24, "xxxxxxxxxxxxxxxxxxxxxxxx");
                    match conn.echo(s, id, &text).await {
                        Ok(()) => sh.calls.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            sh.error(&e);
                            0
                        }
                    };
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("prefill task")??;
    }
    Ok(())
}

/// One lane's calls: its session `k` (global index `lane + k * lanes`) is called at
/// `t0 + period * (round + index / n)` until `t0 + hold`.
async fn lane_calls(
    ep: Endpoint,
    sessions: Vec<Session>,
    lane: usize,
    plan: (usize, usize, Duration, Duration),
    t0: Instant,
    sh: Arc<Shared>,
) -> Result<()> {
    let (n, lanes, period, hold) = plan;
    if sessions.is_empty() {
        return Ok(());
    }
    let mut conn = Conn::open(&ep).await?;
    for round in 0u64.. {
        for (k, s) in sessions.iter().enumerate() {
            let index = lane + k * lanes;
            let offset = period.mul_f64(round as f64 + index as f64 / n as f64);
            if offset >= hold {
                return Ok(());
            }
            let due = t0 + offset;
            tokio::time::sleep_until(due.into()).await;
            let late = Instant::now().saturating_duration_since(due).as_millis() as u64;
            sh.late_ms.fetch_max(late, Ordering::Relaxed);
            let id = round * n as u64 + index as u64 + 1;
            let text = msg::text_for(id, 24, "xxxxxxxxxxxxxxxxxxxxxxxx");
            match conn.echo(s, id, &text).await {
                Ok(()) => {
                    sh.calls.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => sh.error(&e),
            }
        }
    }
    Ok(())
}

/// Closes every session (DELETE), counting failures as errors.
async fn close_all(ep: &Endpoint, lanes: Vec<Vec<Session>>, sh: &Shared) -> Result<()> {
    let mut tasks = Vec::new();
    for sessions in lanes {
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ep).await?;
            let mut failed = Vec::new();
            for s in &sessions {
                if let Err(e) = conn.delete(s).await {
                    failed.push(e);
                }
            }
            anyhow::Ok(failed)
        }));
    }
    for t in tasks {
        for e in t.await.context("close task")?? {
            sh.error(&e);
        }
    }
    Ok(())
}

/// Timings of the soak's phases, seconds from the relay's start.
struct Phases {
    opened: f64,
    prefilled: f64,
    warm: f64,
    held: f64,
}

/// Long because it is the soak's script, phase after phase: start, open, call, close.
async fn soak(cfg: &Config, out: &Path) -> Result<String> {
    let plan = Plan::from_env()?;
    let (proc, ep) = start_relay(cfg, &plan.relay_args(), "soak").await?;
    let pid = proc.pid();
    let start = Instant::now();
    let sh = Arc::new(Shared::default());
    sh.set_phase("open");
    let sampling = sampler(pid, start, plan.sample, sh.clone());
    eprintln!("bench: soak: opening {} sessions", plan.sessions);
    let lanes = open_all(&ep, plan.sessions, plan.lanes, &cfg.protocol).await?;
    let opened = start.elapsed().as_secs_f64();
    sh.set_phase("prefill");
    eprintln!(
        "bench: soak: {} sessions open in {opened:.1} s; {} calls each back to back",
        plan.sessions, plan.prefill
    );
    prefill(&ep, &lanes, plan.prefill, &sh).await?;
    let t0 = Instant::now();
    let prefilled = t0.duration_since(start).as_secs_f64();
    sh.set_phase("warm-up");
    eprintln!("bench: soak: prefilled at {prefilled:.1} s; holding");
    let mut tasks = Vec::new();
    for (lane, sessions) in lanes.iter().enumerate() {
        let p = (plan.sessions, plan.lanes, plan.period, plan.hold);
        let task = lane_calls(ep.clone(), sessions.clone(), lane, p, t0, sh.clone());
        tasks.push(tokio::spawn(task));
    }
    let phase = sh.clone();
    let period = plan.period.min(plan.hold);
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until((t0 + period).into()).await;
        phase.set_phase("soak");
    });
    for t in tasks {
        if let Err(e) = t.await.context("call task")? {
            sh.error(&e);
        }
    }
    marker.abort();
    let held = start.elapsed().as_secs_f64();
    sh.set_phase("close");
    close_all(&ep, lanes, &sh).await?;
    tokio::time::sleep(plan.sample).await;
    sampling.abort();
    drop(proc);
    let rows = sh.rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
    write_csv(&out.join("soak.csv"), &rows)?;
    let phases = Phases {
        opened,
        prefilled,
        warm: prefilled + period.as_secs_f64(),
        held,
    };
    Ok(summary(cfg, &plan, &phases, &rows, &sh))
}

fn write_csv(path: &PathBuf, rows: &[Row]) -> Result<()> {
    let mut s =
        String::from("t_s,phase,relay_rss_kib,tree_rss_kib,processes,relay_fds,calls,errors\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{:.1},{},{},{},{},{},{},{}",
            r.t, r.phase, r.own_kib, r.tree_kib, r.procs, r.fds, r.calls, r.errors
        );
    }
    std::fs::write(path, s)?;
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

/// (min, max, first, last) of `f` over the samples; spread is (max - min) / min.
fn range(rows: &[&Row], f: impl Fn(&Row) -> u64) -> (u64, u64, u64, u64) {
    let v: Vec<u64> = rows.iter().map(|r| f(r)).collect();
    let min = v.iter().copied().min().unwrap_or(0);
    let max = v.iter().copied().max().unwrap_or(0);
    (
        min,
        max,
        v.first().copied().unwrap_or(0),
        v.last().copied().unwrap_or(0),
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Long because it writes the report's lines in order: the markdown summary (settings,
/// phases, memory after warm-up, errors, the verdict).
fn summary(cfg: &Config, plan: &Plan, ph: &Phases, rows: &[Row], sh: &Shared) -> String {
    let after: Vec<&Row> = rows
        .iter()
        .filter(|r| r.t >= ph.warm && r.t <= ph.held)
        .collect();
    let calls = sh.calls.load(Ordering::Relaxed);
    let errors = sh.errors.load(Ordering::Relaxed);
    let mut s = String::from("## Soak\n\n");
    let _ = writeln!(
        s,
        "{} sessions on one shared child (`serve {}`), held {:.0} s after the warm-up's calls back to back, \
         one verified `tools/call` per session every {:.0} s (spread evenly), {} connections; \
         memory sampled every {:.0} s. Relay: {}; protocol {}.\n",
        plan.sessions,
        plan.relay_args().join(" "),
        plan.hold.as_secs_f64(),
        plan.period.as_secs_f64(),
        plan.lanes,
        plan.sample.as_secs_f64(),
        cfg.paths.relay.display(),
        cfg.protocol,
    );
    let _ = writeln!(
        s,
        "- Sessions open after {:.1} s; warm-up = {} calls per session back to back (until \
         {:.1} s: every session's replay buffer at its steady state), then the first call \
         period (until {:.1} s); judged: {} samples from {:.1} s to {:.1} s.",
        ph.opened,
        plan.prefill,
        ph.prefilled,
        ph.warm,
        after.len(),
        ph.warm,
        ph.held
    );
    let _ = writeln!(
        s,
        "- Calls answered and verified: {calls}; errors: {errors} (including DELETEs); latest \
         call behind its schedule: {} ms.",
        sh.late_ms.load(Ordering::Relaxed)
    );
    for e in sh
        .first_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let _ = writeln!(s, "  - error: {e}");
    }
    let mut flat = !after.is_empty();
    s.push_str("\n| after warm-up | min MiB | max MiB | first MiB | last MiB | spread |\n|---|--:|--:|--:|--:|--:|\n");
    for (what, f) in [
        ("relay (own RSS)", (|r: &Row| r.own_kib) as fn(&Row) -> u64),
        ("relay + child (tree RSS)", |r: &Row| r.tree_kib),
    ] {
        let (min, max, first, last) = range(&after, f);
        let spread = if min > 0 {
            (max - min) as f64 / min as f64 * 100.0
        } else {
            f64::NAN
        };
        flat &= spread <= 5.0;
        let _ = writeln!(
            s,
            "| {what} | {:.1} | {:.1} | {:.1} | {:.1} | {spread:.2} % |",
            mib(min),
            mib(max),
            mib(first),
            mib(last)
        );
    }
    let fds = range(&after, |r| r.fds as u64);
    let _ = writeln!(s, "\nRelay descriptors after warm-up: {}–{}.", fds.0, fds.1);
    let verdict = if errors == 0 && flat { "PASS" } else { "FAIL" };
    let _ = writeln!(
        s,
        "\nVerdict: **{verdict}** (no error, and memory after warm-up within 5 % of its minimum)."
    );
    s
}
