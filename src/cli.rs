//! The command line: subcommands and `serve` flags, turned into a [`ServeConfig`].
//!
//! Every flag is documented here (this is what `--help` prints). Problems found while
//! building the config are collected and reported together, before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ChildEra, ResponseMode, ServeConfig, SessionMode};
use crate::policy::RequestPolicy;
use crate::session::stream::BufferLimits;
use crate::telemetry::LogFormat;
use crate::upstream::remote::RemoteSpec;
use crate::upstream::stdio::ChildSpec;
use crate::upstream::Limits;
use crate::upstream::ServerSpec;

/// Put MCP servers on the network, safely.
#[derive(Debug, Parser)]
#[command(name = "mcp-relay", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,mcp_relay=debug`); RUST_LOG wins.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a stdio MCP server command and serve it over Streamable HTTP (plus WebSocket,
    /// legacy SSE and, with --tcp-listen, TCP).
    Serve(ServeArgs),
    /// Run a stdio MCP server command behind the relay's core, on the relay's own stdin/stdout
    /// (one session; for local hosts and SSH forced commands). Takes `serve`'s child, session
    /// and limit flags; its listener flags are ignored.
    Stdio(ServeArgs),
    /// The bridge for stdio-only hosts: MCP on stdin/stdout, relayed to a remote server over
    /// Streamable HTTP (or legacy SSE), WebSocket or TCP, with reconnects and OAuth.
    Connect(Box<crate::bridge::ConnectArgs>),
    /// Certificate helpers for `serve --tls-cert/--tls-key`.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Validate a config file exactly as `serve --config FILE` would, report every problem,
    /// and exit 64 (problems) or 0.
    CheckConfig {
        /// The TOML file.
        file: std::path::PathBuf,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Credentials: API keys (`token key`), HMAC secrets (`token secret`) and development
    /// JWTs (`token jwt`).
    #[command(subcommand)]
    Token(crate::token::TokenCommand),
    /// A small stdio MCP server to try the relay with: `time`, `echo` and a scratch key/value
    /// store (`kv_set`, `kv_get`, `kv_list`, `kv_delete`, in memory). Run it behind the
    /// relay: `mcp-relay serve -- mcp-relay demo-server`.
    DemoServer,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Write a self-signed development certificate and key (`cert.pem`, `key.pem` with mode
    /// 0600) into a directory. Existing files are never overwritten.
    Generate(CertGenerateArgs),
}

#[derive(Debug, Args)]
pub struct CertGenerateArgs {
    /// Directory to write `cert.pem` and `key.pem` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Subject alternative name, DNS name or IP address (repeatable). Default: localhost,
    /// 127.0.0.1 and ::1.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Days the certificate is valid (1-3650).
    #[arg(long, default_value_t = 90)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
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
    /// Children in the shared pool (`--session-mode shared`); sessions are spread over them.
    #[arg(help_heading = "Child process", long, default_value_t = 1)]
    pub children: usize,
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
    /// Take the server from a Claude Desktop / Cursor `mcpServers` JSON file (`command`,
    /// `args`, `env`, or `url`); with several entries, name one with --server.
    #[arg(help_heading = "Configuration", long, value_name = "FILE", conflicts_with_all = ["command", "upstream"])]
    pub mcp_servers: Option<PathBuf>,
    /// The entry of --mcp-servers to serve.
    #[arg(
        help_heading = "Configuration",
        long,
        value_name = "NAME",
        requires = "mcp_servers"
    )]
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

fn method_timeout(s: &str) -> Result<(String, Duration), String> {
    let (m, t) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not METHOD=DURATION"))?;
    if m.is_empty() {
        return Err(format!("`{s}`: the method is empty"));
    }
    Ok((m.to_owned(), duration(t)?))
}

fn warn_long(method: &str, t: Duration) {
    tracing::info!(method, timeout = ?t, "method timeout longer than --request-timeout-max: its hard maximum follows it");
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (examples: 500ms, 30s, 5m)"))
}

