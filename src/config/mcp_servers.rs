//! `serve --mcp-servers FILE`: one entry of the server lists the desktop hosts keep, served as
//! the relay's child or remote upstream. Claude Desktop (`claude_desktop_config.json`) and
//! Cursor (`mcp.json`) list entries under `mcpServers`, VS Code (`.vscode/mcp.json`) under
//! `servers` (with `inputs`, prompts only VS Code can show). An entry is a command (`command`,
//! `args`, `env`, `envFile`, `cwd`) or a remote server (`url`, `headers`, `type` `http` or
//! `sse`).
//!
//! The chosen entry is read as strictly as the TOML config: an unknown key is an error with
//! its path (keys the hosts write for themselves, such as `disabled` or `autoApprove`, are
//! ignored). `${env:NAME}` in a value is the variable; `${input:…}` and other VS Code
//! variables cannot be resolved here and are an error. Other top-level keys and other entries
//! are the hosts' business. `config/validate.rs` turns the entry into the `serve` configuration.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Keys of an entry the relay reads.
const KNOWN: [&str; 9] = [
    "command",
    "args",
    "env",
    "envFile",
    "cwd",
    "type",
    "url",
    "headers",
    "serverUrl",
];

/// Keys the desktop hosts write for themselves; they do not change what is served.
const HOSTS_OWN: [&str; 8] = [
    "disabled",
    "autoApprove",
    "alwaysAllow",
    "timeout",
    "description",
    "dev",
    "gallery",
    "version",
];

/// One entry: a command or a remote server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum McpServer {
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    Url {
        url: String,
        /// Sent with every request (values are secrets: never logged).
        headers: Vec<(String, String)>,
        /// `type = "sse"`: legacy HTTP+SSE only.
        legacy_sse: bool,
    },
}

/// Reads `path` and picks the entry `name`, or the only one. Every problem of that entry is
/// returned, one line each.
pub(crate) fn read(
    path: &Path,
    name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<McpServer, Vec<String>> {
    let at = format!("--mcp-servers {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{at}: {}", e.kind())])?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| vec![format!("{at}: {e}")])?;
    let (list, servers) = ["mcpServers", "servers"]
        .iter()
        .find_map(|k| Some((*k, doc.get(*k)?.as_object()?)))
        .ok_or_else(|| {
            vec![format!(
                "{at}: no `mcpServers` (Claude Desktop, Cursor) or `servers` (VS Code) object"
            )]
        })?;
    let names = || {
        let names: Vec<&str> = servers.keys().map(String::as_str).collect();
        names.join(", ")
    };
    let (key, entry) = match name {
        Some(n) => servers.get_key_value(n).ok_or_else(|| {
            vec![format!(
                "{at}: no server named `{n}` (the file lists: {})",
                names()
            )]
        })?,
        None if servers.len() == 1 => servers
            .iter()
            .next()
            .ok_or_else(|| vec![format!("{at}: `{list}` is empty")])?,
        None if servers.is_empty() => return Err(vec![format!("{at}: `{list}` is empty")]),
        None => {
            return Err(vec![format!(
                "{at} lists {} servers ({}): pick one with --server NAME",
                servers.len(),
                names()
            )])
        }
    };
    let entry = entry
        .as_object()
        .ok_or_else(|| vec![format!("{at}: {list}.{key}: expected an object")])?;
    Entry {
        at: format!("{at}: {list}.{key}"),
        map: entry,
        env,
        base: path.parent().unwrap_or(Path::new("")),
        errors: Vec::new(),
    }
    .read()
}

/// The names of the entries of `path`, in the file's order, when it can be read (the list
/// `read` would pick from: `mcpServers`, else `servers`). Problems are `read`'s to report.
pub(crate) fn names(path: &Path) -> Option<Vec<String>> {
    /// The keys of an object, in order (`serde_json`'s own map is sorted).
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "mcpServers")]
        mcp_servers: Option<Keys>,
        servers: Option<Keys>,
    }
    let doc: Doc = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    doc.mcp_servers.or(doc.servers).map(|k| k.0)
}

/// The chosen entry being read; problems are collected.
struct Entry<'a> {
    at: String,
    map: &'a Map<String, Value>,
    env: &'a dyn Fn(&str) -> Option<String>,
    base: &'a Path,
    errors: Vec<String>,
}

