//! `[cache]`: the optional response cache of idempotent reads (`tools/list`, `prompts/list`,
//! `resources/list`, and `resources/read` of the configured URIs), off unless a method is
//! given a time to live. Each server's relay keeps its own answers (the key names the
//! server); with `storage = "store"` they are kept in the fleet's shared store
//! (`[cluster.store]`) so every replica answers from them.
//!
//! ```toml
//! [cache]
//! tools_list = "60s"
//! prompts_list = "60s"
//! resources_list = "30s"
//! resources_read = "30s"
//! resources = ["file:///docs/*"]
//! storage = "memory"          # | "store"
//! max_bytes = "64MiB"         # per server; one principal holds at most an eighth
//! ```
//!
//! Validated here, every problem collected; what runs is `relay/cache.rs`. Does not own the
//! key (who may share an answer) nor the invalidation.

use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::cluster::config::{ClusterConfig, StoreConfig};

/// `[cache]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheFile {
    /// Where answers are kept: `memory` (this process; default) or `store` (the fleet's
    /// `[cluster.store]`, shared by every replica).
    pub storage: Option<String>,
    /// How long a `tools/list` answer is reused. Absent or `0s`: not cached.
    pub tools_list: Option<String>,
    /// How long a `prompts/list` answer is reused. Absent or `0s`: not cached.
    pub prompts_list: Option<String>,
    /// How long a `resources/list` answer is reused. Absent or `0s`: not cached.
    pub resources_list: Option<String>,
    /// How long a `resources/read` answer of a URI in `resources` is reused.
    pub resources_read: Option<String>,
    /// Globs of the URIs whose `resources/read` may be cached (`*` crosses `/`). Required
    /// with `resources_read`; no URI is cached without it.
    pub resources: Option<Vec<String>>,
    /// The servers whose answers are cached (`[servers.NAME]` names). Default: every server.
    pub servers: Option<Vec<String>>,
    /// Most answers kept in memory per server. Default 10000.
    pub max_entries: Option<usize>,
    /// Most bytes of answers kept in memory per server (e.g. `64MiB`, the default); one
    /// principal holds at most an eighth of it, and no answer larger is kept (in the store
    /// either).
    pub max_bytes: Option<String>,
}

/// The cached methods, in the order of [`CacheConfig::ttl`].
pub(crate) const METHODS: [&str; 4] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/read",
];

/// Where answers are kept.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    Memory,
    /// The fleet's shared store.
    Store(StoreConfig),
}

/// `[cache]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub storage: Storage,
    /// Time to live per method of [`METHODS`]; `None`: not cached.
    pub ttl: [Option<Duration>; 4],
    /// The URIs whose `resources/read` may be cached.
    pub resources: GlobSet,
    /// `None`: every server.
    pub servers: Option<Vec<String>>,
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl CacheConfig {
    /// The time to live of `method`'s answers, when it is cached.
    pub(crate) fn ttl_of(&self, method: &str) -> Option<Duration> {
        let i = METHODS.iter().position(|m| *m == method)?;
        self.ttl[i]
    }

    /// The longest time to live of any method.
    pub(crate) fn longest(&self) -> Duration {
        self.ttl.iter().flatten().max().copied().unwrap_or_default()
    }

    /// Whether the server `name` (`None`: the unnamed one) has its answers cached.
    pub(crate) fn covers(&self, name: Option<&str>) -> bool {
        match (&self.servers, name) {
            (None, _) => true,
            (Some(list), Some(n)) => list.iter().any(|s| s == n),
            (Some(_), None) => false,
        }
    }
}

