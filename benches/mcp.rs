//! `cargo bench --bench mcp`: mcp-relay against the floors and the peers (issue 3).
//!
//! Every system wraps the same stdio echo server (`mcp-relay-fixture`) on loopback; our load
//! generator speaks Streamable HTTP over hyper keep-alive connections and verifies every
//! answer. Workloads: (a) sequential latency, (b) throughput 8 sessions C=32, (c) 64 KiB
//! results C=8, (d) idle memory of the process tree, (e) 1,000 sessions on one shared child
//! C=64, (f) session churn. The relay is started a second time with `--session-mode shared`
//! for (e) and for its shared-mode (a), (b) and idle memory. The floors: the fixture's pipes
//! (`floor-stdio`), a bare HTTP responder (`floor-http`) and the smallest correct relay
//! (`floor-relay`, issue 21); agentgateway is a peer. The multi-server relay (issue 16: two named
//! servers, both the fixture) is measured on its aggregate path and on one server's own path,
//! against the single relay; so are the relay with bearer-token authentication (an HS256 JWT,
//! and the relay's own OAuth access token from its built-in authorization server, issue 18),
//! and the relay with three of its console's live streams open (issue 20).
//! Repetitions alternate the systems round-robin; medians, ratios
//! and targets are printed as markdown and written to `results/bench/latest.md`.
//! Configuration by env: see `config.rs`. Run everything with `bash scripts/bench.sh`.

#[path = "mcp/against.rs"]
mod against;
#[path = "mcp/agentgateway.rs"]
mod agentgateway;
#[path = "mcp/auth.rs"]
mod auth;
#[path = "mcp/children.rs"]
mod children;
#[path = "mcp/config.rs"]
mod config;
#[path = "mcp/console.rs"]
mod console;
#[path = "mcp/fleet.rs"]
mod fleet;
#[path = "mcp/floor.rs"]
mod floor;
#[path = "mcp/floor_relay.rs"]
mod floor_relay;
#[path = "mcp/guard.rs"]
mod guard;
#[path = "mcp/http.rs"]
mod http;
#[path = "mcp/kind.rs"]
mod kind;
#[path = "mcp/load.rs"]
mod load;
#[path = "mcp/msg.rs"]
mod msg;
#[path = "mcp/oauth.rs"]
mod oauth;
#[path = "mcp/procs.rs"]
mod procs;
#[path = "mcp/report.rs"]
mod report;
#[path = "mcp/run.rs"]
mod run;
#[path = "mcp/servers.rs"]
mod servers;
#[path = "mcp/soak.rs"]
mod soak;
#[path = "mcp/stdio.rs"]
mod stdio;
#[path = "mcp/systems.rs"]
mod systems;
#[path = "mcp/targets.rs"]
mod targets;

fn main() -> anyhow::Result<()> {
    if let Ok(listen) = std::env::var(floor::ROLE_ENV) {
        return floor::serve(&listen);
    }
    if let Ok(listen) = std::env::var(floor_relay::ROLE_ENV) {
        return floor_relay::serve(&listen);
    }
    let cfg = config::Config::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    guard::install_signal_handler(&rt);
    if let Some(mode) = soak::Mode::from_env()? {
        return rt.block_on(mode.run(&cfg)); // `BENCH_MODE=soak|children`: soak.rs
    }
    let report = rt.block_on(run::all(&cfg))?;
    println!("\n{report}");
    let out = cfg.paths.root.join("results/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("latest.md"), report)?;
    eprintln!("bench: written to {}", out.join("latest.md").display());
    Ok(())
}
