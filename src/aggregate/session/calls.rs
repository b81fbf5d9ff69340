//! Requests routed to one server, and what servers send back.
//!
//! `tools/call` and `prompts/get` go to the server the name says (prefix stripped, or the
//! routing table without prefixes); `resources/read`, `subscribe` and `unsubscribe` to the
//! server that listed the URI or a template producing it; `completion/complete` by its
//! `ref`. A name no list showed yet is looked for by listing everything first
//! (`session/jobs.rs`); one that is still unknown gets the answer of an unknown tool or
//! prompt (-32602), or resource (-32002, the legacy era's resource-not-found, with
//! `data.uri`), exactly as a denied one would (SECURITY.md §3). A server that is down gets
//! -31006 (`child_unavailable`); its queue full, -31005. The request travels as its bytes
//! with the id (and the name) spliced: progress tokens, `_meta` and arguments untouched.
//!
//! From servers: answers to routed requests go back with the client's id; requests
//! (sampling, elicitation, roots, ping) get a fresh id of the session's; notifications pass
//! as they are (a `*/list_changed` also forgets that server's routes of the kind; a
//! `notifications/cancelled` of a server's own request is given the id the client saw).

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;
use tracing::debug;

use super::{Driver, Pending, Purpose};
use crate::aggregate::lists::ListKind;
use crate::aggregate::names::Item;
use crate::aggregate::wire::{self, Kind, Msg, Param};
use crate::config::servers::Prefix;
use crate::error::Error;

/// A tool or prompt name the server knows by another name.
struct Rename {
    own: String,
    /// Of the name in the client's message.
    span: Range<usize>,
    item: Item,
    /// The client's name for it.
    outer: String,
}

/// Where a request goes.
enum Route {
    /// To server `link`, with the name (its span in the message) rewritten to the server's.
    To(usize, Option<(String, Range<usize>)>),
    Unknown,
    /// Unknown until every list has been read.
    Resolve,
}

impl Driver {
    /// `tools/call`, `prompts/get`.
    pub(super) async fn call_named(&mut self, msg: Msg, may_resolve: bool) {
        let Some(client) = msg.id().map(str::to_owned) else {
            return;
        };
        let (item, kind) = match msg.method() {
            "tools/call" => (Item::Tool, ListKind::Tools),
            _ => (Item::Prompt, ListKind::Prompts),
        };
        let (name, span) = msg.param_str(Param::Name).unwrap_or_default();
        match self.route_name(item, kind, &name, span, may_resolve) {
            Route::To(i, rename) => {
                let rename = rename.map(|(own, span)| Rename {
                    own,
                    span,
                    item,
                    outer: name,
                });
                self.forward(&msg, &client, i, rename).await;
            }
            Route::Resolve => {
                self.waiting.push(msg);
                self.resolve(kind).await;
            }
            Route::Unknown => {
                let e = match item {
                    Item::Tool => Error::UnknownTool(name),
                    _ => Error::UnknownPrompt(name),
                };
                self.refuse(&client, &e).await;
            }
        }
    }

    fn route_name(
        &self,
        item: Item,
        kind: ListKind,
        name: &str,
        span: Range<usize>,
        may_resolve: bool,
    ) -> Route {
        let naming = &self.agg.naming;
        if naming.prefix == Prefix::Always {
            let servers = self.links.iter().map(|l| &*l.name);
            let Some((server, own)) = naming.split(servers, name) else {
                return Route::Unknown;
            };
            if self
                .agg
                .subset
                .as_ref()
                .is_some_and(|s| !s.allows(item, server, own))
            {
                return Route::Unknown;
            }
            let to = (own.to_owned(), span);
            return self
                .link_index(server)
                .map_or(Route::Unknown, |i| Route::To(i, Some(to)));
        }
        match self.routes.named(item, name) {
            Some(server) => self
                .link_index(server)
                .map_or(Route::Unknown, |i| Route::To(i, None)),
            None if may_resolve && !self.routes.is_complete(kind) => Route::Resolve,
            None => Route::Unknown,
        }
    }

    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    pub(super) async fn call_resource(&mut self, msg: Msg, may_resolve: bool) {
        let Some(client) = msg.id().map(str::to_owned) else {
            return;
        };
        let uri = msg
            .param_str(Param::Uri)
            .map(|(u, _)| u)
            .unwrap_or_default();
        if let Some(i) = self.resource_server(&uri) {
            return self.forward(&msg, &client, i, None).await;
        }
        let complete = self.routes.is_complete(ListKind::Resources)
            && self.routes.is_complete(ListKind::Templates);
        if may_resolve && !complete {
            self.waiting.push(msg);
            self.resolve(ListKind::Resources).await;
            self.resolve(ListKind::Templates).await;
            return;
        }
        self.refuse(&client, &Error::ResourceNotFound(uri)).await;
    }

