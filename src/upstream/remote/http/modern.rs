//! Modern (2026-07-28) requests to an HTTP upstream: the headers a modern server checks
//! against the body (PROTOCOL.md §2.3): `MCP-Protocol-Version` from `_meta`, `Mcp-Method`,
//! and `Mcp-Name` (Base64-wrapped when not plain). `Mcp-Param-*` (tool arguments annotated
//! `x-mcp-header`) is not sent yet. Validation of the same headers, server side, is
//! `era/modern.rs`.

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::VERSION_HEADER;
use crate::jsonrpc::Frame;

/// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` of a modern (2026-07-28) message,
/// taken from its body; `None` for legacy messages (no `_meta` protocol version).
pub(super) fn modern_headers(frame: &Frame) -> Option<HeaderMap> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
        version: Option<String>,
    }
    // Legacy messages, the common case, are not parsed again.
    memchr::memmem::find(frame.bytes(), crate::era::MODERN_META_KEY.as_bytes())?;
    let version = frame.params::<Params>()?.meta?.version?;
    let mut h = HeaderMap::new();
    h.insert(VERSION_HEADER, HeaderValue::from_str(&version).ok()?);
    let method = frame.method()?;
    if let Ok(m) = HeaderValue::from_str(method) {
        h.insert("mcp-method", m);
    }
    let name = match method {
        "tools/call" | "prompts/get" => frame.name(),
        "resources/read" => frame.uri(),
        _ => None,
    };
    if let Some(v) = name.and_then(header_text) {
        h.insert("mcp-name", v);
    }
    Some(h)
}

/// A header value for `text`: as it is when it is plain visible ASCII, else `=?base64?…?=`.
pub(super) fn header_text(text: &str) -> Option<HeaderValue> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.starts_with([' ', '\t'])
        && !text.ends_with([' ', '\t'])
        && !text.starts_with("=?base64?");
    if plain {
        return HeaderValue::from_str(text).ok();
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
}
