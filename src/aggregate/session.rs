//! One aggregate session: the task behind one `launch`, between the client (through the relay
//! in front, which already made request ids unique) and one internal session per server.
//!
//! One task owns all the session's state, so nothing here locks: the client's messages
//! (`outgoing` of the link), every server's messages (one tagged stream per server link,
//! merged), link endings, membership changes and one timer (the `initialize` deadline and
//! the reopen backoff) are taken in one `select!`. This file holds the state, the loop and
//! the client's side (what each method does); the server links' lifecycle is
//! `session/links.rs`, the fan-outs (`initialize`, the lists, `logging/setLevel`)
//! `session/jobs.rs`, routed requests and what servers send back `session/calls.rs`.
//!
//! Ids: every request the session sends a server gets a fresh integer id of its own, kept
//! in `pending` with what its answer is for; a routed request's answer goes back to the
//! client with the client's id spliced in byte for byte. A server's request to the client
//! gets a fresh id too (`asks`), and the client's answer goes back to that server with the
//! server's own id. Progress tokens and everything else pass untouched.

mod calls;
mod jobs;
mod links;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, SelectAll, Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::link::{Busy, Ended};
use super::lists::ListKind;
use super::names::Item;
use super::routes::Routes;
use super::wire::{self, Kind, Msg};
use super::{Member, Shared};
use crate::caller::Caller;
use crate::error::Error;
use crate::upstream::stdio::{ExitInfo, LinkEnds};
use jobs::Job;
use links::Link;

/// What the answer to one of the session's own requests is for.
#[derive(Debug)]
enum Purpose {
    /// A client request routed to one server: answered with the client's id (raw JSON);
    /// `renamed`, the name the client gave when the server got its own (tools and prompts
    /// with prefixes), so that an "unknown" answer names what the client asked for.
    Forward {
        client: Box<str>,
        renamed: Option<Box<(Item, String)>>,
    },
    /// A server's `initialize`; `job` when the client's `initialize` waits for it.
    Init { job: Option<u64> },
    /// One part of a fan-out (a list page, `logging/setLevel`).
    Part { job: u64 },
}

#[derive(Debug)]
struct Pending {
    /// The link it was sent on.
    key: u32,
    purpose: Purpose,
}

/// What the client said in `initialize`, replayed to servers that join later.
#[derive(Debug)]
struct Hello {
    params: String,
    version: Option<String>,
}

/// Most messages held behind the client's `initialize`; past it a request is refused as
/// busy (-31005) and a notification dropped.
const MAX_HELD: usize = 256;

type Tagged = Pin<Box<dyn Stream<Item = (u32, Bytes)> + Send>>;

/// The state of one aggregate session.
pub(super) struct Driver {
    agg: Arc<Shared>,
    caller: Caller,
    members: watch::Receiver<Arc<[Member]>>,
    members_open: bool,
    ends: LinkEnds,
    /// The client is gone (its side of the link closed).
    gone: bool,
    /// The servers of the session, in configuration order.
    links: Vec<Link>,
    /// Links of servers removed or replaced, until their last answers arrived.
    retired: Vec<Link>,
    streams: SelectAll<Tagged>,
    /// Handlings of messages that had to wait (`aggregate/link.rs`).
    busy: FuturesUnordered<Busy>,
    /// The ends of the links' sessions.
    ended: FuturesUnordered<Ended>,
    next_key: u32,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// A routed request's client id → the id it was sent under.
    by_client: HashMap<Box<str>, u64>,
    /// A server's request to the client, by the id the client saw: (link, the server's id).
    asks: HashMap<u64, (u32, Box<str>)>,
    jobs: HashMap<u64, Job>,
    hello: Option<Hello>,
    /// The client sent `notifications/initialized`.
    initialized: bool,
    routes: Routes,
    /// Requests waiting for a full listing to find their server.
    waiting: Vec<Msg>,
    /// What the client sent after its `initialize`, before the answer: handled once it is
    /// answered (a client piping its requests must not see the lists of servers starting).
    held: Vec<Bytes>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
}

/// Runs one aggregate session until the relay stops it or the client goes.
pub(super) async fn run(agg: Arc<Shared>, caller: Caller, ends: LinkEnds) {
    let members = agg.members.clone();
    let mut d = Driver {
        agg,
        caller,
        members,
        members_open: true,
        ends,
        gone: false,
        links: Vec::new(),
        retired: Vec::new(),
        streams: SelectAll::new(),
        busy: FuturesUnordered::new(),
        ended: FuturesUnordered::new(),
        next_key: 0,
        next_id: 0,
        pending: HashMap::new(),
        by_client: HashMap::new(),
        asks: HashMap::new(),
        jobs: HashMap::new(),
        hello: None,
        initialized: false,
        routes: Routes::default(),
        waiting: Vec::new(),
        held: Vec::new(),
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        timer_at: None,
    };
    d.sync_members();
    d.drive().await;
    d.finish();
}

