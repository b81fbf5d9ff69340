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
//!
//! Servers (several servers behind one relay, [`Names`]): on a named server's relay a name is
//! also tested qualified, `server:name` (tools, prompts) or `server:uri` (resources). A tool or
//! prompt glob with `:` is qualified: in `allow` it tests `server:name` only, in `deny` both
//! forms; globs without `:` test the bare name. Resource globs test both forms (URIs contain
//! `:`). On a single-server relay every glob tests the bare name, as before, so `github:*`
//! matches nothing there (MCP tool and prompt names contain no `:`). `servers` (globs over
//! server names; no list = all) and `blockedServers` (wins) say which named servers a role
//! covers: a role that does not cover the server allows nothing there but its `*/list`
//! methods, whose results it empties; on a single-server relay a role with `servers` covers
//! nothing (there is no name to match) and `blockedServers` blocks nothing. The aggregate's
//! own relay ([`Names::Delegated`]) decides methods only: its names are prefixed, and each
//! named server's relay decides and filters them.

mod globs;
mod list;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::value::RawValue;

use globs::{allow_form, deny_form, Form, Globs, Subject};
pub(crate) use list::ListFilter;
use list::{members, Members};

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

/// Whose tool, prompt and resource names a relay decides: computed once per request by the
/// relay from its configuration (`Relay::names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names<'a> {
    /// A single-server relay: the child's names, tested bare.
    Plain,
    /// The relay of the named server `.0`: names tested bare and as `server:name`, and the
    /// roles' `servers`/`blockedServers` apply.
    Server(&'a str),
    /// The aggregate of several servers: its names are prefixed (`github__create_issue`), so it
    /// decides methods only and filters no list; each named server's relay does the rest.
    Delegated,
}

/// The validated permissions file, built once at startup.
#[derive(Debug)]
pub(crate) struct Rbac {
    /// In file order.
    roles: Vec<Role>,
}

