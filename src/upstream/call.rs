//! The relay's own requests to a child ([`Upstream::call`]: `initialize`, subscriptions, log
//! levels, the console's `ping`), each with a relay-unique id in the mux's pending table.
//!
//! Owns: sending them and handing back the answer's channel (and the id, so a caller that
//! stops waiting can cancel the request). Does not own: routing the answer (`route.rs`), the
//! pending table (`mux.rs`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::mux::{Pending, Target};
use super::{Answer, Upstream};
use crate::error::Error;

impl Upstream {
    /// Sends a request of the relay's own; the answer (or a relay error) arrives on the
    /// returned channel. `params` is JSON text.
    pub(crate) fn call(&self, method: &str, params: &str) -> Result<Answer, Error> {
        self.call_id(method, params).map(|(_, rx)| rx)
    }

    /// As [`call`](Self::call), with the request's relay id (to [`cancel`](Self::cancel) it
    /// when the relay stops waiting).
    pub(crate) fn call_id(&self, method: &str, params: &str) -> Result<(u64, Answer), Error> {
        let (tx, rx) = oneshot::channel();
        let mut mux = self.lock();
        if mux.exited {
            return Err(Error::ChildExited);
        }
        let relay_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let method_json = serde_json::Value::from(method);
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":{relay_id},"method":{method_json},"params":{params}}}"#
        );
        let now = Instant::now();
        mux.pending.insert(
            relay_id,
            Pending {
                to: Target::Relay(tx),
                token: None,
                initialize: method == "initialize",
                listen: false,
                deadline: now + self.limits.request_timeout,
                hard_deadline: now + self.limits.request_timeout_max,
                timeout: self.limits.request_timeout,
                translation: None,
                tasks: None,
            },
        );
        if self.child.send(Bytes::from(line)).is_err() {
            mux.take(relay_id);
            return Err(Error::ChildExited);
        }
        Ok((relay_id, rx))
    }
}
