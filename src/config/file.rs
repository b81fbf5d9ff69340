//! The `[serve]` section of the config file: every `serve` flag, as a TOML key (the flag's
//! name with `_` for `-`), so the command line is a shortcut for the file and both go through
//! one validation. `command = ["npx", "-y", "server"]` is the wrapped command; arrays repeat a
//! flag; `true` sets a switch. Flags given on the command line win over the file.
//!
//! The file's other sections (`[auth]`, `[roles]`, `[audit]`, `[limits]`, `[network]`) are
//! read by `config/security.rs`, `[servers]`, `[endpoints]` and `[aggregate]` by
//! `config/file/servers.rs`; the flags themselves are `config/args.rs`. `check-config` and
//! `schema` live here too.

pub(crate) mod servers;

use std::ffi::OsString;
use std::path::Path;

use clap::{Args, Parser};
use serde_json::{json, Map, Value};

use crate::config::args::{subcommand_at, ServeArgs, ServeLine};

/// `argv` with the `[serve]` section of a `--config FILE` (for `serve` and `stdio`) spliced in
/// right after the subcommand, so that later command-line flags override it. Every key-level
/// problem of the file is returned at once.
pub(crate) fn expand_argv(argv: Vec<OsString>) -> Result<Vec<OsString>, Vec<String>> {
    let Some(sub) = subcommand_at(&argv) else {
        return Ok(argv);
    };
    let end = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let config = argv[sub..end].iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_owned());
        }
        (a == "--config")
            .then(|| {
                argv.get(sub + i + 1)
                    .and_then(|v| v.to_str())
                    .map(str::to_owned)
            })
            .flatten()
    });
    let Some(config) = config else {
        return Ok(argv);
    };
    let errors = key_errors(Path::new(&config));
    if !errors.is_empty() {
        return Err(errors);
    }
    let (flags, command) = serve_args(Path::new(&config)).map_err(|e| vec![e])?;
    let mut out: Vec<OsString> = argv[..=sub].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(argv[sub + 1..end].iter().cloned());
    match (end < argv.len(), command) {
        (true, _) => out.extend(argv[end..].iter().cloned()),
        (false, Some(cmd)) => {
            out.push("--".into());
            out.extend(cmd.into_iter().map(OsString::from));
        }
        (false, None) => {}
    }
    Ok(out)
}

/// The `[serve]` table as flags, and its `command`.
fn serve_args(path: &Path) -> Result<(Vec<String>, Option<Vec<String>>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {}: {}", path.display(), e.kind()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let Some(serve) = table.get("serve") else {
        return Ok((Vec::new(), None));
    };
    let serve = serve
        .as_table()
        .ok_or_else(|| format!("--config {}: [serve] must be a table", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let (flags, command, errors) = table_flags("serve", serve, base, &PATH_KEYS);
    if errors.is_empty() {
        Ok((flags, command))
    } else {
        Err(format!(
            "--config {}: {}",
            path.display(),
            errors.join("; ")
        ))
    }
}

/// A table of flag keys (`[serve]`, `[servers.NAME]`) as flags, its `command`, and the
/// problems of its values (with `section.key` paths). Keys in `path_keys` name files,
/// relative to `base` (the config file's directory).
pub(crate) fn table_flags(
    section: &str,
    table: &toml::Table,
    base: &Path,
    path_keys: &[&str],
) -> (Vec<String>, Option<Vec<String>>, Vec<String>) {
    let mut flags = Vec::new();
    let mut command = None;
    let mut errors = Vec::new();
    for (key, value) in table {
        // File paths in the file are relative to the file (as in its other sections).
        if path_keys.contains(&key.as_str()) {
            if let Some(p) = value.as_str().filter(|p| *p != "-") {
                let full = base.join(p);
                flags.extend([
                    format!("--{}", key.replace('_', "-")),
                    full.to_string_lossy().into_owned(),
                ]);
                continue;
            }
        }
        if key == "command" {
            match value
                .as_array()
                .map(|a| a.iter().map(scalar).collect::<Option<Vec<_>>>())
            {
                Some(Some(c)) if !c.is_empty() => command = Some(c),
                _ => errors.push(format!(
                    "{section}.command: expected a non-empty array of strings"
                )),
            }
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            toml::Value::Boolean(true) => flags.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for item in items {
                    match scalar(item) {
                        Some(v) => flags.extend([flag.clone(), v]),
                        None => {
                            errors.push(format!("{section}.{key}: expected strings or numbers"))
                        }
                    }
                }
            }
            // `KEY=VALUE` pairs (`env = { A = "1" }`).
            toml::Value::Table(t) => {
                for (k, v) in t {
                    match scalar(v) {
                        Some(v) => flags.extend([flag.clone(), format!("{k}={v}")]),
                        None => errors.push(format!("{section}.{key}.{k}: expected a string")),
                    }
                }
            }
            v => match scalar(v) {
                Some(v) => flags.extend([flag, v]),
                None => errors.push(format!("{section}.{key}: unsupported value")),
            },
        }
    }
    (flags, command, errors)
}

