//! Harness configuration, all from the environment so a quick run is one line:
//! `BENCH_SECS` (measured seconds per workload, 5), `BENCH_WARMUP_MS` (500), `BENCH_REPS` (3),
//! `BENCH_SYSTEMS` (comma list of names or `relay`/`servers`/`eras`/`auth`/`fleet`/`console`/
//! `churn`/`floors`/`peers`; all by default),
//! `BENCH_WORKLOADS` (letters from `abcdef`; all), `BENCH_IDLE_SESSIONS` (100),
//! `BENCH_SHARED_SESSIONS` (1000), `BENCH_PROTOCOL` (2025-06-18), `BENCH_RELAY` (the relay
//! binary, `target/dist/mcp-relay`; to compare a patched build), `BENCH_FIXTURE` (the child,
//! `target/dist/mcp-relay-fixture`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::systems::{self, Kind, Paths};

/// The whole configuration of one run.
pub(crate) struct Config {
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) reps: usize,
    pub(crate) systems: Vec<Kind>,
    pub(crate) workloads: String,
    pub(crate) idle_sessions: usize,
    pub(crate) shared_sessions: usize,
    pub(crate) protocol: String,
    pub(crate) paths: Paths,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name}={v:?} is not valid")),
        Err(_) => Ok(default),
    }
}

impl Config {
    pub(crate) fn from_env() -> Result<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let fixture = std::env::var_os("BENCH_FIXTURE")
            .map_or_else(|| root.join("target/dist/mcp-relay-fixture"), PathBuf::from);
        let relay = std::env::var_os("BENCH_RELAY")
            .map_or_else(|| root.join("target/dist/mcp-relay"), PathBuf::from);
        if !fixture.exists() || !relay.exists() {
            bail!("build the binaries first: cargo build --profile dist --bins");
        }
        let mut systems = Vec::new();
        match std::env::var("BENCH_SYSTEMS") {
            Ok(list) if !list.trim().is_empty() => {
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    for k in Kind::parse(name)? {
                        if !systems.contains(&k) {
                            systems.push(k);
                        }
                    }
                }
            }
            _ => systems.extend(systems::ALL),
        }
        let workloads: String = var("BENCH_WORKLOADS", "abcdef".to_owned())?;
        if let Some(c) = workloads.chars().find(|c| !"abcdef,".contains(*c)) {
            bail!("BENCH_WORKLOADS: unknown workload {c:?} (use letters a-f)");
        }
        Ok(Self {
            window: Duration::from_secs_f64(var("BENCH_SECS", 5.0f64)?.max(0.1)),
            warmup: Duration::from_millis(var("BENCH_WARMUP_MS", 500u64)?),
            reps: var("BENCH_REPS", 3usize)?.max(1),
            systems,
            workloads,
            idle_sessions: var("BENCH_IDLE_SESSIONS", 100usize)?.max(1),
            shared_sessions: var("BENCH_SHARED_SESSIONS", 1000usize)?.max(1),
            protocol: var("BENCH_PROTOCOL", "2025-06-18".to_owned())?,
            paths: Paths {
                root,
                fixture,
                relay,
            },
        })
    }

    pub(crate) fn wants(&self, workload: char) -> bool {
        self.workloads.contains(workload)
    }
}