/// A session without a caller: every request gets -32601 (`server/discover` too, so the
/// relay takes the aggregate for a legacy server), nothing is opened.
pub(super) async fn unbound(mut ends: LinkEnds) {
    loop {
        let line = tokio::select! {
            line = ends.outgoing.recv() => line,
            () = ends.stop.cancelled() => None,
        };
        let Some(line) = line else { break };
        let Some(msg) = Msg::parse(line).filter(|m| m.kind == Kind::Request) else {
            continue;
        };
        let answer = wire::error(msg.id().unwrap_or("null"), -32601, "Method not found");
        if ends.incoming.send(answer).await.is_err() {
            break;
        }
    }
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(0),
        signal: None,
    }));
}

impl Driver {
    /// Long because it is the session's one `select!`: every source of work, each with the
    /// handler it goes to.
    async fn drive(&mut self) {
        loop {
            tokio::select! {
                () = self.ends.stop.cancelled() => break,
                msg = self.ends.outgoing.recv() => match msg {
                    Some(bytes) => self.on_client_message(bytes).await,
                    None => break,
                },
                Some((key, bytes)) = self.streams.next() => self.on_server_message(key, bytes).await,
                Some((key, duplex)) = self.busy.next() => self.link_free(key, duplex),
                Some(key) = self.ended.next() => self.link_ended(key).await,
                changed = self.members.changed(), if self.members_open => match changed {
                    Ok(()) => self.members_changed().await,
                    Err(_) => self.members_open = false,
                },
                () = &mut self.timer, if self.timer_at.is_some() => {
                    self.timer_at = None;
                    self.on_timer().await;
                }
            }
            if self.gone {
                break;
            }
            if !self.held.is_empty() && !self.initializing() {
                for bytes in std::mem::take(&mut self.held) {
                    self.on_client_message(bytes).await;
                }
            }
            self.rearm();
        }
    }

    /// The session is over: every server session closes, the relay sees the "child" exit.
    fn finish(&mut self) {
        self.links.clear();
        self.retired.clear();
        // Sessions whose last message is still being handled close when it is.
        let mut busy = std::mem::take(&mut self.busy);
        if !busy.is_empty() {
            tokio::spawn(async move {
                while let Some((_, duplex)) = busy.next().await {
                    duplex.close();
                }
            });
        }
        self.ends.exit.send_replace(Some(ExitInfo {
            code: Some(0),
            signal: None,
        }));
        debug!("aggregate session ended");
    }

