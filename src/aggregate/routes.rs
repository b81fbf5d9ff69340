//! Which server serves a name or URI the aggregate listed: the routing table of one
//! aggregate session.
//!
//! Filled by the list merge (`aggregate/lists.rs`) as pages go by: tool and prompt names
//! without prefixes (`prefix = "never"`; with prefixes the name itself says), resource URIs,
//! resource templates. A server's `*/list_changed` forgets what it listed of that kind, and a
//! server that goes away is forgotten whole, so the next list rebuilds it. Whether a kind is
//! known whole (`complete`) decides if an unknown name is unknown, or must first be looked
//! for by listing everything (`aggregate/session.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use globset::GlobMatcher;

use super::names::{template_matcher, Item, ListKind};

#[derive(Debug)]
struct Template {
    server: Arc<str>,
    template: String,
    matcher: GlobMatcher,
}

/// What happened when a server listed a name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// It is this server's (now, or already).
    Ours,
    /// Another server listed it first: the item is left out.
    Taken(Arc<str>),
}

#[derive(Debug, Default)]
pub(super) struct Routes {
    tools: HashMap<String, Arc<str>>,
    prompts: HashMap<String, Arc<str>>,
    resources: HashMap<String, Arc<str>>,
    templates: Vec<Template>,
    /// Per [`ListKind`]: every server's every page was seen since the last change.
    complete: [bool; 4],
}

impl Routes {
    fn names(&mut self, item: Item) -> &mut HashMap<String, Arc<str>> {
        match item {
            Item::Tool => &mut self.tools,
            Item::Prompt => &mut self.prompts,
            Item::Resource => &mut self.resources,
        }
    }

    /// The server of an unprefixed tool or prompt name, or of a listed URI.
    pub(super) fn named(&self, item: Item, name: &str) -> Option<&Arc<str>> {
        match item {
            Item::Tool => self.tools.get(name),
            Item::Prompt => self.prompts.get(name),
            Item::Resource => self.resources.get(name),
        }
    }

    /// `server` listed `name`: the first server to list a name keeps it.
    pub(super) fn claim(&mut self, item: Item, name: &str, server: &Arc<str>) -> Claim {
        match self.names(item).get(name) {
            Some(s) if s == server => Claim::Ours,
            Some(s) => Claim::Taken(s.clone()),
            None => {
                self.names(item).insert(name.to_owned(), server.clone());
                Claim::Ours
            }
        }
    }

    /// `server` listed the resource template `template`.
    pub(super) fn add_template(&mut self, template: &str, server: &Arc<str>) {
        let known = self
            .templates
            .iter()
            .any(|t| t.template == template && t.server == *server);
        if known {
            return;
        }
        if let Some(matcher) = template_matcher(template) {
            self.templates.push(Template {
                server: server.clone(),
                template: template.to_owned(),
                matcher,
            });
        }
    }

    /// The server of a URI: one that listed it; else one that listed it as a template
    /// (`completion/complete` names templates); else the first whose template produces it.
    pub(super) fn resource(&self, uri: &str) -> Option<&Arc<str>> {
        self.resources
            .get(uri)
            .or_else(|| {
                self.templates
                    .iter()
                    .find(|t| t.template == uri)
                    .map(|t| &t.server)
            })
            .or_else(|| {
                self.templates
                    .iter()
                    .find(|t| t.matcher.is_match(uri))
                    .map(|t| &t.server)
            })
    }

    pub(super) fn is_complete(&self, kind: ListKind) -> bool {
        self.complete[kind as usize]
    }

    pub(super) fn set_complete(&mut self, kind: ListKind) {
        self.complete[kind as usize] = true;
    }

    /// `server` said its list of `kind` changed: what it listed of that kind is forgotten.
    pub(super) fn forget(&mut self, kind: ListKind, server: &str) {
        self.complete[kind as usize] = false;
        match kind {
            ListKind::Tools => self.tools.retain(|_, s| &**s != server),
            ListKind::Prompts => self.prompts.retain(|_, s| &**s != server),
            ListKind::Resources => self.resources.retain(|_, s| &**s != server),
            ListKind::Templates => self.templates.retain(|t| &*t.server != server),
        }
    }

    /// `server` went away or came (back): everything it listed is forgotten.
    pub(super) fn forget_server(&mut self, server: &str) {
        for kind in ListKind::ALL {
            self.forget(kind, server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_server_keeps_a_name_until_it_forgets_it() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut r = Routes::default();
        assert_eq!(r.claim(Item::Tool, "echo", &a), Claim::Ours);
        assert_eq!(r.claim(Item::Tool, "echo", &a), Claim::Ours);
        assert_eq!(r.claim(Item::Tool, "echo", &b), Claim::Taken(a.clone()));
        assert_eq!(r.claim(Item::Prompt, "echo", &b), Claim::Ours);
        r.set_complete(ListKind::Tools);
        r.forget(ListKind::Tools, "a");
        assert!(!r.is_complete(ListKind::Tools));
        assert_eq!(r.named(Item::Tool, "echo"), None);
        assert_eq!(r.named(Item::Prompt, "echo"), Some(&b));
        assert_eq!(r.claim(Item::Tool, "echo", &b), Claim::Ours);
    }

    #[test]
    fn resources_route_by_uri_then_template() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut r = Routes::default();
        r.claim(Item::Resource, "test://static-text", &a);
        r.add_template("test://template/{id}/data", &b);
        r.add_template("test://template/{id}/data", &b);
        assert_eq!(r.resource("test://static-text"), Some(&a));
        assert_eq!(r.resource("test://template/{id}/data"), Some(&b));
        assert_eq!(r.resource("test://template/7/data"), Some(&b));
        assert_eq!(r.resource("test://nothing"), None);
        r.forget_server("b");
        assert_eq!(r.resource("test://template/7/data"), None);
    }
}
