//! Modern (2026-07-28) request metadata: headers checked against the body (PROTOCOL.md §2.3).
//!
//! Before a modern POST reaches a child, its `_meta` must name a protocol version and client
//! capabilities (-32602), `MCP-Protocol-Version` must equal the `_meta` version (-32020) and
//! be one the relay serves (-32022, with `data.supported` and `data.requested`), `Mcp-Method`
//! must equal the method, `Mcp-Name` must equal `params.name` / `params.uri` on
//! `tools/call`, `resources/read` and `prompts/get`, and each `Mcp-Param-{Name}` must equal
//! the tool argument annotated `x-mcp-header: "{Name}"` (a present argument needs its header;
//! numbers compare numerically). Values may travel as `=?base64?…?=`; invalid Base64 is a
//! mismatch, and a value without both markers is literal. Header names are case-insensitive.
//! The relay's policy reads the body, never these headers. Mapping to the wire is `error.rs`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::era::{FIRST_MODERN, MODERN_META_KEY};
use crate::jsonrpc::{Frame, Kind};

/// Modern versions the relay serves.
pub const SUPPORTED: [&str; 1] = [FIRST_MODERN];

const CAPS_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Why a modern request was refused before reaching a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// -32020: a required header is missing, differs from the body, or is malformed.
    HeaderMismatch(&'static str),
    /// -32602: a required `_meta` field is missing.
    MissingMeta(&'static str),
    /// -32022: the version is not one the relay serves.
    Unsupported { requested: String },
}

impl Refusal {
    pub fn code(&self) -> i64 {
        match self {
            Refusal::HeaderMismatch(_) => -32020,
            Refusal::MissingMeta(_) => -32602,
            Refusal::Unsupported { .. } => -32022,
        }
    }

    /// A fixed snake_case word for logs and `data.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::HeaderMismatch(r) | Refusal::MissingMeta(r) => r,
            Refusal::Unsupported { .. } => "unsupported_protocol_version",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            Refusal::HeaderMismatch(_) => "Header mismatch",
            Refusal::MissingMeta(_) => "Invalid params: missing request metadata",
            Refusal::Unsupported { .. } => "Unsupported protocol version",
        }
    }

    /// Extra `error.data` members the spec defines.
    pub fn data(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if let Refusal::Unsupported { requested } = self {
            m.insert("supported".into(), serde_json::json!(SUPPORTED));
            m.insert("requested".into(), Value::from(requested.as_str()));
        }
        m
    }
}

/// Which tool arguments are mirrored in which `Mcp-Param-*` header, learnt from `tools/list`.
#[derive(Debug, Default, Clone)]
pub struct ToolHeaders {
    /// Tool name → (header suffix, lowercase; argument name).
    tools: HashMap<String, Vec<(String, String)>>,
}

impl ToolHeaders {
    /// Learns the annotations of one `tools/list` result (JSON text).
    pub fn learn(&mut self, result: &str) {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            tools: Vec<Tool>,
        }
        #[derive(Deserialize)]
        struct Tool {
            name: String,
            #[serde(rename = "inputSchema", default)]
            input_schema: Value,
        }
        let Ok(list) = serde_json::from_str::<List>(result) else {
            return;
        };
        for tool in list.tools {
            let Some(props) = tool
                .input_schema
                .get("properties")
                .and_then(Value::as_object)
            else {
                continue;
            };
            let pairs: Vec<(String, String)> = props
                .iter()
                .filter_map(|(arg, schema)| {
                    let header = schema.get("x-mcp-header")?.as_str()?;
                    Some((header.to_ascii_lowercase(), arg.clone()))
                })
                .collect();
            if !pairs.is_empty() {
                self.tools.insert(tool.name, pairs);
            }
        }
    }

    fn of(&self, tool: &str) -> &[(String, String)] {
        self.tools.get(tool).map_or(&[], Vec::as_slice)
    }
}

