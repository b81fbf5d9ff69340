//! The command-line form of the `serve` configuration: every `serve` (and `stdio`) flag as a
//! clap struct, [`ServeArgs`], with the value parsers for durations and sizes, and
//! [`parse`], which turns a `serve` command line into it.
//!
//! The `[serve]` section of a config file is these same flags (`config/file.rs` splices it
//! into the command line), so this is the outer form of the serve configuration and lives
//! with it. It is validated into a `ServeConfig` by `config/validate.rs`; the rest of the
//! command line (subcommands, `connect`, `token`, `cert`) is `cli.rs`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::config::{self, CacheScope, ChildEra, EraPolicy, ResponseMode, SessionMode};
use crate::telemetry::LogFormat;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Loopback by default; any other address needs --allowed-host.
    #[arg(help_heading = "Listeners", long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Path of the MCP endpoint.
    #[arg(help_heading = "Listeners", long, default_value = "/mcp")]
    pub path: String,
    /// Also serve newline-delimited JSON-RPC over TCP on this address (one session per
    /// connection).
    #[arg(help_heading = "Listeners", long, value_name = "ADDR")]
    pub tcp_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS on the HTTP listener and the TCP front (needs
    /// --tls-key). Re-read on SIGHUP and when the file changes.
    #[arg(help_heading = "TLS", long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(help_heading = "TLS", long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Longest line on the TCP front; a longer one closes the connection with -31009.
    #[arg(help_heading = "Listeners", long, default_value = "4MiB", value_parser = size)]
    pub tcp_max_line: u64,
    /// A TCP connection silent this long is closed.
    #[arg(help_heading = "Listeners", long, default_value = "5m", value_parser = duration)]
    pub tcp_idle: Duration,
    /// Path of the WebSocket front (subprotocol `mcp`, one message per text frame).
    #[arg(help_heading = "Listeners", long, default_value = "/ws")]
    pub ws_path: String,
    /// Largest WebSocket message; larger ones close the connection with 1009.
    #[arg(help_heading = "Listeners", long, default_value = "4MiB", value_parser = size)]
    pub ws_max_message: u64,
    /// Largest WebSocket frame.
    #[arg(help_heading = "Listeners", long, default_value = "1MiB", value_parser = size)]
    pub ws_max_frame: u64,
    /// Host name clients may use in `Host` (repeatable; `name` or `name:port`). Loopback names
    /// are always allowed on a loopback bind.
    #[arg(help_heading = "Network", long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Browser origin allowed to call the relay, exactly `scheme://host[:port]` (repeatable).
    /// Requests without `Origin` always pass; loopback origins pass on a loopback bind.
    #[arg(
        help_heading = "Network",
        long = "allowed-origin",
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,
    /// Browser origin answered with CORS headers (repeatable): exactly `scheme://host[:port]`
    /// (echoed, with credentials), or `*` (any origin, without credentials). CORS origins
    /// are allowed origins too. Joins `[network] cors_origins` of --config.
    #[arg(help_heading = "Network", long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Client networks allowed to connect (CIDR or address, repeatable; joins `[network]
    /// allow`). Absent everywhere: everyone.
    #[arg(help_heading = "Network", long = "allow-ip", value_name = "CIDR")]
    pub allow_ips: Vec<String>,
    /// Client networks refused (CIDR or address, repeatable; wins over --allow-ip).
    #[arg(help_heading = "Network", long = "deny-ip", value_name = "CIDR")]
    pub deny_ips: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` are believed (repeatable).
    #[arg(help_heading = "Network", long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
    /// Memory budget for overload shedding (`512MiB`, `off`): from 90 % of it no keep-alive,
    /// from 95 % 503 for new sessions and requests. Overrides `[limits] memory_budget`;
    /// default: the cgroup's memory limit, else the machine's memory.
    #[arg(help_heading = "Limits", long = "memory-budget", value_name = "SIZE")]
    pub memory_budget: Option<String>,
    /// How sessions map to child processes: a child per session, `--children` shared
    /// children for every session (ids, progress tokens and cancellations rewritten per
    /// session), or one shared child per identity (`--identity-header`).
    #[arg(
        help_heading = "Sessions",
        long,
        value_enum,
        default_value = "per-session"
    )]
    pub session_mode: SessionMode,
    /// The wrapped server's protocol era. `auto` probes it with `server/discover` on the first
    /// 2026-07-28 request; a modern (or dual-era) server then serves such requests statelessly
    /// on a pool of `--children` processes, whatever `--session-mode` says for legacy sessions.
    #[arg(
        help_heading = "Child process",
        long,
        value_enum,
        default_value = "auto"
    )]
    pub child_era: ChildEra,
    /// Which client eras are served. `auto` serves both, translating where the child's era
    /// differs (a legacy child behind 2026-07-28 clients: the relay initializes it, answers
    /// `server/discover` and turns its sampling/elicitation/roots requests into
    /// `input_required` results). `legacy-only` refuses 2026-07-28 requests with the 400 that
    /// makes dual-era clients fall back; `modern-only` refuses `initialize`.
    #[arg(
        help_heading = "Child process",
        long,
        value_enum,
        default_value = "auto"
    )]
    pub era: EraPolicy,
    /// How long a legacy child's request for input (sampling, elicitation, roots) waits for a
    /// 2026-07-28 client's retry; then the child's request gets an error and its call is
    /// cancelled. Also how long the sealed `requestState` is valid.
    #[arg(help_heading = "Child process", long, default_value = "5m", value_parser = duration)]
    pub input_timeout: Duration,
    /// Caching hint (`ttlMs`) of the list results, `resources/read` and `server/discover` the
    /// relay answers for a legacy child to 2026-07-28 clients.
    #[arg(help_heading = "Child process", long, default_value = "0s", value_parser = duration)]
    pub cache_ttl: Duration,
    /// `cacheScope` of those results: `private`, or `public` for answers that are the same for
    /// every caller (an answer filtered by roles stays `private` whatever this says).
    #[arg(
        help_heading = "Child process",
        long,
        value_enum,
        default_value = "private"
    )]
    pub cache_scope: CacheScope,
    /// Children in the shared pool (`--session-mode shared`); sessions are spread over them.
    #[arg(help_heading = "Child process", long, default_value_t = 1)]
    pub children: usize,
    /// Children started ahead of their sessions (`--session-mode per-session`, a command): a
    /// new session takes a child that is already running instead of waiting for one to start,
    /// and another is started behind it. Each spare is an idle process; 0 starts every child
    /// with its session. At most 64.
    #[arg(help_heading = "Child process", long, default_value_t = 0)]
    pub spare_children: usize,
    /// `--spare-children` came from the relay's own settings, not from this named server's
    /// table: where the server cannot use spares it is left out, not refused.
    #[arg(skip)]
    pub spare_children_inherited: bool,
    /// Request header that names the caller's identity when no authentication is configured
    /// (a trusted proxy sets it; with authentication the principal is the identity). Sessions
    /// belong to the identity that opened them; with `--session-mode per-identity` each
    /// identity gets its own child, and `{identity}` in `--env` values is replaced by it.
    /// Values: 1-128 of `A-Za-z0-9._@+-`.
    #[arg(help_heading = "Sessions", long, value_name = "HEADER")]
    pub identity_header: Option<String>,
    /// Most sessions at once; more get 503.
    #[arg(help_heading = "Limits", long, default_value_t = 10_000)]
    pub max_sessions: usize,
    /// Open connections per listener (HTTP and TCP); more are closed at once.
    #[arg(help_heading = "Limits", long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Sessions one authenticated principal may hold at once (429 beyond).
    #[arg(help_heading = "Limits", long, default_value_t = 64)]
    pub max_sessions_per_principal: usize,
    /// A session with no open stream is ended (and its child stopped) after this long
    /// without activity, even with requests in flight (a client gone mid-call).
    #[arg(help_heading = "Sessions", long, default_value = "30m", value_parser = duration)]
    pub session_ttl: Duration,
    /// A session with no open stream (GET stream, POST awaiting its answer, WebSocket, TCP or
    /// SSE connection) and no request in flight is ended, and its child stopped, after this
    /// long without activity: what a client that leaves without DELETE leaves behind. A client
    /// that comes back later gets 404 and initializes again.
    #[arg(long, default_value = "5m", value_parser = duration, help_heading = "Sessions")]
    pub session_idle_timeout: Duration,
    /// Largest request body; larger ones get 413.
    #[arg(help_heading = "Limits", long, default_value = "4MiB", value_parser = size)]
    pub max_body: u64,
    /// How long a request body may pause mid-way before the request gets 408 (slow bodies).
    #[arg(help_heading = "Limits", long, default_value = "30s", value_parser = duration)]
    pub body_idle_timeout: Duration,
    /// Largest line read from the child's stdout; longer lines are dropped.
    #[arg(help_heading = "Limits", long, default_value = "16MiB", value_parser = size)]
    pub max_line: u64,
    /// A request with no answer and no progress for this long fails with -31008.
    #[arg(help_heading = "Limits", long, default_value = "60s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Hard limit for one request, however much progress it reports.
    #[arg(help_heading = "Limits", long, default_value = "10m", value_parser = duration)]
    pub request_timeout_max: Duration,
    /// A method's own request timeout, `METHOD=DURATION` (repeatable), e.g.
    /// `tools/call=10m` for long tool calls; progress extends it as it does the default, and
    /// the hard maximum is at least this long.
    #[arg(help_heading = "Limits", long = "method-timeout", value_name = "METHOD=DURATION", value_parser = method_timeout)]
    pub method_timeout: Vec<(String, Duration)>,
    /// Requests in flight per session; more get 503 (-31005).
    #[arg(help_heading = "Limits", long, default_value_t = 64)]
    pub max_inflight: usize,
    /// Requests in flight per child, over all its sessions; more get 503 (-31005).
    #[arg(help_heading = "Limits", long, default_value_t = 256)]
    pub max_inflight_per_child: usize,
    /// Events kept per stream for `Last-Event-ID` replay.
    #[arg(help_heading = "Sessions", long, default_value_t = 1000)]
    pub replay_events: usize,
    /// Bytes kept per stream for replay.
    #[arg(help_heading = "Sessions", long, default_value = "8MiB", value_parser = size)]
    pub replay_bytes: u64,
    /// Interval of SSE keep-alive comments.
    #[arg(help_heading = "Sessions", long, default_value = "15s", value_parser = duration)]
    pub sse_keep_alive: Duration,
    /// Close each SSE connection after this long (2025-11-25 polling: the client resumes with
    /// `Last-Event-ID`). Off by default.
    #[arg(help_heading = "Sessions", long, value_parser = duration)]
    pub sse_close_after: Option<Duration>,
    /// `retry` hint sent in the priming event of 2025-11-25 streams.
    #[arg(help_heading = "Sessions", long, default_value = "1s", value_parser = duration)]
    pub sse_retry: Duration,
    /// How answers are returned: always SSE, or JSON when the answer comes first.
    #[arg(help_heading = "Sessions", long, value_enum, default_value = "sse")]
    pub response_mode: ResponseMode,
    /// With `--response-mode json`: how long to wait for the answer before switching to SSE.
    #[arg(help_heading = "Sessions", long, default_value = "5s", value_parser = duration)]
    pub json_hold: Duration,
    /// On SIGTERM/SIGINT, how long in-flight requests may take before they are failed.
    #[arg(help_heading = "Sessions", long, default_value = "15s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Each wait of the child stop sequence (close stdin → wait → SIGTERM → wait → SIGKILL).
    #[arg(help_heading = "Child process", long, default_value = "5s", value_parser = duration)]
    pub child_stop_timeout: Duration,
    /// Extra environment variable for the child, `KEY=VALUE` (repeatable).
    #[arg(help_heading = "Child process", long = "env", value_name = "KEY=VALUE", value_parser = config::parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Pass this variable of the relay's environment to the child (repeatable). By default
    /// only PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR and TERM pass.
    #[arg(help_heading = "Child process", long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Working directory of the child.
    #[arg(help_heading = "Child process", long)]
    pub cwd: Option<PathBuf>,
    /// Settings file (TOML) with the `[auth]`, `[roles]` and `[audit]` sections
    /// (docs/security.md) and `[limits]`, `[network]` (docs/traffic.md). Flags below override
    /// the file.
    #[arg(help_heading = "Configuration", long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The relay's canonical URL: the audience tokens must name and the RFC 9728 `resource`
    /// (default `http(s)://<listen><path>`).
    #[arg(help_heading = "Authentication", long, value_name = "URL")]
    pub resource: Option<String>,
    /// Accept JWTs signed with this HMAC secret (`env:NAME` or `file:PATH`; see
    /// `mcp-relay token secret` and `token jwt`). Placeholder, short (< 32 bytes) or guessable
    /// secrets are refused (exit 64; docs/security.md).
    #[arg(help_heading = "Authentication", long, value_name = "REF")]
    pub jwt_secret: Option<String>,
    /// Accept JWTs signed by keys from this JWKS URL (https, or http to loopback).
    #[arg(help_heading = "Authentication", long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// Turn on the built-in OAuth 2.1 authorization server with this public base URL
    /// (https, or http on loopback); users and the rest are `[oauth_server]` keys
    /// (docs/oauth-server.md).
    #[arg(help_heading = "Authentication", long, value_name = "URL")]
    pub oauth_issuer: Option<String>,
    /// Directory of the authorization server's SQLite state (default: `mcp-relay-state`
    /// beside the config file).
    #[arg(help_heading = "Authentication", long, value_name = "DIR")]
    pub oauth_state_dir: Option<PathBuf>,
    /// Keep the authorization server's state in PostgreSQL (`postgres://…`, `env:NAME`,
    /// `file:PATH`): what several replicas share.
    #[arg(help_heading = "Authentication", long, value_name = "URL")]
    pub oauth_database_url: Option<String>,
    /// This replica's node name in a fleet (a DNS label, or `env:NAME`): session ids carry it,
    /// and a request for another node's session is forwarded there ([cluster], docs/fleet.md).
    #[arg(help_heading = "Fleet", long, value_name = "NAME")]
    pub node: Option<String>,
    /// Another replica: `NAME=URL` (its base URL, e.g. `r1=http://10.0.0.11:8080`); repeatable.
    /// The only addresses requests are forwarded to.
    #[arg(help_heading = "Fleet", long = "peer", value_name = "NAME=URL")]
    pub peers: Vec<String>,
    /// Base URL of replicas not listed with --peer, with `{node}` in it
    /// (`http://{node}.mcp-relay-peers.mcp.svc:8080`).
    #[arg(help_heading = "Fleet", long, value_name = "TEMPLATE")]
    pub peer_url: Option<String>,
    /// The fleet's shared store of rate limits and concurrency leases: a `redis://`,
    /// `rediss://` or `redis+sentinel://` URL, or `env:NAME` / `file:PATH`.
    #[arg(help_heading = "Fleet", long, value_name = "URL")]
    pub cluster_store: Option<String>,
    /// On SIGTERM, how long existing sessions are still served while `/ready` says 503
    /// (default 120s).
    #[arg(help_heading = "Fleet", long, value_name = "DURATION")]
    pub drain_window: Option<String>,
    /// The issuer (`iss`) of tokens accepted through --jwt-secret / --jwks-url.
    #[arg(
        help_heading = "Authentication",
        long,
        value_name = "ISS",
        default_value = "mcp-relay"
    )]
    pub jwt_issuer: String,
    /// Algorithms accepted through --jwt-secret / --jwks-url (default HS256, or RS256+ES256).
    #[arg(help_heading = "Authentication", long = "jwt-alg", value_name = "ALG")]
    pub jwt_algorithms: Vec<String>,
    /// Roles file: the seed's `permissions.json` (allowedMethods/blockedMethods per role)
    /// with tool, resource and prompt globs.
    #[arg(help_heading = "Roles", long, value_name = "FILE")]
    pub roles: Option<PathBuf>,
    /// Audit log: one JSON line per request to this file (rotated), or `-` for stdout.
    #[arg(help_heading = "Audit and observability", long, value_name = "PATH")]
    pub audit_log: Option<String>,
    /// Serve `/metrics` (Prometheus), `/health` and `/ready` on this separate plain-HTTP
    /// address instead of the main listener (off by default). A non-loopback address needs
    /// --admin-token-env and --allowed-host.
    #[arg(help_heading = "Audit and observability", long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Name of the environment variable holding the bearer token the admin listener requires
    /// (`Authorization: Bearer …`).
    #[arg(help_heading = "Audit and observability", long, value_name = "NAME")]
    pub admin_token_env: Option<String>,
    /// Do not serve the operator's console (`/ui`) on the admin listener (it is on whenever
    /// --admin-listen is set).
    #[arg(help_heading = "Audit and observability", long)]
    pub no_console: bool,
    /// Export one OpenTelemetry span per JSON-RPC request over OTLP/HTTP to this collector
    /// (base URL; `/v1/traces` is appended), e.g. `http://127.0.0.1:4318`. Without it,
    /// OTEL_EXPORTER_OTLP_ENDPOINT is honoured; without either, no traces (the default).
    #[arg(help_heading = "Audit and observability", long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Allow a non-loopback --listen without any authentication (anyone who can reach the
    /// port can use the server).
    #[arg(help_heading = "Authentication", long)]
    pub insecure_no_auth: bool,
    /// A server already on the network to put behind the relay instead of a command:
    /// `http://host:port/mcp` (Streamable HTTP, falling back to legacy HTTP+SSE),
    /// `ws://host:port/path` or `tcp://host:port` (newline-delimited JSON-RPC), or the same
    /// over TLS: `https://`, `wss://`, `tls://` (certificate and hostname always verified).
    /// Credentials for it come from this configuration, never from clients.
    #[arg(
        help_heading = "Remote upstream",
        long,
        value_name = "URL",
        conflicts_with = "command"
    )]
    pub upstream: Option<String>,
    /// Take the server from a Claude Desktop / Cursor `mcpServers` (or VS Code `servers`)
    /// JSON file (`command`, `args`, `env`, or `url`); with several entries, every entry is
    /// served as a named server (named by its key), unless --server picks one.
    #[arg(help_heading = "Configuration", long, value_name = "FILE", conflicts_with_all = ["command", "upstream"])]
    pub mcp_servers: Option<PathBuf>,
    /// Serve only this server: the entry of --mcp-servers, or the `[servers.NAME]` of
    /// --config (served alone, as a single-server relay).
    #[arg(help_heading = "Configuration", long, value_name = "NAME")]
    pub server: Option<String>,
    /// PEM bundle of the CAs trusted for a TLS --upstream, instead of the Mozilla roots (a
    /// private CA is trusted only when given here).
    #[arg(
        help_heading = "Remote upstream",
        long,
        value_name = "FILE",
        requires = "upstream"
    )]
    pub upstream_ca: Option<PathBuf>,
    /// Credentials for the remote upstream (`--upstream-header`, `--upstream-bearer-*`,
    /// `--upstream-oauth-*`).
    #[command(flatten)]
    pub upstream_auth: crate::upstream::remote::upstream_access::Flags,
    /// The stdio MCP server to run, after `--`: COMMAND [ARGS]...
    #[arg(help_heading = "Child process", last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A `serve` (or `stdio`) command line on its own: the subcommand's flags, plus the global
