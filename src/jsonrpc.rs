//! JSON-RPC frames over raw bytes: the transparent hot path.
//!
//! A [`Frame`] keeps the exact bytes a peer sent and records only what the relay needs:
//! the kind, `method`, the span of `id`, `params.name`/`params.uri`, the span of
//! `params._meta.progressToken` and of `params.requestId` (for `notifications/cancelled`).
//! Everything else (unknown fields, `_meta`, number forms) is never decoded, so it reaches
//! the other side byte for byte. Rewriting is splicing: [`Frame::splice`] replaces spans.
//!
//! Before the envelope is read, [`check`] walks the whole document once and rejects
//! ambiguous JSON (duplicate keys at any depth, look-alike keys the relay reads, nesting
//! deeper than [`MAX_DEPTH`]) so every later parser reads what the relay read.
//! Neighbours: `upstream/mux.rs` rewrites ids with these spans; `error.rs` maps
//! [`Error`] to the wire.

mod check;

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest batch a 2025-03-26 session may send (SECURITY.md §2).
pub(crate) const MAX_BATCH: usize = 100;

/// Why a frame was refused; `error.rs` turns it into -32700 or -32600.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("not valid json")]
    Parse,
    #[error("invalid json-rpc envelope: {0}")]
    Invalid(&'static str),
}

/// What a frame is, by the JSON-RPC 2.0 envelope rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Notification,
    Response,
}

/// A request id as the peer wrote it: raw JSON text (`"1"` and `1` differ, `1.0` stays).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RawId(Box<str>);

impl RawId {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    /// The relay's own integer ids, as written to children.
    pub(crate) fn from_u64(n: u64) -> Self {
        RawId(n.to_string().into())
    }

    /// Parses one of the relay's own integer ids back.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl std::fmt::Display for RawId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One JSON-RPC message: its original bytes plus the few spans and names the relay reads.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    bytes: Bytes,
    kind: Kind,
    method: Option<Box<str>>,
    id: Option<Range<usize>>,
    name: Option<Box<str>>,
    uri: Option<Box<str>>,
    progress_token: Option<Range<usize>>,
    subscription_id: Option<Range<usize>>,
    request_id: Option<Range<usize>>,
    result: Option<Range<usize>>,
    is_error: bool,
}

/// A parsed HTTP body or line: one message or a batch.
#[derive(Debug)]
pub(crate) enum Message {
    Single(Frame),
    Batch(Vec<Frame>),
}

impl Message {
    /// Parses a body that may be a single message or a JSON array of messages.
    pub(crate) fn parse(bytes: Bytes) -> Result<Message, Error> {
        let bytes = one_line(bytes);
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first != Some(b'[') {
            return Frame::parse(bytes).map(Message::Single);
        }
        check::check(&bytes, true)?;
        let items: Vec<&RawValue> = serde_json::from_slice(&bytes).map_err(|_| Error::Parse)?;
        if items.is_empty() {
            return Err(Error::Invalid("empty_batch"));
        }
        let mut frames = Vec::with_capacity(items.len());
        for item in items {
            let span = span_of(&bytes, item.get());
            frames.push(Frame::parse_checked(bytes.slice(span))?);
        }
        Ok(Message::Batch(frames))
    }

    /// Its frames: one, or the batch's in order.
    pub(crate) fn frames(&self) -> &[Frame] {
        match self {
            Message::Single(f) => std::slice::from_ref(f),
            Message::Batch(v) => v,
        }
    }

    pub(crate) fn is_batch(&self) -> bool {
        matches!(self, Message::Batch(_))
    }
}

#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestId", deserialize_with = "present")]
    request_id: Option<&'a RawValue>,
    #[serde(
        borrow,
        default,
        rename = "progressToken",
        deserialize_with = "present"
    )]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(
        borrow,
        default,
        rename = "progressToken",
        deserialize_with = "present"
    )]
    progress_token: Option<&'a RawValue>,
    #[serde(
        borrow,
        default,
        rename = "io.modelcontextprotocol/subscriptionId",
        deserialize_with = "present"
    )]
    subscription_id: Option<&'a RawValue>,
}

/// Keeps an explicit `null` as `Some("null")` so "absent" and "null" stay apart.
fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(d).map(Some)
}

impl Frame {
    /// Parses and validates one JSON-RPC message (not a batch) from a client: duplicate keys
    /// are refused at any depth.
    pub(crate) fn parse(bytes: Bytes) -> Result<Frame, Error> {
        let bytes = one_line(bytes);
        check::check(&bytes, false)?;
        Frame::parse_checked(bytes)
    }

