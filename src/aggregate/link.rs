//! One internal session of an aggregate session with one named server: a
//! [`Duplex`](crate::listener::duplex::Duplex) on the server's relay, driven from the
//! aggregate session's own task.
//!
//! A message is handed to `Duplex::handle` at once, in the session's task: for a request to a
//! running child that finishes without waiting (admission, id rewrite, a queue push), so the
//! hot path has no task hop of its own. When the handling has to wait (a shared child that is
//! restarting, a full queue), it becomes a [`Busy`] future the session polls among its other
//! work, and the link's next messages queue behind it, in order. Everything the server's relay
//! sends back (answers, notifications, server→client requests, refusals as JSON-RPC errors)
//! arrives on the receiver [`open`] returns, one message per `Bytes`; the session ending on its
//! own (its child exited, it expired) completes the [`Ended`] future. Dropping a [`Conn`]
//! closes its session (its child stops in per-session mode). The caller is the aggregate
//! client's, relabelled `Transport::Aggregate` (`aggregate.rs`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt as _;
use tokio::sync::mpsc;
use tracing::debug;

use crate::caller::Caller;
use crate::error::Error;
use crate::listener::duplex::{Duplex, OUT_QUEUE};
use crate::relay::Relay;

/// Messages queued behind one that waits, before new requests to the server are refused.
const IN_QUEUE: usize = 256;

/// A message's handling that has to wait; gives the link's duplex back.
pub(super) type Busy = Pin<Box<dyn Future<Output = (u32, Duplex)> + Send>>;
/// Completes with the link's key when its session ended on its own.
pub(super) type Ended = Pin<Box<dyn Future<Output = u32> + Send>>;

/// An open internal session.
#[derive(Debug)]
pub(super) struct Conn {
    pub key: u32,
    /// `None` while a message's handling waits.
    duplex: Option<Duplex>,
    queue: VecDeque<Bytes>,
}

/// Opens a session on `relay` for `caller`: the link, the receiver of what the server
/// sends, and the future of its end.
pub(super) fn open(
    relay: Arc<Relay>,
    caller: Caller,
    key: u32,
) -> (Conn, mpsc::Receiver<Bytes>, Ended) {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let duplex = Duplex::new(relay, out_tx, caller);
    let ended = duplex.ended();
    let ended: Ended = Box::pin(async move {
        ended.cancelled().await;
        key
    });
    let conn = Conn {
        key,
        duplex: Some(duplex),
        queue: VecDeque::new(),
    };
    (conn, out_rx, ended)
}

impl Conn {
    /// Hands `bytes` to the server's relay, or queues it behind a handling that waits. The
    /// handling that has to wait is returned, for the session to poll.
    pub(super) fn send(&mut self, bytes: Bytes) -> Result<Option<Busy>, Error> {
        match self.duplex.take() {
            Some(duplex) => Ok(self.handle(duplex, bytes)),
            None if self.queue.len() >= IN_QUEUE => Err(Error::InflightCap),
            None => {
                self.queue.push_back(bytes);
                Ok(None)
            }
        }
    }

    /// A handling that waited is over: the next queued messages are handed over.
    pub(super) fn back(&mut self, mut duplex: Duplex) -> Option<Busy> {
        while let Some(bytes) = self.queue.pop_front() {
            match self.handle(duplex, bytes) {
                Some(busy) => return Some(busy),
                None => match self.duplex.take() {
                    Some(d) => duplex = d,
                    None => return None,
                },
            }
        }
        self.duplex = Some(duplex);
        None
    }

    fn handle(&mut self, mut duplex: Duplex, bytes: Bytes) -> Option<Busy> {
        let key = self.key;
        let mut handling: Busy = Box::pin(async move {
            if let Some(e) = duplex.handle(bytes).await {
                debug!(key, error = %e, "aggregate link: message refused");
            }
            (key, duplex)
        });
        match handling.as_mut().now_or_never() {
            Some((_, duplex)) => {
                self.duplex = Some(duplex);
                None
            }
            None => Some(handling),
        }
    }
}

impl Drop for Conn {
    /// The session closes (a handling still waiting closes it when it is over).
    fn drop(&mut self) {
        if let Some(duplex) = self.duplex.take() {
            duplex.close();
        }
    }
}
