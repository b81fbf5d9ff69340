//! The workloads' engine: open sessions on a target (HTTP system or direct stdio), run C
//! closed-loop workers for a warm-up plus a measured window, verify every answer, close the
//! sessions. Also session churn and idle memory. A 2026-07-28 client (`Endpoint::modern`) has
//! no sessions: its "sessions" only spread the workers, and nothing is opened or closed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hyper::header::HeaderValue;

use crate::http::{Conn, Endpoint, Session};
use crate::stdio::StdioChild;
use crate::{msg, procs};

/// What the load talks to.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Http(&'a Endpoint),
    Stdio(&'a Path),
}

/// One session: an HTTP session id, a direct fixture child, or none (a 2026-07-28 client,
/// with the `Mcp-Name` of its calls).
#[derive(Clone)]
enum Sess {
    Http(Session),
    Stdio(Arc<StdioChild>),
    Modern(HeaderValue),
}

/// A closed-loop load: `sessions` sessions, `concurrency` requests in flight in total.
pub(crate) struct Load {
    pub(crate) sessions: usize,
    pub(crate) concurrency: usize,
    pub(crate) text_len: usize,
    pub(crate) warmup: Duration,
    pub(crate) window: Duration,
    pub(crate) protocol: String,
    /// The system's process, whose CPU time per call is measured (None: not measured).
    pub(crate) cpu_pid: Option<u32>,
}

/// Results of a load window.
pub(crate) struct LoadResult {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// CPU µs per call of `Load::cpu_pid` over the measured window (its children excluded).
    pub(crate) cpu_us: Option<f64>,
}

/// Opens `n` sessions using up to 8 connections in parallel.
async fn open(t: Target<'_>, n: usize, protocol: &str) -> Result<Vec<Sess>> {
    if let Target::Http(ep) = t {
        if ep.modern {
            let name = HeaderValue::from_str(ep.call.tool())?;
            return Ok(vec![Sess::Modern(name); n]);
        }
    }
    let lanes = n.clamp(1, 8);
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let count = n / lanes + usize::from(lane < n % lanes);
        let protocol = protocol.to_owned();
        let ep = match t {
            Target::Http(ep) => Some(ep.clone()),
            Target::Stdio(_) => None,
        };
        let fixture = match t {
            Target::Stdio(f) => Some(f.to_owned()),
            Target::Http(_) => None,
        };
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(count);
            if let Some(ep) = ep {
                let mut conn = Conn::open(&ep).await?;
                for _ in 0..count {
                    out.push(Sess::Http(conn.initialize(&protocol).await?));
                }
            } else if let Some(f) = fixture {
                for _ in 0..count {
                    out.push(Sess::Stdio(StdioChild::start(&f, &protocol).await?));
                }
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.context("open task")??);
    }
    Ok(all)
}

/// Ends every session (DELETE, or stdin EOF); failures are reported, not fatal.
async fn close(t: Target<'_>, sessions: Vec<Sess>) {
    let mut conn = match t {
        Target::Http(ep) => Conn::open(ep).await.ok(),
        Target::Stdio(_) => None,
    };
    let mut failed = 0usize;
    for s in sessions {
        let r = match (&s, conn.as_mut()) {
            (Sess::Http(s), Some(c)) => c.delete(s).await,
            (Sess::Stdio(c), _) => c.close().await,
            (Sess::Modern(_), _) => Ok(()),
            (Sess::Http(_), None) => Err(anyhow::anyhow!("no connection")),
        };
        failed += usize::from(r.is_err());
    }
    if failed > 0 {
        eprintln!("bench: warning: {failed} session(s) failed to close");
    }
}

