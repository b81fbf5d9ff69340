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
use crate::caller::Caller;
use crate::jsonrpc::Frame;
use crate::session::stream::Stream;
use crate::ticket::Ticket;
use crate::upstream::audience::Listener;
use crate::upstream::supervisor::{Init, Slot};

/// Resource URIs one listen stream may watch.
const MAX_URIS: usize = 64;

/// Keys of listen streams in the audiences (unique in the process).
static NEXT_LISTEN: AtomicU64 = AtomicU64::new(1);

impl Relay {
    /// Opens a listen stream on `slots` (the children that may serve the caller).
    pub(super) fn listen_legacy(
        &self,
        caller: &Caller,
        frame: &Frame,
        mut ticket: Ticket,
        slots: Vec<Arc<Slot>>,
        init: &Init,
    ) -> Stateless {
        let Some(raw_id) = frame.id() else {
            return Stateless::Accepted;
        };
        let (tools, prompts, resources, uris, honoured) = match self.honoured(caller, frame, init) {
            Ok(h) => h,
            Err((message, data)) => {
                let body =
                    crate::jsonrpc::error_response(Some(raw_id.as_str()), -32602, message, &data);
                return Stateless::Answered(ticket.answer(body, Some(-32602)));
            }
        };
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

/// What a listen asked for and the child can honour: list changes of tools, prompts and
/// resources, the URIs to watch, and the filter to acknowledge.
type Honoured = (bool, bool, bool, BTreeSet<String>, Map<String, Value>);

impl Relay {
    /// The part of a listen's filter the child's capabilities (and the caller's roles, URI by
    /// URI) allow; an error message and data for a filter that cannot be served.
    fn honoured(
        &self,
        caller: &Caller,
        frame: &Frame,
        init: &Init,
    ) -> Result<Honoured, (&'static str, Value)> {
        let requested = filter_of(frame)
            .ok_or(("Invalid params: missing notifications filter", Value::Null))?;
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
        let asked_uris = match requested.get("resourceSubscriptions") {
            Some(Value::Array(a)) if can("resources", "subscribe") => a.as_slice(),
            _ => &[],
        };
        if asked_uris.len() > MAX_URIS {
            let data = json!({ "max": MAX_URIS });
            return Err(("Invalid params: too many resourceSubscriptions", data));
        }
        // Each URI is one `resources/subscribe` to the roles: a denied one is left out.
        let uris: BTreeSet<String> = asked_uris
            .iter()
            .filter_map(Value::as_str)
            .filter(|uri| self.may_subscribe(caller, uri))
            .map(str::to_owned)
            .collect();
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
        Ok((tools, prompts, resources, uris, honoured))
    }

    /// Whether the caller's roles allow subscribing to `uri` (as `resources/subscribe`).
    fn may_subscribe(&self, caller: &Caller, uri: &str) -> bool {
        let probe = json!({"jsonrpc": "2.0", "id": 0, "method": "resources/subscribe",
            "params": {"uri": uri}});
        let Ok(frame) = Frame::parse(probe.to_string().into()) else {
            return false;
        };
        self.policy()
            .authorize(caller, self.names(), &frame, true)
            .is_ok()
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
