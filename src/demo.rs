//! `mcp-relay demo-server`: a small stdio MCP server to try the relay with, bundled so the
//! first run needs nothing but this binary (`mcp-relay serve -- mcp-relay demo-server`).
//!
//! Owns the stdin/stdout loop (newline-delimited JSON-RPC, lines capped at [`MAX_LINE`]), the
//! `initialize` handshake (protocol versions 2024-11-05 to 2025-11-25, `initialize`-based
//! only: `server/discover` gets -32601, so the relay treats it as a legacy server), `ping`,
//! and the method dispatch. The tools are in `demo/tools.rs` (`time`, `echo`, `kv_*`), the
//! store in `demo/kv.rs`, the clock in `demo/clock.rs`; the one prompt and one resource are
//! here. Requests are answered one at a time, in order. Not the relay's message path (that is
//! `jsonrpc.rs`) and not the test fixture (`src/bin/fixture/`).

mod clock;
mod kv;
mod tools;

use std::io::{BufRead, Read, Write};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::era::LEGACY_VERSIONS;

/// Longest line read from stdin (the relay's default `--max-body`); longer ones get -32600.
pub(crate) const MAX_LINE: usize = 4 * 1024 * 1024;

/// The version answered when the client asks for one this server does not know.
const LATEST: &str = "2025-11-25";
const STORE_URI: &str = "demo://kv";

/// A JSON-RPC error: code and message.
type Fault = (i64, String);

/// Runs the server on stdin/stdout until stdin ends; the exit code.
pub(crate) fn run() -> u8 {
    match serve(std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mcp-relay demo-server: {e}");
            1
        }
    }
}

/// Answers each request line of `input` on `out`, until `input` ends.
pub(crate) fn serve(mut input: impl BufRead, mut out: impl Write) -> std::io::Result<()> {
    let mut server = Server::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_LINE + 1) as u64;
        let n = Read::take(&mut input, limit).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let answer = if n > MAX_LINE && line.last() != Some(&b'\n') {
            input.skip_until(b'\n')?;
            Some(error_line("null", (-32600, "line too long".into())))
        } else {
            server.handle(line.trim_ascii())
        };
        if let Some(answer) = answer {
            out.write_all(answer.as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
}

/// One incoming message; only what dispatch needs.
#[derive(Deserialize)]
struct Incoming {
    jsonrpc: Option<String>,
    id: Option<Box<RawValue>>,
    method: Option<String>,
    params: Option<Value>,
}

#[derive(Default)]
struct Server {
    store: kv::Store,
}

impl Server {
    /// The answer line to one message, `None` for notifications and responses.
    fn handle(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return None;
        }
        let msg: Incoming = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) if e.is_data() => {
                return Some(error_line("null", (-32600, "invalid request".into())))
            }
            Err(_) => return Some(error_line("null", (-32700, "parse error".into()))),
        };
        let id = msg.id.as_deref().map_or("null", RawValue::get);
        if msg.jsonrpc.as_deref() != Some("2.0") {
            return Some(error_line(id, (-32600, "jsonrpc must be \"2.0\"".into())));
        }
        // Responses (no method) and notifications (no id) are not answered.
        let (Some(method), Some(_)) = (msg.method, &msg.id) else {
            return None;
        };
        let params = match msg.params {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Some(error_line(id, invalid("params must be an object"))),
        };
        Some(match self.dispatch(&method, &params) {
            Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
            Err(fault) => error_line(id, fault),
        })
    }

    fn dispatch(&mut self, method: &str, params: &Map<String, Value>) -> Result<Value, Fault> {
        match method {
            "initialize" => Ok(initialize(params)),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": tools::list() })),
            "tools/call" => {
                let name = string(params, "name")?;
                let args = match params.get("arguments") {
                    None | Some(Value::Null) => &Map::new(),
                    Some(Value::Object(a)) => a,
                    Some(_) => return Err(invalid("arguments must be an object")),
                };
                tools::call(&mut self.store, name, args)
                    .ok_or_else(|| invalid(&format!("unknown tool `{}`", clip(name))))
            }
            "prompts/list" => Ok(json!({ "prompts": [prompt()] })),
            "prompts/get" => prompt_get(params),
            "resources/list" => Ok(json!({ "resources": [resource()] })),
            "resources/templates/list" => Ok(json!({ "resourceTemplates": [] })),
            "resources/read" => self.read(params),
            _ => Err((-32601, "method not found".into())),
        }
    }

    /// `resources/read` of the store: its entries as one JSON object.
    fn read(&self, params: &Map<String, Value>) -> Result<Value, Fault> {
        let uri = string(params, "uri")?;
        if uri != STORE_URI {
            return Err((-32002, format!("resource not found: {}", clip(uri))));
        }
        let entries: Map<String, Value> = self
            .store
            .entries()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        let text = Value::Object(entries).to_string();
        Ok(
            json!({ "contents": [{ "uri": STORE_URI, "mimeType": "application/json", "text": text }] }),
        )
    }
}

fn initialize(params: &Map<String, Value>) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LATEST);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": {}, "prompts": {}, "resources": {} },
        "serverInfo": { "name": "mcp-relay-demo", "title": "mcp-relay demo server",
            "version": env!("CARGO_PKG_VERSION") },
        "instructions": "A demo server bundled with mcp-relay. Tools: `time` (the current time), `echo`, and a scratch key/value store (`kv_set`, `kv_get`, `kv_list`, `kv_delete`) kept in memory while this server runs; the store is also the resource demo://kv.",
    })
}

fn prompt() -> Value {
    json!({
        "name": "remember",
        "title": "Remember a fact",
        "description": "Asks the model to store a fact in the scratch store with kv_set.",
        "arguments": [{ "name": "fact", "description": "What to remember", "required": true }],
    })
}

fn prompt_get(params: &Map<String, Value>) -> Result<Value, Fault> {
    let name = string(params, "name")?;
    if name != "remember" {
        return Err(invalid(&format!("unknown prompt `{}`", clip(name))));
    }
    let fact = params
        .get("arguments")
        .and_then(|a| a.get("fact"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("missing argument `fact`"))?;
    let text = format!(
        "Store this fact with the kv_set tool under a short, descriptive key, then tell me the key: {fact}"
    );
    Ok(json!({
        "description": "Remember a fact",
        "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
    }))
}

fn resource() -> Value {
    json!({
        "uri": STORE_URI,
        "name": "kv",
        "title": "Scratch store",
        "description": "Every key and value in the scratch store, as one JSON object.",
        "mimeType": "application/json",
    })
}

/// A required string member of `params`.
fn string<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, Fault> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("`{name}` must be a string")))
}

fn invalid(message: &str) -> Fault {
    (-32602, message.to_owned())
}

/// A client-chosen name, shortened for an error message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn error_line(id: &str, (code, message): Fault) -> String {
    let error = json!({ "code": code, "message": message });
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
}

#[cfg(test)]
mod tests;