pub(crate) fn size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}`: {e} (examples: 64KiB, 4MiB)"))
}

impl ServeArgs {
    /// Validates everything; all problems are returned together.
    pub fn into_config(mut self) -> Result<ServeConfig, Vec<String>> {
        let mut errors = Vec::new();
        let mut entry_access = None;
        let mut entry_failed = false;
        if let Some(file) = &self.mcp_servers {
            use config::mcp_servers::McpServer;
            match config::mcp_servers::read(
                file,
                self.server.as_deref(),
                &crate::secret::process_env,
            ) {
                Ok(McpServer::Command { argv, env, cwd }) => {
                    self.command = argv;
                    self.env.extend(env);
                    self.cwd = self.cwd.take().or(cwd);
                }
                Ok(McpServer::Url {
                    url,
                    headers,
                    legacy_sse,
                }) => {
                    self.upstream = Some(url);
                    entry_access = Some((headers, legacy_sse));
                }
                Err(e) => {
                    entry_failed = true;
                    errors.extend(e);
                }
            }
        }
        let path_var = std::env::var("PATH").ok();
        let max_line = usize::try_from(self.max_line).unwrap_or(usize::MAX);
        let mut remote = match &self.upstream {
            Some(url) => RemoteSpec::parse(url, max_line, self.upstream_ca.as_deref())
                .map_err(|e| errors.push(e))
                .ok(),
            None => None,
        };
        let access = crate::upstream::remote::upstream_access::build(
            &self.upstream_auth,
            entry_access,
            &crate::secret::process_env,
        );
        match (access, remote.as_mut()) {
            (Ok(Some(a)), Some(spec))
                if a.credentials.is_some() && !matches!(spec, RemoteSpec::Http { .. }) =>
            {
                errors.push(
                    "--upstream-oauth-* apply to http:// and https:// upstreams (the token is fetched when the server answers 401)".into(),
                );
            }
            (Ok(Some(access)), Some(spec)) => spec.set_access(access),
            (Ok(Some(_)), None) if !entry_failed => errors.push(
                "--upstream-header, --upstream-bearer-* and --upstream-oauth-* need a remote upstream (--upstream URL, or a `url` entry of --mcp-servers)".into(),
            ),
            (Ok(_), _) => {}
            (Err(e), _) => errors.extend(e),
        }
        let program = match (self.command.first(), &self.upstream) {
            (Some(p), None) => config::resolve_program(p, path_var.as_deref())
                .map_err(|e| errors.push(e))
                .ok(),
            // The --mcp-servers error already says what is missing.
            (None, None) if entry_failed => None,
            (None, None) => {
                errors.push(
                    "no server: give the command after `--`, `--upstream URL`, or `command` in the config's [serve]".into(),
                );
                None
            }
            _ => None,
        };
        if let (Some(dir), None) = (&self.cwd, &self.upstream) {
            if let Err(e) = config::check_cwd(dir) {
                errors.push(e);
            }
        }
        if !self.path.starts_with('/') {
            errors.push(format!("--path `{}` must start with /", self.path));
        }
        const RESERVED: [&str; 4] = ["/health", "/ready", "/sse", "/message"];
        if !self.ws_path.starts_with('/') || self.ws_path == self.path {
            errors.push(format!(
                "--ws-path `{}` must start with / and differ from --path",
                self.ws_path
            ));
        }
        for (flag, p) in [("--path", &self.path), ("--ws-path", &self.ws_path)] {
            if RESERVED.contains(&p.as_str()) {
                errors.push(format!(
                    "{flag} `{p}` is taken by the relay (/health, /ready, /sse, /message)"
                ));
            }
        }
        let admin = crate::config::admin::AdminConfig::build(
            self.admin_listen,
            self.admin_token_env.as_deref(),
            &self.allowed_hosts,
            &crate::secret::process_env,
        )
        .map_err(|e| errors.extend(e))
        .ok()
        .flatten();
        let otel = crate::telemetry::otel::OtelConfig::build(
            self.otlp_endpoint.as_deref(),
            &crate::secret::process_env,
        )
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
        let origin = config::origin_guard(&self.listen, &self.allowed_hosts, &self.allowed_origins)
            .map_err(|e| errors.push(e))
            .ok();
        if self.max_sessions == 0 || self.max_inflight == 0 || self.replay_events == 0 {
            errors.push("--max-sessions, --max-inflight and --replay-events must be > 0".into());
        }
        if self.children == 0 || self.max_inflight_per_child == 0 {
            errors.push("--children and --max-inflight-per-child must be > 0".into());
        }

        if let Some(h) = &self.identity_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errors.push(format!("--identity-header `{h}` is not a header name"));
            }
        }
        for (k, v) in &self.env {
            if v.contains(config::IDENTITY_PLACEHOLDER) && config::identity_env_forbidden(k) {
                errors.push(format!(
                    "--env {k}: an identity may not be written to {k} (LD_*, DYLD_*, PYTHON*, NODE_OPTIONS, PATH)"
                ));
            }
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                errors.push("--tls-cert and --tls-key go together".into());
                None
            }
        };
        if let Some(Err(e)) = tls.as_ref().map(crate::tls::load) {
            errors.push(format!("--tls-cert/--tls-key: {e}"));
        }
        if self.session_idle_timeout.is_zero() || self.session_ttl.is_zero() {
            errors.push("--session-idle-timeout and --session-ttl must be > 0".into());
        }
        if self.request_timeout > self.request_timeout_max {
            errors.push("--request-timeout must not exceed --request-timeout-max".into());
        }
        let mut method_timeouts: Vec<(Box<str>, Duration)> = Vec::new();
        for (m, t) in &self.method_timeout {
            if *t > self.request_timeout_max {
                // Allowed (the hard maximum follows), but worth saying.
                warn_long(m, *t);
            }
            method_timeouts.push((m.as_str().into(), *t));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let resource_given = self.resource.is_some() || self.config.is_some();
        let security = config::security::build(
            config::security::Shorthands {
                config: self.config,
                resource: self.resource,
                jwt_secret: self.jwt_secret,
                jwks_url: self.jwks_url,
                jwt_issuer: self.jwt_issuer,
                jwt_algorithms: self.jwt_algorithms,
                roles: self.roles,
                audit_log: self.audit_log,
                identity_header: self.identity_header.clone().map(|h| h.to_ascii_lowercase()),
                cors_origins: self.cors_origins.clone(),
                allow_ips: self.allow_ips.clone(),
                deny_ips: self.deny_ips.clone(),
                trusted_proxies: self.trusted_proxies.clone(),
                memory_budget: self.memory_budget.clone(),
                loopback: self.listen.ip().is_loopback(),
            },
            format!("{scheme}://{}{}", self.listen, self.path),
            &crate::secret::process_env,
            &mut errors,
        );
        if let Some(sec) = &security {
            if !sec.auth.is_enabled() && !self.listen.ip().is_loopback() && !self.insecure_no_auth {
                errors.push(format!(
                    "--listen {} is not loopback and no authentication is configured: add API keys, JWT or mTLS (--config, --jwt-secret), or say --insecure-no-auth",
                    self.listen
                ));
            }
            let guessable = self.listen.port() != 0 && !self.listen.ip().is_unspecified();
            if sec.auth.is_oauth() && !resource_given && !guessable {
                errors.push(format!(
                    "--listen {}: the relay's URL cannot be derived from it; set --resource (or auth.resource) to the URL clients use, which tokens must name as audience",
                    self.listen
                ));
            }
            if sec.mtls.is_some() && tls.is_none() {
                errors.push("auth.mtls needs --tls-cert and --tls-key".into());
            }
            if self.session_mode == SessionMode::PerIdentity
                && self.identity_header.is_none()
                && !sec.auth.is_enabled()
            {
                errors.push(
                    "--session-mode per-identity needs --identity-header or authentication".into(),
                );
            }
            if sec.rbac.is_some() && !sec.auth.is_enabled() {
                errors.push("--roles needs authentication (roles come from credentials)".into());
            }
        }
        let server = match (program, remote) {
            (Some(program), None) => Some((program, None)),
            (None, Some(remote)) => Some((PathBuf::new(), Some(remote))),
            _ => None,
        };
        let (Some((program, remote)), Some(mut origin), Some(security), true) =
            (server, origin, security, errors.is_empty())
        else {
            return Err(errors);
        };
        // One list of allowed origins: the CORS origins are allowed too.
        origin
            .origins
            .extend(security.cors.origins().iter().cloned());
        let mut env: Vec<(String, String)> = config::DEFAULT_PASS_ENV
            .iter()
            .map(|s| s.to_string())
            .chain(self.pass_env)
            .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
            .collect();
        env.extend(self.env);
        Ok(ServeConfig {
            listen: self.listen,
            path: self.path,
            tcp_listen: self.tcp_listen,
            tls,
            tcp_max_line: usize::try_from(self.tcp_max_line).unwrap_or(usize::MAX),
            tcp_idle: self.tcp_idle,
            ws_path: self.ws_path,
            ws_max_message: usize::try_from(self.ws_max_message).unwrap_or(usize::MAX),
            ws_max_frame: usize::try_from(self.ws_max_frame).unwrap_or(usize::MAX),
            child: match remote {
                Some(remote) => ServerSpec::Remote(remote),
                None => ServerSpec::Command(ChildSpec {
                    program,
                    args: self.command.get(1..).unwrap_or_default().to_vec(),
                    env,
                    cwd: self.cwd,
                    max_line,
                    stop_timeout: self.child_stop_timeout,
                    shim: std::env::current_exe().ok(),
                }),
            },
            policy: RequestPolicy {
                origin,
                auth: security.auth,
                rbac: security.rbac,
                ip: security.ip,
                cors: security.cors,
                limits: security.limits,
            },
            audit: security.audit,
            mtls: security.mtls,
            session_mode: self.session_mode,
            child_era: self.child_era,
            children: self.children,
            identity_header: self.identity_header.map(|h| h.to_ascii_lowercase()),
            max_sessions: self.max_sessions,
            max_connections: self.max_connections,
            admin,
            otel,
            forward_hello: false,
            stdio_roles: Vec::new(),
            max_sessions_per_principal: self.max_sessions_per_principal,
            session_ttl: self.session_ttl,
            session_idle: self.session_idle_timeout,
            max_body: self.max_body,
            body_idle: self.body_idle_timeout,
            upstream: Limits {
                request_timeout: self.request_timeout,
                request_timeout_max: self.request_timeout_max,
                inflight_per_session: self.max_inflight,
                inflight_per_child: self.max_inflight_per_child,
                method_timeouts: Box::leak(method_timeouts.into_boxed_slice()),
            },
            buffer: BufferLimits {
                events: self.replay_events,
                bytes: usize::try_from(self.replay_bytes).unwrap_or(usize::MAX),
            },
            sse_keep_alive: self.sse_keep_alive,
            sse_close_after: self.sse_close_after,
            sse_retry: self.sse_retry,
            response_mode: self.response_mode,
            json_hold: self.json_hold,
            shutdown_grace: self.shutdown_grace,
        })
    }
}
