//! Role-based access control for JSON-RPC requests (SECURITY.md §3 and §8.B).
//!
//! Owns: the permissions file (the seed `permissions.json` form, a role map, bare or wrapped
//! as `{"roles": {…}}`), its validation, the per-request [`Decision`] and the `*/list` result
//! filter ([`ListFilter`]). Does not own: wire errors (`error.rs` turns a denial into -32601,
//! -32602 or the legacy -32002), sessions and principals (the caller passes the role names of
//! `caller::Principal`), nor reading `method`/`name`/`uri` out of a frame (`jsonrpc`,
//! after the ambiguity rule). Only requests are decided; notifications and responses never are.
//!
//! Rules: the protocol's plumbing, `initialize`, `ping` and `server/discover`, is always
//! allowed, whatever the roles and the child's era, so a session can open and a 2026-07-28
//! client can learn what the server is instead of falling back. A caller's roles
//! are a union; unknown role names are ignored and a caller with no known role is denied
//! (`no_role`). Within one role, `blockedMethods` wins over `allowedMethods`; an unmatched
//! method is denied when the role lists `allowedMethods` or says `"unknownMethods": "deny"`.
//! Globs (globset syntax: `*`, `?`, `[…]`, `{a,b}`, `\` escapes) match the raw string,
//! case-sensitively; `*` also matches `/`. `"unknownMethods": "allow"` never overrides a
//! listed `allowedMethods`. For `tools/call`, `prompts/get` and
//! `resources/{read,subscribe,unsubscribe}` the same role must also allow the tool name, prompt
//! name or resource URI (deny wins; no allow list = all; a rule and no name = deny).

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use globset::{Candidate, GlobBuilder, GlobMatcher};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Requests every caller may send, whatever its roles: a legacy session must be able to open
/// (`initialize`) and be kept alive (`ping`); a 2026-07-28 client asks `server/discover`
/// first and falls back to `initialize` when it is refused (issue 14). None of them reaches a
/// tool, prompt or resource. Notifications (`initialized`, `cancelled`, `progress`) are
/// never decided at all.
pub(crate) const ALWAYS_ALLOWED: [&str; 3] = ["initialize", "ping", "server/discover"];

/// Why a permissions file was rejected. Every variant is the operator's fault (startup, exit 64).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read permissions file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("permissions file is not valid json")]
    Syntax(#[source] serde_json::Error),
    #[error("permissions file must be an object mapping role names to rules")]
    NotRoles,
    #[error("permissions file defines no roles")]
    NoRoles,
    #[error("role `{0}` is defined twice")]
    DuplicateRole(String),
    #[error("role `{0}` must be an object")]
    RoleNotObject(String),
    #[error("role `{role}`: unknown key `{key}`")]
    UnknownKey { role: String, key: String },
    #[error("role `{role}`: key `{key}` is given twice")]
    DuplicateKey { role: String, key: String },
    #[error("role `{role}`: `{key}` must be {expected}")]
    Invalid {
        role: String,
        key: String,
        expected: &'static str,
    },
    #[error("role `{role}`: `{key}` is not a valid glob")]
    Glob {
        role: String,
        key: String,
        #[source]
        source: globset::Error,
    },
}

/// The answer for one request. `rule` is a short audit id: `readonly.blockedMethods[0]`,
/// `user.tools.deny[1]`, `user.default_deny`, `no_role`, `always_allowed`. `error.rs` answers
/// a denial like an unknown method (-32601), tool or prompt (-32602), or resource (-32602
/// modern, -32002 legacy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow { rule: String },
    DenyMethod { rule: String },
    DenyTool { rule: String },
    DenyPrompt { rule: String },
    DenyResource { rule: String },
}

/// The validated permissions file, built once at startup.
#[derive(Debug)]
pub(crate) struct Rbac {
    /// In file order.
    roles: Vec<Role>,
}

/// A `*/list` result filter for one caller; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub(crate) struct ListFilter {
    inner: Arc<FilterInner>,
}

#[derive(Debug)]
struct FilterInner {
    /// The array inside `result` (`tools`, `prompts`, `resources`, `resourceTemplates`).
    array: &'static str,
    /// The member of each element that is checked (`name`, `uri`, `uriTemplate`).
    field: &'static str,
    /// One entry per role that may list; an element passes if any of them lets it through.
    rules: Vec<Arc<NameRules>>,
}

#[derive(Debug, Default)]
struct Role {
    name: String,
    allowed: Option<Globs>,
    blocked: Globs,
    unknown_deny: bool,
    tools: Option<Arc<NameRules>>,
    prompts: Option<Arc<NameRules>>,
    resources: Option<Arc<NameRules>>,
}

