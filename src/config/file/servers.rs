//! The `[servers.NAME]`, `[endpoints.NAME]` and `[aggregate]` tables of the config file, read
//! key by key: each server table becomes `serve` flags (the per-server keys of `[serve]`,
//! same names and value forms, file paths relative to the file), endpoints and the aggregate
//! become their shapes (`config/servers.rs`). Every problem is collected, with its path.
//!
//! Not here: whether a server's configuration as a whole is valid, and whether an endpoint's
//! globs name configured servers (`config/validate/servers.rs`, which runs each server through
//! the single-server validation).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::config::args::ServeArgs;
use crate::config::servers::{name_is_valid, AggregateSpec, EndpointSpec, FailureMode, Prefix};

/// The keys of `[serve]` a `[servers.NAME]` table takes: what one server is (its command or
/// upstream with credentials and TLS, or an entry of a desktop server file), its child and
/// session settings, timeouts and caps, and a TCP front of its own. The others are
/// listener-wide and belong in `[serve]`.
pub(crate) const PER_SERVER: [&str; 38] = [
    "command",
    "upstream",
    "upstream_ca",
    "upstream_header",
    "upstream_bearer_env",
    "upstream_bearer_file",
    "upstream_oauth_token_url",
    "upstream_oauth_client_id",
    "upstream_oauth_client_secret_env",
    "upstream_oauth_client_secret_file",
    "upstream_oauth_scope",
    "upstream_oauth_resource",
    "upstream_oauth_audience",
    "mcp_servers",
    "server",
    "env",
    "pass_env",
    "cwd",
    "session_mode",
    "child_era",
    "era",
    "input_timeout",
    "cache_ttl",
    "cache_scope",
    "children",
    "spare_children",
    "request_timeout",
    "request_timeout_max",
    "method_timeout",
    "max_inflight",
    "max_inflight_per_child",
    "max_line",
    "child_stop_timeout",
    "max_sessions",
    "max_sessions_per_principal",
    "session_ttl",
    "session_idle_timeout",
    "tcp_listen",
];

/// Keys of a server table that name files (relative to the config file).
const PATH_KEYS: [&str; 5] = [
    "cwd",
    "upstream_ca",
    "upstream_bearer_file",
    "upstream_oauth_client_secret_file",
    "mcp_servers",
];

/// One `[servers.NAME]` table as `serve` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerTable {
    pub name: String,
    /// Flags (the command excepted), to follow the relay's own.
    pub flags: Vec<String>,
    pub command: Option<Vec<String>>,
    /// Its own TCP front (`tcp_listen`).
    pub tcp_listen: Option<SocketAddr>,
}

impl ServerTable {
    /// The flags, then `-- COMMAND...` if the server is a command.
    pub(crate) fn argv(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = self.flags.iter().map(OsString::from).collect();
        if let Some(command) = &self.command {
            out.push("--".into());
            out.extend(command.iter().map(OsString::from));
        }
        out
    }
}

/// The multi-server tables of a config file, in file order.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// Every `[servers.NAME]` with a valid name, including those with problems.
    pub names: Vec<String>,
    /// The server tables without problems.
    pub servers: Vec<ServerTable>,
    pub endpoints: Vec<EndpointSpec>,
    /// `[aggregate]`, when the file has one.
    pub aggregate: Option<AggregateSpec>,
}

/// Reads the tables of `file`: those without problems, and every key-level problem at once.
pub(crate) fn read(file: &Path) -> (Tables, Vec<String>) {
    let at = format!("--config {}", file.display());
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return (Tables::default(), vec![format!("{at}: {}", e.kind())]),
    };
    let top: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => return (Tables::default(), vec![format!("{at}: {e}")]),
    };
    let order = key_order(&text);
    let base = file.parent().unwrap_or(Path::new(""));
    let mut errors = Vec::new();
    let mut tables = Tables::default();
    for (name, value) in section(&top, "servers", &order.servers, &mut errors) {
        tables.names.push(name.to_owned());
        if let Some(s) = server(name, value, base, &mut errors) {
            tables.servers.push(s);
        }
    }
    if top
        .get("servers")
        .is_some_and(|s| s.as_table().is_some_and(|t| t.is_empty()))
    {
        errors.push("servers: empty; add a [servers.NAME] table per server".into());
    }
    for (name, value) in section(&top, "endpoints", &order.endpoints, &mut errors) {
        tables.endpoints.extend(endpoint(name, value, &mut errors));
    }
    if let Some(agg) = top.get("aggregate") {
        tables.aggregate = aggregate(agg, &mut errors);
    }
    (tables, errors)
}

