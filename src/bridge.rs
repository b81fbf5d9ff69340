//! `mcp-relay connect URL`: the bridge for stdio-only hosts (Claude Desktop, Cursor, VS Code).
//!
//! The host speaks MCP on our stdin/stdout; the remote server is reached over Streamable HTTP
//! (falling back to legacy SSE), WebSocket or TCP, with TLS. The bridge is the relay's own
//! core turned around: the stdio front (`listener/stdio.rs`) with one shared, supervised
//! remote link (`upstream/remote.rs` under `upstream/supervisor.rs`). So a dropped connection,
//! a crashed server or a 404 for the remote session is a restart of that link with jittered
//! backoff, re-initialized with the host's own `initialize` (the server sees the host, every
//! time), subscriptions and log level replayed; requests sent meanwhile wait (bounded) and
//! are delivered; only requests that were on the wire when the link broke get an error.
//!
//! This file owns the command line and turns it into a `ServeConfig` (a value: the relay's defaults
//! from `ServeConfig::bridge`, with the remote link and tool filter set); the OAuth client, token
//! store, URL/SSRF guard and browser launcher are its submodules.

pub(crate) mod browser;
pub(crate) mod oauth;
pub(crate) mod token_store;
pub(crate) mod url_guard;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::args::{duration, size};
use crate::config::ServeConfig;
use crate::policy::rbac::Rbac;
use crate::upstream::remote::{Access, CredentialSource, RemoteSpec, Roots, TlsOptions};

/// Which protocol to speak to the remote server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// From the URL: `http(s)://` Streamable HTTP (falling back to legacy SSE), `ws(s)://`,
    /// `tcp://`, `tls://`.
    Auto,
    /// Streamable HTTP, falling back to legacy SSE when the server refuses it.
    Http,
    /// Legacy HTTP+SSE (2024-11-05) only.
    Sse,
    /// WebSocket (the URL must be `ws://` or `wss://`).
    Ws,
    /// Newline-delimited JSON-RPC over TCP (`tcp://` or `tls://`).
    Tcp,
}

/// Which protocol era to speak to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// The host's own (legacy) protocol; when the server is a 2026-07-28 one that refuses
    /// `initialize`, translate: answer the host's `initialize` from `server/discover`, send
    /// each request with the modern `_meta`, and turn input-required results into ordinary
    /// server→client requests to the host (HTTP transports).
    Auto,
    /// Only the host's own protocol, as it is.
    Legacy,
}

/// When to run the OAuth flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OAuthMode {
    /// When the server answers 401 (HTTP transports).
    Auto,
    /// Never: a 401 is an error.
    Off,
}