/// `allow`/`deny` globs over tool names, prompt names or resource URIs.
#[derive(Debug, Default)]
struct NameRules {
    /// `<role>.<kind>`, the start of every rule id.
    prefix: String,
    allow: Option<Globs>,
    deny: Globs,
}

#[derive(Debug, Default)]
struct Globs(Vec<GlobMatcher>);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tools,
    Prompts,
    Resources,
}

// === impl Rbac ===

impl Rbac {
    /// Parses and validates a permissions file's text.
    pub(crate) fn parse(text: &str) -> Result<Rbac, Error> {
        let top = serde_json::from_str::<Members>(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Error::NotRoles,
            _ => Error::Syntax(e),
        })?;
        // Why only a lone `roles` key: the seed form is the bare role map; a file with one
        // role literally named `roles` would fail validation below, never widen access.
        let entries = match top.0.as_slice() {
            [(key, inner)] if key == "roles" => members(inner.get()).ok_or(Error::NotRoles)?,
            _ => top.0,
        };
        if entries.is_empty() {
            return Err(Error::NoRoles);
        }
        let mut roles: Vec<Role> = Vec::with_capacity(entries.len());
        for (name, raw) in &entries {
            if roles.iter().any(|r| r.name == *name) {
                return Err(Error::DuplicateRole(name.clone()));
            }
            roles.push(Role::parse(name, raw)?);
        }
        Ok(Rbac { roles })
    }

    /// Reads and validates a permissions file.
    pub(crate) fn load(path: &Path) -> Result<Rbac, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Rbac::parse(&text)
    }

    #[cfg(test)]
    /// Role names in file order.
    pub(crate) fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name.as_str())
    }

    /// Decides one request. `name` is `params.name` (tools/call, prompts/get), `uri` is
    /// `params.uri` (resources/read, subscribe, unsubscribe), both as the child will see them.
    pub(crate) fn decide(
        &self,
        roles: &[String],
        method: &str,
        name: Option<&str>,
        uri: Option<&str>,
    ) -> Decision {
        if ALWAYS_ALLOWED.contains(&method) {
            return Decision::Allow {
                rule: "always_allowed".to_owned(),
            };
        }
        let mut denied: Option<Decision> = None;
        for role in self.known(roles) {
            match role.decide(method, name, uri) {
                allow @ Decision::Allow { .. } => return allow,
                // Why prefer a name denial: some role allows the method, so the caller is
                // told "unknown tool", as SECURITY.md §3 decides, not "unknown method".
                deny @ Decision::DenyMethod { .. } => {
                    denied.get_or_insert(deny);
                }
                deny => {
                    if matches!(denied, None | Some(Decision::DenyMethod { .. })) {
                        denied = Some(deny);
                    }
                }
            }
        }
        denied.unwrap_or_else(|| Decision::DenyMethod {
            rule: "no_role".to_owned(),
        })
    }

    /// The filter for a `*/list` result, or `None` when the method is not a list method or the
    /// caller's roles would let every element through.
    pub(crate) fn list_filter(&self, roles: &[String], method: &str) -> Option<ListFilter> {
        let (kind, array, field) = match method {
            "tools/list" => (Kind::Tools, "tools", "name"),
            "prompts/list" => (Kind::Prompts, "prompts", "name"),
            "resources/list" => (Kind::Resources, "resources", "uri"),
            "resources/templates/list" => (Kind::Resources, "resourceTemplates", "uriTemplate"),
            _ => return None,
        };
        let using = match kind {
            Kind::Tools => "tools/call",
            Kind::Prompts => "prompts/get",
            Kind::Resources => "resources/read",
        };
        // A list shows what the caller can use: the names its roles that may use them allow.
        // A caller that may list but use none (a read-only role) sees the catalogue its
        // listing roles' name rules allow. With no role that may list, nothing is shown.
        let users: Vec<&Role> = self
            .known(roles)
            .filter(|r| r.method(using).is_ok())
            .collect();
        let listers: Vec<&Role> = self
            .known(roles)
            .filter(|r| r.method(method).is_ok())
            .collect();
        let contributing = match (listers.is_empty(), users.is_empty()) {
            (true, _) => Vec::new(),
            (false, true) => listers,
            (false, false) => users,
        };
        let mut rules = Vec::new();
        for role in contributing {
            match role.rules(kind) {
                None => return None,
                Some(r) => rules.push(Arc::clone(r)),
            }
        }
        Some(ListFilter {
            inner: Arc::new(FilterInner {
                array,
                field,
                rules,
            }),
        })
    }

    /// The caller's roles that exist in the file, in the caller's order.
    fn known<'a>(&'a self, roles: &'a [String]) -> impl Iterator<Item = &'a Role> + 'a {
        roles
            .iter()
            .filter_map(|wanted| self.roles.iter().find(|r| r.name == *wanted))
    }
}

