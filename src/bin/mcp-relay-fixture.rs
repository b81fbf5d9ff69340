//! `mcp-relay-fixture`: the stdio MCP server our tests put behind the relay. Self-contained
//! (it does not link the `mcp_relay` library). This file owns the CLI and process-level
//! behaviours (`--ignore-sigterm`, `--grandchild`); the stdio session is in `fixture/server.rs`,
//! framing and the stdout writer in `fixture/wire.rs`, the modes in `fixture/echo.rs` and
//! `fixture/conformance.rs` (+ `fixture/conformance_data.rs`; its 2026-07-28 side in
//! `fixture/modern.rs`, `fixture/modern_data.rs` and `fixture/mrtr.rs`, served the 2025-11-25
//! way by `fixture/legacy.rs` in the legacy era).
//!
//! Wire rules: newline-delimited JSON-RPC 2.0 on stdin/stdout, one compact object per line,
//! stdout flushed after every line, logs on stderr only; requests run concurrently; every
//! response carries the request id as its exact raw JSON text.

/// Writes one line to stderr, ignoring failures (a closed stderr must not panic the fixture).
macro_rules! elog {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[path = "fixture/client.rs"]
mod client;
#[path = "fixture/conformance.rs"]
mod conformance;
#[path = "fixture/conformance_data.rs"]
mod conformance_data;
#[path = "fixture/echo.rs"]
mod echo;
#[path = "fixture/era.rs"]
mod era;
#[path = "fixture/legacy.rs"]
mod legacy;
#[path = "fixture/modern.rs"]
mod modern;
#[path = "fixture/modern_data.rs"]
mod modern_data;
#[path = "fixture/mrtr.rs"]
mod mrtr;
#[path = "fixture/server.rs"]
mod server;
#[path = "fixture/tasks.rs"]
mod tasks;
#[path = "fixture/wire.rs"]
mod wire;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{ArgAction, Parser, ValueEnum};

/// Which method table the fixture serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// General test child: echo, slow, progress, sample, crash, junk, huge, ... tools.
    #[default]
    Echo,
    /// The tool/resource/prompt set the official conformance suite calls.
    Conformance,
}

/// Test fixture: a stdio MCP server for mcp-relay's tests (not shipped).
#[derive(Debug, Parser)]
#[command(name = "mcp-relay-fixture", version)]
struct Cli {
    /// Mode: `echo` (default) or `conformance`.
    #[arg(value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    #[command(flatten)]
    flags: Flags,
}

/// Behaviour switches shared by every mode.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Flags {
    /// Exit with code 3 upon receiving `initialize`, without answering.
    #[arg(long)]
    pub(crate) crash_on_init: bool,
    /// Exit with code 4 upon receiving request number N+1 (every request counts).
    #[arg(long, value_name = "N")]
    pub(crate) crash_after: Option<u64>,
    /// Print `mcp-relay-fixture starting` on stdout before anything else.
    #[arg(long)]
    pub(crate) banner: bool,
    /// Append every raw stdin line (plus "\n") to FILE, flushed per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) record: Option<PathBuf>,
    /// Catch SIGTERM and only log it.
    #[arg(long)]
    pub(crate) ignore_sigterm: bool,
    /// Spawn `sh -c 'trap "" TERM; sleep 1000'` in our process group (inheriting our stdout and
    /// stderr) and print `grandchild PID` on stderr.
    #[arg(long)]
    pub(crate) grandchild: bool,
    /// Never read stdin; just sleep forever.
    #[arg(long)]
    pub(crate) no_read_stdin: bool,
    /// Exit 0 when stdin reaches EOF (after in-flight requests finish, see --eof-grace-ms).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub(crate) exit_on_eof: bool,
    /// Keep running after stdin EOF (same as --exit-on-eof=false).
    #[arg(long)]
    pub(crate) ignore_stdin_eof: bool,
    /// On stdin EOF, wait at most this long for in-flight requests before exiting.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub(crate) eof_grace_ms: u64,
    /// Delay the `initialize` answer by MS milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub(crate) init_delay_ms: u64,
    /// Protocol era: `legacy` (initialize-based), `modern` (2026-07-28 per-request `_meta`,
    /// `server/discover`) or `dual` (modern when a request's `_meta` names a version).
    #[arg(long, value_enum, default_value_t = era::Era::Legacy)]
    pub(crate) era: era::Era,
    /// Conformance mode: how long `test_reconnection` takes before answering.
    #[arg(long, value_name = "MS", default_value_t = 2500)]
    pub(crate) reconnection_ms: u64,
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("conformance-client") {
        return client::main(std::env::args().skip(2).collect());
    }
    let cli = Cli::parse();
    // One thread: requests are concurrent tasks, and no line crosses threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    rt.block_on(async move {
        if cli.flags.ignore_sigterm {
            ignore_sigterm()?;
        }
        if cli.flags.grandchild {
            spawn_grandchild()?;
        }
        server::run(cli.mode, cli.flags).await
    })?;
    // Do not wait for detached tasks (stdin reader of the runtime, grandchild handles).
    std::process::exit(0);
}

/// (This test tool gates its Unix-only parts itself; the relay keeps them in `src/os/`.)
#[cfg(unix)]
fn ignore_sigterm() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    tokio::spawn(async move {
        while term.recv().await.is_some() {
            elog!("mcp-relay-fixture: SIGTERM received and ignored");
        }
    });
    Ok(())
}

/// There is no SIGTERM to ignore.
#[cfg(not(unix))]
fn ignore_sigterm() -> anyhow::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn spawn_grandchild() -> anyhow::Result<()> {
    anyhow::bail!("--grandchild needs a Unix shell")
}

#[cfg(unix)]
fn spawn_grandchild() -> anyhow::Result<()> {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" TERM; sleep 1000"#)
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("spawn grandchild")?;
    elog!("grandchild {}", child.id());
    // Dropping `Child` neither waits for nor kills it: it lives on in our process group.
    Ok(())
}
