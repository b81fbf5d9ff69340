//! The fleet systems (issue 19): what else they run beside the relay the client talks to.
//! `relay-forwarded` has a home replica `r0` where sessions are opened, the client's relay
//! being `r1` (`--node r1 --peer r0=…`), which forwards every later request to `r0`.
//! `relay-shared-limits` has a `redis-server` (from the machine: `/usr/bin/redis-server` or
//! on `PATH`) on a free loopback port, no persistence, stopped with the system. The limits
//! both limit systems use are here, high enough never to refuse a call of the workloads: the
//! figures are the cost of checking, not of refusing.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use crate::auth;
use crate::guard::Proc;
use crate::systems::{free_port, listening, Kind, Paths};

/// The ports a fleet system needs besides its own, picked before anything starts (and
/// `relay-console`'s admin listener).
pub(crate) struct Plan {
    kind: Kind,
    home: Option<u16>,
    redis: Option<u16>,
    pub(crate) admin: Option<u16>,
}

/// Rates far above what two cores can carry: every request is checked, none refused.
const RATE: &str = "1000000/s";

impl Plan {
    pub(crate) fn new(kind: Kind) -> Result<Plan> {
        Ok(Plan {
            kind,
            home: (kind == Kind::RelayForwarded).then(free_port).transpose()?,
            redis: (kind == Kind::RelaySharedLimits)
                .then(free_port)
                .transpose()?,
            admin: (kind == Kind::RelayConsole).then(free_port).transpose()?,
        })
    }

    /// The flags of `relay-forwarded`'s entry replica.
    pub(crate) fn entry_args(&self) -> Vec<String> {
        let home = self.home.unwrap_or_default();
        vec![
            "--node".into(),
            "r1".into(),
            "--peer".into(),
            format!("r0=http://127.0.0.1:{home}"),
        ]
    }

    /// The config file of the limit systems: the raised concurrency cap, rates that never
    /// refuse, and for `relay-shared-limits` the store.
    pub(crate) fn limits_text(&self) -> String {
        let mut t = auth::limits_section();
        t.push_str(&format!(
            "per_principal = \"{RATE}\"\nper_principal_burst = 1000000\nglobal = \"{RATE}\"\nglobal_burst = 1000000\n"
        ));
        if let Some(port) = self.redis {
            t.push_str(&format!(
                "\n[cluster]\nnode = \"r0\"\n\n[cluster.store]\nurl = \"redis://127.0.0.1:{port}/0\"\n"
            ));
        }
        t
    }

    /// Starts the other processes (the home replica, or the store) and waits until they
    /// listen; the client's sessions open at the home replica.
    pub(crate) async fn start(
        &self,
        p: &Paths,
        logs: &Path,
    ) -> Result<(Vec<Proc>, Option<SocketAddr>)> {
        std::fs::create_dir_all(logs)?;
        if let Some(port) = self.home {
            let mut c = Command::new(&p.relay);
            c.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
            c.args(["--node", "r0", "--"]).arg(&p.fixture);
            let proc = spawn(c, self.kind, port, &logs.join("relay-forwarded-home.log")).await?;
            return Ok((vec![proc], Some(([127, 0, 0, 1], port).into())));
        }
        if let Some(port) = self.redis {
            let mut c = Command::new(redis_server());
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            c.args(["--save", "", "--appendonly", "no"]);
            let proc = spawn(c, self.kind, port, &logs.join("redis.log")).await?;
            return Ok((vec![proc], None));
        }
        Ok((Vec::new(), None))
    }
}

fn redis_server() -> String {
    match Path::new("/usr/bin/redis-server").exists() {
        true => "/usr/bin/redis-server".to_owned(),
        false => "redis-server".to_owned(),
    }
}

async fn spawn(mut c: Command, kind: Kind, port: u16, log: &Path) -> Result<Proc> {
    let file = std::fs::File::create(log)?;
    c.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0);
    let child = c
        .spawn()
        .with_context(|| format!("{}: spawn {:?}", kind.name(), c.get_program()))?;
    let mut proc = Proc::new(child);
    listening(kind, &mut proc, ([127, 0, 0, 1], port).into(), log).await?;
    Ok(proc)
}

/// The report's version line of a fleet system.
pub(crate) fn version(kind: Kind) -> String {
    let v = env!("CARGO_PKG_VERSION");
    match kind {
        Kind::RelayNode => format!("mcp-relay {v}, `--node r0`: a replica of a fleet, alone"),
        Kind::RelayForwarded => format!(
            "mcp-relay {v}, two replicas: sessions opened on r0, calls sent to r1, forwarded"
        ),
        Kind::RelayLimits => format!(
            "mcp-relay {v}, as relay-jwt with global and per-principal rates ({RATE}) in memory"
        ),
        _ => {
            let redis = Command::new(redis_server())
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|_| "redis-server: not installed".into());
            format!("mcp-relay {v}, as relay-limits with the limits in Redis ({redis})")
        }
    }
}
