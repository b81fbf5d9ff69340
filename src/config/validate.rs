//! Validation of the `serve` configuration: the flags ([`ServeArgs`], with the `[serve]`
//! section of a config file already spliced in) and an environment lookup in, a
//! [`ServeConfig`] or every problem at once out.
//!
//! One small function per concern: the server (a command or a remote upstream), the endpoint
//! paths, the admin and trace exporters, the session and request limits, the identity rules,
//! TLS, and the security sections with their cross-checks; [`serve`] runs them all, then
//! `validate/assemble.rs` puts the pieces together. The environment is read only through the
//! lookup passed in (tests pass a map). Not here: parsing the command line and the file
//! (`config/args.rs`, `config/file.rs`) and reading the security sections themselves
//! (`config/security.rs`).

mod assemble;
mod servers;
#[cfg(test)]
mod tests;

pub(crate) use servers::load;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::args::ServeArgs;
use crate::config::security::{self, Security, Shorthands};
use crate::config::{self, ServeConfig, SessionMode};
use crate::upstream::remote::RemoteSpec;

/// Reads one environment variable: [`crate::secret::process_env`] in production, a map in
/// tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the relay serves: a command resolved on `PATH`, or a remote server.
enum Server {
    Command(PathBuf),
    Remote(RemoteSpec),
}

/// Validates everything; all problems are returned together.
pub(crate) fn serve(args: ServeArgs, env: Env<'_>) -> Result<ServeConfig, Vec<String>> {
    serve_with(args, env, true)
}

/// [`serve`]; without `need_server`, no server is a placeholder child (the named servers of
/// a multi-server relay each have their own).
fn serve_with(
    mut args: ServeArgs,
    env: Env<'_>,
    need_server: bool,
) -> Result<ServeConfig, Vec<String>> {
    let mut errors = Vec::new();
    let server = server(&mut args, env, need_server, &mut errors);
    paths(&args, &mut errors);
    let admin = config::admin::AdminConfig::build(
        args.admin_listen,
        args.admin_token_env.as_deref(),
        &args.allowed_hosts,
        env,
    )
    .map_err(|e| errors.extend(e))
    .ok()
    .flatten()
    .map(|mut a| {
        a.console = !args.no_console;
        a
    });
    let otel = crate::telemetry::otel::OtelConfig::build(args.otlp_endpoint.as_deref(), env)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let origin = config::origin_guard(&args.listen, &args.allowed_hosts, &args.allowed_origins)
        .map_err(|e| errors.push(e))
        .ok();
    limits(&args, &mut errors);
    spares(&mut args, server.as_ref(), &mut errors);
    identity(&args, &mut errors);
    let tls = tls(&mut args, &mut errors);
    let security = security(&mut args, tls.is_some(), env, &mut errors);
    let (Some(server), Some(mut origin), Some(security), true) =
        (server, origin, security, errors.is_empty())
    else {
        return Err(errors);
    };
    // One list of allowed origins: the CORS origins are allowed too.
    origin
        .origins
        .extend(security.cors.origins().iter().cloned());
    Ok(assemble::serve_config(
        args,
        assemble::Parts {
            server,
            origin,
            security,
            tls,
            admin,
            otel,
        },
        env,
    ))
}

/// The server to put behind the relay: `--mcp-servers` applied, then the command (found on
/// `PATH`, with its `--cwd`) or the remote upstream with its credentials.
fn server(
    args: &mut ServeArgs,
    env: Env<'_>,
    need_server: bool,
    errors: &mut Vec<String>,
) -> Option<Server> {
    let (entry_access, entry_failed) = apply_mcp_servers(args, env, errors);
    let remote = remote(args, entry_access, entry_failed, env, errors);
    if let (Some(dir), None) = (&args.cwd, &args.upstream) {
        if let Err(e) = config::check_cwd(dir) {
            errors.push(e);
        }
    }
    let program = match (args.command.first(), &args.upstream) {
        (Some(p), None) => config::resolve_program(p, env("PATH").as_deref())
            .map_err(|e| errors.push(e))
            .ok(),
        // The --mcp-servers error already says what is missing.
        (None, None) if entry_failed => None,
        (None, None) if !need_server => return Some(Server::Command(PathBuf::new())),
        (None, None) => {
            errors.push(
                "no server: give the command after `--`, `--upstream URL`, or `command` in the config's [serve]".into(),
            );
            None
        }
        _ => None,
    };
    match (program, remote) {
        (Some(program), None) => Some(Server::Command(program)),
        (None, Some(remote)) => Some(Server::Remote(remote)),
        _ => None,
    }
}

/// Headers and the SSE choice of a `url` entry of `--mcp-servers`.
type EntryAccess = (Vec<(String, String)>, bool);