/// The key-level problems of the tables (none when the file cannot be read: `[serve]`'s
/// reading says so).
pub(crate) fn key_errors(file: &Path) -> Vec<String> {
    read(file).1
}

/// The names under `[servers]` and `[endpoints]` in the order the file gives them (the
/// parsed tables are sorted by name).
#[derive(Default, serde::Deserialize)]
struct Order {
    #[serde(default)]
    servers: BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>,
    #[serde(default)]
    endpoints: BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>,
}

struct KeyOrder {
    servers: Vec<String>,
    endpoints: Vec<String>,
}

fn key_order(text: &str) -> KeyOrder {
    let order: Order = toml::from_str(text).unwrap_or_default();
    let sorted = |m: BTreeMap<toml::Spanned<String>, _>| {
        let mut keys: Vec<_> = m.into_keys().collect();
        keys.sort_by_key(|k| k.span().start);
        keys.into_iter().map(toml::Spanned::into_inner).collect()
    };
    KeyOrder {
        servers: sorted(order.servers),
        endpoints: sorted(order.endpoints),
    }
}

/// The entries of `[NAME]` in `order` (then any the order missed), each with a valid name.
fn section<'a>(
    top: &'a toml::Table,
    name: &str,
    order: &[String],
    errors: &mut Vec<String>,
) -> Vec<(&'a str, &'a toml::Value)> {
    let Some(value) = top.get(name) else {
        return Vec::new();
    };
    let Some(table) = value.as_table() else {
        errors.push(format!("{name}: expected a table of [{name}.NAME] tables"));
        return Vec::new();
    };
    let mut keys: Vec<&str> = order.iter().map(String::as_str).collect();
    keys.retain(|k| table.contains_key(*k));
    keys.extend(
        table
            .keys()
            .map(String::as_str)
            .filter(|k| !order.iter().any(|o| o == k)),
    );
    let mut out = Vec::new();
    for key in keys {
        let Some((k, v)) = table.get_key_value(key) else {
            continue;
        };
        if !name_is_valid(k) {
            errors.push(format!(
                "{name}.{k}: `{k}` is not a valid name (1-32 of a-z, 0-9, _ and -)"
            ));
        } else if !v.is_table() {
            errors.push(format!("{name}.{k}: expected a table"));
        } else {
            out.push((k.as_str(), v));
        }
    }
    out
}

/// Every `serve` flag's key (`tls_cert`), for telling listener-wide keys from unknown ones.
pub(crate) fn serve_keys() -> Vec<String> {
    let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
    cmd.get_arguments()
        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
        .chain(["command".to_owned()])
        .collect()
}

/// One `[servers.NAME]` table.
fn server(
    name: &str,
    value: &toml::Value,
    base: &Path,
    errors: &mut Vec<String>,
) -> Option<ServerTable> {
    let at = format!("servers.{name}");
    let table = value.as_table()?;
    let serve = serve_keys();
    let mut own = toml::Table::new();
    let before = errors.len();
    for (key, v) in table {
        if PER_SERVER.contains(&key.as_str()) {
            own.insert(key.clone(), v.clone());
        } else if serve.contains(key) {
            errors.push(format!(
                "{at}.{key}: `{key}` is set for the whole relay, not per server: it belongs in [serve]"
            ));
        } else {
            errors.push(format!(
                "{at}.{key}: unknown key (a server takes the per-server keys of [serve]: {})",
                PER_SERVER.join(", ")
            ));
        }
    }
    let (flags, command, value_errors) =
        crate::config::file::table_flags(&at, &own, base, &PATH_KEYS);
    errors.extend(value_errors);
    errors.extend(crate::config::file::flag_errors(&at, &flags));
    let kinds: Vec<&str> = ["command", "upstream", "mcp_servers"]
        .into_iter()
        .filter(|k| own.contains_key(*k))
        .collect();
    match kinds.len() {
        0 => errors.push(format!(
            "{at}: no server: give `command`, `upstream` or `mcp_servers` (with `server`)"
        )),
        1 => {}
        _ => errors.push(format!("{at}: {}: keep one", kinds.join(" and "))),
    }
    let remote = own.contains_key("upstream") || own.contains_key("mcp_servers");
    for key in own.keys().filter(|k| k.starts_with("upstream_") && !remote) {
        errors.push(format!(
            "{at}.{key}: applies to a remote server (`upstream`, or a `url` entry of `mcp_servers`)"
        ));
    }
    if own.contains_key("server") && !own.contains_key("mcp_servers") {
        errors.push(format!(
            "{at}.server: names an entry of `mcp_servers`, which is not set"
        ));
    }
    let tcp_listen = own
        .get("tcp_listen")
        .and_then(toml::Value::as_str)
        .and_then(|a| a.parse().ok());
    (errors.len() == before).then(|| ServerTable {
        name: name.to_owned(),
        flags,
        command,
        tcp_listen,
    })
}

