//! Modern (2026-07-28) request metadata: headers checked against the body (PROTOCOL.md §2.3).
//!
//! Before a modern POST reaches a child: `MCP-Protocol-Version` must be present (-32020); a
//! request's `_meta` must name a protocol version and client capabilities (-32602; `clientInfo`
//! is only a SHOULD); the header must equal the `_meta` version (-32020) and be one the relay
//! serves (-32022, with `data.supported` and `data.requested`); `Mcp-Method` must equal the
//! method (required on requests, compared when a notification sends it); `Mcp-Name` must equal
//! `params.name` / `params.uri` on `tools/call`, `prompts/get` and `resources/read`; each
//! `Mcp-Param-{Name}` must equal the tool argument annotated `x-mcp-header: "{Name}"`, found
//! through a chain of `properties` keys (a present, non-null argument needs its header; a
//! header needs its argument; integers compare numerically, booleans as `true`/`false`).
//! `Mcp-Name` and `Mcp-Param-*` values may travel as `=?base64?…?=`: invalid Base64 is a
//! mismatch and a value without both markers is literal. Header names are case-insensitive,
//! values are not; surrounding spaces and tabs are not part of a value (RFC 9110 §5.5). The
//! order of the checks is that of the conformance suite's reference server.
//!
//! Pure functions: the relay calls [`validate`] (`Relay::stateless`, `relay/modern.rs`), the
//! pool learns annotations with [`ToolHeaders::learn`] (`relay/modern.rs`), `error.rs` maps a
//! [`Refusal`] onto the wire. The relay's policy reads the body, never these headers.

use std::collections::HashMap;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::era::{FIRST_MODERN, MODERN_META_KEY};
use crate::jsonrpc::{Frame, Kind};

/// Modern versions the relay serves.
pub(crate) const SUPPORTED: [&str; 1] = [FIRST_MODERN];

const CAPS_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
const PARAM_PREFIX: &str = "mcp-param-";

/// How deep `properties` chains are followed when learning annotations.
const MAX_SCHEMA_DEPTH: usize = 16;

/// Why a modern request was refused before reaching a child. Every refusal is HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// -32020: a required header is missing, differs from the body, or is malformed.
    #[error("header mismatch ({0})")]
    HeaderMismatch(&'static str),
    /// -32602: a required `_meta` field is missing.
    #[error("invalid params: missing request metadata ({0})")]
    MissingMeta(&'static str),
    /// -32022: the version is not one the relay serves.
    #[error("unsupported protocol version")]
    Unsupported { requested: String },
}

impl Refusal {
    /// The JSON-RPC error code.
    pub(crate) fn code(&self) -> i64 {
        match self {
            Refusal::HeaderMismatch(_) => -32020,
            Refusal::MissingMeta(_) => -32602,
            Refusal::Unsupported { .. } => -32022,
        }
    }

    /// A fixed snake_case word for logs and `data.reason`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::HeaderMismatch(r) | Refusal::MissingMeta(r) => r,
            Refusal::Unsupported { .. } => "unsupported_protocol_version",
        }
    }

    /// The JSON-RPC error message.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Refusal::HeaderMismatch(_) => "Header mismatch",
            Refusal::MissingMeta(_) => "Invalid params: missing request metadata",
            Refusal::Unsupported { .. } => "Unsupported protocol version",
        }
    }

    /// The `error.data` members the spec defines (`supported` and `requested` for -32022);
    /// `error.rs` adds its own (`source`, `reason`).
    pub(crate) fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Refusal::Unsupported { requested } = self {
            m.insert("supported".into(), serde_json::json!(SUPPORTED));
            m.insert("requested".into(), Value::from(requested.as_str()));
        }
        m
    }
}

/// What a validated modern message declared. Its headers agree with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModernRequest {
    /// `MCP-Protocol-Version` (equal to the `_meta` version when the body names one).
    pub version: String,
    /// The JSON-RPC method.
    pub method: String,
    /// The tool or prompt name or resource URI that `Mcp-Name` was checked against.
    pub name: Option<String>,
    /// How many `Mcp-Param-*` headers were checked against arguments.
    pub params_checked: usize,
}