    /// Parses one line from a child. Duplicate and look-alike keys are refused where the
    /// relay reads (envelope, `params`, `params._meta`); deeper values (results, arguments)
    /// are only checked for syntax, since no policy reads them.
    /// One pass over the envelope checks its keys and keeps its values raw; only `params`
    /// (a child's request or notification) is walked again, for its own keys and `_meta`'s.
    pub(crate) fn parse_upstream(bytes: Bytes) -> Result<Frame, Error> {
        // A raw CR would end an SSE line early: make it the space it means.
        let bytes = one_line(bytes);
        let mut frame = Frame::build(&bytes, check::upstream_envelope(&bytes)?)?;
        frame.bytes = bytes;
        Ok(frame)
    }

    fn parse_checked(bytes: Bytes) -> Result<Frame, Error> {
        let env: Envelope<'_> = serde_json::from_slice(&bytes).map_err(|e| {
            if e.is_data() {
                Error::Invalid("not_envelope")
            } else {
                Error::Parse
            }
        })?;
        let mut frame = Frame::build(&bytes, env)?;
        frame.bytes = bytes;
        Ok(frame)
    }

    /// The frame an envelope describes (its `bytes` left empty for the caller to set).
    fn build(bytes: &[u8], env: Envelope<'_>) -> Result<Frame, Error> {
        if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return Err(Error::Invalid("bad_jsonrpc_version"));
        }
        let id = env.id.map(|raw| span_of(bytes, raw.get()));
        let mut frame = Frame {
            kind: Kind::Notification,
            method: None,
            id,
            name: None,
            uri: None,
            progress_token: None,
            subscription_id: None,
            request_id: None,
            result: None,
            is_error: false,
            bytes: Bytes::new(),
        };
        match (env.method, env.result, env.error) {
            (Some(method), None, None) => {
                frame.method = Some(string_value(method).ok_or(Error::Invalid("bad_method"))?);
                frame.kind = match env.id {
                    None => Kind::Notification,
                    Some(id) if valid_request_id(id.get()) => Kind::Request,
                    Some(_) => return Err(Error::Invalid("bad_id")),
                };
                if let Some(params) = env.params {
                    frame.read_params(bytes, params)?;
                }
            }
            (None, Some(result), None) => {
                frame.kind = Kind::Response;
                frame.result = Some(span_of(bytes, result.get()));
            }
            (None, None, Some(_)) => {
                frame.kind = Kind::Response;
                frame.is_error = true;
            }
            _ => return Err(Error::Invalid("not_envelope")),
        }
        if frame.kind == Kind::Response && env.id.is_none() {
            return Err(Error::Invalid("missing_id"));
        }
        Ok(frame)
    }

    fn read_params(&mut self, bytes: &[u8], params: &RawValue) -> Result<(), Error> {
        match params.get().as_bytes().first() {
            Some(b'{') => {}
            Some(b'[') => return Ok(()),
            _ => return Err(Error::Invalid("bad_params")),
        }
        let p: Params<'_> =
            serde_json::from_str(params.get()).map_err(|_| Error::Invalid("bad_params"))?;
        self.name = p.name.and_then(string_value);
        self.uri = p.uri.and_then(string_value);
        self.request_id = p.request_id.map(|r| span_of(bytes, r.get()));
        if self.method.as_deref() == Some("notifications/progress") {
            self.progress_token = p.progress_token.map(|r| span_of(bytes, r.get()));
            return Ok(());
        }
        if let Some(meta) = p.meta.filter(|m| m.get().starts_with('{')) {
            let m: Meta<'_> =
                serde_json::from_str(meta.get()).map_err(|_| Error::Invalid("bad_meta"))?;
            self.progress_token = m.progress_token.map(|r| span_of(bytes, r.get()));
            self.subscription_id = m.subscription_id.map(|r| span_of(bytes, r.get()));
        }
        Ok(())
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// `params.name` (tools/call, prompts/get), when it is a string.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `params.uri` (resources/read, subscribe), when it is a string.
    pub(crate) fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `params` read as `P`, for the few fields a check needs beyond those parsed above (the
    /// `_meta` of a modern request, audited arguments, a completion's `ref`...): parsed on
    /// demand, never on the hot path. `None` when absent, `null` or not of `P`'s shape.
    pub(crate) fn params<'a, P: serde::Deserialize<'a>>(&'a self) -> Option<P> {
        #[derive(serde::Deserialize)]
        struct Envelope<P> {
            params: Option<P>,
        }
        serde_json::from_slice::<Envelope<P>>(&self.bytes)
            .ok()?
            .params
    }

    pub(crate) fn is_error(&self) -> bool {
        self.is_error
    }

    pub(crate) fn id(&self) -> Option<RawId> {
        self.id.clone().map(|r| RawId(self.text(r).into()))
    }

    pub(crate) fn id_span(&self) -> Option<Range<usize>> {
        self.id.clone()
    }

    /// `params._meta.progressToken` of a request, or `params.progressToken` of a
    /// `notifications/progress`, as raw JSON text.
    pub(crate) fn progress_token(&self) -> Option<&str> {
        self.progress_token.clone().map(|r| self.text(r))
    }

    pub(crate) fn progress_token_span(&self) -> Option<Range<usize>> {
        self.progress_token.clone()
    }

    /// `params._meta["io.modelcontextprotocol/subscriptionId"]` (a 2026-07-28 listen stream's
    /// request id), as raw JSON text.
    pub(crate) fn subscription_id(&self) -> Option<&str> {
        self.subscription_id.clone().map(|r| self.text(r))
    }

    pub(crate) fn subscription_id_span(&self) -> Option<Range<usize>> {
        self.subscription_id.clone()
    }

    /// `params.requestId` of a `notifications/cancelled`, as raw JSON text.
    pub(crate) fn request_id(&self) -> Option<&str> {
        self.request_id.clone().map(|r| self.text(r))
    }

    pub(crate) fn request_id_span(&self) -> Option<Range<usize>> {
        self.request_id.clone()
    }

    /// The raw `result` member of a successful response.
    pub(crate) fn result(&self) -> Option<&str> {
        self.result.clone().map(|r| self.text(r))
    }

    fn text(&self, r: Range<usize>) -> &str {
        // Spans come from RawValue slices of these bytes, which serde_json has
        // already validated as UTF-8 on char boundaries.
        std::str::from_utf8(&self.bytes[r]).unwrap_or("null")
    }

    /// Returns the bytes with each span replaced by its text (spans must not overlap).
    pub(crate) fn splice(&self, edits: &mut [(Range<usize>, &str)]) -> Bytes {
        splice(&self.bytes, edits)
    }
}

/// Replaces non-overlapping spans of `bytes`; the rest is copied unchanged.
pub(crate) fn splice(bytes: &[u8], edits: &mut [(Range<usize>, &str)]) -> Bytes {
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, t)| t.len()).sum();
    let mut out = BytesMut::with_capacity(bytes.len() + extra);
    let mut at = 0;
    for (range, text) in edits.iter() {
        out.extend_from_slice(&bytes[at..range.start]);
        out.extend_from_slice(text.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(&bytes[at..]);
    out.freeze()
}

/// Byte range of `inner` when it is a sub-slice borrowed from `outer` (checked).
pub(crate) fn span_in(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len() && &outer[start..end] == inner.as_bytes()).then_some(start..end)
}

