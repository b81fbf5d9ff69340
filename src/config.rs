//! The validated runtime configuration of `serve`, and [`load`], the one way to it.
//!
//! A `serve` command line (`config/args.rs`, with the `[serve]` section of `--config FILE`
//! spliced in by `config/file.rs`) is checked by `config/validate.rs` before any port is
//! bound, and every problem is reported at once. The command to wrap is resolved on `PATH`
//! now, so an unspawnable command is a usage error, not a runtime one. Start-up, SIGHUP reload
//! and `check-config` all call [`load`]. The rest of the command line is `cli.rs`.

pub(crate) mod admin;
pub(crate) mod args;
pub(crate) mod cache;
pub(crate) mod file;
pub(crate) mod mcp_servers;
pub(crate) mod oauth_server;
pub(crate) mod security;
pub(crate) mod servers;
pub(crate) mod validate;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::{OriginGuard, RequestPolicy};
use crate::session::stream::BufferLimits;
use crate::upstream::{Limits, ServerSpec};

/// The configuration a `serve` (or `stdio`) command line runs with: the `[serve]` section of
/// its `--config` spliced in, the flags parsed, everything validated with `env` as the
/// environment. Every problem, or the config.
pub(crate) fn load(
    argv: Vec<OsString>,
    env: validate::Env<'_>,
) -> Result<ServeConfig, Vec<String>> {
    validate::load(argv, env)
}

/// How a request's answer is returned when the client accepts both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ResponseMode {
    /// Always an SSE stream, so progress and server requests can travel with the answer (the
    /// default; README.md "Streams", docs/troubleshooting.md).
    Sse,
    /// `application/json` when the first message is the final answer (held up to
    /// `--json-hold`), SSE otherwise.
    Json,
}

/// How sessions map to child processes (PROTOCOL.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SessionMode {
    /// One child per session, stopped with it.
    PerSession,
    /// `--children N` supervised children serve every session.
    Shared,
    /// One supervised child per identity (the authenticated principal, or `--identity-header`).
    PerIdentity,
}

/// What era the wrapped server speaks (PROTOCOL.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ChildEra {
    /// Probe with `server/discover` on the first modern request.
    Auto,
    /// `initialize`-based only: modern requests get a 400 that makes clients fall back.
    Legacy,
    /// Serves 2026-07-28 requests (it may also be dual-era); legacy sessions are served by
    /// the relay's legacy face in front of it, so it may also speak only 2026-07-28.
    Modern,
}

/// Which client eras a server is offered to (`--era`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EraPolicy {
    /// Both eras, translating where the child's era differs.
    Auto,
    /// `initialize`-based clients only: 2026-07-28 requests get the fallback 400.
    LegacyOnly,
    /// 2026-07-28 clients only: `initialize` is refused.
    ModernOnly,
}

/// `cacheScope` of translated results (`--cache-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CacheScope {
    Private,
    Public,
}

/// Replaced by the session's identity in `--env` values (per-identity mode).
pub(crate) const IDENTITY_PLACEHOLDER: &str = "{identity}";