/// `[serve]` keys that name files: relative to the config file.
const PATH_KEYS: [&str; 8] = [
    "roles",
    "tls_cert",
    "tls_key",
    "audit_log",
    "upstream_ca",
    "upstream_bearer_file",
    "upstream_oauth_client_secret_file",
    "cwd",
];

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The configuration `serve --config FILE` would run with (every problem, or the config).
pub(crate) fn serve_config(file: &Path) -> Result<crate::config::ServeConfig, Vec<String>> {
    let argv = ["mcp-relay", "serve", "--config"]
        .map(OsString::from)
        .into_iter()
        .chain([file.as_os_str().to_owned()])
        .collect();
    crate::config::load(argv, &crate::secret::process_env)
}

/// `check-config FILE`: the startup path of `serve --config FILE`, without binding; 0 or 64.
pub(crate) fn check(file: &Path) -> u8 {
    match serve_config(file) {
        Ok(cfg) => {
            println!("{}: ok{}", file.display(), summary(&cfg));
            if let Some(o) = &cfg.oauth_server {
                println!("{}", oauth_summary(o));
            }
            if let Some(c) = &cfg.cluster {
                println!("{}", fleet_summary(c.config()));
            }
            0
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{}: {e}", file.display());
            }
            64
        }
    }
}

/// ` (2 servers: github, fs; 1 endpoint: support)` for a multi-server config, else nothing.
fn summary(cfg: &crate::config::ServeConfig) -> String {
    if cfg.servers.is_empty() {
        return String::new();
    }
    let count = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let servers: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    let mut out = format!(
        " ({}: {}",
        count(servers.len(), "server"),
        servers.join(", ")
    );
    if !cfg.endpoints.is_empty() {
        let eps: Vec<&str> = cfg.endpoints.iter().map(|e| e.name.as_str()).collect();
        out += &format!("; {}: {}", count(eps.len(), "endpoint"), eps.join(", "));
    }
    out + ")"
}

/// `authorization server: on (issuer …, state …, N local users, upstream issuer …)`.
fn oauth_summary(o: &crate::config::oauth_server::OAuthServerConfig) -> String {
    use crate::config::oauth_server::Storage;
    let state = match &o.storage {
        Storage::Sqlite(dir) => format!("SQLite in {}", dir.display()),
        // The URL may hold a password: only its kind is shown.
        Storage::Postgres(_) => "PostgreSQL".to_owned(),
    };
    let users = o.users.len();
    let mut out = format!(
        "authorization server: on (issuer {}, state {state}, {users} local user{}",
        o.issuer,
        if users == 1 { "" } else { "s" }
    );
    if let Some(u) = &o.upstream {
        out += &format!(", upstream issuer {}", u.issuer);
    }
    out + ")"
}

