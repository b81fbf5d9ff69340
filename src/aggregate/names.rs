//! How the aggregate names what its servers offer, and which of it a tool subset publishes.
//!
//! [`Naming`]: with `prefix = "always"` (the default) a tool or prompt `echo` of the server
//! `github` is `github__echo` (the separator is configurable); routing strips the prefix, the
//! longest server name that fits winning (`a__b__c` is tool `c` of `a__b` when both `a` and
//! `a__b` are servers). With `prefix = "never"` names are the servers' own and the routing
//! table (`aggregate/routes.rs`) remembers which server listed which. Resources keep their
//! URIs in both modes.
//!
//! [`ListKind`]: the four lists, what each holds and which notification says it changed.
//!
//! [`Subset`]: an `[endpoints.NAME]` selection: servers published whole, plus globs over
//! qualified names (`server:tool`, `server:prompt`, `server:uri`, `server:uriTemplate`),
//! matched with `globset` (linear time, SECURITY.md on ReDoS). Validating the globs is the
//! config's job; one that does not compile here is left out with a warning.

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use tracing::warn;

use crate::config::servers::{EndpointSpec, Prefix};

/// What a name or URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Item {
    Tool,
    Prompt,
    Resource,
}

/// One of the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    Tools = 0,
    Prompts = 1,
    Resources = 2,
    Templates = 3,
}

impl ListKind {
    pub(super) const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::Templates,
    ];

    pub(super) fn of(method: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.method() == method)
    }

    pub(super) fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The member of the result holding the items.
    pub(super) fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The server capability that offers the list.
    pub(super) fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    /// The notification saying the list changed.
    pub(super) fn changed(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
        }
    }

    /// The lists a `*/list_changed` notification is about.
    pub(super) fn changed_by(method: &str) -> &'static [ListKind] {
        match method {
            "notifications/tools/list_changed" => &[ListKind::Tools],
            "notifications/prompts/list_changed" => &[ListKind::Prompts],
            "notifications/resources/list_changed" => &[ListKind::Resources, ListKind::Templates],
            _ => &[],
        }
    }

    pub(super) fn item(self) -> Item {
        match self {
            ListKind::Tools => Item::Tool,
            ListKind::Prompts => Item::Prompt,
            ListKind::Resources | ListKind::Templates => Item::Resource,
        }
    }
}

/// The names the client sees for the names the servers give.
#[derive(Debug, Clone)]
pub(super) struct Naming {
    pub separator: String,
    pub prefix: Prefix,
}

impl Naming {
    /// The name the client sees for `name` of `server`.
    pub(super) fn outer(&self, server: &str, name: &str) -> String {
        match self.prefix {
            Prefix::Always => format!("{server}{}{name}", self.separator),
            Prefix::Never => name.to_owned(),
        }
    }

    /// With prefixes: which of `servers` a client name belongs to, and the server's own
    /// name (the longest server name whose prefix fits). `None` without prefixes, or when
    /// no server fits.
    pub(super) fn split<'a, 's>(
        &self,
        servers: impl Iterator<Item = &'s str>,
        name: &'a str,
    ) -> Option<(&'s str, &'a str)> {
        if self.prefix == Prefix::Never {
            return None;
        }
        let mut best: Option<(&'s str, &'a str)> = None;
        for server in servers {
            let Some(rest) = name
                .strip_prefix(server)
                .and_then(|r| r.strip_prefix(self.separator.as_str()))
            else {
                continue;
            };
            if !rest.is_empty() && best.is_none_or(|(b, _)| b.len() < server.len()) {
                best = Some((server, rest));
            }
        }
        best
    }
}

/// A tool subset's selection, compiled.
#[derive(Debug)]
pub(super) struct Subset {
    servers: Vec<String>,
    tools: GlobSet,
    prompts: GlobSet,
    resources: GlobSet,
    /// The server part of every glob, to know which servers a subset needs at all.
    server_parts: Vec<GlobMatcher>,
}

impl Subset {
    pub(super) fn new(spec: &EndpointSpec) -> Subset {
        let mut server_parts = Vec::new();
        let all = spec
            .tools
            .iter()
            .chain(&spec.prompts)
            .chain(&spec.resources);
        for pattern in all {
            let part = pattern.split_once(':').map_or("*", |(s, _)| s);
            if let Some(m) = compile(&spec.name, part) {
                server_parts.push(m.compile_matcher());
            }
        }
        Subset {
            servers: spec.servers.clone(),
            tools: set(&spec.name, &spec.tools),
            prompts: set(&spec.name, &spec.prompts),
            resources: set(&spec.name, &spec.resources),
            server_parts,
        }
    }