/// Variables a header-derived value may never be written to (SECURITY.md: child env).
pub(crate) fn identity_env_forbidden(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("LD_")
        || upper.starts_with("PYTHON")
        || upper == "NODE_OPTIONS"
        || upper == "PATH"
        || upper.starts_with("DYLD_")
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub listen: SocketAddr,
    pub path: String,
    /// The TCP front (newline-delimited JSON-RPC), when enabled.
    pub tcp_listen: Option<SocketAddr>,
    /// TLS on the HTTP and TCP listeners, when configured (files checked at startup).
    pub tls: Option<crate::tls::TlsFiles>,
    pub tcp_max_line: usize,
    pub tcp_idle: Duration,
    /// The WebSocket front's path on the HTTP listener.
    pub ws_path: String,
    pub ws_max_message: usize,
    pub ws_max_frame: usize,
    /// The wrapped command, or the remote server (`--upstream`).
    pub child: ServerSpec,
    pub policy: RequestPolicy,
    /// The audit log, when configured (started by `app`).
    pub audit: Option<crate::telemetry::audit::AuditConfig>,
    /// Client-certificate verification (needs TLS).
    pub mtls: Option<crate::tls::client::MtlsConfig>,
    pub session_mode: SessionMode,
    pub child_era: ChildEra,
    /// Which client eras are served (`--era`).
    pub era: EraPolicy,
    /// How long a parked request waits for a modern client's retry (`--input-timeout`).
    pub input_wait: Duration,
    /// Caching hints of translated results (`--cache-ttl`, `--cache-scope public`).
    pub cache_ttl: Duration,
    pub cache_public: bool,
    /// Children of the shared pool.
    pub children: usize,
    /// Per-session children kept started ahead of their sessions (`--spare-children`).
    pub spare_children: usize,
    pub max_sessions: usize,
    /// Open connections per listener.
    pub max_connections: usize,
    /// The admin listener (`/metrics`, `/health`, `/ready`), when `--admin-listen` is set.
    pub admin: Option<admin::AdminConfig>,
    /// OpenTelemetry trace export (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`), when on.
    pub otel: Option<crate::telemetry::otel::OtelConfig>,
    /// Shared children are initialized with the first session's own `initialize` params
    /// (`connect`: the server sees the host, and sees it again after every reconnect).
    pub forward_hello: bool,
    /// Roles of the local caller of the stdio front (`connect --allow-tool/--deny-tool`).
    pub stdio_roles: Vec<String>,
    /// Sessions one authenticated principal may hold (anonymous: only `max_sessions`).
    pub max_sessions_per_principal: usize,
    pub session_ttl: Duration,
    /// A session with no open stream and no request in flight ends after this long.
    pub session_idle: Duration,
    pub max_body: u64,
    /// How long a request body may pause before the request is refused (408).
    pub body_idle: Duration,
    pub upstream: Limits,
    pub buffer: BufferLimits,
    pub sse_keep_alive: Duration,
    pub sse_close_after: Option<Duration>,
    pub sse_retry: Duration,
    pub response_mode: ResponseMode,
    pub json_hold: Duration,
    pub shutdown_grace: Duration,
    /// The named servers (`[servers.NAME]`, every entry of `--mcp-servers FILE` without
    /// `--server`); empty when the relay serves one server (`child`), as it always did.
    pub servers: Vec<servers::NamedServer>,
    /// Tool subsets (`[endpoints.NAME]`), served at `/endpoints/NAME/...`.
    pub endpoints: Vec<servers::EndpointSpec>,
    /// How the main path merges the named servers (`[aggregate]`).
    pub aggregate: servers::AggregateSpec,
    /// Set on the configuration of one named server: its name (audit, metrics, roles).
    pub server_name: Option<String>,
    /// The built-in authorization server (`[oauth_server]`), when on; started by `app`.
    pub oauth_server: Option<std::sync::Arc<oauth_server::OAuthServerConfig>>,
    /// This relay as a replica of a fleet (`[cluster]`), when it is one. Kept across SIGHUP
    /// (its connections and counters live on).
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    /// The response cache of idempotent reads (`[cache]`), when on.
    pub response_cache: Option<std::sync::Arc<cache::CacheConfig>>,
    /// The path prefix this configuration's fronts are served under (`/servers/NAME`); empty
    /// for the main path. Legacy SSE names its message path with it.
    pub mount: String,
}

/// Variables passed to the child unless `--clear-env` says otherwise.
pub(crate) const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "TERM",
];

/// Resolves `program` like a shell would (a path, or a name on `PATH`), without running it.
pub(crate) fn resolve_program(program: &str, path: Option<&str>) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read current dir: {e}"))?;
    which::which_in(program, path, cwd).map_err(|_| {
        // A path (`./server`, `C:\servers\server.exe`), not a name to look up.
        if std::path::Path::new(program).components().count() > 1 {
            format!("command `{program}` is not an executable file")
        } else {
            format!("command `{program}` not found on PATH")
        }
    })
}

/// Checks `--cwd`: an existing directory (else the child could not start, session after
/// session, long after startup said nothing).
pub(crate) fn check_cwd(dir: &std::path::Path) -> Result<(), String> {
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("--cwd {}: not a directory", shown.display())),
        Err(e) => Err(format!("--cwd {}: {e}", shown.display())),
    }
}

/// Parses `KEY=VALUE`.
pub(crate) fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Builds the origin guard: loopback binds accept loopback names; others must list hosts.
pub(crate) fn origin_guard(
    listen: &SocketAddr,
    hosts: &[String],
    origins: &[String],
) -> Result<OriginGuard, String> {
    let loopback = listen.ip().is_loopback();
    if !loopback && hosts.is_empty() {
        return Err(format!(
            "--listen {listen} is not a loopback address: name the host names clients use with --allowed-host (DNS rebinding protection)"
        ));
    }
    let mut bad = origins
        .iter()
        .filter(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'));
    if let Some(o) = bad.next() {
        return Err(format!(
            "--allowed-origin `{o}` must be scheme://host[:port] without a path"
        ));
    }
    Ok(OriginGuard {
        loopback,
        hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        origins: origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_bind_needs_hosts() {
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert!(origin_guard(&any, &[], &[]).is_err());
        assert!(origin_guard(&any, &["mcp.example.com".into()], &[]).is_ok());
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(origin_guard(&lo, &[], &["https://a.example/".into()]).is_err());
        assert!(origin_guard(&lo, &[], &["https://a.example".into()]).is_ok());
    }

    #[test]
    fn programs_resolve_on_path_or_fail_clearly() {
        // This test binary, found in its own directory: a program that exists on every OS.
        let exe = std::env::current_exe().unwrap();
        let (dir, name) = (exe.parent().unwrap(), exe.file_name().unwrap());
        let dir = dir.to_str().unwrap();
        assert!(resolve_program(name.to_str().unwrap(), Some(dir)).is_ok());
        let e = resolve_program("no-such-mcp-server-xyz", Some(dir)).unwrap_err();
        assert!(e.contains("not found on PATH"), "{e}");
        assert!(parse_env_pair("A=b=c").unwrap() == ("A".into(), "b=c".into()));
        assert!(parse_env_pair("=x").is_err());
    }
}