impl Entry<'_> {
    fn read(mut self) -> Result<McpServer, Vec<String>> {
        for k in self.map.keys() {
            if !KNOWN.contains(&k.as_str()) && !HOSTS_OWN.contains(&k.as_str()) {
                self.errors.push(format!(
                    "{}.{k}: unknown key (expected one of {}; ignored: {})",
                    self.at,
                    KNOWN.join(", "),
                    HOSTS_OWN.join(", ")
                ));
            }
        }
        let kind = self.string("type");
        let url = self.string("url").or_else(|| self.string("serverUrl"));
        let command = self.string("command");
        let server = match (kind.as_deref(), url, command) {
            (Some("stdio") | None, None, Some(command)) => self.command(command),
            (Some("http" | "streamable-http" | "streamableHttp") | None, Some(url), None) => {
                self.remote(url, false)
            }
            (Some("sse"), Some(url), None) => self.remote(url, true),
            (Some(t @ ("stdio" | "http" | "streamable-http" | "streamableHttp" | "sse")), ..) => {
                self.errors.push(format!(
                    "{}: `type` {t} needs {}, and only that",
                    self.at,
                    if t == "stdio" { "`command`" } else { "`url`" }
                ));
                None
            }
            (Some(t), ..) => {
                self.errors.push(format!(
                    "{}.type: `{t}` is not one of stdio, http, sse",
                    self.at
                ));
                None
            }
            (None, Some(_), Some(_)) => {
                self.errors
                    .push(format!("{}: both `command` and `url`; keep one", self.at));
                None
            }
            (None, None, None) => {
                self.errors
                    .push(format!("{}: neither `command` nor `url`", self.at));
                None
            }
        };
        match server {
            Some(s) if self.errors.is_empty() => Ok(s),
            _ => Err(self.errors),
        }
    }

    fn command(&mut self, command: String) -> Option<McpServer> {
        let mut argv = vec![command];
        argv.extend(self.strings("args"));
        let mut env = Vec::new();
        if let Some(file) = self.string("envFile") {
            env.extend(self.env_file(&file));
        }
        env.extend(self.pairs("env"));
        let cwd = self.string("cwd").map(|c| self.base.join(c));
        Some(McpServer::Command { argv, env, cwd })
    }

    fn remote(&mut self, url: String, legacy_sse: bool) -> Option<McpServer> {
        if ["args", "env", "envFile", "cwd"]
            .iter()
            .any(|k| self.map.contains_key(*k))
        {
            self.errors.push(format!(
                "{}: `args`, `env`, `envFile` and `cwd` are for a command, not a `url`",
                self.at
            ));
        }
        let headers = self.pairs("headers");
        for (k, v) in &headers {
            if axum::http::HeaderName::try_from(k.as_str()).is_err()
                || axum::http::HeaderValue::try_from(v.as_str()).is_err()
            {
                self.errors.push(format!(
                    "{}.headers.{k}: not a valid header name and value",
                    self.at
                ));
            }
        }
        Some(McpServer::Url {
            url,
            headers,
            legacy_sse,
        })
    }

    /// A string value, its variables expanded.
    fn string(&mut self, key: &str) -> Option<String> {
        let v = self.map.get(key)?;
        match v.as_str() {
            Some(s) => self.expand(&format!("{}.{key}", self.at), s),
            None => {
                self.errors
                    .push(format!("{}.{key}: expected a string", self.at));
                None
            }
        }
    }

    fn strings(&mut self, key: &str) -> Vec<String> {
        let Some(v) = self.map.get(key) else {
            return Vec::new();
        };
        let Some(items) = v.as_array() else {
            self.errors
                .push(format!("{}.{key}: expected an array of strings", self.at));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.extend(self.expand(&format!("{}.{key}[{i}]", self.at), s)),
                None => self
                    .errors
                    .push(format!("{}.{key}[{i}]: expected a string", self.at)),
            }
        }
        out
    }

    fn pairs(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(v) = self.map.get(key) else {
            return Vec::new();
        };
        let Some(map) = v.as_object() else {
            self.errors
                .push(format!("{}.{key}: expected an object of strings", self.at));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let path = format!("{}.{key}.{k}", self.at);
            match v.as_str() {
                Some(s) => out.extend(self.expand(&path, s).map(|s| (k.clone(), s))),
                None => self.errors.push(format!("{path}: expected a string")),
            }
        }
        out
    }

    /// `KEY=VALUE` lines (`#` comments), relative to the file.
    fn env_file(&mut self, file: &str) -> Vec<(String, String)> {
        let path = self.base.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(format!(
                    "{}.envFile: {}: {}",
                    self.at,
                    path.display(),
                    e.kind()
                ));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().map(str::trim).enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            match line.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    out.push((k.trim().to_owned(), v.to_owned()));
                }
                _ => self.errors.push(format!(
                    "{}.envFile: {} line {}: expected KEY=VALUE",
                    self.at,
                    path.display(),
                    n + 1
                )),
            }
        }
        out
    }

    /// `${env:NAME}` → the variable; any other `${…}` cannot be resolved here.
    fn expand(&mut self, path: &str, s: &str) -> Option<String> {
        match expand(s, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(format!("{path}: {e}"));
                None
            }
        }
    }
}

/// Expands `${env:NAME}` in `s`.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "an unclosed `${`".to_owned())?;
        let var = &after[..end];
        match var.strip_prefix("env:") {
            Some(name) => out.push_str(
                &env(name).ok_or_else(|| format!("`${{{var}}}`: {name} is not set"))?,
            ),
            None if var.starts_with("input:") => {
                return Err(format!(
                    "`${{{var}}}` is a VS Code input, which only VS Code can prompt for: put the value in an environment variable and write `${{env:NAME}}`"
                ))
            }
            None => {
                return Err(format!(
                    "`${{{var}}}` cannot be resolved outside the host that wrote it (only `${{env:NAME}}` is)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "mcp_servers/tests.rs"]
mod tests;