    /// Whether anything of `server` may be published (its session is opened at all).
    pub(super) fn opens(&self, server: &str) -> bool {
        self.servers.iter().any(|s| s == server)
            || self.server_parts.iter().any(|m| m.is_match(server))
    }

    /// Whether `name` (a tool or prompt name, a URI or a URI template) of `server` is
    /// published.
    pub(super) fn allows(&self, item: Item, server: &str, name: &str) -> bool {
        if self.servers.iter().any(|s| s == server) {
            return true;
        }
        let set = match item {
            Item::Tool => &self.tools,
            Item::Prompt => &self.prompts,
            Item::Resource => &self.resources,
        };
        !set.is_empty() && set.is_match(format!("{server}:{name}"))
    }
}

fn compile(endpoint: &str, pattern: &str) -> Option<Glob> {
    match crate::config::servers::glob(pattern) {
        Ok(g) => Some(g),
        Err(e) => {
            warn!(endpoint, pattern, error = %e, "endpoint glob left out");
            None
        }
    }
}

fn set(endpoint: &str, patterns: &[String]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        if let Some(g) = compile(endpoint, p) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// A URI template (RFC 6570) as a matcher of the URIs it can produce: each `{...}`
/// expression matches anything, the rest literally.
pub(super) fn template_matcher(template: &str) -> Option<GlobMatcher> {
    let mut glob = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        glob.push_str(&globset::escape(&rest[..open]));
        let close = rest[open..].find('}')? + open;
        glob.push('*');
        rest = &rest[close + 1..];
    }
    glob.push_str(&globset::escape(rest));
    Some(
        globset::GlobBuilder::new(&glob)
            .literal_separator(false)
            .build()
            .ok()?
            .compile_matcher(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(prefix: Prefix) -> Naming {
        Naming {
            separator: "__".into(),
            prefix,
        }
    }

    #[test]
    fn prefixed_names_split_back_to_the_longest_server() {
        let n = naming(Prefix::Always);
        assert_eq!(n.outer("github", "create_issue"), "github__create_issue");
        let servers = ["a", "a__b", "fs"];
        assert_eq!(
            n.split(servers.into_iter(), "fs__read"),
            Some(("fs", "read"))
        );
        assert_eq!(n.split(servers.into_iter(), "a__b__c"), Some(("a__b", "c")));
        assert_eq!(n.split(servers.into_iter(), "a__x__y"), Some(("a", "x__y")));
        assert_eq!(n.split(servers.into_iter(), "fs__"), None);
        assert_eq!(n.split(servers.into_iter(), "nope__x"), None);
        assert_eq!(n.split(servers.into_iter(), "fsread"), None);
        let never = naming(Prefix::Never);
        assert_eq!(never.outer("fs", "read"), "read");
        assert_eq!(never.split(servers.into_iter(), "fs__read"), None);
    }

    #[test]
    fn subset_publishes_whole_servers_and_globbed_names() {
        let s = Subset::new(&EndpointSpec {
            name: "support".into(),
            servers: vec!["docs".into()],
            tools: vec!["github:get_*".into(), "jira:search".into()],
            prompts: vec![],
            resources: vec!["fs:file:///public/*".into()],
        });
        assert!(s.opens("docs") && s.opens("github") && s.opens("fs") && !s.opens("db"));
        assert!(s.allows(Item::Tool, "github", "get_issue"));
        assert!(!s.allows(Item::Tool, "github", "create_issue"));
        assert!(s.allows(Item::Tool, "jira", "search"));
        assert!(!s.allows(Item::Prompt, "github", "get_issue"));
        assert!(s.allows(Item::Prompt, "docs", "anything"));
        assert!(s.allows(Item::Resource, "fs", "file:///public/readme.txt"));
        assert!(!s.allows(Item::Resource, "fs", "file:///secret/keys.txt"));
        let any = Subset::new(&EndpointSpec {
            name: "e".into(),
            tools: vec!["*:read_*".into()],
            ..EndpointSpec::default()
        });
        assert!(any.opens("whatever") && any.allows(Item::Tool, "x", "read_file"));
    }

    #[test]
    fn templates_match_the_uris_they_produce() {
        let m = template_matcher("test://template/{id}/data").unwrap();
        assert!(m.is_match("test://template/42/data"));
        assert!(!m.is_match("test://template/42/other"));
        let star = template_matcher("file:///a*b/{+path}").unwrap();
        assert!(star.is_match("file:///a*b/x/y"));
        assert!(!star.is_match("file:///aXb/x"));
        assert!(template_matcher("broken{").is_none());
    }
}