    /// Sets the timer to the next deadline: a pending `initialize`'s, or a link's reopen.
    fn rearm(&mut self) {
        let next = self.next_deadline();
        if next == self.timer_at {
            return;
        }
        self.timer_at = next;
        if let Some(at) = next {
            self.timer.as_mut().reset(at);
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one message to the client; a client that is gone ends the session.
    async fn send(&mut self, bytes: Bytes) {
        if self.ends.incoming.send(bytes).await.is_err() {
            self.gone = true;
        }
    }

    /// Answers the client's request `id` with the relay's wire form of `e`.
    async fn refuse(&mut self, id: &str, e: &Error) {
        // The relay's wire form, with the id as the client wrote it (read back through the
        // relay's own frame parser: the only way to a `RawId`).
        let probe = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":0}}"#));
        let raw = crate::jsonrpc::Frame::parse_upstream(probe)
            .ok()
            .and_then(|f| f.id());
        self.send(e.message(raw.as_ref())).await;
    }

    /// Tells the client its lists changed (a server came, went, or changed).
    async fn lists_changed(&mut self) {
        if !self.initialized {
            return;
        }
        for method in [
            ListKind::Tools.changed(),
            ListKind::Prompts.changed(),
            ListKind::Resources.changed(),
        ] {
            self.send(wire::notification(method, "{}")).await;
        }
    }

    /// Whether the client's `initialize` waits for its answer.
    fn initializing(&self) -> bool {
        self.jobs.values().any(|j| matches!(j, Job::Init { .. }))
    }

    /// One message from the client.
    async fn on_client_message(&mut self, bytes: Bytes) {
        let Some(msg) = Msg::parse(bytes) else {
            debug!("aggregate: unreadable client message dropped");
            return;
        };
        let now =
            matches!(msg.kind, Kind::Response) || matches!(msg.method(), "initialize" | "ping");
        if !now && self.initializing() {
            if self.held.len() < MAX_HELD {
                self.held.push(msg.bytes);
            } else if let (Kind::Request, Some(id)) = (msg.kind, msg.id()) {
                let id = id.to_owned();
                self.refuse(&id, &Error::InflightCap).await;
            } else {
                debug!("aggregate: notification behind initialize dropped (too many held)");
            }
            return;
        }
        match msg.kind {
            Kind::Request => self.client_request(msg).await,
            Kind::Notification => self.client_notification(msg).await,
            Kind::Response => self.client_answer(msg),
        }
    }

    async fn client_request(&mut self, msg: Msg) {
        let Some(id) = msg.id().map(str::to_owned) else {
            return;
        };
        match msg.method() {
            "initialize" => self.initialize(&msg).await,
            "ping" => self.send(wire::result(&id, "{}")).await,
            "tools/call" | "prompts/get" => self.call_named(msg, true).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.call_resource(msg, true).await;
            }
            "completion/complete" => self.complete(&msg).await,
            "logging/setLevel" => self.set_level(&msg).await,
            m => match ListKind::of(m) {
                Some(kind) => self.list(kind, &msg).await,
                None => self.refuse(&id, &Error::DeniedMethod).await,
            },
        }
    }

    async fn client_notification(&mut self, msg: Msg) {
        match msg.method() {
            "notifications/initialized" => {
                self.initialized = true;
                self.notify_up_links(&msg.bytes);
            }
            "notifications/cancelled" => self.cancel(&msg),
            _ => self.notify_up_links(&msg.bytes),
        }
    }

    /// Sends a notification to every server whose session is up (one that cannot take it
    /// now misses it: a notification has no answer to fail).
    fn notify_up_links(&mut self, bytes: &Bytes) {
        let keys: Vec<u32> = self
            .links
            .iter()
            .filter(|l| l.is_up())
            .filter_map(|l| Some(l.conn.as_ref()?.key))
            .collect();
        for key in keys {
            let _ = self.send_to(key, bytes.clone());
        }
    }

    /// Hands a message to link `key`'s session (a link of the configuration, or a retired
    /// one finishing its requests).
    fn send_to(&mut self, key: u32, bytes: Bytes) -> Result<(), Error> {
        let conn = self
            .links
            .iter_mut()
            .chain(self.retired.iter_mut())
            .find_map(|l| l.conn.as_mut().filter(|c| c.key == key))
            .ok_or(Error::ChildUnavailable)?;
        if let Some(busy) = conn.send(bytes)? {
            self.busy.push(busy);
        }
        Ok(())
    }

    /// A handling that waited is over: the link takes its next messages, or, gone
    /// meanwhile, its session closes.
    fn link_free(&mut self, key: u32, duplex: crate::listener::duplex::Duplex) {
        let conn = self
            .links
            .iter_mut()
            .chain(self.retired.iter_mut())
            .find_map(|l| l.conn.as_mut().filter(|c| c.key == key));
        match conn {
            Some(conn) => {
                if let Some(busy) = conn.back(duplex) {
                    self.busy.push(busy);
                }
            }
            None => duplex.close(),
        }
    }

    /// The client cancelled a request: the server it went to is told, under the id it got.
    fn cancel(&mut self, msg: &Msg) {
        let Some((raw, span)) = msg.param_raw(wire::Param::RequestId) else {
            return;
        };
        let Some(id) = self.by_client.remove(raw) else {
            return;
        };
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let bytes = crate::jsonrpc::splice(&msg.bytes, &mut [(span, &id.to_string())]);
        let _ = self.send_to(p.key, bytes);
    }

    /// The client answered a server's request: the answer goes to that server, under its id.
    fn client_answer(&mut self, msg: Msg) {
        let Some((key, id)) = msg.own_id().and_then(|n| self.asks.remove(&n)) else {
            debug!("aggregate: answer to no server request dropped");
            return;
        };
        if self.send_to(key, msg.with_id(&id)).is_err() {
            debug!(
                key,
                "aggregate: answer for a server that cannot take it dropped"
            );
        }
    }

    fn link_by_key(&self, key: u32) -> Option<&Link> {
        self.links
            .iter()
            .chain(&self.retired)
            .find(|l| l.key == Some(key))
    }

    fn link_index(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|l| &*l.name == name)
    }

    /// Registers the receiving side of a new link.
    fn watch_link(&mut self, key: u32, rx: mpsc::Receiver<Bytes>) {
        let tagged = ReceiverStream::new(rx).map(move |b| (key, b));
        self.streams.push(Box::pin(tagged));
    }
}