/// Checks a modern request's headers against its body.
pub fn validate(headers: &HeaderMap, frame: &Frame, tools: &ToolHeaders) -> Result<(), Refusal> {
    let body = Body::of(frame);
    let meta = body.meta.as_ref();
    let version = meta
        .and_then(|m| m.get(MODERN_META_KEY))
        .and_then(Value::as_str);
    let request = frame.kind() == Kind::Request;
    if request {
        let Some(meta) = meta else {
            return Err(Refusal::MissingMeta("missing_meta"));
        };
        if version.is_none() {
            return Err(Refusal::MissingMeta("missing_meta_protocol_version"));
        }
        if !meta.get(CAPS_KEY).is_some_and(Value::is_object) {
            return Err(Refusal::MissingMeta("missing_meta_client_capabilities"));
        }
    }
    let sent = header(headers, VERSION_HEADER)?;
    match (sent.as_deref(), version) {
        (None, _) => return Err(Refusal::HeaderMismatch("missing_protocol_version_header")),
        (Some(h), Some(v)) if h != v => {
            return Err(Refusal::HeaderMismatch("protocol_version_mismatch"))
        }
        (Some(h), _) if !SUPPORTED.contains(&h) => {
            return Err(Refusal::Unsupported {
                requested: h.to_owned(),
            })
        }
        _ => {}
    }
    let method = frame.method().unwrap_or_default();
    match header(headers, "mcp-method")? {
        Some(m) if m == method => {}
        Some(_) => return Err(Refusal::HeaderMismatch("method_mismatch")),
        None if request => return Err(Refusal::HeaderMismatch("missing_method_header")),
        None => {}
    }
    let named = match method {
        "tools/call" | "prompts/get" => frame.name(),
        "resources/read" => frame.uri(),
        _ => None,
    };
    if request && matches!(method, "tools/call" | "prompts/get" | "resources/read") {
        match (header(headers, "mcp-name")?, named) {
            (Some(h), Some(n)) if h == n => {}
            (None, _) => return Err(Refusal::HeaderMismatch("missing_name_header")),
            _ => return Err(Refusal::HeaderMismatch("name_mismatch")),
        }
    }
    if method == "tools/call" {
        let tool = frame.name().unwrap_or_default();
        check_params(headers, tools.of(tool), body.arguments.as_ref())?;
    }
    Ok(())
}

/// `Mcp-Param-*` headers against the tool's annotated arguments.
fn check_params(
    headers: &HeaderMap,
    pairs: &[(String, String)],
    args: Option<&serde_json::Map<String, Value>>,
) -> Result<(), Refusal> {
    for (suffix, arg) in pairs {
        let value = args.and_then(|a| a.get(arg)).filter(|v| !v.is_null());
        let sent = header(headers, &format!("mcp-param-{suffix}"))?;
        match (value, sent) {
            (None, None) => {}
            (Some(_), None) => return Err(Refusal::HeaderMismatch("missing_param_header")),
            (None, Some(_)) => return Err(Refusal::HeaderMismatch("param_mismatch")),
            (Some(v), Some(h)) if same_value(v, &h) => {}
            (Some(_), Some(_)) => return Err(Refusal::HeaderMismatch("param_mismatch")),
        }
    }
    Ok(())
}

/// A header value (decoded) equals a body value: strings exactly, numbers numerically,
/// booleans as `true`/`false`.
fn same_value(body: &Value, header: &str) -> bool {
    match body {
        Value::String(s) => s == header,
        Value::Bool(b) => header == if *b { "true" } else { "false" },
        Value::Number(n) => match (n.as_f64(), header.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}

/// One header's value, decoded from `=?base64?…?=` when so wrapped. Several values, bytes
/// outside visible ASCII and space, or invalid Base64 are a mismatch.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::HeaderMismatch("repeated_header"));
    }
    let text = first
        .to_str()
        .map_err(|_| Refusal::HeaderMismatch("bad_header_chars"))?;
    decode(text).map(Some)
}

/// Decodes `=?base64?…?=` (standard alphabet, canonical padding, UTF-8); anything else is
/// literal.
pub fn decode(value: &str) -> Result<String, Refusal> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Ok(value.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|_| Refusal::HeaderMismatch("bad_base64"))?;
    String::from_utf8(bytes).map_err(|_| Refusal::HeaderMismatch("bad_base64"))
}

/// The parts of the body the checks read (only on this path).
struct Body {
    meta: Option<serde_json::Map<String, Value>>,
    arguments: Option<serde_json::Map<String, Value>>,
}

impl Body {
    fn of(frame: &Frame) -> Body {
        #[derive(Deserialize)]
        struct Envelope {
            params: Option<Params>,
        }
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "_meta")]
            meta: Option<Value>,
            arguments: Option<Value>,
        }
        let p = serde_json::from_slice::<Envelope>(frame.bytes())
            .ok()
            .and_then(|e| e.params);
        let object = |v: Option<Value>| match v {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        match p {
            Some(p) => Body {
                meta: object(p.meta),
                arguments: object(p.arguments),
            },
            None => Body {
                meta: None,
                arguments: None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
