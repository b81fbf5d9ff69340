//! Building the JSON-RPC messages the load generator sends and verifying every answer: the
//! right id and, for `tools/call` of `echo` (under whichever name the system publishes it),
//! exactly the text that was sent. Answers come as
//! one `application/json` body or as an SSE stream whose `data:` lines carry the messages.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

/// The `initialize` request (id 0) for `protocol`.
pub(crate) fn initialize(protocol: &str) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{protocol}","capabilities":{{}},"clientInfo":{{"name":"mcp-relay-bench","version":"1"}}}}}}"#
    )
    .into_bytes()
}

/// The `notifications/initialized` notification.
pub(crate) const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// What comes between the id and the text in a `tools/call` of the fixture's `echo`.
const ECHO_MID: &[u8] = br#","method":"tools/call","params":{"name":"echo","arguments":{"text":""#;

/// The 2026-07-28 protocol version a modern client sends.
pub(crate) const MODERN: &str = "2026-07-28";

/// The `tools/call` a system is sent: the tool's name differs between systems (`echo`, or
/// `a__echo` through the multi-server relay's aggregate), and a 2026-07-28 client adds its
/// request metadata, so the bytes between the id and the text are built once per system and
/// the hot loop only copies them.
#[derive(Clone, Debug)]
pub(crate) struct ToolCall {
    mid: Arc<[u8]>,
    tool: Arc<str>,
}

impl ToolCall {
    /// A call of `tool` (a name that needs no JSON escaping: letters, digits, `_`, `-`).
    pub(crate) fn new(tool: &str) -> Self {
        let mid =
            format!(r#","method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":""#);
        Self {
            mid: mid.into_bytes().into(),
            tool: tool.into(),
        }
    }

    /// The same call as a 2026-07-28 client sends it: `params._meta` names the protocol
    /// version, the client's capabilities (none) and the client.
    pub(crate) fn modern(tool: &str) -> Self {
        let mid = format!(
            r#","method":"tools/call","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"mcp-relay-bench","version":"1"}}}},"name":"{tool}","arguments":{{"text":""#
        );
        Self {
            mid: mid.into_bytes().into(),
            tool: tool.into(),
        }
    }

    /// The tool's name (the `Mcp-Name` of a 2026-07-28 call).
    pub(crate) fn tool(&self) -> &str {
        &self.tool
    }

    /// The request with `id` and `text`.
    pub(crate) fn request(&self, id: u64, text: &str) -> Vec<u8> {
        call_with(&self.mid, id, text)
    }
}

/// A `tools/call` of `echo` with `text` (which needs no JSON escaping: the harness only
/// sends ASCII letters, digits and `-`).
pub(crate) fn echo_call(id: u64, text: &str) -> Vec<u8> {
    call_with(ECHO_MID, id, text)
}

fn call_with(mid: &[u8], id: u64, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + mid.len() + 40);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(mid);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(br#""}}}"#);
    out
}

#[derive(Deserialize)]
struct Answer<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    result: Option<CallResult<'a>>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CallResult<'a> {
    #[serde(borrow)]
    content: Vec<Content<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
struct InitAnswer {
    id: Option<u64>,
    result: Option<InitResult>,
}

#[derive(Deserialize)]
struct InitResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
}

/// Calls `f` with each JSON message of a response body (JSON or SSE) until it returns true.
fn each_message(sse: bool, body: &[u8], mut f: impl FnMut(&[u8]) -> Result<bool>) -> Result<()> {
    if !sse {
        if f(body)? {
            return Ok(());
        }
        bail!("JSON body without the expected answer");
    }
    let mut data: Vec<u8> = Vec::new();
    let mut lines = body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(d) = line.strip_prefix(b"data:") {
            let d = d.strip_prefix(b" ").unwrap_or(d);
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(d);
        }
        let end = line.is_empty() || lines.peek().is_none();
        if end && !data.is_empty() {
            if f(&data)? {
                return Ok(());
            }
            data.clear();
        }
    }
    bail!("SSE stream ended without the expected answer")
}

/// Verifies an echo answer: id `id`, one text content equal to `text`.
pub(crate) fn verify_echo(sse: bool, body: &[u8], id: u64, text: &str) -> Result<()> {
    each_message(sse, body, |m| {
        let a: Answer<'_> = serde_json::from_slice(m).context("answer is not JSON-RPC")?;
        if a.id != Some(id) {
            return Ok(false); // a notification or another message on the stream
        }
        if let Some(e) = a.error {
            bail!("error answer for id {id}: {e}");
        }
        let r = a.result.context("answer without result")?;
        match r.content.as_slice() {
            [c] if c.kind == "text" && c.text == text => Ok(true),
            _ => bail!("id {id}: wrong echo content"),
        }
    })
}

/// Verifies the `initialize` answer and returns the negotiated protocol version.
pub(crate) fn verify_init(sse: bool, body: &[u8]) -> Result<String> {
    let mut version = None;
    each_message(sse, body, |m| {
        let a: InitAnswer = serde_json::from_slice(m).context("initialize answer not JSON")?;
        if a.id != Some(0) {
            return Ok(false);
        }
        version = Some(a.result.context("initialize failed")?.protocol_version);
        Ok(true)
    })?;
    version.context("no initialize result")
}

/// The id of one newline-delimited JSON-RPC message (stdio), if it is an integer.
pub(crate) fn line_id(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_slice::<IdOnly>(line).ok()?.id
}

/// The text to echo for request `id`: unique per request, `len` bytes (at least the id).
pub(crate) fn text_for(id: u64, len: usize, filler: &str) -> String {
    let mut t = format!("t{id}-");
    if t.len() < len {
        let need = len - t.len();
        t.push_str(&filler[..need.min(filler.len())]);
    }
    t
}