/// One annotated argument: the header that mirrors it and where it sits in `arguments`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    /// The full header name, lowercase (`mcp-param-region`).
    header: String,
    /// The chain of `properties` keys from `arguments` to the value.
    path: Vec<String>,
}

/// Which tool arguments are mirrored in which `Mcp-Param-*` header, learnt from `tools/list`.
/// The default knows no tool, so nothing is required of `Mcp-Param-*` headers.
#[derive(Debug, Default, Clone)]
pub(crate) struct ToolHeaders {
    tools: HashMap<String, Vec<Binding>>,
}

impl ToolHeaders {
    /// Learns the annotations of one `tools/list` result (JSON text, one page). A listed tool
    /// replaces what was known about it, so a tool that lost its annotations needs no header
    /// any more; tools not on the page are kept. Text that is not a result is ignored.
    ///
    /// Only annotations reachable through `properties` keys count, with a header name that is
    /// an HTTP token and a `type` of string, integer or boolean (or none); others make the tool
    /// invalid for clients, which do not call it, so they are not enforced.
    pub(crate) fn learn(&mut self, result: &str) {
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
            let mut found = Vec::new();
            collect(&tool.input_schema, &mut Vec::new(), &mut found);
            if found.is_empty() {
                self.tools.remove(&tool.name);
            } else {
                self.tools.insert(tool.name, found);
            }
        }
    }

    fn of(&self, tool: &str) -> &[Binding] {
        self.tools.get(tool).map_or(&[], Vec::as_slice)
    }
}

/// Walks `properties` chains of `schema`, collecting valid `x-mcp-header` annotations.
fn collect(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Binding>) {
    if path.len() >= MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, sub) in props {
        path.push(key.clone());
        let name = sub.get("x-mcp-header").and_then(Value::as_str);
        if let Some(name) = name.filter(|n| is_token(n) && primitive(sub)) {
            out.push(Binding {
                header: format!("{PARAM_PREFIX}{}", name.to_ascii_lowercase()),
                path: path.clone(),
            });
        }
        collect(sub, path, out);
        path.pop();
    }
}

/// RFC 9110 `token` (`1*tchar`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A schema whose `type` allows an annotation: string, integer, boolean (null aside) or none.
fn primitive(schema: &Value) -> bool {
    let ok = |t: &Value| matches!(t.as_str(), Some("string" | "integer" | "boolean" | "null"));
    match schema.get("type") {
        None => true,
        Some(Value::Array(types)) => types.iter().all(ok),
        Some(t) => ok(t) && t != "null",
    }
}

/// Checks a modern message's headers against its body.
pub(crate) fn validate(
    headers: &HeaderMap,
    frame: &Frame,
    tools: &ToolHeaders,
) -> Result<ModernRequest, Refusal> {
    let request = frame.kind() == Kind::Request;
    let body = Body::of(frame);
    let version = plain(headers, VERSION_HEADER)?
        .ok_or(Refusal::HeaderMismatch("missing_protocol_version_header"))?;
    let meta = body.meta.as_ref();
    let declared = meta
        .and_then(|m| m.get(MODERN_META_KEY))
        .and_then(Value::as_str);
    if request {
        check_meta(meta, declared)?;
    }
    if declared.is_some_and(|d| d != version) {
        return Err(Refusal::HeaderMismatch("protocol_version_mismatch"));
    }
    if !SUPPORTED.contains(&version.as_str()) {
        return Err(Refusal::Unsupported { requested: version });
    }
    let method = frame.method().unwrap_or_default();
    match plain(headers, METHOD_HEADER)? {
        Some(m) if m == method => {}
        Some(_) => return Err(Refusal::HeaderMismatch("method_mismatch")),
        None if request => return Err(Refusal::HeaderMismatch("missing_method_header")),
        None => {}
    }
    let name = match (request, method) {
        (true, "tools/call" | "prompts/get") => Some(check_name(headers, frame.name())?),
        (true, "resources/read") => Some(check_name(headers, frame.uri())?),
        _ => None,
    };
    let params_checked = if request && method == "tools/call" {
        let bindings = tools.of(frame.name().unwrap_or_default());
        check_params(headers, bindings, body.arguments.as_ref())?
    } else {
        0
    };
    Ok(ModernRequest {
        version,
        method: method.to_owned(),
        name,
        params_checked,
    })
}

