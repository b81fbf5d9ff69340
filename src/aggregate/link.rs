//! One internal session of an aggregate session with one named server: a
//! [`Duplex`](crate::listener::duplex::Duplex) on the server's relay, driven by its own task.
//!
//! The aggregate session sends it messages over a channel; its task hands them, in order, to
//! `Duplex::handle` (which may wait, e.g. for a shared child that is restarting, without
//! holding up the other servers). Everything the server's relay sends back (answers,
//! notifications, server→client requests, refusals as JSON-RPC errors) arrives on the
//! receiver [`open`] returns, one message per `Bytes`. The session ending on its own (its
//! child exited, it expired) is reported once on the events channel; dropping the sender
//! closes the session quietly (its child stops in per-session mode). The caller is the
//! aggregate client's, relabelled `Transport::Aggregate` (`aggregate.rs`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use crate::caller::Caller;
use crate::listener::duplex::{Duplex, OUT_QUEUE};
use crate::relay::Relay;

/// Messages queued towards one server before new requests to it are refused.
pub(super) const IN_QUEUE: usize = 256;

/// A link's session ended on its own.
#[derive(Debug)]
pub(super) struct Ended {
    pub key: u32,
}

/// Opens a link to `relay` for `caller`: the sender of messages to the server and the
/// receiver of what it sends back.
pub(super) fn open(
    relay: Arc<Relay>,
    caller: Caller,
    key: u32,
    events: mpsc::UnboundedSender<Ended>,
) -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
    let (in_tx, in_rx) = mpsc::channel(IN_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let duplex = Duplex::new(relay, out_tx, caller);
    tokio::spawn(run(duplex, in_rx, key, events));
    (in_tx, out_rx)
}

async fn run(
    mut duplex: Duplex,
    mut rx: mpsc::Receiver<Bytes>,
    key: u32,
    events: mpsc::UnboundedSender<Ended>,
) {
    let ended = duplex.ended();
    loop {
        tokio::select! {
            biased;
            () = ended.cancelled() => {
                debug!(key, "aggregate link: session ended");
                let _ = events.send(Ended { key });
                break;
            }
            msg = rx.recv() => match msg {
                Some(bytes) => {
                    if let Some(e) = duplex.handle(bytes).await {
                        debug!(key, error = %e, "aggregate link: message refused");
                    }
                }
                None => break,
            },
        }
    }
    duplex.close();
}