/// Validates `[cache]`; `None` when absent or when no method is cached.
pub(crate) fn build(
    file: Option<CacheFile>,
    cluster: Option<&ClusterConfig>,
    errors: &mut Vec<String>,
) -> Option<CacheConfig> {
    let file = file?;
    let keys = [
        &file.tools_list,
        &file.prompts_list,
        &file.resources_list,
        &file.resources_read,
    ];
    let mut ttl = [None; 4];
    for (i, (text, method)) in keys.iter().zip(METHODS).enumerate() {
        let key = format!("cache.{}", method.replace('/', "_"));
        ttl[i] = text
            .as_deref()
            .and_then(|t| match humantime::parse_duration(t) {
                Ok(d) => (!d.is_zero()).then_some(d),
                Err(_) => {
                    errors.push(format!(
                        "{key}: `{t}` is not a duration (examples: 30s, 5m)"
                    ));
                    None
                }
            });
    }
    let storage = match (
        file.storage.as_deref(),
        cluster.and_then(|c| c.store.as_ref()),
    ) {
        (None | Some("memory"), _) => Storage::Memory,
        (Some("store"), Some(store)) => Storage::Store(store.clone()),
        (Some("store"), None) => {
            errors.push(
                "cache.storage: `store` needs [cluster.store] (the fleet's shared store)".into(),
            );
            Storage::Memory
        }
        (Some(other), _) => {
            errors.push(format!(
                "cache.storage: `{other}`: expected `memory` or `store`"
            ));
            Storage::Memory
        }
    };
    let resources = uri_globs(file.resources.as_deref(), ttl[3].is_some(), errors);
    if file.servers.as_ref().is_some_and(Vec::is_empty) {
        errors.push(
            "cache.servers: an empty list caches nothing; leave it out for every server".into(),
        );
    }
    if file.max_entries == Some(0) {
        errors.push("cache.max_entries: must be at least 1".into());
    }
    let max_bytes = max_bytes(file.max_bytes.as_deref(), errors);
    ttl.iter().any(Option::is_some).then(|| CacheConfig {
        storage,
        ttl,
        resources,
        servers: file.servers,
        max_entries: file.max_entries.unwrap_or(10_000),
        max_bytes,
    })
}

/// `max_bytes`: a size of at least 64 KiB (a share of it must hold a list); default 64 MiB.
fn max_bytes(text: Option<&str>, errors: &mut Vec<String>) -> usize {
    const DEFAULT: usize = 64 << 20;
    let Some(text) = text else {
        return DEFAULT;
    };
    match crate::config::args::size(text) {
        Ok(n) if n >= 64 << 10 => usize::try_from(n).unwrap_or(usize::MAX),
        Ok(_) => {
            errors.push(format!("cache.max_bytes: `{text}` is below 64KiB"));
            DEFAULT
        }
        Err(e) => {
            errors.push(format!("cache.max_bytes: {e}"));
            DEFAULT
        }
    }
}

/// The URI globs of `resources/read`: required with it, never empty.
fn uri_globs(globs: Option<&[String]>, reads: bool, errors: &mut Vec<String>) -> GlobSet {
    match (globs, reads) {
        (None, true) => errors.push(
            "cache.resources: `resources_read` needs the URIs it may cache (e.g. [\"file:///docs/*\"])"
                .into(),
        ),
        (Some([]), _) => errors.push("cache.resources: an empty list caches no URI".into()),
        (Some(_), false) => {
            errors.push("cache.resources: given without `resources_read` (how long)".into())
        }
        _ => {}
    }
    let mut set = GlobSetBuilder::new();
    for g in globs.unwrap_or_default() {
        match crate::config::servers::glob(g) {
            Ok(glob) => {
                set.add(glob);
            }
            Err(e) => errors.push(format!("cache.resources: {e}")),
        }
    }
    set.build().unwrap_or_else(|_| GlobSet::empty())
}

/// `check-config`'s line: what is cached, for how long, where.
pub(crate) fn summary(c: &CacheConfig) -> String {
    let methods: Vec<String> = METHODS
        .iter()
        .zip(&c.ttl)
        .filter_map(|(m, t)| t.map(|t| format!("{m} {}", humantime::format_duration(t))))
        .collect();
    let place = match c.storage {
        Storage::Memory => "in memory",
        Storage::Store(_) => "in the fleet's store",
    };
    format!("cache: {} ({place})", methods.join(", "))
}

