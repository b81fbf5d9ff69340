//! Several servers behind one relay: `[servers.NAME]` (each a server as `[serve]` describes
//! one), `[endpoints.NAME]` (tool subsets picked from any servers) and `[aggregate]` (how the
//! main path merges every server). This file owns the validated shapes; reading them from the
//! config file and from `--mcp-servers` is `config/file.rs` and `config/validate.rs`, serving
//! them is `hub.rs` and `aggregate.rs`.

use std::sync::Arc;

use crate::config::ServeConfig;

/// Where a named server's fronts are mounted: `/servers/NAME/mcp`, `/servers/NAME/sse`, ...
pub(crate) const SERVERS_MOUNT: &str = "/servers";
/// Where a tool subset's fronts are mounted: `/endpoints/NAME/mcp`, ...
pub(crate) const ENDPOINTS_MOUNT: &str = "/endpoints";
/// The longest server or endpoint name.
pub(crate) const MAX_NAME: usize = 32;

/// Whether `name` may name a server or an endpoint: `[a-z0-9_-]`, 1 to 32 characters.
pub(crate) fn name_is_valid(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One named server: its whole configuration as if it were served alone (its child or
/// upstream, session mode, children, timeouts, caps, upstream TLS and credentials), the
/// listener-wide settings (listen address, TLS, authentication, roles) taken from `[serve]`
/// and the security sections.
#[derive(Debug, Clone)]
pub(crate) struct NamedServer {
    pub name: String,
    pub cfg: Arc<ServeConfig>,
}

impl ServeConfig {
    /// Puts the process's one `[cluster]` on this configuration and every named server's
    /// (SIGHUP: the running cluster replaces the one the new configuration built).
    pub(crate) fn use_cluster(&mut self, cluster: Option<Arc<crate::cluster::Cluster>>) {
        for s in &mut self.servers {
            Arc::make_mut(&mut s.cfg).cluster = cluster.clone();
        }
        self.cluster = cluster;
    }
}

/// A tool subset: what it publishes, as globs over qualified names (`server:tool`,
/// `server:prompt`, `server:uri`), plus whole servers. An item is published when its server
/// is in `servers` or its qualified name matches one of its kind's globs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EndpointSpec {
    pub name: String,
    /// Servers published whole.
    pub servers: Vec<String>,
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
    pub resources: Vec<String>,
}

/// How tool and prompt names of several servers are told apart in one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Prefix {
    /// `NAME__tool` for every tool and prompt (the default).
    #[default]
    Always,
    /// Names as the servers give them; a name two servers give is served by the first
    /// server (in configuration order) and the conflict is logged and shown on `/health`.
    Never,
}

/// What the aggregate does when a server is down or still starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FailureMode {
    /// Serve the others: the server's tools are absent and `/health` says why (the default).
    #[default]
    Open,
    /// Refuse: `initialize` fails while any server is unavailable.
    Closed,
}

/// `[aggregate]`: how the main path merges the named servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AggregateSpec {
    /// Between the server's name and the tool's: `github__create_issue` (default `__`).
    pub separator: String,
    pub prefix: Prefix,
    pub failure_mode: FailureMode,
}

impl Default for AggregateSpec {
    fn default() -> AggregateSpec {
        AggregateSpec {
            separator: "__".into(),
            prefix: Prefix::Always,
            failure_mode: FailureMode::Open,
        }
    }
}

/// The longest `[aggregate] separator`.
pub(crate) const MAX_SEPARATOR: usize = 8;

/// Why `sep` cannot separate a server's name from a tool's, if it cannot: it must be 1 to 8
/// of `A-Za-z0-9_.-`, so that `NAME` + `sep` + a valid tool name is still a valid tool name
/// (MCP: 1-128 of `A-Za-z0-9_.-`).
pub(crate) fn separator_error(sep: &str) -> Option<String> {
    let ok = (1..=MAX_SEPARATOR).contains(&sep.len())
        && sep
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (!ok).then(|| format!("`{sep}`: expected 1 to {MAX_SEPARATOR} of A-Za-z0-9, _, . and -"))
}

/// A glob over qualified names (`github:create_*`), compiled as roles compile theirs: `*`
/// crosses `/`, case matters, `\` escapes.
pub(crate) fn glob(pattern: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .case_insensitive(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("`{pattern}`: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_identifiers() {
        for ok in ["github", "fs", "db_1", "local-llm", &"a".repeat(32)] {
            assert!(name_is_valid(ok), "{ok}");
        }
        for bad in ["", "GitHub", "a b", "a/b", "a.b", "ü", &"a".repeat(33)] {
            assert!(!name_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn separators_keep_qualified_names_valid_tool_names() {
        for ok in ["__", "_", ".", "-", "x", "__.__", &"_".repeat(8)] {
            assert_eq!(separator_error(ok), None, "{ok}");
        }
        for bad in ["", ":", "/", " ", "a b", &"_".repeat(9)] {
            assert!(separator_error(bad).is_some(), "{bad}");
        }
    }
}
