//! `[cluster]`: this relay as one replica of a fleet behind a load balancer (docs/fleet.md),
//! off unless a node name is given. `node` names the replica (ids it mints carry it);
//! `peers` (or the `peer_url` template) is the only way to another replica's address: a node
//! name read from an id is looked up there and nowhere else. `[cluster.store]` is the
//! optional shared store (Redis or Valkey) of the fleet-wide rate limits and concurrency
//! leases. Flags: `--node`, `--peer NAME=URL`, `--peer-url`, `--cluster-store`,
//! `--drain-window`.
//!
//! Validated here, every problem collected (read by `config/security.rs` with the file's other
//! sections); what runs is `cluster.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::id::valid_node;

/// `[cluster]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterFile {
    /// This replica's name: a DNS label, or `env:NAME` (Kubernetes: the pod name).
    pub node: Option<String>,
    /// Every replica's base URL by node name (this one's may be listed too).
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    /// A base URL with `{node}` for replicas not in `peers` (a StatefulSet's headless
    /// service: `http://{node}.mcp-relay-peers.mcp.svc:8080`).
    pub peer_url: Option<String>,
    /// How long connecting to a peer may take before a forwarded request gets 503. Default 1s.
    pub forward_connect_timeout: Option<String>,
    /// How long a peer may take to start answering a forwarded request. Default: the
    /// request timeout.
    pub forward_timeout: Option<String>,
    /// On SIGTERM: how long existing sessions keep being served while `/ready` says 503.
    /// Default 120s (`0s`: none).
    pub drain_window: Option<String>,
    /// The shared store of fleet-wide limits.
    pub store: Option<StoreFile>,
}

/// `[cluster.store]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFile {
    /// `redis://`, `rediss://` or `redis+sentinel://` URL; or `env:NAME` / `file:PATH`.
    pub url: Option<String>,
    /// Prefix of every key. Default `mcpr`.
    pub key_prefix: Option<String>,
    /// Secret (`env:` / `file:`) that keys are hashed with, so principal names and addresses
    /// are not stored in clear. Default: a fixed key (names are still hashed).
    pub key_secret: Option<String>,
    /// Per-operation timeout. Default 50ms.
    pub timeout: Option<String>,
    /// What limits do while the store is unreachable: `local` (default: this replica's
    /// limits divided by `expected_nodes`), `open` or `closed` (503).
    pub on_store_error: Option<String>,
    /// Replicas expected in the fleet, for the `local` fallback. Default: this node and its
    /// listed peers (set it when peers come from `peer_url`).
    pub expected_nodes: Option<u32>,
    /// How long a concurrency lease lives without renewal (a dead replica's slots come back
    /// after it). Default 30s.
    pub lease: Option<String>,
    /// Whose clock rate limits read: `server` (Redis `TIME`, default) or `client` (this
    /// replica's, for managed services that refuse `TIME` in scripts).
    pub clock: Option<String>,
}

/// The `[cluster]` flags, over the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags {
    pub node: Option<String>,
    pub peers: Vec<String>,
    pub peer_url: Option<String>,
    pub store: Option<String>,
    pub drain_window: Option<String>,
}

/// What limits do while the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnStoreError {
    /// This replica's own limits, divided by the expected number of replicas.
    Local,
    /// No shared limits until the store is back.
    Open,
    /// 503 + `Retry-After` for what a shared limit would have judged.
    Closed,
}

/// Whose clock the shared rate limits read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    Server,
    Client,
}

/// `[cluster.store]`, validated. Its `Debug` shows neither the URL's password nor the key.
#[derive(Clone)]
pub(crate) struct StoreConfig {
    pub url: String,
    pub key_prefix: String,
    pub key_secret: Vec<u8>,
    pub timeout: Duration,
    pub on_error: OnStoreError,
    pub expected_nodes: u32,
    pub lease: Duration,
    pub clock: Clock,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "(unparsed)".to_owned(),
        };
        f.debug_struct("StoreConfig")
            .field("url", &url)
            .field("key_prefix", &self.key_prefix)
            .field("key_secret", &"***")
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .field("expected_nodes", &self.expected_nodes)
            .field("lease", &self.lease)
            .field("clock", &self.clock)
            .finish()
    }
}

/// `[cluster]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    pub node: String,
    /// Base URLs (no trailing `/`) by node name, this node's left out.
    pub peers: BTreeMap<String, Url>,
    /// The template, with `{node}` in it.
    pub peer_url: Option<String>,
    pub forward_connect_timeout: Duration,
    pub forward_timeout: Option<Duration>,
    pub drain_window: Duration,
    pub store: Option<StoreConfig>,
}

