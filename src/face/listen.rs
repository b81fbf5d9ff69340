//! Subscriptions of legacy sessions on modern children (basic/patterns/subscriptions):
//! - each session's `resources/subscribe` / `unsubscribe` change its set of URIs; the set is
//!   watched by one `subscriptions/listen` of the session, reopened when the set changes (the
//!   new one acknowledged before the old one is cancelled, so no update falls between) or
//!   when it ended (the child went away), and closed when the set is empty; the request is
//!   answered once the listen is acknowledged (a refused listen leaves the set as it was);
//! - list changes (`toolsListChanged` … as the server's capabilities declare them) are
//!   watched by one listen shared by every session of the face, opened when the first
//!   session is initialized and reopened (after a pause) while any session follows it.
//!
//! Notifications reach the sessions with the listen's `subscriptionId` removed; the
//! acknowledgement is swallowed. Not here: the translations (`era/legacy_face.rs`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{lock, uris, Exchange, Session, Shared};
use crate::era::legacy_face::{self as face, Hello};
use crate::error::Error;
use crate::jsonrpc::RawId;

/// How long a listen may take to be acknowledged.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Pause before a listen is opened again after it ended.
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// Attempts to open a session's listen again before its subscriptions are given up.
const REOPEN_ATTEMPTS: usize = 5;

/// A session's subscribed URIs and the task reading the listen that watches them.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    uris: BTreeSet<String>,
    reader: Option<JoinHandle<()>>,
}

impl Subscriptions {
    /// Stops watching (the session ended): the listen is cancelled at the child.
    pub(super) fn close(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

/// The face's shared listen of list changes, while it runs.
#[derive(Debug, Default)]
pub(super) struct Lists {
    task: Mutex<Option<JoinHandle<()>>>,
}

/// `resources/subscribe` (`on`) or `unsubscribe` of `uri` in session `s`, answered on `id`.
pub(super) async fn subscribe(s: Arc<Session>, id: RawId, uri: Option<String>, on: bool) {
    let Some(uri) = uri else {
        let e = Error::InvalidRequest("missing_uri");
        s.send(e.to_jsonrpc(&id)).await;
        return;
    };
    let mut subs = s.subs.lock().await;
    let mut wanted = subs.uris.clone();
    let changed = if on {
        wanted.insert(uri)
    } else {
        wanted.remove(&uri)
    };
    let answer = if !changed {
        face::empty_result(&id)
    } else {
        match watch(&s, &mut subs, wanted).await {
            Ok(()) => face::empty_result(&id),
            Err(Refusal::Answer(answer)) => face::with_id(&answer, &id),
            Err(Refusal::Error(e)) => e.to_jsonrpc(&id),
        }
    };
    drop(subs);
    s.send(answer).await;
}

/// Watches `wanted` from now on: a new listen, acknowledged before the old one is cancelled
/// (none when `wanted` is empty). On failure the session keeps what it had.
async fn watch(
    s: &Arc<Session>,
    subs: &mut Subscriptions,
    wanted: BTreeSet<String>,
) -> Result<(), Refusal> {
    if wanted.is_empty() {
        subs.close();
        subs.uris = wanted;
        return Ok(());
    }
    let ex = open(s, &uris(&wanted), false).await?;
    subs.close();
    subs.uris = wanted;
    subs.reader = Some(tokio::spawn(read(s.clone(), ex)));
    Ok(())
}

/// Passes a session's listen on; when it ends (the child went away) the session's URIs are
/// watched again, after a pause, for a few attempts.
fn read(s: Arc<Session>, ex: Exchange) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let sink = s.clone();
        pass_on(ex, |line| {
            let sink = sink.clone();
            async move { sink.send(line).await }
        })
        .await;
        for _ in 0..REOPEN_ATTEMPTS {
            tokio::time::sleep(REOPEN_AFTER).await;
            let mut subs = s.subs.lock().await;
            // This task: let go of, not aborted.
            drop(subs.reader.take());
            let wanted = subs.uris.clone();
            if watch(&s, &mut subs, wanted).await.is_ok() {
                return;
            }
        }
        warn!("a session's subscriptions/listen could not be opened again");
    })
}

/// Why a listen did not open: the child answered it at once, or the relay's error.
enum Refusal {
    Answer(bytes::Bytes),
    Error(Error),
}

/// Opens a listen for `uris` (and the declared list changes with `lists`) and waits for its
/// acknowledgement.
async fn open(s: &Session, uris: &[String], lists: bool) -> Result<Exchange, Refusal> {
    let caps = s.caps.get().cloned().unwrap_or_else(|| json!({}));
    let filter = face::listen_filter(&caps, lists, uris);
    let req = face::listen_request(&s.fresh_id("listen-"), filter);
    start(&s.shared, &s.hello(), &req).await
}

async fn start(shared: &Shared, hello: &Hello, req: &Value) -> Result<Exchange, Refusal> {
    let body = hello.with_meta(req, None);
    let mut ex = Exchange::start(shared, body)
        .await
        .map_err(Refusal::Error)?;
    match tokio::time::timeout(ACK_WAIT, ex.next()).await {
        Ok(Some(out)) if !out.last => Ok(ex),
        Ok(Some(out)) => Err(Refusal::Answer(out.data)),
        Ok(None) => Err(Refusal::Error(Error::ChildExited)),
        Err(_) => Err(Refusal::Error(Error::Timeout)),
    }
}

/// Passes a listen's notifications on until it ends.
async fn pass_on<F, Fut>(mut ex: Exchange, sink: F)
where
    F: Fn(bytes::Bytes) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while let Some(out) = ex.next().await {
        if out.last {
            debug!("a subscriptions/listen ended");
            return;
        }
        if let Some(line) = face::from_listen(&out.data) {
            sink(line).await;
        }
    }
}

/// Starts the shared listen of list changes unless it runs, or the server declares none.
pub(super) fn watch_lists(shared: &Arc<Shared>, caps: &Value) {
    if face::listen_filter(caps, true, &[]) == json!({}) {
        return;
    }
    let mut task = lock(&shared.lists.task);
    if task.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    let req = face::listen_request("mcp-relay-lists", face::listen_filter(caps, true, &[]));
    *task = Some(tokio::spawn(lists(Arc::downgrade(shared), req)));
}

/// The shared listen: open while any session follows it, reopened after it ends.
async fn lists(shared: std::sync::Weak<Shared>, req: Value) {
    let hello = Hello::of(&json!({
        "clientInfo": {"name": "mcp-relay", "version": env!("CARGO_PKG_VERSION")}
    }));
    loop {
        let Some(sh) = shared.upgrade().filter(|s| s.changes.receiver_count() > 0) else {
            return;
        };
        match start(&sh, &hello, &req).await {
            Ok(ex) => {
                let tx = sh.changes.clone();
                drop(sh);
                pass_on(ex, |line| {
                    let _ = tx.send(line);
                    async {}
                })
                .await;
            }
            Err(_) => warn!("the shared subscriptions/listen of list changes failed"),
        }
        tokio::time::sleep(REOPEN_AFTER).await;
    }
}