// === impl Decision ===

impl Decision {
    #[cfg(test)]
    pub(crate) fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    #[cfg(test)]
    /// The audit rule id.
    pub(crate) fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule }
            | Decision::DenyMethod { rule }
            | Decision::DenyTool { rule }
            | Decision::DenyPrompt { rule }
            | Decision::DenyResource { rule } => rule,
        }
    }
}

// === impl Role ===

impl Role {
    fn parse(name: &str, raw: &RawValue) -> Result<Role, Error> {
        let fields = members(raw.get()).ok_or_else(|| Error::RoleNotObject(name.to_owned()))?;
        let mut role = Role {
            name: name.to_owned(),
            ..Role::default()
        };
        for (i, (key, value)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(k, _)| k == key) {
                return Err(key_error(name, key, true));
            }
            match key.as_str() {
                "allowedMethods" => role.allowed = Some(Globs::parse(name, key, value)?),
                "blockedMethods" => role.blocked = Globs::parse(name, key, value)?,
                "tools" => role.tools = Some(NameRules::parse(name, key, value)?),
                "prompts" => role.prompts = Some(NameRules::parse(name, key, value)?),
                "resources" => role.resources = Some(NameRules::parse(name, key, value)?),
                "unknownMethods" => {
                    role.unknown_deny = match serde_json::from_str::<String>(value.get()).as_deref()
                    {
                        Ok("deny") => true,
                        Ok("allow") => false,
                        _ => return Err(invalid(name, key, "\"allow\" or \"deny\"")),
                    }
                }
                _ => return Err(key_error(name, key, false)),
            }
        }
        Ok(role)
    }

    /// The method rules alone: `Ok(allowing rule)` or `Err(denying rule)`.
    fn method(&self, method: &str) -> Result<String, String> {
        let name = &self.name;
        if let Some(i) = self.blocked.find(method) {
            return Err(format!("{name}.blockedMethods[{i}]"));
        }
        match self.allowed.as_ref().map(|a| a.find(method)) {
            Some(Some(i)) => Ok(format!("{name}.allowedMethods[{i}]")),
            Some(None) => Err(format!("{name}.default_deny")),
            None if self.unknown_deny => Err(format!("{name}.default_deny")),
            None => Ok(format!("{name}.default_allow")),
        }
    }

    fn decide(&self, method: &str, name: Option<&str>, uri: Option<&str>) -> Decision {
        let rule = match self.method(method) {
            Ok(rule) => rule,
            Err(rule) => return Decision::DenyMethod { rule },
        };
        let (kind, subject) = match method {
            "tools/call" => (Kind::Tools, name),
            "prompts/get" => (Kind::Prompts, name),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                (Kind::Resources, uri)
            }
            _ => return Decision::Allow { rule },
        };
        match self.rules(kind).map(|r| r.check(subject)) {
            None | Some(Ok(None)) => Decision::Allow { rule },
            Some(Ok(Some(rule))) => Decision::Allow { rule },
            Some(Err(rule)) => kind.deny(rule),
        }
    }

    fn rules(&self, kind: Kind) -> Option<&Arc<NameRules>> {
        match kind {
            Kind::Tools => self.tools.as_ref(),
            Kind::Prompts => self.prompts.as_ref(),
            Kind::Resources => self.resources.as_ref(),
        }
    }
}

impl Kind {
    fn deny(self, rule: String) -> Decision {
        match self {
            Kind::Tools => Decision::DenyTool { rule },
            Kind::Prompts => Decision::DenyPrompt { rule },
            Kind::Resources => Decision::DenyResource { rule },
        }
    }
}

// === impl NameRules ===

impl NameRules {
    fn parse(role: &str, kind: &str, raw: &RawValue) -> Result<Arc<NameRules>, Error> {
        let fields = members(raw.get())
            .ok_or_else(|| invalid(role, kind, "an object with `allow` and/or `deny`"))?;
        let mut rules = NameRules {
            prefix: format!("{role}.{kind}"),
            ..NameRules::default()
        };
        for (i, (key, value)) in fields.iter().enumerate() {
            let path = format!("{kind}.{key}");
            if fields[..i].iter().any(|(k, _)| k == key) {
                return Err(key_error(role, &path, true));
            }
            match key.as_str() {
                "allow" => rules.allow = Some(Globs::parse(role, &path, value)?),
                "deny" => rules.deny = Globs::parse(role, &path, value)?,
                _ => return Err(key_error(role, &path, false)),
            }
        }
        Ok(Arc::new(rules))
    }