/// The `_meta` fields every modern request carries (schema `RequestMetaObject`).
fn check_meta(meta: Option<&Map<String, Value>>, declared: Option<&str>) -> Result<(), Refusal> {
    let Some(meta) = meta else {
        return Err(Refusal::MissingMeta("missing_meta"));
    };
    if declared.is_none() {
        return Err(Refusal::MissingMeta("missing_meta_protocol_version"));
    }
    if !meta.get(CAPS_KEY).is_some_and(Value::is_object) {
        return Err(Refusal::MissingMeta("missing_meta_client_capabilities"));
    }
    Ok(())
}

/// `Mcp-Name` against the body's name or URI; returns the name.
fn check_name(headers: &HeaderMap, body: Option<&str>) -> Result<String, Refusal> {
    match (encoded(headers, NAME_HEADER)?, body) {
        (Some(h), Some(b)) if h == b => Ok(h),
        (None, _) => Err(Refusal::HeaderMismatch("missing_name_header")),
        _ => Err(Refusal::HeaderMismatch("name_mismatch")),
    }
}

/// `Mcp-Param-*` headers against the tool's annotated arguments; returns how many matched.
fn check_params(
    headers: &HeaderMap,
    bindings: &[Binding],
    args: Option<&Map<String, Value>>,
) -> Result<usize, Refusal> {
    let mut checked = 0;
    for b in bindings {
        match (argument(args, &b.path), encoded(headers, &b.header)?) {
            (None, None) => {}
            (Some(_), None) => return Err(Refusal::HeaderMismatch("missing_param_header")),
            (Some(v), Some(h)) if same_value(v, &h) => checked += 1,
            (_, Some(_)) => return Err(Refusal::HeaderMismatch("param_mismatch")),
        }
    }
    Ok(checked)
}

/// The argument at `path`; absent and `null` are the same (the header must then be absent).
fn argument<'a>(args: Option<&'a Map<String, Value>>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = args?.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    (!value.is_null()).then_some(value)
}

/// A header value (decoded) equals a body value: strings exactly, numbers numerically,
/// booleans as `true`/`false`; objects and arrays never.
fn same_value(body: &Value, header: &str) -> bool {
    match body {
        Value::String(s) => s == header,
        Value::Bool(b) => header == if *b { "true" } else { "false" },
        Value::Number(n) => same_number(n, header),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// Integers exactly (no float rounding past 2^53), otherwise as finite decimals (`42.0` = 42).
fn same_number(n: &Number, header: &str) -> bool {
    if let (Some(a), Ok(b)) = (n.as_i64(), header.parse::<i64>()) {
        return a == b;
    }
    if let (Some(a), Ok(b)) = (n.as_u64(), header.parse::<u64>()) {
        return a == b;
    }
    let decimal = header
        .bytes()
        .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c));
    match (n.as_f64(), header.parse::<f64>()) {
        (Some(a), Ok(b)) => decimal && a.is_finite() && b.is_finite() && a == b,
        _ => false,
    }
}

/// One header's value with surrounding spaces and tabs removed. Several values, or bytes
/// outside visible ASCII, space and tab, are a mismatch.
fn plain(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
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
    Ok(Some(text.trim_matches([' ', '\t']).to_owned()))
}

/// [`plain`], then decoded from `=?base64?…?=` when so wrapped (`Mcp-Name`, `Mcp-Param-*`).
fn encoded(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
    plain(headers, name)?.map(|v| decode(&v)).transpose()
}

/// Decodes `=?base64?…?=` (standard alphabet, canonical padding, UTF-8); a value without both
/// markers is literal.
pub(crate) fn decode(value: &str) -> Result<String, Refusal> {
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

/// The parts of the body the checks read (parsed only on this path).
struct Body {
    meta: Option<Map<String, Value>>,
    arguments: Option<Map<String, Value>>,
}

impl Body {
    fn of(frame: &Frame) -> Body {
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "_meta")]
            meta: Option<Value>,
            arguments: Option<Value>,
        }
        let object = |v: Option<Value>| match v {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        // Params that are not an object (or a body that is not one) carry neither.
        match frame.params::<Params>() {
            Some(p) => Body {
                meta: object(p.meta),
                arguments: object(p.arguments),
            },
            _ => Body {
                meta: None,
                arguments: None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