/// `mcp-relay connect` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The remote MCP server: `https://host/mcp`, `http://127.0.0.1:8080/mcp`, `wss://…/ws`,
    /// `tcp://host:port`, `tls://host:port`.
    pub url: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: Transport,
    #[arg(long, value_enum, default_value = "auto")]
    pub protocol: Protocol,
    /// A header sent with every request (`'Name: value'`, repeatable). Prefer
    /// --header-file for secrets: argv is visible to other users of the machine.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// Headers read from a file, one `Name: value` per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub header_file: Option<PathBuf>,
    /// Send `Authorization: Bearer <value of this environment variable>`.
    #[arg(long, value_name = "NAME")]
    pub bearer_env: Option<String>,
    /// Trust only these CA certificates (PEM) for the server (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM chain) for servers that require mTLS.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (self-signed development servers only; logged loudly).
    #[arg(long)]
    pub insecure: bool,
    /// Only tools matching one of these globs are listed and callable (repeatable).
    #[arg(long = "allow-tool", value_name = "GLOB")]
    pub allow_tools: Vec<String>,
    /// Tools matching these globs are hidden and refused locally (repeatable; wins over
    /// --allow-tool).
    #[arg(long = "deny-tool", value_name = "GLOB")]
    pub deny_tools: Vec<String>,
    #[arg(long, value_enum, default_value = "auto")]
    pub oauth: OAuthMode,
    /// A pre-registered OAuth client id (else: client metadata document, then dynamic
    /// registration).
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,
    /// The pre-registered client's secret, read from this file.
    #[arg(long, value_name = "FILE", requires = "oauth_client_id")]
    pub oauth_client_secret_file: Option<PathBuf>,
    /// An https URL of this client's metadata document, used as its client id where the
    /// authorization server supports client id metadata documents.
    #[arg(long, value_name = "URL")]
    pub oauth_client_metadata_url: Option<String>,
    /// Scopes to ask for (default: the server's challenge, else its metadata).
    #[arg(long, value_name = "SCOPES")]
    pub oauth_scope: Option<String>,
    /// Where tokens and client registrations are kept (0700; files 0600). Default:
    /// `$XDG_CONFIG_HOME/mcp-relay/oauth`, else `%APPDATA%\mcp-relay\oauth` (Windows), else
    /// `~/.config/mcp-relay/oauth`.
    #[arg(long, value_name = "DIR")]
    pub oauth_dir: Option<PathBuf>,
    /// Follow the authorization redirect without a browser (tests and CI with an
    /// authorization server that approves at once).
    #[arg(long)]
    pub oauth_headless: bool,
    /// Port of the loopback callback listener (default: any free port).
    #[arg(long, default_value_t = 0)]
    pub oauth_callback_port: u16,
    /// Do not send the RFC 8707 `resource` parameter (for authorization servers that reject
    /// it).
    #[arg(long)]
    pub oauth_no_resource: bool,
    /// Allow OAuth discovery on loopback and private addresses (local development).
    #[arg(long)]
    pub allow_private_discovery: bool,
    /// Largest message accepted from the server.
    #[arg(long, default_value = "16MiB", value_parser = size)]
    pub max_message: u64,
    /// How long one request may take before the host gets an error (-31008).
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Log to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// Turns the flags into the relay configuration that runs the bridge.
pub(crate) fn config(args: &ConnectArgs) -> Result<ServeConfig, Vec<String>> {
    let mut errors = Vec::new();
    let url = normalized_url(&args.url, args.transport).map_err(|e| vec![e])?;
    // The host's machine: its own trust store, unless told otherwise.
    let tls = TlsOptions {
        ca: args.ca_file.clone(),
        roots: Roots::System,
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
        insecure: args.insecure,
    };
    let max = usize::try_from(args.max_message).unwrap_or(usize::MAX);
    let spec = RemoteSpec::parse_with(&url, max, &tls)
        .map_err(|e| errors.push(e))
        .ok();
    let access = access(args).map_err(|e| errors.push(e)).ok();
    let rbac = (!args.allow_tools.is_empty() || !args.deny_tools.is_empty())
        .then(|| tool_filter(&args.allow_tools, &args.deny_tools))
        .and_then(|r| r.map_err(|e| errors.push(e)).ok());
    let (Some(mut spec), Some(access), true) = (spec, access, errors.is_empty()) else {
        return Err(errors);
    };
    spec.set_access(access);
    let mut cfg = ServeConfig::bridge(spec, args.request_timeout, &crate::secret::process_env)?;
    if args.insecure {
        tracing::warn!(
            "--insecure: the server's certificate is NOT verified; anyone on the path can read and change this traffic"
        );
    }
    if let Some(rbac) = rbac {
        cfg.policy.rbac = Some(Arc::new(rbac));
        cfg.stdio_roles = vec![BRIDGE_ROLE.to_owned()];
    }
    Ok(cfg)
}

/// The role the local host has when tools are filtered.
const BRIDGE_ROLE: &str = "host";

/// `--allow-tool`/`--deny-tool` as a one-role roles file: every method allowed, tools by glob.
fn tool_filter(allow: &[String], deny: &[String]) -> Result<Rbac, String> {
    let mut tools = serde_json::Map::new();
    if !allow.is_empty() {
        tools.insert("allow".into(), allow.into());
    }
    if !deny.is_empty() {
        tools.insert("deny".into(), deny.into());
    }
    let doc = serde_json::json!({ BRIDGE_ROLE: { "allowedMethods": ["*"], "tools": tools } });
    Rbac::parse(&doc.to_string()).map_err(|e| format!("--allow-tool/--deny-tool: {e}"))
}

/// The URL the link connects to, checked against `--transport`.
fn normalized_url(url: &str, transport: Transport) -> Result<String, String> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let fits = match transport {
        Transport::Auto => true,
        Transport::Http | Transport::Sse => matches!(scheme, "http" | "https"),
        Transport::Ws => matches!(scheme, "ws" | "wss"),
        Transport::Tcp => matches!(scheme, "tcp" | "tls"),
    };
    if !fits {
        return Err(format!(
            "--transport {transport:?} does not fit `{scheme}://` (http/sse: http(s)://, ws: ws(s)://, tcp: tcp:// or tls://)"
        ));
    }
    Ok(url.to_owned())
}