#[derive(Debug, Default)]
struct Role {
    name: String,
    allowed: Option<Globs>,
    blocked: Globs,
    unknown_deny: bool,
    /// Named servers the role covers (`servers`; `None`: all) and those it never covers.
    servers: Option<Globs>,
    blocked_servers: Globs,
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
    /// Some glob tests the qualified form of a name.
    qualifies: bool,
}

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

    /// Decides one request on a relay deciding `names`. `name` is `params.name` (tools/call,
    /// prompts/get), `uri` is `params.uri` (resources/read, subscribe, unsubscribe), both as
    /// the child will see them.
    pub(crate) fn decide(
        &self,
        roles: &[String],
        names: Names<'_>,
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
            match role.decide(names, method, name, uri) {
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

    /// The filter for a `*/list` result, or `None` when the method is not a list method, the
    /// caller's roles would let every element through, or the relay decides no names
    /// ([`Names::Delegated`]). Roles that do not cover the server contribute nothing.
    pub(crate) fn list_filter(
        &self,
        roles: &[String],
        names: Names<'_>,
        method: &str,
    ) -> Option<ListFilter> {
        let server = match names {
            Names::Delegated => return None,
            Names::Plain => None,
            Names::Server(s) => Some(s),
        };
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
        let covering = || self.known(roles).filter(|r| r.server(names).is_ok());
        let users: Vec<&Role> = covering().filter(|r| r.method(using).is_ok()).collect();
        let listers: Vec<&Role> = covering().filter(|r| r.method(method).is_ok()).collect();
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
        Some(ListFilter::new(
            array,
            field,
            rules,
            server.map(str::to_owned),
        ))
    }

    /// The first place a role speaks of named servers (`role.servers`, `role.tools.allow[0]`),
    /// for a warning when the relay serves no named servers: there, such rules match nothing.
    pub(crate) fn server_rules(&self) -> Option<String> {
        self.roles.iter().find_map(Role::server_rules)
    }

    /// Whether any of `roles` covers the named server `server` (its `servers` and
    /// `blockedServers`, as when deciding on that server's relay).
    pub(crate) fn covers(&self, roles: &[String], server: &str) -> bool {
        self.known(roles)
            .any(|r| r.server(Names::Server(server)).is_ok())
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
                "allowedMethods" => role.allowed = Some(Globs::parse(name, key, value, bare)?),
                "blockedMethods" => role.blocked = Globs::parse(name, key, value, bare)?,
                "servers" => role.servers = Some(Globs::parse(name, key, value, bare)?),
                "blockedServers" => role.blocked_servers = Globs::parse(name, key, value, bare)?,
                "tools" | "prompts" | "resources" => {
                    let rules = Some(NameRules::parse(name, key, value)?);
                    match key.as_str() {
                        "tools" => role.tools = rules,
                        "prompts" => role.prompts = rules,
                        _ => role.resources = rules,
                    }
                }
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

    /// The server rules alone, on a relay deciding `names`: `Err(denying rule)` when the role
    /// does not cover the relay's server.
    fn server(&self, names: Names<'_>) -> Result<(), String> {
        let name = &self.name;
        let server = match names {
            Names::Delegated => return Ok(()),
            Names::Plain if self.servers.is_some() => {
                return Err(format!("{name}.servers.default_deny"))
            }
            Names::Plain => return Ok(()),
            Names::Server(s) => s,
        };
        if let Some(i) = self.blocked_servers.find(server) {
            return Err(format!("{name}.blockedServers[{i}]"));
        }
        match self.servers.as_ref().map(|s| s.find(server)) {
            Some(None) => Err(format!("{name}.servers.default_deny")),
            _ => Ok(()),
        }
    }

    fn decide(
        &self,
        names: Names<'_>,
        method: &str,
        name: Option<&str>,
        uri: Option<&str>,
    ) -> Decision {
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
            // A role that does not cover the server lists nothing of it (`list_filter` empties
            // the result), so an aggregate sees an empty list, not a failing server.
            m if is_list(m) => return Decision::Allow { rule },
            _ => {
                return match self.server(names) {
                    Ok(()) => Decision::Allow { rule },
                    Err(rule) => Decision::DenyMethod { rule },
                }
            }
        };
        if let Err(rule) = self.server(names) {
            // Its tools, prompts and resources do not exist for this role.
            return kind.deny(rule);
        }
        if names == Names::Delegated {
            return Decision::Allow { rule };
        }
        match self.rules(kind).map(|r| r.check(subject, names)) {
            None | Some(Ok(None)) => Decision::Allow { rule },
            Some(Ok(Some(rule))) => Decision::Allow { rule },
            Some(Err(rule)) => kind.deny(rule),
        }
    }

    fn server_rules(&self) -> Option<String> {
        let name = &self.name;
        if self.servers.is_some() || !self.blocked_servers.is_empty() {
            return Some(format!("{name}.servers"));
        }
        [&self.tools, &self.prompts]
            .into_iter()
            .flatten()
            .find(|r| r.qualifies)
            .map(|r| r.prefix.clone())
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
            // URIs contain `:` themselves: every resource glob tests both forms.
            let (allow, deny): (FormOf, FormOf) = match kind {
                "resources" => (either, either),
                _ => (allow_form, deny_form),
            };
            match key.as_str() {
                "allow" => rules.allow = Some(Globs::parse(role, &path, value, allow)?),
                "deny" => rules.deny = Globs::parse(role, &path, value, deny)?,
                _ => return Err(key_error(role, &path, false)),
            }
        }
        rules.qualifies =
            rules.deny.qualifies() || rules.allow.as_ref().is_some_and(Globs::qualifies);
        Ok(Arc::new(rules))
    }

    /// `Ok(Some(rule))`: allowed by an allow entry; `Ok(None)`: allowed, no allow list;
    /// `Err(rule)`: denied. A missing name is denied once any rule for the kind exists.
    /// `names` is never [`Names::Delegated`] here (the aggregate decides no names).
    fn check(&self, subject: Option<&str>, names: Names<'_>) -> Result<Option<String>, String> {
        let prefix = &self.prefix;
        let Some(bare) = subject else {
            return Err(format!("{prefix}.missing_name"));
        };
        let qualified = match names {
            Names::Server(server) if self.qualifies => Some(format!("{server}:{bare}")),
            _ => None,
        };
        let subject = Subject {
            bare,
            qualified: qualified.as_deref(),
        };
        if let Some(i) = self.deny.find_in(subject) {
            return Err(format!("{prefix}.deny[{i}]"));
        }
        match self.allow.as_ref().map(|a| a.find_in(subject)) {
            None => Ok(None),
            Some(Some(i)) => Ok(Some(format!("{prefix}.allow[{i}]"))),
            Some(None) => Err(format!("{prefix}.default_deny")),
        }
    }

    fn passes(&self, subject: &str, names: Names<'_>) -> bool {
        self.check(Some(subject), names).is_ok()
    }
}

/// Picks a glob's [`Form`] from its text.
type FormOf = fn(&str) -> Form;

fn bare(_: &str) -> Form {
    Form::Bare
}

fn either(_: &str) -> Form {
    Form::Either
}

/// The `*/list` methods, whose results `list_filter` filters.
fn is_list(method: &str) -> bool {
    matches!(
        method,
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list"
    )
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
