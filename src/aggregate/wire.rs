//! The aggregate's reading and writing of JSON-RPC messages: one borrowing parse per message
//! (kind, `method`, and the spans of `id`, `params` and `result`), the few `params` fields a
//! route needs read on demand, and the messages the aggregate writes itself.
//!
//! Everything it reads was already checked by a relay (the front checked the client's message,
//! a named server's relay checked its child's), so no ambiguity rule runs again here
//! (`jsonrpc/check.rs` owns it). Messages are forwarded as their bytes with only an id or a
//! name spliced in ([`crate::jsonrpc::splice`]); nothing is re-serialized on the way through.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// What a message is, by the JSON-RPC 2.0 envelope rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Request,
    Notification,
    Response,
}

/// One message: its bytes and the spans the aggregate reads.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub bytes: Bytes,
    pub kind: Kind,
    pub method: Option<Box<str>>,
    id: Option<Range<usize>>,
    params: Option<Range<usize>>,
    result: Option<Range<usize>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps an explicit `null` (`"result": null` is still an answer).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl Msg {
    /// Reads one message; `None` for anything that is not a JSON-RPC object.
    pub(super) fn parse(bytes: Bytes) -> Option<Msg> {
        let env: Envelope<'_> = serde_json::from_slice(&bytes).ok()?;
        let id = env.id.map(|r| span_of(&bytes, r.get()));
        let params = env.params.map(|r| span_of(&bytes, r.get()));
        let result = env.result.map(|r| span_of(&bytes, r.get()));
        let (kind, method) = match (env.method, env.result.or(env.error)) {
            (Some(m), None) => {
                let method = string(m)?;
                let kind = if id.is_some() {
                    Kind::Request
                } else {
                    Kind::Notification
                };
                (kind, Some(method.into()))
            }
            (None, Some(_)) if id.is_some() => (Kind::Response, None),
            _ => return None,
        };
        Some(Msg {
            bytes,
            kind,
            method,
            id,
            params,
            result,
        })
    }

    pub(super) fn method(&self) -> &str {
        self.method.as_deref().unwrap_or_default()
    }

    /// The id as raw JSON text.
    pub(super) fn id(&self) -> Option<&str> {
        self.id.clone().map(|r| self.text(r))
    }

    pub(super) fn id_span(&self) -> Option<Range<usize>> {
        self.id.clone()
    }

    /// The id, when it is one of the aggregate's own (a non-negative integer).
    pub(super) fn own_id(&self) -> Option<u64> {
        self.id()?.parse().ok()
    }

    /// The raw `params` text (`None` when absent).
    pub(super) fn params(&self) -> Option<&str> {
        self.params.clone().map(|r| self.text(r))
    }

    /// The raw `result` of a successful response.
    pub(super) fn result(&self) -> Option<&str> {
        self.result.clone().map(|r| self.text(r))
    }

    pub(super) fn is_error(&self) -> bool {
        self.kind == Kind::Response && self.result.is_none()
    }

    /// `params.<key>` when it is a string: its value and the span of its JSON text in the
    /// message (for a splice).
    pub(super) fn param_str(&self, key: Param) -> Option<(String, Range<usize>)> {
        let (text, range) = self.param_raw(key)?;
        let value = serde_json::from_str::<Cow<'_, str>>(text).ok()?;
        Some((value.into_owned(), range))
    }

    /// `params.<key>` as raw JSON text, with its span.
    pub(super) fn param_raw(&self, key: Param) -> Option<(&str, Range<usize>)> {
        let params = self.params()?;
        if !params.starts_with('{') {
            return None;
        }
        let p: Fields<'_> = serde_json::from_str(params).ok()?;
        let raw = match key {
            Param::Name => p.name,
            Param::Uri => p.uri,
            Param::RequestId => p.request_id,
        }?;
        Some((raw.get(), span_of(&self.bytes, raw.get())))
    }

    fn text(&self, r: Range<usize>) -> &str {
        std::str::from_utf8(&self.bytes[r]).unwrap_or("null")
    }

    /// The message with its id replaced by `id` (raw JSON text).
    pub(super) fn with_id(&self, id: &str) -> Bytes {
        match self.id_span() {
            Some(span) => crate::jsonrpc::splice(&self.bytes, &mut [(span, id)]),
            None => self.bytes.clone(),
        }
    }
}

/// The `params` fields a route reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param {
    Name,
    Uri,
    RequestId,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<&'a RawValue>,
}

/// Byte range of `inner`, a slice borrowed from `outer`.
pub(super) fn span_of(outer: &[u8], inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

fn string(raw: &RawValue) -> Option<String> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(raw.get())
        .ok()
        .map(Cow::into_owned)
}

/// A string as JSON text.
pub(super) fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A response with `result` (raw JSON) to the request `id` (raw JSON).
pub(super) fn result(id: &str, result: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#
    ))
}

/// A request of the aggregate's own, `params` raw JSON (or none).
pub(super) fn request(id: u64, method: &str, params: Option<&str>) -> Bytes {
    let method = quote(method);
    Bytes::from(match params {
        Some(p) => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{p}}}"#),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#),
    })
}

/// A notification, `params` raw JSON.
pub(super) fn notification(method: &str, params: &str) -> Bytes {
    let method = quote(method);
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","method":{method},"params":{params}}}"#
    ))
}

/// A JSON-RPC error of the aggregate's own about one request (`code` -32602 and the like:
/// an answer as a server would give it, without relay `data`).
pub(super) fn error(id: &str, code: i64, message: &str) -> Bytes {
    crate::jsonrpc::error_response(Some(id), code, message, &serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Msg {
        Msg::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn parse_reads_kind_method_id_and_params() {
        let m = msg(
            r#"{"jsonrpc":"2.0","id":"x 1","method":"tools/call","params":{"name":"a__echo","arguments":{"n":1.0}}}"#,
        );
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.method(), "tools/call");
        assert_eq!(m.id(), Some(r#""x 1""#));
        let (name, span) = m.param_str(Param::Name).unwrap();
        assert_eq!(name, "a__echo");
        let out = crate::jsonrpc::splice(
            &m.bytes,
            &mut [(span, "\"echo\""), (m.id_span().unwrap(), "7")],
        );
        assert_eq!(
            &out[..],
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":1.0}}}"#
        );
        let n = msg(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12}}"#,
        );
        assert_eq!(n.kind, Kind::Notification);
        assert_eq!(n.param_raw(Param::RequestId).unwrap().0, "12");
        let null = msg(r#"{"jsonrpc":"2.0","id":4,"result":null}"#);
        assert_eq!((null.kind, null.result()), (Kind::Response, Some("null")));
        let r = msg(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert_eq!(
            (r.kind, r.own_id(), r.result()),
            (Kind::Response, Some(3), Some("{}"))
        );
        let e = msg(r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#);
        assert!(e.is_error());
    }

    #[test]
    fn parse_refuses_what_is_not_a_message() {
        for bad in [
            "[]",
            "1",
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"method":5}"#,
            "{",
        ] {
            assert!(Msg::parse(Bytes::from(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn written_messages_are_json_rpc() {
        let r = request(4, "tools/list", Some(r#"{"cursor":"c"}"#));
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["id"], 4);
        assert_eq!(v["params"]["cursor"], "c");
        let n: serde_json::Value = serde_json::from_slice(&notification("a/b", "{}")).unwrap();
        assert_eq!(n["method"], "a/b");
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }
}