/// Headers, bearer token, OAuth and proxy use for the link.
fn access(args: &ConnectArgs) -> Result<Access, String> {
    let mut headers = Vec::new();
    for h in &args.headers {
        headers.push(parse_header(h).map_err(|e| format!("--header: {e}"))?);
    }
    if let Some(file) = &args.header_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--header-file {}: {}", file.display(), e.kind()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            headers.push(
                parse_header(line).map_err(|e| format!("--header-file {}: {e}", file.display()))?,
            );
        }
    }
    if let Some(name) = &args.bearer_env {
        let token = crate::secret::process_env(name)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| format!("--bearer-env {name}: the variable is not set"))?;
        headers.push(("Authorization".into(), format!("Bearer {}", token.trim())));
    }
    let credentials = match args.oauth {
        OAuthMode::Off => None,
        OAuthMode::Auto if !args.url.starts_with("http") => None,
        OAuthMode::Auto => match oauth_client(args) {
            Ok(c) => Some(c),
            Err(e) if oauth_configured(args) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "OAuth unavailable; a 401 from the server will be an error");
                None
            }
        },
    };
    Ok(Access {
        headers,
        credentials,
        proxy_from_env: true,
        legacy_sse: args.transport == Transport::Sse,
        era_bridge: args.protocol == Protocol::Auto,
    })
}

fn oauth_client(args: &ConnectArgs) -> Result<CredentialSource, String> {
    let server_url = reqwest::Url::parse(&args.url).map_err(|e| format!("{}: {e}", args.url))?;
    let client_secret = match &args.oauth_client_secret_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("--oauth-client-secret-file {}: {}", f.display(), e.kind()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let mut cfg = oauth::OAuthConfig::new(server_url);
    if let Some(dir) = &args.oauth_dir {
        cfg.dir = dir.clone();
    }
    cfg.client_id = args.oauth_client_id.clone();
    cfg.client_secret = client_secret;
    cfg.client_metadata_url = args.oauth_client_metadata_url.clone();
    cfg.scope = args.oauth_scope.clone();
    cfg.headless = args.oauth_headless;
    cfg.callback_port = args.oauth_callback_port;
    cfg.send_resource = !args.oauth_no_resource;
    cfg.allow_private = args.allow_private_discovery;
    let client = oauth::OAuthClient::new(cfg).map_err(|e| format!("oauth: {e}"))?;
    Ok(CredentialSource(client))
}

/// Whether any OAuth flag was given (then an OAuth setup problem is an error, not a warning).
fn oauth_configured(args: &ConnectArgs) -> bool {
    args.oauth_client_id.is_some()
        || args.oauth_client_metadata_url.is_some()
        || args.oauth_scope.is_some()
        || args.oauth_dir.is_some()
        || args.oauth_headless
}

/// `Name: value` → (name, value), both checked as HTTP header parts.
fn parse_header(h: &str) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_owned())?;
    let (name, value) = (name.trim(), value.trim());
    axum::http::HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a header name"))?;
    axum::http::HeaderValue::try_from(value)
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_and_trimmed() {
        assert_eq!(
            parse_header("X-Key:  abc "),
            Ok(("X-Key".into(), "abc".into()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("X: a\u{7f}b").is_err());
    }

    #[test]
    fn transport_must_fit_the_scheme() {
        assert!(normalized_url("ws://h/ws", Transport::Http).is_err());
        assert!(normalized_url("https://h/mcp", Transport::Sse).is_ok());
        assert!(normalized_url("tls://h:1", Transport::Tcp).is_ok());
    }

    #[test]
    fn tool_filter_hides_denied_tools() {
        use crate::policy::rbac::Names;
        let rbac = tool_filter(&["read_*".into()], &["read_secret".into()]).unwrap();
        let roles = [BRIDGE_ROLE.to_owned()];
        assert!(rbac
            .decide(&roles, Names::Plain, "tools/call", Some("read_file"), None)
            .is_allowed());
        assert!(!rbac
            .decide(
                &roles,
                Names::Plain,
                "tools/call",
                Some("read_secret"),
                None
            )
            .is_allowed());
        assert!(!rbac
            .decide(&roles, Names::Plain, "tools/call", Some("write_file"), None)
            .is_allowed());
        assert!(rbac
            .decide(&roles, Names::Plain, "resources/list", None, None)
            .is_allowed());
    }
}
