//! The legacy face of a modern-only child: an in-process MCP server that speaks 2025-era MCP
//! (`initialize`, sessions, server→client requests) to the relay in front and 2026-07-28 to the
//! modern children behind it (issue 17 item 5, PROTOCOL.md §5.12, server side).
//!
//! [`Face`] is a [`Launch`]: the relay spawns one instance per legacy session when its child
//! speaks only 2026-07-28 (`--child-era modern`), exactly as the aggregate is served
//! (`upstream::stdio::link`), so sessions, streams, server→client request routing,
//! resumability, audit and roles stay the relay's own machinery. Each instance
//! (`face/session.rs`) keeps what the session needs and the modern era removed:
//! - `initialize` is answered from the child's `server/discover` (the client's version when
//!   the relay speaks it, else the latest legacy one; modern-only fields dropped);
//!   `notifications/initialized` is swallowed; `ping` is answered here;
//! - the client's declared capabilities and info, sent as modern `_meta` on every request,
//!   and the level of `logging/setLevel`, sent as the `_meta` log level;
//! - every other request goes statelessly to a modern child of the pool ([`Children`]);
//!   progress and log notifications come back on the request's stream; an `input_required`
//!   result is unpacked (`face/call.rs`): each input request goes to the client as an
//!   ordinary server→client request, and the request is retried with a new id, the answers
//!   and the exact `requestState`, until the final answer;
//! - `resources/subscribe` / `unsubscribe` keep the session's URIs and map them onto one
//!   `subscriptions/listen` of the session; list changes come from one listen shared by
//!   every session of the face (`face/listen.rs`); listen acknowledgements are swallowed and
//!   the listen `_meta` removed.
//!
//! The translations themselves are pure and shared with `mcp-relay connect`
//! (`era/legacy_face.rs`). Not here: when a child is modern-only and the binding of sessions
//! (`relay/face.rs`), the pool (`relay/modern.rs`).

mod call;
mod listen;
mod session;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::caller::Caller;
use crate::era::legacy_face::Hello;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::session::stream::{BufferLimits, Out, Stream};
use crate::ticket::Ticket;
use crate::upstream::stdio::{self, ChildHandle, ChildOutput};
use crate::upstream::{Launch, Upstream};

/// The modern children a face sends its requests to (the relay's stateless pool).
pub(crate) trait Children: Send + Sync + std::fmt::Debug {
    /// A child for one request.
    fn upstream(&self) -> BoxFuture<'_, Result<Arc<Upstream>, Error>>;
}

/// The legacy face of the modern children of one relay.
#[derive(Debug)]
pub(crate) struct Face {
    shared: Arc<Shared>,
}

/// What every session of one face shares.
#[derive(Debug)]
struct Shared {
    children: Arc<dyn Children>,
    /// Bounds of the internal streams requests are read from.
    buffer: BufferLimits,
    max_line: usize,
    /// List changes of the shared listen, for every session.
    changes: broadcast::Sender<Bytes>,
    lists: listen::Lists,
}

/// List-change notifications waiting for a slow session before it misses some.
const CHANGES_QUEUE: usize = 64;

impl Face {
    /// A face on `children`; `max_line` is the children's largest message.
    pub(crate) fn new(children: Arc<dyn Children>, buffer: BufferLimits, max_line: usize) -> Face {
        Face {
            shared: Arc::new(Shared {
                children,
                buffer,
                max_line,
                changes: broadcast::channel(CHANGES_QUEUE).0,
                lists: listen::Lists::default(),
            }),
        }
    }
}

impl Launch for Face {
    fn launch(&self, _caller: Option<&Caller>) -> (ChildHandle, ChildOutput) {
        let (handle, output, ends) = stdio::link();
        tokio::spawn(session::run(self.shared.clone(), ends));
        (handle, output)
    }

    fn max_line(&self) -> usize {
        self.shared.max_line
    }
}

/// Ids of the requests the face makes up (input requests to the client, retries, listens).
const ID_PREFIX: &str = "mcp-relay-input-";

/// What one legacy session keeps.
#[derive(Debug)]
struct Session {
    shared: Arc<Shared>,
    /// Lines to the relay in front.
    out: mpsc::Sender<Bytes>,
    hello: OnceLock<Hello>,
    /// The server's capabilities, from `server/discover`.
    caps: OnceLock<Value>,
    /// The level of the session's `logging/setLevel`.
    level: Mutex<Option<String>>,
    next: AtomicU64,
    /// Input requests sent to the client, by id, waiting for its answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// The session's subscribed URIs and the listen that watches them.
    subs: tokio::sync::Mutex<listen::Subscriptions>,
    /// Set once the session follows the shared list changes.
    following: OnceLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Lines to the relay in front (answers, notifications, input requests).
    async fn send(&self, line: Bytes) {
        let _ = self.out.send(line).await;
    }

    /// The session's hello (an empty one before `initialize`, which the relay never lets by).
    fn hello(&self) -> Hello {
        self.hello
            .get()
            .cloned()
            .unwrap_or_else(|| Hello::of(&json!({})))
    }

    fn level(&self) -> Option<String> {
        lock(&self.level).clone()
    }

    /// A fresh id for a request the face makes up.
    fn fresh_id(&self, what: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{ID_PREFIX}{what}{n}")
    }
}

/// The URIs of a set, in order, for a listen filter.
fn uris(set: &BTreeSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

/// One request to a modern child, its messages read as they arrive. Dropped before the
/// final answer, it cancels the request at the child.
struct Exchange {
    rx: mpsc::Receiver<Out>,
    stream: Arc<Stream>,
    up: Arc<Upstream>,
    relay_id: u64,
}

impl Exchange {
    /// Sends `body` (a request with its modern `_meta`) to a child of the pool.
    async fn start(shared: &Shared, body: Bytes) -> Result<Exchange, Error> {
        let frame = Frame::parse_upstream(body).map_err(|_| Error::Internal)?;
        let up = shared.children.upstream().await?;
        let stream = Stream::new(1, false, shared.buffer);
        let (rx, _) = stream.attach(None);
        // The client's request was recorded by the relay in front: no second record.
        let relay_id = up.forward_request(None, &frame, &stream, Ticket::default())?;
        Ok(Exchange {
            rx,
            stream,
            up,
            relay_id,
        })
    }

    /// The next message: a notification about the request, or (`last`) its final answer.
    async fn next(&mut self) -> Option<Out> {
        self.rx.recv().await
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.stream.is_done() {
            self.up.cancel(self.relay_id, "legacy client cancelled");
        }
    }
}
