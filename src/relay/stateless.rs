//! What a stateless 2026-07-28 request is while the front serves it: [`Stateless`] (answered,
//! accepted, or pending on a stream), the [`Pending`] request and its [`CancelOnDrop`] guard,
//! which cancels the request at the child (or closes a listen stream) when the client goes
//! first. Shared by the modern pool (`relay/modern.rs`), the legacy children serving modern
//! requests (`relay/legacy.rs`, `relay/listen.rs`) and the HTTP front.

use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::era::modern::ToolHeaders;
use crate::jsonrpc::Frame;
use crate::session::stream::Stream;
use crate::ticket::Ticket;
use crate::upstream::supervisor::Slot;
use crate::upstream::Upstream;

/// What a stateless request produced.
#[derive(Debug)]
pub(crate) enum Stateless {
    /// A notification, forwarded: nothing will be answered (HTTP 202).
    Accepted,
    /// A denied request, answered at once as the server would answer an unknown name.
    Answered(Bytes),
    /// A request on its way: its answer (and notifications about it) arrive on the stream.
    Pending(Pending),
}

/// A stateless request in flight. Dropped before its answer, it cancels the request at the
/// child (2026-07-28: closing the stream is the cancellation).
#[derive(Debug)]
pub(crate) struct Pending {
    pub stream: Arc<Stream>,
    guard: CancelOnDrop,
    /// The mapping a `tools/list` answer teaches the `Mcp-Param-*` headers.
    learn: Option<Arc<RwLock<ToolHeaders>>>,
}

impl Pending {
    pub(crate) fn new(
        guard: CancelOnDrop,
        stream: Arc<Stream>,
        learn: Option<Arc<RwLock<ToolHeaders>>>,
    ) -> Pending {
        Pending {
            stream,
            guard,
            learn,
        }
    }

    /// The final answer went out whole: the request is over, and a `tools/list` answer the
    /// client received refreshes the `Mcp-Param-*` mapping.
    pub(crate) fn answered(self, answer: &Bytes) {
        drop(self.guard);
        if let Some(tools) = self.learn {
            if let Ok(f) = Frame::parse_upstream(answer.clone()) {
                learn_tools(&tools, &f);
            }
        }
    }

    /// What keeps the request alive while its stream is being read.
    pub(crate) fn into_guard(self) -> CancelOnDrop {
        self.guard
    }
}

/// Learns from a `tools/list` answer a client received (tools added or changed later).
fn learn_tools(tools: &RwLock<ToolHeaders>, answer: &Frame) {
    if let Some(result) = answer.result() {
        tools
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .learn(result);
    }
}

/// Ends a stateless request when its response stream goes away before the answer
/// (2026-07-28: closing the stream is the cancellation): the child gets
/// `notifications/cancelled`; a listen stream served for legacy children leaves their
/// audiences (and their subscriptions).
#[derive(Debug)]
pub(crate) struct CancelOnDrop {
    what: Cancel,
}

#[derive(Debug)]
enum Cancel {
    Request {
        up: Arc<Upstream>,
        relay_id: u64,
        stream: Arc<Stream>,
    },
    Listen {
        slots: Vec<Arc<Slot>>,
        key: u64,
        /// The listen's audit record, written when it ends.
        _ticket: Ticket,
        /// The audiences hold the stream weakly: it lives as long as its connection.
        _stream: Arc<Stream>,
    },
}

impl CancelOnDrop {
    pub(crate) fn new(up: Arc<Upstream>, relay_id: u64, stream: Arc<Stream>) -> CancelOnDrop {
        CancelOnDrop {
            what: Cancel::Request {
                up,
                relay_id,
                stream,
            },
        }
    }

    pub(crate) fn listen(
        slots: Vec<Arc<Slot>>,
        key: u64,
        ticket: Ticket,
        stream: Arc<Stream>,
    ) -> CancelOnDrop {
        CancelOnDrop {
            what: Cancel::Listen {
                slots,
                key,
                _ticket: ticket,
                _stream: stream,
            },
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        match &self.what {
            Cancel::Request {
                up,
                relay_id,
                stream,
            } => {
                if !stream.is_done() {
                    up.cancel(*relay_id, "client closed the stream");
                }
            }
            Cancel::Listen { slots, key, .. } => {
                for slot in slots {
                    let gone = slot.audience().unlisten(*key);
                    if let Some(up) = slot.current() {
                        for uri in gone {
                            let params = serde_json::json!({ "uri": uri }).to_string();
                            let _ = up.call("resources/unsubscribe", &params);
                        }
                    }
                }
            }
        }
    }
}