/// Takes the command (or URL) from the `--mcp-servers` entry, if one is named. Returns the
/// entry's remote access settings and whether reading the entry failed.
fn apply_mcp_servers(
    args: &mut ServeArgs,
    env: Env<'_>,
    errors: &mut Vec<String>,
) -> (Option<EntryAccess>, bool) {
    use config::mcp_servers::McpServer;
    let Some(file) = &args.mcp_servers else {
        return (None, false);
    };
    match config::mcp_servers::read(file, args.server.as_deref(), env) {
        Ok(McpServer::Command { argv, env, cwd }) => {
            args.command = argv;
            args.env.extend(env);
            args.cwd = args.cwd.take().or(cwd);
            (None, false)
        }
        Ok(McpServer::Url {
            url,
            headers,
            legacy_sse,
        }) => {
            args.upstream = Some(url);
            (Some((headers, legacy_sse)), false)
        }
        Err(e) => {
            errors.extend(e);
            (None, true)
        }
    }
}

/// The remote upstream (`--upstream`), with its credentials (`--upstream-*` flags and the
/// `--mcp-servers` entry's headers).
fn remote(
    args: &ServeArgs,
    entry_access: Option<EntryAccess>,
    entry_failed: bool,
    env: Env<'_>,
    errors: &mut Vec<String>,
) -> Option<RemoteSpec> {
    let max_line = usize::try_from(args.max_line).unwrap_or(usize::MAX);
    let mut remote = match &args.upstream {
        Some(url) => RemoteSpec::parse(url, max_line, args.upstream_ca.as_deref())
            .map_err(|e| errors.push(e))
            .ok(),
        None => None,
    };
    let access =
        crate::upstream::remote::upstream_access::build(&args.upstream_auth, entry_access, env);
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
    remote
}

/// `--path` and `--ws-path`: absolute, distinct, and not one of the relay's own paths.
fn paths(args: &ServeArgs, errors: &mut Vec<String>) {
    const RESERVED: [&str; 4] = ["/health", "/ready", "/sse", "/message"];
    if !args.path.starts_with('/') {
        errors.push(format!("--path `{}` must start with /", args.path));
    }
    if !args.ws_path.starts_with('/') || args.ws_path == args.path {
        errors.push(format!(
            "--ws-path `{}` must start with / and differ from --path",
            args.ws_path
        ));
    }
    for (flag, p) in [("--path", &args.path), ("--ws-path", &args.ws_path)] {
        if RESERVED.contains(&p.as_str()) {
            errors.push(format!(
                "{flag} `{p}` is taken by the relay (/health, /ready, /sse, /message)"
            ));
        }
    }
}

/// Most children `--spare-children` may keep started ahead of their sessions.
const MAX_SPARE_CHILDREN: usize = 64;

/// `--spare-children`: only where a session starts a child of its own from a command. A named
/// server that only inherits the relay's value (`[serve]`, the command line) and cannot use it
/// has none, as `children` is ignored outside shared mode.
fn spares(args: &mut ServeArgs, server: Option<&Server>, errors: &mut Vec<String>) {
    if args.spare_children == 0 {
        return;
    }
    if args.spare_children > MAX_SPARE_CHILDREN {
        errors.push(format!(
            "--spare-children {}: at most {MAX_SPARE_CHILDREN}",
            args.spare_children
        ));
    }
    let per_session =
        args.session_mode == SessionMode::PerSession && args.child_era != config::ChildEra::Modern;
    if per_session && !matches!(server, Some(Server::Remote(_))) {
        return;
    }
    if args.spare_children_inherited {
        args.spare_children = 0;
        return;
    }
    errors.push(
        "--spare-children starts children ahead of sessions: it needs --session-mode \
         per-session and a command to run (not --upstream, not --child-era modern)"
            .into(),
    );
}

/// Caps that must be positive and timeouts that must be ordered.
fn limits(args: &ServeArgs, errors: &mut Vec<String>) {
    if args.max_sessions == 0 || args.max_inflight == 0 || args.replay_events == 0 {
        errors.push("--max-sessions, --max-inflight and --replay-events must be > 0".into());
    }
    if args.children == 0 || args.max_inflight_per_child == 0 {
        errors.push("--children and --max-inflight-per-child must be > 0".into());
    }
    if args.session_idle_timeout.is_zero() || args.session_ttl.is_zero() {
        errors.push("--session-idle-timeout and --session-ttl must be > 0".into());
    }
    if args.request_timeout > args.request_timeout_max {
        errors.push("--request-timeout must not exceed --request-timeout-max".into());
    }
    if args.input_timeout.is_zero() {
        errors.push("--input-timeout must be > 0".into());
    }
    if args.child_era == config::ChildEra::Modern
        && args.session_mode == config::SessionMode::PerIdentity
    {
        errors.push(
            "--child-era modern does not go with --session-mode per-identity: a modern server's \
             pool would mix identities, and its legacy sessions need the relay's pool"
                .into(),
        );
    }
    for (method, t) in &args.method_timeout {
        if *t > args.request_timeout_max {
            // Allowed (the hard maximum follows), but worth saying.
            warn_long(method, *t);
        }
    }
}