/// One `[endpoints.NAME]` table (its globs are checked against the servers later).
fn endpoint(name: &str, value: &toml::Value, errors: &mut Vec<String>) -> Option<EndpointSpec> {
    let at = format!("endpoints.{name}");
    let mut spec = EndpointSpec {
        name: name.to_owned(),
        ..EndpointSpec::default()
    };
    let before = errors.len();
    for (key, v) in value.as_table()? {
        let list = match key.as_str() {
            "servers" => &mut spec.servers,
            "tools" => &mut spec.tools,
            "prompts" => &mut spec.prompts,
            "resources" => &mut spec.resources,
            _ => {
                errors.push(format!(
                    "{at}.{key}: unknown key (expected servers, tools, prompts, resources)"
                ));
                continue;
            }
        };
        match v
            .as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
        {
            Some(items) => *list = items,
            None => errors.push(format!("{at}.{key}: expected an array of strings")),
        }
    }
    (errors.len() == before).then_some(spec)
}

/// `[aggregate]`.
fn aggregate(value: &toml::Value, errors: &mut Vec<String>) -> Option<AggregateSpec> {
    let Some(table) = value.as_table() else {
        errors.push("aggregate: expected a table".into());
        return None;
    };
    let mut spec = AggregateSpec::default();
    let before = errors.len();
    for (key, v) in table {
        let s = v.as_str();
        match (key.as_str(), s) {
            ("separator", Some(s)) => match crate::config::servers::separator_error(s) {
                None => spec.separator = s.to_owned(),
                Some(e) => errors.push(format!("aggregate.separator: {e}")),
            },
            ("prefix", Some("always")) => spec.prefix = Prefix::Always,
            ("prefix", Some("never")) => spec.prefix = Prefix::Never,
            ("failure_mode", Some("open")) => spec.failure_mode = FailureMode::Open,
            ("failure_mode", Some("closed")) => spec.failure_mode = FailureMode::Closed,
            ("separator", None) => errors.push("aggregate.separator: expected a string".into()),
            ("prefix", _) => {
                errors.push("aggregate.prefix: expected \"always\" or \"never\"".into())
            }
            ("failure_mode", _) => {
                errors.push("aggregate.failure_mode: expected \"open\" or \"closed\"".into())
            }
            _ => errors.push(format!(
                "aggregate.{key}: unknown key (expected separator, prefix, failure_mode)"
            )),
        }
    }
    (errors.len() == before).then_some(spec)
}

/// The JSON Schema of `servers`, `endpoints` and `aggregate`, given `[serve]`'s properties.
pub(crate) fn schema(serve: &Map<String, Value>) -> [(&'static str, Value); 3] {
    let per_server: Map<String, Value> = serve
        .iter()
        .filter(|(k, _)| PER_SERVER.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let globs = json!({"type": "array", "items": {"type": "string"}});
    [
        (
            "servers",
            json!({"type": "object",
            "description": "Named servers, [servers.NAME] (NAME: 1-32 of a-z, 0-9, _ and -), each served at /servers/NAME/... and merged on the main path; each takes the per-server keys of [serve]",
            "propertyNames": {"pattern": "^[a-z0-9_-]{1,32}$"},
            "additionalProperties": {"type": "object", "additionalProperties": false, "properties": per_server}}),
        ),
        (
            "endpoints",
            json!({"type": "object",
            "description": "Tool subsets, [endpoints.NAME], served at /endpoints/NAME/...: whole servers and globs over qualified names (`server:tool`, `server:prompt`, `server:uri`)",
            "propertyNames": {"pattern": "^[a-z0-9_-]{1,32}$"},
            "additionalProperties": {"type": "object", "additionalProperties": false, "properties": {
                "servers": globs, "tools": globs, "prompts": globs, "resources": globs}}}),
        ),
        (
            "aggregate",
            json!({"type": "object", "additionalProperties": false,
            "description": "How the main path merges the named servers",
            "properties": {
                "separator": {"type": "string", "default": "__", "pattern": "^[A-Za-z0-9_.-]{1,8}$"},
                "prefix": {"enum": ["always", "never"], "default": "always"},
                "failure_mode": {"enum": ["open", "closed"], "default": "open"}}}),
        ),
    ]
}

#[cfg(test)]
mod tests;