/// `fleet: node r0, 2 peers (r1, r2), drain window 2m, limits shared in the store (…)`. The
/// store's URL is left out: it may hold a password.
pub(crate) fn fleet_summary(c: &crate::cluster::config::ClusterConfig) -> String {
    use crate::cluster::config::OnStoreError;
    let names: Vec<&str> = c.peers.keys().map(String::as_str).collect();
    let mut peers = match names.len() {
        0 => "no listed peers".to_owned(),
        1 => format!("1 peer ({})", names[0]),
        n => format!("{n} peers ({})", names.join(", ")),
    };
    if let Some(t) = &c.peer_url {
        peers += &format!(", others at {t}");
    }
    let limits = match &c.store {
        None => "limits per replica (no [cluster.store])".to_owned(),
        Some(s) => format!(
            "limits shared in the store (prefix {}, on error {}, {} expected node{}, lease {})",
            s.key_prefix,
            match s.on_error {
                OnStoreError::Local => "local",
                OnStoreError::Open => "open",
                OnStoreError::Closed => "closed",
            },
            s.expected_nodes,
            if s.expected_nodes == 1 { "" } else { "s" },
            humantime::format_duration(s.lease)
        ),
    };
    format!(
        "fleet: node {}, {peers}, drain window {}, {limits}",
        c.node,
        humantime::format_duration(c.drain_window)
    )
}

/// The problems clap finds in `flags` (a table's, from [`table_flags`]), each flag checked on
/// its own so that all are reported, as `section.key: why`.
pub(crate) fn flag_errors(section: &str, flags: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        // One flag with its value (if the next item is not a flag).
        let mut one = vec![flags[i].clone()];
        if flags.get(i + 1).is_some_and(|v| !v.starts_with("--")) {
            one.push(flags[i + 1].clone());
            i += 1;
        }
        i += 1;
        let argv = std::iter::once("mcp-relay serve".to_owned()).chain(one.iter().cloned());
        // Alone, a key may miss its companion (`tls_cert` without `tls_key`): the whole file
        // is checked together afterwards.
        let parsed = ServeLine::try_parse_from(argv);
        if let Some(e) = parsed
            .err()
            .filter(|e| e.kind() != clap::error::ErrorKind::MissingRequiredArgument)
        {
            let key = one[0].trim_start_matches("--").replace('-', "_");
            let why = e.to_string();
            let first = why
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            errors.push(format!("{section}.{key}: {first}"));
        }
    }
    errors
}

