//! What the relay answers itself for sessions on a shared child (PROTOCOL.md §5.8, §5.9).
//!
//! A shared child is initialized once by the relay (`upstream/supervisor.rs`); each later
//! `initialize` is answered from that cached result, with the client's own protocol version
//! when the relay can speak it to the child. Process-global requests are kept per session and
//! only their union reaches the child: `logging/setLevel` (the most verbose level asked for),
//! `resources/subscribe` (first subscriber) and `resources/unsubscribe` (last one). A session's
//! `notifications/initialized` is swallowed: the child already had the relay's.

use bytes::Bytes;

use crate::era;
use crate::jsonrpc::{Frame, Kind, RawId};
use crate::session::Session;
use crate::upstream::audience;
use crate::upstream::supervisor::{self, Init};
use crate::upstream::Upstream;

/// What to do with one client message on a shared child.
#[derive(Debug)]
pub(crate) enum Handled {
    Forward,
    /// The relay answers the request itself with these bytes.
    Answered(Bytes),
    /// Dropped on purpose.
    Swallowed,
}

/// Applies the shared-child rules to one message of `session`.
pub(crate) fn intercept(
    session: &Session,
    up: &Upstream,
    init: Option<&Init>,
    frame: &Frame,
) -> Handled {
    let method = frame.method().unwrap_or_default();
    let id = frame.id();
    match (frame.kind(), method, id) {
        (Kind::Notification, "notifications/initialized", _) => Handled::Swallowed,
        (Kind::Request, "logging/setLevel", Some(id)) if declares_logging(init) => {
            let Some(level) = audience::level_of(frame) else {
                return Handled::Forward;
            };
            if let Some(union) = up.audience().set_level(session.id(), level) {
                supervisor::set_level(up, union);
            }
            Handled::Answered(empty_result(&id))
        }
        (Kind::Request, "resources/subscribe", Some(id)) => match frame.uri() {
            Some(uri) if up.audience().subscribe(session.id(), uri) => Handled::Forward,
            Some(_) => Handled::Answered(empty_result(&id)),
            None => Handled::Forward,
        },
        (Kind::Request, "resources/unsubscribe", Some(id)) => match frame.uri() {
            Some(uri) if up.audience().unsubscribe(session.id(), uri) => Handled::Forward,
            Some(_) => Handled::Answered(empty_result(&id)),
            None => Handled::Forward,
        },
        _ => Handled::Forward,
    }
}

fn declares_logging(init: Option<&Init>) -> bool {
    init.and_then(|i| i.result.get("capabilities"))
        .and_then(|c| c.get("logging"))
        .is_some_and(|l| !l.is_null())
}

fn empty_result(id: &RawId) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        id.as_str()
    ))
}

/// The version a session on a shared child gets: its own when it is a legacy version no newer
/// than the child's (the relay bridges the transport differences), else the child's.
pub(crate) fn negotiate(requested: &str, child: &str) -> String {
    if era::is_legacy(requested) && requested <= child {
        requested.to_owned()
    } else {
        child.to_owned()
    }
}

/// The answer to a session's `initialize` from the cached result; also the version agreed.
pub(crate) fn initialize_answer(init: &Init, requested: &str, id: &RawId) -> (Bytes, String) {
    let version = negotiate(requested, &init.version);
    let mut result = init.result.clone();
    result.insert(
        "protocolVersion".to_owned(),
        serde_json::Value::from(version.as_str()),
    );
    let result = serde_json::Value::Object(result);
    let bytes = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
        id.as_str()
    ));
    (bytes, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_keep_their_version_when_the_child_is_newer() {
        assert_eq!(negotiate("2025-06-18", "2025-11-25"), "2025-06-18");
        assert_eq!(negotiate("2025-11-25", "2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2099-01-01", "2025-11-25"), "2025-11-25");
        assert_eq!(negotiate("", "2025-11-25"), "2025-11-25");
    }

    #[test]
    fn initialize_answer_echoes_the_raw_id_and_sets_the_version() {
        let init = Init {
            result: serde_json::from_str(
                r#"{"protocolVersion":"2025-11-25","capabilities":{"x":1},"serverInfo":{"name":"s"}}"#,
            )
            .unwrap(),
            version: "2025-11-25".into(),
        };
        let (bytes, v) = initialize_answer(&init, "2025-03-26", &RawId::from_u64(7));
        let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v, "2025-03-26");
        assert_eq!(j["id"], 7);
        assert_eq!(j["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(j["result"]["capabilities"]["x"], 1);
    }
}
