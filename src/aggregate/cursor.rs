//! The one opaque cursor that pages through the union of every server's list.
//!
//! A page of the aggregate holds one page of each server that still has one, in server
//! order; the cursor names, for each server with more, that server's own `nextCursor`. It
//! is base64url (no padding) of a small JSON document, `{"v":1,"next":[["github","abc"],
//! ...]}`: opaque to clients as MCP asks (server/utilities/pagination), never trusted (a
//! server it names that is gone is skipped; one that does not decode is -32602, as the spec
//! says of an invalid cursor).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Longest cursor accepted from a client.
const MAX_CURSOR: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Doc {
    v: u8,
    next: Vec<(String, String)>,
}

/// The cursor for the servers that have more, `(server, its cursor)` in server order;
/// `None` when every server is done.
pub(super) fn encode(next: Vec<(String, String)>) -> Option<String> {
    if next.is_empty() {
        return None;
    }
    let doc = serde_json::to_vec(&Doc { v: 1, next }).ok()?;
    Some(URL_SAFE_NO_PAD.encode(doc))
}

/// The servers a cursor continues, with their own cursors; `None` when it is not one of
/// ours.
pub(super) fn decode(cursor: &str) -> Option<Vec<(String, String)>> {
    if cursor.len() > MAX_CURSOR {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let doc: Doc = serde_json::from_slice(&bytes).ok()?;
    let twice = |(i, (s, _)): (usize, &(String, String))| doc.next[..i].iter().any(|(t, _)| t == s);
    if doc.next.iter().enumerate().any(twice) {
        return None;
    }
    (doc.v == 1 && !doc.next.is_empty()).then_some(doc.next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_strangers() {
        let next = vec![
            ("a".to_owned(), "p2".to_owned()),
            ("b".to_owned(), "{\"o\":10}".to_owned()),
        ];
        let c = encode(next.clone()).unwrap();
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode(&c), Some(next));
        assert_eq!(encode(Vec::new()), None);
        let twice = encode(vec![
            ("a".to_owned(), "p2".to_owned()),
            ("a".to_owned(), "p3".to_owned()),
        ])
        .unwrap();
        for bad in ["", "!!", "e30", &"A".repeat(MAX_CURSOR + 1), &twice] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
