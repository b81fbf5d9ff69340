//! agentgateway (Rust, the most complete MCP gateway peer) as a system under test: where its
//! binary comes from (`BENCH_AGENTGATEWAY`, built outside the project as docs/BENCHMARKS.md
//! "Building agentgateway for the benchmark" says), the YAML config it is given (one stdio
//! target, the fixture, stateful mode: one child per session) in a directory of its own that is
//! removed after the system stops, and its command line on loopback.
//! It does not own how the system is started, waited for and measured (`systems.rs`, `run.rs`)
//! nor the table against the relay (`report.rs`). Nothing of agentgateway is in the project.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::servers::{self, ConfigDir};

/// The env var naming the agentgateway binary to measure.
pub(crate) const BIN_ENV: &str = "BENCH_AGENTGATEWAY";

/// The env var of the local change (see the docs) that binds its listener to one address
/// instead of the wildcard; an unchanged build ignores it and binds the wildcard.
const BIND_ENV: &str = "AGENTGATEWAY_BIND_IP";

/// The config file's name in its directory.
const FILE: &str = "agentgateway.yaml";

/// The binary, or why the system cannot run ("not built"): the run records a failure for
/// agentgateway and goes on with the other systems.
fn binary() -> Result<PathBuf> {
    let Some(path) = std::env::var_os(BIN_ENV).filter(|p| !p.is_empty()) else {
        bail!(
            "not built: set {BIN_ENV} to an agentgateway binary (docs/BENCHMARKS.md, \
             \"Building agentgateway for the benchmark\")"
        );
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!("not built: {BIN_ENV}={} does not exist", path.display());
    }
    Ok(path)
}

/// The config: its admin, stats and readiness listeners off; one gateway on `port`; the MCP
/// routes (`/mcp`, `/sse`) with one stdio target, the fixture in its default echo mode (as the
/// relay runs it), each stateful session getting its own child. With one target the tool keeps
/// its name (`echo`: no target prefix).
pub(crate) fn config_text(fixture: &str, port: u16) -> String {
    // JSON strings are valid YAML scalars: the path needs no YAML-specific quoting.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "config:\n  adminAddr: \"off\"\n  statsAddr: \"off\"\n  readinessAddr: \"off\"\n\
         gateways:\n  default:\n    port: {port}\n\
         mcp:\n  statefulMode: stateful\n  targets:\n  - name: fixture\n    stdio:\n      \
         cmd: {}\n      args: []\n",
        quote(fixture)
    )
}

/// Writes the config for agentgateway on `port` into a directory of its own (removed when the
/// system stops). Fails first with "not built" when there is no binary.
pub(crate) fn write_config(fixture: &Path, port: u16) -> Result<ConfigDir> {
    binary()?;
    let fx = fixture.to_str().context("fixture path not UTF-8")?;
    servers::write_named(port, FILE, &config_text(fx, port))
}

/// The command line: the config file, the listener bound to loopback, and only warnings
/// logged (no access log line per request, as the other peers are run with their logs
/// quiet).
pub(crate) fn command(config: Option<&ConfigDir>) -> Result<Command> {
    let file = config.context("agentgateway needs its config")?.file();
    let mut c = Command::new(binary()?);
    c.arg("-f").arg(file);
    c.env(BIND_ENV, "127.0.0.1").env("RUST_LOG", "warn");
    Ok(c)
}

/// The version line for the report: the binary's own short version, and the mode measured.
pub(crate) fn version() -> String {
    let v = match binary() {
        Ok(bin) => match Command::new(&bin).arg("-V").output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            Ok(o) => format!("`-V` failed ({})", o.status),
            Err(e) => format!("`-V` failed ({e})"),
        },
        Err(e) => return format!("agentgateway: {e:#}"),
    };
    format!(
        "agentgateway (`-V`: {v}; built from source as docs/BENCHMARKS.md says, `{BIN_ENV}`), \
         `statefulMode: stateful`: one child per session (it has no mode with one child for \
         every session)"
    )
}