/// logging flags so that `[serve]` may set them as the command line can.
#[derive(Debug, Parser)]
#[command(name = "mcp-relay serve", args_override_self = true)]
pub(crate) struct ServeLine {
    /// Accepted and ignored here (read by `cli.rs`).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Accepted and ignored here (read by `cli.rs`).
    #[arg(long, default_value = "info")]
    log_level: String,
    #[command(flatten)]
    pub(crate) args: ServeArgs,
}

/// Where `serve` or `stdio` sits in a command line: after the program and the global
/// logging flags (`mcp-relay --log-format json serve …`).
pub(crate) fn subcommand_at(argv: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while let Some(a) = argv.get(i).and_then(|a| a.to_str()) {
        match a {
            "serve" | "stdio" => return Some(i),
            "--log-format" | "--log-level" => i += 2,
            _ if a.starts_with("--log-format=") || a.starts_with("--log-level=") => i += 1,
            _ => return None,
        }
    }
    None
}

/// The flags of a `serve` or `stdio` command line (`argv` with the `[serve]` section already
/// spliced in), or clap's message.
pub(crate) fn parse(argv: &[OsString]) -> Result<ServeArgs, Vec<String>> {
    let Some(sub) = subcommand_at(argv) else {
        return Err(vec!["not a `serve` or `stdio` command line".into()]);
    };
    let line =
        std::iter::once(OsString::from("mcp-relay serve")).chain(argv[sub + 1..].iter().cloned());
    ServeLine::try_parse_from(line)
        .map(|l| l.args)
        .map_err(|e| vec![e.to_string()])
}

fn method_timeout(s: &str) -> Result<(String, Duration), String> {
    let (m, t) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not METHOD=DURATION"))?;
    if m.is_empty() {
        return Err(format!("`{s}`: the method is empty"));
    }
    Ok((m.to_owned(), duration(t)?))
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (examples: 500ms, 30s, 5m)"))
}

pub(crate) fn size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}`: {e} (examples: 64KiB, 4MiB)"))
}