/// Byte range of `inner` (a sub-slice produced by borrowing from `outer`).
fn span_of(outer: &[u8], inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.len()
}

fn string_value(raw: &RawValue) -> Option<Box<str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    let s: Cow<'_, str> = serde_json::from_str(raw.get()).ok()?;
    Some(s.into())
}

/// MCP ids are strings or numbers; `null`, booleans, objects and arrays are refused.
fn valid_request_id(raw: &str) -> bool {
    matches!(raw.as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9'))
}

/// Raw CR/LF can only be insignificant whitespace in valid JSON (strings escape them), so
/// they become spaces: stdio framing needs one message per line.
fn one_line(bytes: Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', &bytes).is_none() {
        return bytes;
    }
    let mut v = BytesMut::from(&bytes[..]);
    for b in v.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    v.freeze()
}

/// Builds a JSON-RPC error response with a raw id, or without `id` when it is unknown (the
/// MCP schema makes `id` optional but never `null`).
pub(crate) fn error_response(
    id: Option<&str>,
    code: i64,
    message: &str,
    data: &serde_json::Value,
) -> Bytes {
    let mut body = serde_json::json!({"code": code, "message": message});
    if !data.is_null() {
        body["data"] = data.clone();
    }
    match id {
        Some(id) => Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{body}}}"#)),
        None => Bytes::from(format!(r#"{{"jsonrpc":"2.0","error":{body}}}"#)),
    }
}

#[cfg(test)]
mod tests;

/// `error.code` of an error response (only read where a status or era depends on it).
pub(crate) fn error_code(message: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Code>,
    }
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_slice::<Envelope>(message)
        .ok()?
        .error
        .map(|e| e.code)
}
