//! `subscriptions/listen` served for legacy children (2026-07-28 basic/patterns/subscriptions;
//! PROTOCOL.md §5.12).
//!
//! A legacy child has no listen streams: it sends `notifications/*/list_changed` to whoever
//! hears it and `notifications/resources/updated` for URIs it was asked to watch with
//! `resources/subscribe`. The relay acknowledges the listen itself
//! (`notifications/subscriptions/acknowledged` with the part of the filter the child's
//! capabilities can honour), registers the stream in the audience of every child that may
//! serve the caller (`upstream/audience.rs` tags each notification with the stream's
//! `subscriptionId` and sends only the kinds it asked for), and subscribes the child to the
//! stream's URIs, counted with every session's and stream's subscriptions so the child gets
//! one subscribe per URI and one unsubscribe after the last. Closing the stream ends it all.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::stateless::{CancelOnDrop, Pending, Stateless};
use super::Relay;
use crate::jsonrpc::Frame;
use crate::session::stream::Stream;
use crate::ticket::Ticket;
use crate::upstream::audience::Listener;
use crate::upstream::supervisor::{Init, Slot};

/// Keys of listen streams in the audiences (unique in the process).
static NEXT_LISTEN: AtomicU64 = AtomicU64::new(1);

impl Relay {
    /// Opens a listen stream on `slots` (the children that may serve the caller).
    pub(super) fn listen_legacy(
        &self,
        frame: &Frame,
        mut ticket: Ticket,
        slots: Vec<Arc<Slot>>,
        init: &Init,
    ) -> Stateless {
        let Some(raw_id) = frame.id() else {
            return Stateless::Accepted;
        };
        let Some(requested) = filter_of(frame) else {
            let body = crate::jsonrpc::error_response(
                Some(raw_id.as_str()),
                -32602,
                "Invalid params: missing notifications filter",
                &Value::Null,
            );
            return Stateless::Answered(ticket.answer(body, Some(-32602)));
        };
        let caps = init.result.get("capabilities");
        let can = |area: &str, flag: &str| {
            caps.and_then(|c| c.get(area))
                .and_then(|a| a.get(flag))
                .is_some_and(|v| v == &Value::Bool(true))
        };
        let asked = |flag: &str| requested.get(flag) == Some(&Value::Bool(true));
        let tools = asked("toolsListChanged") && can("tools", "listChanged");
        let prompts = asked("promptsListChanged") && can("prompts", "listChanged");
        let resources = asked("resourcesListChanged") && can("resources", "listChanged");
        let uris: BTreeSet<String> = match requested.get("resourceSubscriptions") {
            Some(Value::Array(a)) if can("resources", "subscribe") => a
                .iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect(),
            _ => BTreeSet::new(),
        };
        let mut honoured = Map::new();
        for (flag, on) in [
            ("toolsListChanged", tools),
            ("promptsListChanged", prompts),
            ("resourcesListChanged", resources),
        ] {
            if on {
                honoured.insert(flag.into(), Value::Bool(true));
            }
        }
        if !uris.is_empty() {
            honoured.insert("resourceSubscriptions".into(), json!(uris));
        }
        let stream = Stream::new(1, false, self.cfg.buffer);
        let ack = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{{"notifications":{},"_meta":{{"io.modelcontextprotocol/subscriptionId":{}}}}}}}"#,
            Value::Object(honoured),
            raw_id.as_str()
        );
        stream.push(ack.into(), false);
        let key = NEXT_LISTEN.fetch_add(1, Ordering::Relaxed);
        for slot in &slots {
            let listener = Listener {
                stream: Arc::downgrade(&stream),
                id: raw_id.as_str().to_owned(),
                tools,
                prompts,
                resources,
                uris: uris.clone(),
            };
            let first = slot.audience().listen(key, listener);
            if let Some(up) = slot.current() {
                for uri in first {
                    let _ = up.call("resources/subscribe", &json!({ "uri": uri }).to_string());
                }
            }
        }
        Stateless::Pending(Pending::new(
            CancelOnDrop::listen(slots, key, ticket, stream.clone()),
            stream,
            None,
        ))
    }
}

/// `params.notifications` of a listen request.
fn filter_of(frame: &Frame) -> Option<Map<String, Value>> {
    #[derive(serde::Deserialize)]
    struct Params {
        notifications: Option<Map<String, Value>>,
    }
    frame.params::<Params>()?.notifications
}