    /// The server of a URI: the one that listed it (or a template producing it); without a
    /// subset, also the only server offering resources at all.
    fn resource_server(&self, uri: &str) -> Option<usize> {
        if let Some(server) = self.routes.resource(uri) {
            return self.link_index(server);
        }
        if self.agg.subset.is_some() {
            return None;
        }
        let mut offering = self
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.offers("resources"));
        match (offering.next(), offering.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// Requests that waited for a full listing: routed now, or unknown.
    pub(super) async fn retry_waiting(&mut self) {
        // A request waits until every full listing it started is over.
        if self.jobs.values().any(super::jobs::Job::is_internal_list) {
            return;
        }
        // Boxed: routing may start a listing, which may end at once and come back here
        // (without resolving again: `may_resolve` is false, so this recurses once at most).
        for msg in std::mem::take(&mut self.waiting) {
            match msg.method() {
                "tools/call" | "prompts/get" => Box::pin(self.call_named(msg, false)).await,
                _ => Box::pin(self.call_resource(msg, false)).await,
            }
        }
    }

    /// `completion/complete`: by `ref.name` (a prompt, prefix stripped) or `ref.uri` (a
    /// resource or template).
    pub(super) async fn complete(&mut self, msg: &Msg) {
        let Some(client) = msg.id().map(str::to_owned) else {
            return;
        };
        let mut params: Value = msg
            .params()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let r = &params["ref"];
        let (kind, name, uri) = (r["type"].as_str(), r["name"].as_str(), r["uri"].as_str());
        let target = match (kind, name, uri) {
            (Some("ref/prompt"), Some(name), _) => {
                match self.route_name(Item::Prompt, ListKind::Prompts, name, 0..0, false) {
                    Route::To(i, rename) => Some((i, rename.map(|(own, _)| own))),
                    _ => None,
                }
            }
            (Some("ref/resource"), _, Some(uri)) => self.resource_server(uri).map(|i| (i, None)),
            _ => None,
        };
        let Some((i, rename)) = target else {
            return self
                .send(wire::error(&client, -32602, "Unknown completion reference"))
                .await;
        };
        if let Some(own) = rename {
            params["ref"]["name"] = own.into();
        }
        let id = self.fresh_id();
        let bytes = wire::request(id, "completion/complete", Some(&params.to_string()));
        self.send_routed(&client, i, id, bytes, None).await;
    }

    /// Sends a client request to server `i` under a fresh id (and the server's own name).
    async fn forward(&mut self, msg: &Msg, client: &str, i: usize, rename: Option<Rename>) {
        let Some(id_span) = msg.id_span() else { return };
        let id = self.fresh_id();
        let id_text = id.to_string();
        let (bytes, renamed) = match rename {
            Some(r) => {
                let own = wire::quote(&r.own);
                let edits = &mut [(id_span, id_text.as_str()), (r.span, own.as_str())];
                let bytes = crate::jsonrpc::splice(&msg.bytes, edits);
                (bytes, Some(Box::new((r.item, r.outer))))
            }
            None => (
                crate::jsonrpc::splice(&msg.bytes, &mut [(id_span, &id_text)]),
                None,
            ),
        };
        self.send_routed(client, i, id, bytes, renamed).await;
    }

    async fn send_routed(
        &mut self,
        client: &str,
        i: usize,
        id: u64,
        bytes: Bytes,
        renamed: Option<Box<(Item, String)>>,
    ) {
        let link = &self.links[i];
        let (Some(key), true) = (link.key, link.is_up()) else {
            return self.refuse(client, &Error::ChildUnavailable).await;
        };
        if let Err(e) = self.send_to(key, bytes) {
            return self.refuse(client, &e).await;
        }
        self.pending.insert(
            id,
            Pending {
                key,
                purpose: Purpose::Forward {
                    client: client.into(),
                    renamed,
                },
            },
        );
        self.by_client.insert(client.into(), id);
    }

    /// One message from the server of link `key`.
    pub(super) async fn on_server_message(&mut self, key: u32, bytes: Bytes) {
        if self.link_by_key(key).is_none() {
            return;
        }
        let Some(msg) = Msg::parse(bytes) else {
            debug!(key, "aggregate: unreadable server message dropped");
            return;
        };
        match msg.kind {
            Kind::Response => self.server_answer(key, msg).await,
            Kind::Request => {
                let Some(theirs) = msg.id().map(Box::<str>::from) else {
                    return;
                };
                let id = self.fresh_id();
                self.asks.insert(id, (key, theirs));
                self.send(msg.with_id(&id.to_string())).await;
            }
            Kind::Notification => self.server_notification(key, msg).await,
        }
    }

    async fn server_answer(&mut self, key: u32, msg: Msg) {
        let Some((id, p)) = msg
            .own_id()
            .and_then(|id| Some((id, self.pending.remove(&id)?)))
        else {
            debug!(key, "aggregate: answer to nothing pending dropped");
            return;
        };
        match p.purpose {
            Purpose::Forward { client, renamed } => {
                self.by_client.remove(&client);
                match renamed.filter(|r| msg.is_error() && is_unknown(&msg, r.0)) {
                    Some(r) => {
                        let (item, outer) = *r;
                        let e = match item {
                            Item::Tool => Error::UnknownTool(outer),
                            _ => Error::UnknownPrompt(outer),
                        };
                        self.refuse(&client, &e).await;
                    }
                    None => self.send(msg.with_id(&client)).await,
                }
            }
            Purpose::Init { job } => self.init_answer(key, &msg, job).await,
            Purpose::Part { job } => self.part_done(job, (key, id), Some(&msg), "").await,
        }
        self.drain_retired();
    }

    async fn server_notification(&mut self, key: u32, msg: Msg) {
        let method = msg.method();
        let changed = ListKind::changed_by(method);
        if !changed.is_empty() {
            if let Some(name) = self.link_by_key(key).map(|l| l.name.clone()) {
                for kind in changed {
                    self.routes.forget(*kind, &name);
                }
            }
        }
        if method == "notifications/cancelled" {
            // A server withdrawing its own request: the client knows it by another id.
            let Some((theirs, span)) = msg.param_raw(Param::RequestId) else {
                return;
            };
            let ours = self
                .asks
                .iter()
                .find(|(_, (k, t))| *k == key && &**t == theirs)
                .map(|(id, _)| *id);
            let Some(ours) = ours else { return };
            self.asks.remove(&ours);
            let bytes = crate::jsonrpc::splice(&msg.bytes, &mut [(span, &ours.to_string())]);
            return self.send(bytes).await;
        }
        self.send(msg.bytes).await;
    }
}

/// Whether an error answer is a server's (or its relay's denial) "unknown tool/prompt": the
/// client gets the same answer under the name it asked for, like an unknown one of its own
/// (a denied name must not be told apart from an unknown one, SECURITY.md §3).
fn is_unknown(msg: &Msg, item: Item) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<Failure>,
    }
    #[derive(serde::Deserialize)]
    struct Failure {
        code: i64,
        message: String,
    }
    let prefix = match item {
        Item::Tool => "Unknown tool",
        _ => "Unknown prompt",
    };
    serde_json::from_slice::<Answer>(&msg.bytes)
        .ok()
        .and_then(|a| a.error)
        .is_some_and(|e| e.code == -32602 && e.message.starts_with(prefix))
}