fn warn_long(method: &str, t: Duration) {
    tracing::info!(method, timeout = ?t, "method timeout longer than --request-timeout-max: its hard maximum follows it");
}

/// `--identity-header` is a header name, and no `{identity}` is written to a variable that
/// could change what the child runs.
fn identity(args: &ServeArgs, errors: &mut Vec<String>) {
    if let Some(h) = &args.identity_header {
        if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            errors.push(format!("--identity-header `{h}` is not a header name"));
        }
    }
    for (k, v) in &args.env {
        if v.contains(config::IDENTITY_PLACEHOLDER) && config::identity_env_forbidden(k) {
            errors.push(format!(
                "--env {k}: an identity may not be written to {k} (LD_*, DYLD_*, PYTHON*, NODE_OPTIONS, PATH)"
            ));
        }
    }
}

/// `--tls-cert` and `--tls-key`: both or neither, and loadable now.
fn tls(args: &mut ServeArgs, errors: &mut Vec<String>) -> Option<crate::tls::TlsFiles> {
    let tls = match (args.tls_cert.take(), args.tls_key.take()) {
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
    tls
}

/// The security sections of `--config` with their flag shorthands, then the rules that join
/// them to the listener: no open non-loopback bind, an OAuth audience that can be named,
/// mTLS only over TLS, roles only with authentication.
fn security(
    args: &mut ServeArgs,
    has_tls: bool,
    env: Env<'_>,
    errors: &mut Vec<String>,
) -> Option<Security> {
    let scheme = if has_tls { "https" } else { "http" };
    let resource_given =
        args.resource.is_some() || args.config.is_some() || args.oauth_issuer.is_some();
    let shorthands = Shorthands {
        config: args.config.take(),
        resource: args.resource.take(),
        jwt_secret: args.jwt_secret.take(),
        jwks_url: args.jwks_url.take(),
        jwt_issuer: std::mem::take(&mut args.jwt_issuer),
        jwt_algorithms: std::mem::take(&mut args.jwt_algorithms),
        roles: args.roles.take(),
        audit_log: args.audit_log.take(),
        identity_header: args
            .identity_header
            .as_ref()
            .map(|h| h.to_ascii_lowercase()),
        cors_origins: args.cors_origins.clone(),
        allow_ips: args.allow_ips.clone(),
        deny_ips: args.deny_ips.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        memory_budget: args.memory_budget.clone(),
        loopback: args.listen.ip().is_loopback(),
        oauth: crate::config::oauth_server::Flags {
            issuer: args.oauth_issuer.take(),
            state_dir: args.oauth_state_dir.take(),
            database_url: args.oauth_database_url.take(),
        },
        cluster: crate::cluster::config::Flags {
            node: args.node.take(),
            peers: std::mem::take(&mut args.peers),
            peer_url: args.peer_url.take(),
            store: args.cluster_store.take(),
            drain_window: args.drain_window.take(),
        },
    };
    let default_resource = format!("{scheme}://{}{}", args.listen, args.path);
    let sec = security::build(shorthands, default_resource, env, errors)?;
    let listen = args.listen;
    if !sec.auth.is_enabled() && !listen.ip().is_loopback() && !args.insecure_no_auth {
        errors.push(format!(
            "--listen {listen} is not loopback and no authentication is configured: add API keys, JWT or mTLS (--config, --jwt-secret), or say --insecure-no-auth"
        ));
    }
    let guessable = listen.port() != 0 && !listen.ip().is_unspecified();
    if sec.auth.is_oauth() && !resource_given && !guessable {
        errors.push(format!(
            "--listen {listen}: the relay's URL cannot be derived from it; set --resource (or auth.resource) to the URL clients use, which tokens must name as audience"
        ));
    }
    if sec.mtls.is_some() && !has_tls {
        errors.push("auth.mtls needs --tls-cert and --tls-key".into());
    }
    if args.session_mode == SessionMode::PerIdentity
        && args.identity_header.is_none()
        && !sec.auth.is_enabled()
    {
        errors.push("--session-mode per-identity needs --identity-header or authentication".into());
    }
    if sec.rbac.is_some() && !sec.auth.is_enabled() {
        errors.push("--roles needs authentication (roles come from credentials)".into());
    }
    Some(sec)
}