async fn call(conn: &mut Option<Conn>, s: &Sess, id: u64, text: &str) -> Result<()> {
    match (s, conn) {
        (Sess::Http(s), Some(c)) => c.echo(s, id, text).await,
        (Sess::Stdio(c), _) => c.echo(id, text).await,
        (Sess::Modern(name), Some(c)) => c.echo_modern(name, id, text).await,
        (Sess::Http(_) | Sess::Modern(_), None) => anyhow::bail!("no connection"),
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// The CPU time a process uses from the start of the measured window until `end`.
struct CpuWindow(Option<(u32, tokio::task::JoinHandle<Option<u64>>)>);

impl CpuWindow {
    /// Reads `pid`'s CPU time at `from` (a task on the harness's runtime; None: nothing).
    fn start(pid: Option<u32>, from: Instant) -> Self {
        Self(pid.map(|pid| {
            let at_start = tokio::spawn(async move {
                tokio::time::sleep_until(from.into()).await;
                procs::cpu_ticks(pid)
            });
            (pid, at_start)
        }))
    }

    /// Clock ticks used since `from`.
    async fn end(self) -> Option<u64> {
        let (pid, at_start) = self.0?;
        let start = at_start.await.ok().flatten()?;
        Some(procs::cpu_ticks(pid)?.saturating_sub(start))
    }
}

/// Runs `load` against `t`: every answer verified, any failure fails the run.
pub(crate) async fn run(t: Target<'_>, load: &Load) -> Result<LoadResult> {
    let sessions = open(t, load.sessions, &load.protocol).await?;
    let filler: Arc<str> = "x".repeat(load.text_len).into();
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.window;
    let cpu = CpuWindow::start(load.cpu_pid, measure_from);
    let mut workers = Vec::new();
    for w in 0..load.concurrency {
        let mine: Vec<Sess> = if sessions.len() >= load.concurrency {
            sessions
                .iter()
                .skip(w)
                .step_by(load.concurrency)
                .cloned()
                .collect()
        } else {
            vec![sessions[w % sessions.len()].clone()]
        };
        let mut conn = match t {
            Target::Http(ep) => Some(Conn::open(ep).await?),
            Target::Stdio(_) => None,
        };
        let (filler, len) = (filler.clone(), load.text_len);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut last = measure_from;
            let base = (w as u64 + 1) << 32;
            let mut k = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let id = base + k;
                let text = msg::text_for(id, len, &filler);
                call(&mut conn, &mine[k as usize % mine.len()], id, &text).await?;
                k += 1;
                let t1 = Instant::now();
                if t0 >= measure_from {
                    lat.push((t1 - t0).as_nanos() as u64);
                    last = t1;
                }
            }
            anyhow::Ok((lat, last))
        }));
    }
    let mut lat = Vec::new();
    let mut last = measure_from;
    let mut first_err = None;
    for w in workers {
        match w.await.context("worker")? {
            Ok((l, t)) => {
                lat.extend(l);
                last = last.max(t);
            }
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    let cpu_ticks = cpu.end().await;
    close(t, sessions).await;
    if let Some(e) = first_err {
        return Err(e);
    }
    lat.sort_unstable();
    let secs = (last - measure_from).as_secs_f64().max(1e-9);
    Ok(LoadResult {
        rps: lat.len() as f64 / secs,
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        cpu_us: cpu_ticks.map(|t| t as f64 * procs::TICK_US / lat.len().max(1) as f64),
    })
}

/// Session churn, one at a time: create, one call, end; (cycles per second, p50 cycle ms).
pub(crate) async fn churn(t: Target<'_>, window: Duration, protocol: &str) -> Result<(f64, f64)> {
    let mut conn = match t {
        Target::Http(ep) => Some(Conn::open(ep).await?),
        Target::Stdio(_) => None,
    };
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut id = 1u64;
    while start.elapsed() < window {
        let t0 = Instant::now();
        let text = msg::text_for(id, 16, "xxxxxxxxxxxxxxxx");
        match (t, conn.as_mut()) {
            (Target::Http(_), Some(c)) => {
                let s = c.initialize(protocol).await?;
                c.echo(&s, id, &text).await?;
                c.delete(&s).await?;
            }
            (Target::Stdio(f), _) => {
                let c = StdioChild::start(f, protocol).await?;
                c.echo(id, &text).await?;
                c.close().await?;
            }
            (Target::Http(_), None) => anyhow::bail!("no connection"),
        }
        id += 1;
        lat.push((t0.elapsed()).as_nanos() as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok((lat.len() as f64 / secs, percentile(&lat, 0.5) / 1000.0))
}

/// Idle memory of the tree rooted at `pid`.
pub(crate) struct Memory {
    pub(crate) tree0_kib: u64,
    pub(crate) tree_n_kib: u64,
    pub(crate) self0_kib: u64,
    pub(crate) self_n_kib: u64,
}

/// Memory at 0 sessions, then with `n` sessions open (one verified call each, then idle).
pub(crate) async fn idle_memory(
    ep: &Endpoint,
    pid: u32,
    n: usize,
    protocol: &str,
) -> Result<Memory> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tree0_kib, self0_kib, _) = procs::tree_rss_kib(pid);
    let sessions = open(Target::Http(ep), n, protocol).await?;
    let mut conn = Some(Conn::open(ep).await?);
    for (i, s) in sessions.iter().enumerate() {
        let id = i as u64 + 1;
        call(&mut conn, s, id, &msg::text_for(id, 16, "xxxxxxxxxxxxxxxx")).await?;
    }
    drop(conn);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (tree_n_kib, self_n_kib, _) = procs::tree_rss_kib(pid);
    close(Target::Http(ep), sessions).await;
    Ok(Memory {
        tree0_kib,
        tree_n_kib,
        self0_kib,
        self_n_kib,
    })
}