    /// `Ok(Some(rule))`: allowed by an allow entry; `Ok(None)`: allowed, no allow list;
    /// `Err(rule)`: denied. A missing name is denied once any rule for the kind exists.
    fn check(&self, subject: Option<&str>) -> Result<Option<String>, String> {
        let prefix = &self.prefix;
        let Some(subject) = subject else {
            return Err(format!("{prefix}.missing_name"));
        };
        if let Some(i) = self.deny.find(subject) {
            return Err(format!("{prefix}.deny[{i}]"));
        }
        match self.allow.as_ref().map(|a| a.find(subject)) {
            None => Ok(None),
            Some(Some(i)) => Ok(Some(format!("{prefix}.allow[{i}]"))),
            Some(None) => Err(format!("{prefix}.default_deny")),
        }
    }

    fn passes(&self, subject: &str) -> bool {
        self.check(Some(subject)).is_ok()
    }
}

// === impl Globs ===

impl Globs {
    fn parse(role: &str, key: &str, raw: &RawValue) -> Result<Globs, Error> {
        let patterns = serde_json::from_str::<Vec<String>>(raw.get())
            .map_err(|_| invalid(role, key, "an array of strings"))?;
        let mut globs = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.iter().enumerate() {
            let key = format!("{key}[{i}]");
            if pattern.is_empty() {
                return Err(invalid(role, &key, "a non-empty glob"));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .case_insensitive(false)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::Glob {
                    role: role.to_owned(),
                    key,
                    source,
                })?;
            globs.push(glob.compile_matcher());
        }
        Ok(Globs(globs))
    }

    /// The index of the first matching glob.
    fn find(&self, subject: &str) -> Option<usize> {
        let candidate = Candidate::from_bytes(subject.as_bytes());
        self.0.iter().position(|g| g.is_match_candidate(&candidate))
    }
}

fn key_error(role: &str, key: &str, duplicate: bool) -> Error {
    let (role, key) = (role.to_owned(), key.to_owned());
    if duplicate {
        Error::DuplicateKey { role, key }
    } else {
        Error::UnknownKey { role, key }
    }
}

fn invalid(role: &str, key: &str, expected: &'static str) -> Error {
    Error::Invalid {
        role: role.to_owned(),
        key: key.to_owned(),
        expected,
    }
}

// === impl ListFilter ===

impl ListFilter {
    /// Rewrites a whole JSON-RPC response, dropping the elements of `result.<array>` the
    /// caller may not use. `None` when nothing was removed, the response is an error or has
    /// no result, or it does not parse (then it is forwarded as is: the filter hides, the
    /// `decide` call on every use is what enforces). Every other member keeps its raw text;
    /// a repeated key is filtered in every occurrence; an element whose `name`/`uri` is
    /// missing, not a string, or repeated with any value that does not pass is removed.
    pub(crate) fn apply(&self, response: &[u8]) -> Option<Bytes> {
        let top = serde_json::from_slice::<Members>(response).ok()?.0;
        let out = rewrite(&top, response.len(), "result", |v| self.filter_result(v))?;
        Some(Bytes::from(out))
    }

    fn filter_result(&self, result: &RawValue) -> Option<Vec<u8>> {
        let fields = members(result.get())?;
        let size = result.get().len();
        rewrite(&fields, size, self.inner.array, |v| self.filter_array(v))
    }

    fn filter_array(&self, array: &RawValue) -> Option<Vec<u8>> {
        let elements = serde_json::from_str::<Vec<Box<RawValue>>>(array.get()).ok()?;
        let kept: Vec<&str> = elements
            .iter()
            .map(|e| e.get())
            .filter(|e| self.visible(e))
            .collect();
        (kept.len() < elements.len()).then(|| format!("[{}]", kept.join(",")).into_bytes())
    }

    fn visible(&self, element: &str) -> bool {
        let Some(fields) = members(element) else {
            return false;
        };
        let mut subjects = fields
            .iter()
            .filter(|(k, _)| k == self.inner.field)
            .map(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
            .peekable();
        subjects.peek().is_some()
            && subjects.all(|s| s.is_some_and(|s| self.inner.rules.iter().any(|r| r.passes(&s))))
    }
}

/// Re-emits an object, giving every member named `target` the text `replace` returns (if
/// any); `None` when nothing was replaced.
fn rewrite(
    members: &[(String, Box<RawValue>)],
    size: usize,
    target: &str,
    replace: impl Fn(&RawValue) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut changed = false;
    let mut out = Vec::with_capacity(size);
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        match (key == target).then(|| replace(value)).flatten() {
            Some(new) => {
                changed = true;
                out.extend_from_slice(&new);
            }
            None => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    changed.then_some(out)
}

// === Members: an object's members in order, duplicates kept ===

/// Why not a map: duplicates must be seen (rejected in the file, filtered in responses) and
/// order must survive re-emission.
struct Members(Vec<(String, Box<RawValue>)>);

fn members(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    serde_json::from_str::<Members>(text).ok().map(|m| m.0)
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}