/// The `[cache]` part of `mcp-relay schema`.
pub(crate) fn schema() -> serde_json::Value {
    use serde_json::json;
    let ttl = |m: &str| json!({"type": "string", "description": format!("how long a `{m}` answer is reused; absent or `0s`: not cached")});
    let strings = |d: &str| json!({"type": "array", "items": {"type": "string"}, "minItems": 1, "description": d});
    json!({"type": "object", "additionalProperties": false,
        "description": "the response cache of idempotent reads, off unless a method has a time to live (docs/configuration.md)",
        "properties": {
            "storage": {"type": "string", "enum": ["memory", "store"], "default": "memory",
                "description": "this process's memory, or the fleet's [cluster.store] (shared by every replica)"},
            "tools_list": ttl("tools/list"),
            "prompts_list": ttl("prompts/list"),
            "resources_list": ttl("resources/list"),
            "resources_read": ttl("resources/read"),
            "resources": strings("globs of the URIs whose `resources/read` may be cached (`*` crosses `/`); required with `resources_read`"),
            "servers": strings("the named servers whose answers are cached; default: every server"),
            "max_entries": {"type": "integer", "minimum": 1, "default": 10000,
                "description": "most answers kept in memory per server"},
            "max_bytes": {"type": "string", "default": "64MiB",
                "description": "most bytes of answers kept in memory per server (at least 64KiB); one principal holds at most an eighth, and no larger answer is kept"}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<CacheConfig>, Vec<String>) {
        let file: CacheFile = toml::from_str(text).unwrap();
        let mut errors = Vec::new();
        (build(Some(file), None, &mut errors), errors)
    }

    #[test]
    fn methods_get_their_ttls_and_uris_their_globs() {
        let (cfg, errors) = parse(
            "tools_list = \"60s\"\nresources_read = \"5s\"\nresources = [\"file:///docs/*\"]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.ttl_of("tools/list"), Some(Duration::from_secs(60)));
        assert_eq!(cfg.ttl_of("prompts/list"), None);
        assert_eq!(cfg.ttl_of("tools/call"), None);
        assert!(cfg.resources.is_match("file:///docs/a/b.md"));
        assert!(!cfg.resources.is_match("file:///etc/passwd"));
        assert!(cfg.covers(None) && cfg.covers(Some("github")));
        assert_eq!(cfg.longest(), Duration::from_secs(60));
    }

    #[test]
    fn problems_are_all_reported() {
        let (_, errors) = parse(
            "tools_list = \"soon\"\nresources_read = \"5s\"\nstorage = \"store\"\nservers = []\n",
        );
        let text = errors.join("\n");
        for needle in [
            "cache.tools_list",
            "cache.resources:",
            "cache.storage",
            "cache.servers",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let (_, errors) = parse("resources = []\nresources_read = \"1s\"\n");
        assert!(errors.join("\n").contains("empty list"), "{errors:?}");
        let (_, errors) = parse("tools_list = \"1s\"\nmax_bytes = \"1KiB\"\n");
        assert!(errors.join("\n").contains("cache.max_bytes"), "{errors:?}");
        let (cfg, errors) = parse("tools_list = \"1s\"\nmax_bytes = \"1MiB\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.unwrap().max_bytes, 1 << 20);
        let (cfg, _) = parse("tools_list = \"1s\"\n");
        assert_eq!(cfg.unwrap().max_bytes, 64 << 20);
    }

    #[test]
    fn the_summary_says_what_and_where() {
        let (cfg, _) = parse("tools_list = \"1m\"\nprompts_list = \"30s\"\n");
        assert_eq!(
            summary(&cfg.unwrap()),
            "cache: tools/list 1m, prompts/list 30s (in memory)"
        );
    }

    #[test]
    fn nothing_cached_is_no_cache() {
        let (cfg, errors) = parse("tools_list = \"0s\"\n");
        assert!(errors.is_empty() && cfg.is_none());
    }
}