/// Every problem of the file that can be found key by key, with its path: unknown or
/// malformed `[serve]` keys (each checked on its own, so all are reported) and the other
/// sections' shape.
pub(crate) fn key_errors(file: &Path) -> Vec<String> {
    let (flags, command) = match serve_args(file) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let _ = command;
    let mut errors = flag_errors("serve", &flags);
    if let Ok(text) = std::fs::read_to_string(file) {
        match toml::from_str::<crate::config::security::FileConfig>(&text) {
            Err(e) => errors.push(e.to_string().trim().replace('\n', " ")),
            // The full check will not run past these problems: say what is wrong with the
            // audit log now too, so a second run does not find more.
            Ok(parsed) if !errors.is_empty() => {
                if let Some(mut audit) = parsed.audit {
                    let base = file.parent().unwrap_or(Path::new(""));
                    errors.extend(crate::config::security::resolve_audit(
                        &mut audit,
                        base,
                        "audit.file",
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    // The full check will not run past these problems either: the server tables' own too.
    // Alone, those are reported with the servers' other problems (`config/validate`).
    if !errors.is_empty() {
        errors.extend(servers::key_errors(file));
    }
    errors
}

/// `mcp-relay schema`: a JSON Schema of the config file. `[serve]` is generated from the
/// flags themselves (so it cannot drift); the other sections are described by their keys.
pub(crate) fn schema() -> Value {
    let sub = ServeArgs::augment_args(clap::Command::new("serve"));
    let mut serve = Map::new();
    for arg in sub.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version" | "config") {
            continue;
        }
        // The key is the flag's long name with `_` (what `[serve]` accepts).
        let key = match arg.get_long() {
            Some(long) => long.replace('-', "_"),
            None => id.to_owned(),
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let takes = arg.get_action().takes_values();
        let many = matches!(arg.get_action(), clap::ArgAction::Append) || id == "command";
        let ty = match (takes, many) {
            (false, _) => json!({"type": "boolean"}),
            (true, true) => json!({"type": "array", "items": {"type": ["string", "number"]}}),
            (true, false) => json!({"type": ["string", "number", "boolean"]}),
        };
        let mut prop = ty.as_object().cloned().unwrap_or_default();
        prop.insert("description".into(), help.into());
        if let Some(d) = arg.get_default_values().first() {
            prop.insert("default".into(), d.to_string_lossy().into_owned().into());
        }
        serve.insert(key, Value::Object(prop));
    }
    let multi = servers::schema(&serve);
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mcp-relay configuration (TOML)",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "serve": {"type": "object", "additionalProperties": false, "properties": serve,
                "description": "Every `serve` flag as a key (`-` written `_`); `command` is the wrapped server"},
            "auth": {"type": "object", "description": "resource, authorization_servers, scopes_supported, required_scopes, [[auth.api_keys]], [[auth.jwt]], [auth.mtls] (docs/security.md)"},
            "roles": {"type": "object", "properties": {"file": {"type": "string"}}, "additionalProperties": false},
            "audit": {"type": "object", "properties": {"file": {"type": "string"}, "max_size": {"type": "string"}, "keep": {"type": "integer", "minimum": 0, "maximum": crate::telemetry::audit::MAX_KEEP}, "allow_fields": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": false},
            "limits": {"type": "object", "additionalProperties": false,
                "description": "rate limits, concurrency caps and overload shedding (docs/traffic.md)",
                "properties": {
                    "per_principal": {"type": "string"}, "per_principal_burst": {"type": "integer"},
                    "per_ip": {"type": "string"}, "per_ip_burst": {"type": "integer"},
                    "per_tool": {"type": "string"}, "per_tool_burst": {"type": "integer"},
                    "global": {"type": "string"}, "global_burst": {"type": "integer"},
                    "max_concurrent_per_principal": {"type": "integer", "minimum": 1},
                    "memory_budget": {"type": "string"},
                    "memory_soft_percent": {"type": "integer", "minimum": 1, "maximum": 100},
                    "memory_hard_percent": {"type": "integer", "minimum": 1, "maximum": 100}}},
            "network": {"type": "object", "description": "IP allow/deny lists, trusted proxies, CORS origins (docs/traffic.md)"}
        }
    });
    for (key, value) in multi {
        schema["properties"][key] = value;
    }
    schema["properties"]["oauth_server"] = oauth_server_schema();
    schema["properties"]["cluster"] = cluster_schema();
    schema
}

/// `[cluster]` and `[cluster.store]`: the keys of `cluster/config.rs`'s `ClusterFile` and
/// `StoreFile`, with their defaults (docs/fleet.md).
fn cluster_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    let store = json!({"type": "object", "additionalProperties": false, "required": ["url"],
        "description": "the shared store of fleet-wide rate limits and concurrency leases (Redis or Valkey); without it limits are per replica",
        "properties": {
            "url": s("`redis://`, `rediss://` or `redis+sentinel://` URL, or `env:NAME` / `file:PATH`"),
            "key_prefix": s("prefix of every key; default `mcpr`"),
            "key_secret": s("`env:NAME` or `file:PATH`: the key names are hashed with it (principal names and addresses are never stored in clear)"),
            "timeout": s("per-operation timeout; default `50ms`"),
            "on_store_error": {"type": "string", "enum": ["local", "open", "closed"], "default": "local",
                "description": "while the store is unreachable: this replica's limits divided by expected_nodes, no shared limits, or 503"},
            "expected_nodes": {"type": "integer", "minimum": 1, "default": 1},
            "lease": s("how long a concurrency slot lives without renewal (a dead replica's slots come back after it); default `30s`"),
            "clock": {"type": "string", "enum": ["server", "client"], "default": "server",
                "description": "the store's clock (Redis TIME) or this replica's, for services that refuse TIME in scripts"}}});
    json!({"type": "object", "additionalProperties": false,
        "description": "this relay as one replica of a fleet behind a load balancer, off unless `node` is set (docs/fleet.md)",
        "properties": {
            "node": s("this replica's name, a DNS label (`r0`), or `env:NAME` (Kubernetes: the pod name)"),
            "peers": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "every replica's base URL by node name (this one's may be listed too)"},
            "peer_url": s("base URL with `{node}` for replicas not in `peers` (`http://{node}.mcp-relay-peers:8080`)"),
            "forward_connect_timeout": s("connecting to a peer longer than this gives 503 + Retry-After; default `1s`"),
            "forward_timeout": s("a peer that has not started answering by then gives 503; default: the request timeout"),
            "drain_window": s("on SIGTERM, how long existing sessions are still served while /ready says 503; default `120s`, `0s` for none"),
            "store": store}})
}

/// `[oauth_server]`: the keys of `config/oauth_server.rs`'s `OAuthServerFile`, with their
/// defaults (docs/oauth-server.md).
fn oauth_server_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    let strings = |d: &str| json!({"type": "array", "items": {"type": "string"}, "description": d});
    let user = json!({"type": "object", "additionalProperties": false, "required": ["name", "password_hash"],
        "properties": {
            "name": s("the user name (`sub` of its tokens)"),
            "password_hash": s("Argon2id PHC string, from `mcp-relay token password-hash`"),
            "roles": strings("roles the user's tokens carry"),
            "disabled": {"type": "boolean", "default": false}}});
    let upstream = json!({"type": "object", "additionalProperties": false, "required": ["issuer", "client_id"],
        "description": "the company identity provider people log in with (OpenID Connect)",
        "properties": {
            "issuer": s("the provider's issuer URL (discovery at /.well-known/openid-configuration)"),
            "client_id": s("the relay's client id at the provider"),
            "client_secret": s("`env:NAME` or `file:PATH`; absent for a public client"),
            "scopes": strings("default [\"openid\", \"email\", \"profile\"]"),
            "name": s("the login button's label; default `Single sign-on`"),
            "principal_claim": s("the claim naming the user; default `sub`"),
            "groups_claim": s("the claim holding groups; default `groups`"),
            "roles": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}, "description": "group -> roles"},
            "default_roles": strings("roles every upstream user gets")}});
    json!({"type": "object", "additionalProperties": false,
        "description": "the built-in OAuth 2.1 authorization server, off unless present (docs/oauth-server.md)",
        "properties": {
            "issuer": s("the public base URL (https, or http on loopback; no path): the `iss` of every token"),
            "state_dir": s("directory of the SQLite state `oauth.db`; default `mcp-relay-state` beside the config file"),
            "database_url": s("`postgres://…` (or `env:NAME`, `file:PATH`): the state in PostgreSQL instead"),
            "access_token_ttl": s("default `10m`, at most `24h`"),
            "refresh_token_ttl": s("default `30d`"),
            "login_session_ttl": s("default `12h`"),
            "key_rotation": s("how often a new signing key is made; default `30d`"),
            "registration": {"type": "string", "enum": ["open", "allow-list", "off"], "default": "open"},
            "redirect_uris": strings("redirect-URI patterns (globs) a registration must match under `allow-list`"),
            "client_metadata_documents": {"type": "boolean", "default": true, "description": "an https `client_id` names a client ID metadata document"},
            "scopes": strings("scopes offered; default [\"mcp\"]"),
            "name": s("shown on the pages; default `mcp-relay`"),
            "logo": s("a .png, .svg, .jpg or .webp file shown on the pages"),
            "login_attempts": {"type": "integer", "minimum": 1, "default": 5},
            "lockout": s("how long a lockout lasts; default `15m`"),
            "registrations_per_hour": {"type": "integer", "minimum": 1, "default": 20},
            "users": {"type": "array", "items": user, "description": "local users ([[oauth_server.users]])"},
            "upstream": upstream}})
}

#[cfg(test)]
mod tests;