/// Default `key_secret`: keys are hashed even without one (not secret, but not clear text).
const DEFAULT_KEY_SECRET: &[u8] = b"mcp-relay cluster keys v1";

/// Validates `[cluster]` with the flags over it; `None` when not part of a fleet.
pub(crate) fn build(
    file: Option<ClusterFile>,
    flags: Flags,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<ClusterConfig> {
    let mut file = file.unwrap_or_default();
    let node = flags.node.or(file.node.take());
    let Some(node) = node else {
        if flags.store.is_some() || !flags.peers.is_empty() || flags.peer_url.is_some() {
            errors.push(
                "--peer, --peer-url and --cluster-store need --node (or [cluster] node)".into(),
            );
        } else if file.store.is_some() || !file.peers.is_empty() || file.peer_url.is_some() {
            errors.push("cluster: `node` is required (this replica's name, e.g. \"r0\" or \"env:HOSTNAME\")".into());
        }
        return None;
    };
    let node = reference(&node, "cluster.node", env, errors).unwrap_or_default();
    if !valid_node(&node) {
        errors.push(format!(
            "cluster.node: `{node}` is not a node name (a DNS label: a-z, 0-9 and -, at most 63)"
        ));
    }
    for p in &flags.peers {
        match p.split_once('=') {
            Some((name, url)) => {
                file.peers
                    .insert(name.trim().to_owned(), url.trim().to_owned());
            }
            None => errors.push(format!("--peer `{p}`: expected NAME=URL")),
        }
    }
    let peers = peers(&node, &file.peers, errors);
    let nodes = peers.len() + 1;
    let peer_url = flags.peer_url.or(file.peer_url);
    if let Some(t) = &peer_url {
        check_template(&node, t, errors);
    }
    let drain = flags.drain_window.or(file.drain_window);
    let mut store = file.store;
    if let Some(url) = flags.store {
        store.get_or_insert_with(StoreFile::default).url = Some(url);
    }
    Some(ClusterConfig {
        node,
        peers,
        peer_url,
        forward_connect_timeout: duration(
            file.forward_connect_timeout.as_deref(),
            "cluster.forward_connect_timeout",
            "1s",
            errors,
        ),
        forward_timeout: file
            .forward_timeout
            .as_deref()
            .map(|t| duration(Some(t), "cluster.forward_timeout", "30s", errors)),
        drain_window: duration_or_zero(drain.as_deref(), "cluster.drain_window", "120s", errors),
        store: store.and_then(|s| build_store(s, nodes, env, errors)),
    })
}

fn peers(
    me: &str,
    table: &BTreeMap<String, String>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, Url> {
    let mut out = BTreeMap::new();
    for (name, url) in table {
        if !valid_node(name) {
            errors.push(format!("cluster.peers: `{name}` is not a node name"));
            continue;
        }
        match base_url(url) {
            Ok(u) if name != me => {
                out.insert(name.clone(), u);
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("cluster.peers.{name}: {e}")),
        }
    }
    out
}

/// A peer's base URL: http(s), a host, no query or fragment; the path is kept as a prefix.
pub(crate) fn base_url(text: &str) -> Result<Url, String> {
    let u = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(format!(
            "`{text}` must be an http:// or https:// URL with a host"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(format!("`{text}`: no query, fragment or credentials"));
    }
    Ok(u)
}

/// The template must make `{node}` the whole leftmost label of a host under a fixed domain
/// (`{node}.mcp-relay-peers`, a StatefulSet's headless service), and the names it takes are
/// this node's StatefulSet's pods (`NAME-ORDINAL`, `Cluster::peer`): a name read from an id can
/// then only pick a pod of that service, never a host of its own (`localhost`, `metadata`).
fn check_template(me: &str, t: &str, errors: &mut Vec<String>) {
    let Some((scheme, rest)) = t.split_once("://") else {
        errors.push(format!("cluster.peer_url `{t}`: not a URL"));
        return;
    };
    let suffix = rest
        .strip_prefix("{node}.")
        .filter(|_| t.matches("{node}").count() == 1);
    let host_suffix = suffix.map(|s| s.split(['/', ':']).next().unwrap_or(""));
    match host_suffix {
        Some(h) if !h.is_empty() && h.split('.').all(|l| !l.is_empty()) => {}
        _ => {
            errors.push(format!(
                "cluster.peer_url `{t}`: must be {scheme}://{{node}}.SERVICE… ({{node}} once, as the first label of a host under a fixed domain)"
            ));
            return;
        }
    }
    if let Err(e) = base_url(&t.replace("{node}", "r0")) {
        errors.push(format!("cluster.peer_url: {e}"));
    }
    if ordinal_stem(me).is_none() {
        errors.push(format!(
            "cluster.peer_url: node `{me}` is not NAME-ORDINAL (a StatefulSet pod's name): the template only reaches nodes named like this one"
        ));
    }
}

/// `mcp-relay-2` → `mcp-relay`: the StatefulSet a pod's name belongs to.
pub(crate) fn ordinal_stem(node: &str) -> Option<&str> {
    let (stem, ordinal) = node.rsplit_once('-')?;
    let digits =
        !ordinal.is_empty() && ordinal.len() <= 4 && ordinal.bytes().all(|b| b.is_ascii_digit());
    (digits && !stem.is_empty()).then_some(stem)
}

/// `nodes`: the replicas the configuration names (this one and its peers), the default of
/// `expected_nodes`.
fn build_store(
    f: StoreFile,
    nodes: usize,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<StoreConfig> {
    let Some(url) = f.url.as_deref() else {
        errors
            .push("cluster.store.url: required (redis://, rediss:// or redis+sentinel://)".into());
        return None;
    };
    let url = reference(url, "cluster.store.url", env, errors)?;
    if ![
        "redis://",
        "rediss://",
        "redis+sentinel://",
        "rediss+sentinel://",
        "valkey://",
        "valkeys://",
    ]
    .iter()
    .any(|s| url.starts_with(s))
    {
        errors.push(
            "cluster.store.url: must be a redis://, rediss:// or redis+sentinel:// URL".into(),
        );
    }
    let key_secret = match f.key_secret.as_deref() {
        Some(r) => crate::secret::resolve(r, env)
            .map_err(|e| errors.push(format!("cluster.store.key_secret: {e}")))
            .ok()?,
        None => DEFAULT_KEY_SECRET.to_vec(),
    };
    let key_prefix = f.key_prefix.unwrap_or_else(|| "mcpr".into());
    if key_prefix.is_empty() || key_prefix.len() > 64 || key_prefix.contains(char::is_whitespace) {
        errors.push("cluster.store.key_prefix: 1 to 64 characters, no spaces".into());
    }
    let on_error = match f.on_store_error.as_deref().unwrap_or("local") {
        "local" => OnStoreError::Local,
        "open" => OnStoreError::Open,
        "closed" => OnStoreError::Closed,
        other => {
            errors.push(format!(
                "cluster.store.on_store_error: `{other}` (expected local, open or closed)"
            ));
            OnStoreError::Local
        }
    };
    let clock = match f.clock.as_deref().unwrap_or("server") {
        "server" => Clock::Server,
        "client" => Clock::Client,
        other => {
            errors.push(format!(
                "cluster.store.clock: `{other}` (expected server or client)"
            ));
            Clock::Server
        }
    };
    let expected_nodes = f
        .expected_nodes
        .unwrap_or_else(|| u32::try_from(nodes).unwrap_or(u32::MAX));
    if expected_nodes == 0 {
        errors.push("cluster.store.expected_nodes must be at least 1".into());
    }
    Some(StoreConfig {
        url,
        key_prefix,
        key_secret,
        timeout: duration(
            f.timeout.as_deref(),
            "cluster.store.timeout",
            "50ms",
            errors,
        ),
        on_error,
        expected_nodes: expected_nodes.max(1),
        lease: duration(f.lease.as_deref(), "cluster.store.lease", "30s", errors),
        clock,
    })
}

/// A value that may be a reference (`env:NAME`, `file:PATH`) or the text itself.
fn reference(
    text: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<String> {
    if !(text.starts_with("env:") || text.starts_with("file:")) {
        return Some(text.to_owned());
    }
    match crate::secret::resolve(text, env) {
        Ok(b) => String::from_utf8(b)
            .map_err(|_| errors.push(format!("{key}: `{text}` is not UTF-8")))
            .ok(),
        Err(e) => {
            errors.push(format!("{key}: {e}"));
            None
        }
    }
}

fn duration(text: Option<&str>, key: &str, default: &str, errors: &mut Vec<String>) -> Duration {
    let d = duration_or_zero(text, key, default, errors);
    if d.is_zero() {
        errors.push(format!("{key}: must be more than 0"));
    }
    d
}

fn duration_or_zero(
    text: Option<&str>,
    key: &str,
    default: &str,
    errors: &mut Vec<String>,
) -> Duration {
    let s = text.unwrap_or(default);
    humantime::parse_duration(s).unwrap_or_else(|_| {
        errors.push(format!(
            "{key}: `{s}` is not a duration (examples: 50ms, 1s, 2m)"
        ));
        Duration::from_secs(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        (n == "HOSTNAME").then(|| "mcp-relay-2".to_owned())
    }

    fn parse(text: &str, flags: Flags) -> (Option<ClusterConfig>, Vec<String>) {
        let file: ClusterFile = toml::from_str(text).unwrap();
        let mut errors = Vec::new();
        (build(Some(file), flags, &env, &mut errors), errors)
    }

    #[test]
    fn a_fleet_is_named_peers_and_a_store() {
        let (c, e) = parse(
            r#"node = "env:HOSTNAME"
               peers = { mcp-relay-0 = "http://10.0.0.10:8080", mcp-relay-2 = "http://10.0.0.12:8080" }
               [store]
               url = "redis://127.0.0.1:6379/0"
               expected_nodes = 3"#,
            Flags::default(),
        );
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        assert_eq!(c.node, "mcp-relay-2");
        assert_eq!(c.peers.keys().collect::<Vec<_>>(), ["mcp-relay-0"]);
        let s = c.store.unwrap();
        assert_eq!((s.expected_nodes, s.on_error), (3, OnStoreError::Local));
        assert_eq!(s.timeout, Duration::from_millis(50));
        assert_eq!(c.drain_window, Duration::from_secs(120));
        let (c, _) = parse(
            "node = \"r0\"\n[store]\nurl = \"redis://:hunter2x@127.0.0.1:6379/0\"",
            Flags::default(),
        );
        let shown = format!("{:?}", c.unwrap());
        assert!(
            !shown.contains("hunter2x") && shown.contains("***"),
            "{shown}"
        );
    }

    #[test]
    fn bad_names_urls_and_modes_are_all_reported() {
        let (_, e) = parse(
            r#"node = "R0"
               peers = { "r_1" = "http://x", r2 = "ftp://x", r3 = "http://u:p@x" }
               peer_url = "http://x:8080"
               [store]
               url = "http://redis"
               on_store_error = "maybe""#,
            Flags::default(),
        );
        let all = e.join("\n");
        for want in [
            "cluster.node",
            "`r_1`",
            "peers.r2",
            "peers.r3",
            "{node}",
            "store.url",
            "on_store_error",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
    }

    #[test]
    fn a_template_reaches_only_pods_of_one_service() {
        let ok =
            "node = \"mcp-relay-1\"\npeer_url = \"http://{node}.mcp-relay-peers.mcp.svc:8080\"";
        let (c, e) = parse(ok, Flags::default());
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        for bad in [
            "http://{node}:8080",
            "http://{node}.",
            "http://{node}..a",
            "http://x.{node}.a.b",
            "http://{node}.a.b/{node}",
        ] {
            let (_, e) = parse(
                &format!("node = \"mcp-relay-1\"\npeer_url = \"{bad}\""),
                Flags::default(),
            );
            assert!(e.iter().any(|e| e.contains("peer_url")), "{bad}: {e:?}");
        }
        let (_, e) = parse(
            "node = \"r0\"\npeer_url = \"http://{node}.a.b\"",
            Flags::default(),
        );
        assert!(e.iter().any(|e| e.contains("NAME-ORDINAL")), "{e:?}");
        assert_eq!(ordinal_stem("mcp-relay-12"), Some("mcp-relay"));
        assert_eq!(ordinal_stem("r0"), None);
        let _ = c;
    }

    #[test]
    fn flags_win_and_peers_without_a_node_are_refused() {
        let flags = Flags {
            node: Some("r1".into()),
            peers: vec!["r0=http://127.0.0.1:9000".into()],
            ..Flags::default()
        };
        let (c, e) = parse("node = \"r9\"", flags);
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        assert_eq!(c.node, "r1");
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.peers["r0"].as_str(), "http://127.0.0.1:9000/");
        let (_, e) = parse("peer_url = \"http://{node}:80\"", Flags::default());
        assert!(e[0].contains("node"), "{e:?}");
    }
}
