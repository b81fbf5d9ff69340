//! `BENCH_MODE=children`: the scale run. The relay in its default mode (a child per session)
//! with many sessions open at once, each opened with `initialize` and one verified
//! `tools/call`, then held: the time to open them all, the relay's RSS and descriptors, the
//! tree's RSS and processes; every session called once more while all are open; then all
//! closed and the time until every child is gone. Its report goes to
//! `results/soak/children.md` (written by `soak.rs`, which also starts the relay).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::config::Config;
use crate::http::{Conn, Endpoint, Session};
use crate::soak::{env_num, fd_count, nofile_limit, start_relay};
use crate::{msg, procs};

/// A reading of the relay's tree.
struct Reading {
    own_kib: u64,
    tree_kib: u64,
    children: usize,
    fds: usize,
}

fn read(pid: u32) -> Reading {
    let (tree_kib, own_kib, procs) = procs::tree_rss_kib(pid);
    Reading {
        own_kib,
        tree_kib,
        children: procs.saturating_sub(1),
        fds: fd_count(pid),
    }
}

/// Opens `n` sessions over `lanes` connections, one verified call each; returns the sessions
/// and every open's duration (initialize + initialized + call) in ms, sorted.
async fn open_all(
    ep: &Endpoint,
    n: usize,
    lanes: usize,
    protocol: &str,
) -> Result<(Vec<Session>, Vec<f64>)> {
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (ep, protocol) = (ep.clone(), protocol.to_owned());
        let count = (n + lanes - 1 - lane) / lanes;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ep).await?;
            let mut out = Vec::with_capacity(count);
            for k in 0..count {
                let t = Instant::now();
                let s = conn
                    .initialize(&protocol)
                    .await
                    .with_context(|| format!("session {}", lane + k * lanes))?;
                let id = (lane + k * lanes) as u64 + 1;
                conn.echo(&s, id, &msg::text_for(id, 16, "xxxxxxxxxxxxxxxx"))
                    .await?;
                out.push((s, t.elapsed().as_secs_f64() * 1000.0));
            }
            anyhow::Ok(out)
        }));
    }
    let (mut sessions, mut ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for t in tasks {
        for (s, d) in t.await.context("open task")?? {
            sessions.push(s);
            ms.push(d);
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok((sessions, ms))
}

/// One more verified call on every session, over `lanes` connections.
async fn call_all(ep: &Endpoint, sessions: &[Session], lanes: usize) -> Result<()> {
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let ep = ep.clone();
        let mine: Vec<(usize, Session)> = sessions
            .iter()
            .cloned()
            .enumerate()
            .skip(lane)
            .step_by(lanes)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ep).await?;
            for (i, s) in mine {
                let id = 1_000_000 + i as u64;
                conn.echo(&s, id, &msg::text_for(id, 16, "xxxxxxxxxxxxxxxx"))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("call task")??;
    }
    Ok(())
}

async fn close_all(ep: &Endpoint, sessions: &[Session]) -> Result<()> {
    let mut conn = Conn::open(ep).await?;
    for s in sessions {
        conn.delete(s).await?;
    }
    Ok(())
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Long because it is the scale run's script: start, open, read, call, close, report.
pub(crate) async fn run(cfg: &Config) -> Result<String> {
    let n = env_num("BENCH_CHILDREN", 1000usize)?.max(1);
    let lanes = env_num("BENCH_CHILDREN_LANES", 16usize)?.max(1);
    let (proc, ep) = start_relay(cfg, &[], "children").await?;
    let pid = proc.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = read(pid);
    let limit = nofile_limit(pid);
    eprintln!("bench: children: opening {n} sessions (a child each) over {lanes} connections");
    let t = Instant::now();
    let (sessions, ms) = open_all(&ep, n, lanes, &cfg.protocol).await?;
    let open_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = read(pid);
    let t = Instant::now();
    call_all(&ep, &sessions, lanes).await?;
    let again_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    close_all(&ep, &sessions).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read(pid).children > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let close_s = t.elapsed().as_secs_f64();
    let after = read(pid);
    drop(proc);
    let per = |a: u64, b: u64| (a as f64 - b as f64) / n as f64;
    let mut s = String::from("## Scale: a child per session\n\n");
    let _ = writeln!(
        s,
        "{n} sessions of the relay's default mode (a child each: `{}`), opened over {lanes} \
         connections, each with one verified `tools/call`, then held. Protocol {}; the relay's \
         open-files limit: {limit}.\n",
        cfg.paths.fixture.display(),
        cfg.protocol
    );
    let _ = writeln!(s, "| figure | value |\n|---|--:|");
    let _ = writeln!(
        s,
        "| time to open all {n} (initialize + call each) | {open_s:.2} s |"
    );
    let _ = writeln!(
        s,
        "| open per session p50 / p99 | {:.1} / {:.1} ms |",
        pct(&ms, 0.5),
        pct(&ms, 0.99)
    );
    let _ = writeln!(s, "| children alive while held | {} |", held.children);
    let _ = writeln!(
        s,
        "| relay RSS idle → held | {:.1} → {:.1} MiB ({:.1} KiB per session) |",
        before.own_kib as f64 / 1024.0,
        held.own_kib as f64 / 1024.0,
        per(held.own_kib, before.own_kib)
    );
    let _ = writeln!(
        s,
        "| relay descriptors idle → held | {} → {} ({:.2} per session) |",
        before.fds,
        held.fds,
        (held.fds as f64 - before.fds as f64) / n as f64
    );
    let _ = writeln!(
        s,
        "| tree RSS held (relay + children) | {:.1} MiB ({:.0} KiB per child) |",
        held.tree_kib as f64 / 1024.0,
        per(held.tree_kib, held.own_kib)
    );
    let _ = writeln!(
        s,
        "| one more call on each of the {n}, while all open | {again_s:.2} s |"
    );
    let _ = writeln!(
        s,
        "| DELETE all, until every child is gone | {close_s:.2} s |"
    );
    let _ = writeln!(
        s,
        "| after: children / descriptors | {} / {} |",
        after.children, after.fds
    );
    Ok(s)
}
