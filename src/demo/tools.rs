//! The demo server's tools: `time`, `echo` and the key/value store (`kv_set`, `kv_get`,
//! `kv_list`, `kv_delete`), with their input schemas. Bad arguments are tool errors
//! (`isError: true` with a message the model can act on); an unknown tool name is a protocol
//! error, decided by the caller in `demo.rs`. The store itself is `kv.rs`, the clock `clock.rs`.

use serde_json::{json, Map, Value};

use super::{clock, kv};

/// Longest text `echo` sends back, in bytes.
const MAX_ECHO: usize = 64 * 1024;

/// Why a tool call failed (the text of its `isError` result).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("missing argument `{0}`")]
    Missing(&'static str),
    #[error("argument `{0}` must be a string")]
    NotString(&'static str),
    #[error("unknown argument `{0}`")]
    Unknown(String),
    #[error("text is {0} bytes; the limit is {MAX_ECHO}")]
    TooLong(usize),
    #[error(transparent)]
    Clock(#[from] clock::Error),
    #[error(transparent)]
    Store(#[from] kv::Error),
    /// Not a tool of this server: a protocol error, not a tool result.
    #[error("unknown tool")]
    NoSuchTool,
}

/// The `tools/list` entries.
pub(crate) fn list() -> Value {
    let key = json!({ "type": "string", "description": "1-64 characters of A-Z a-z 0-9 . _ -",
        "pattern": "^[A-Za-z0-9._-]{1,64}$" });
    json!([
        tool("time", "Current time",
            "The current time: UTC in RFC 3339, Unix seconds, and the time at a UTC offset when one is given.",
            json!({ "offset": { "type": "string",
                "description": "UTC offset such as +02:00 or -05:30 (no time zone names)" } }),
            &[], true),
        tool("echo", "Echo", "Returns the given text unchanged.",
            json!({ "text": { "type": "string", "description": "Text to send back" } }),
            &["text"], true),
        tool("kv_set", "Store a value",
            "Stores a text value under a key in this server's scratch store (in memory, at most 100 keys of 4 KiB; gone when the server stops).",
            json!({ "key": key, "value": { "type": "string", "description": "At most 4096 bytes" } }),
            &["key", "value"], false),
        tool("kv_get", "Read a value", "Returns the value stored under a key.",
            json!({ "key": key }), &["key"], true),
        tool("kv_list", "List keys", "Lists the stored keys with the size of each value.",
            json!({}), &[], true),
        tool("kv_delete", "Delete a key", "Removes a key and its value.",
            json!({ "key": key }), &["key"], false),
    ])
}

fn tool(
    name: &str,
    title: &str,
    description: &str,
    properties: Value,
    required: &[&str],
    read_only: bool,
) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": { "type": "object", "properties": properties, "required": required,
            "additionalProperties": false },
        "annotations": { "readOnlyHint": read_only, "openWorldHint": false },
    })
}

/// Runs the tool `name` and returns its `CallToolResult`, or `None` when there is no such
/// tool.
pub(crate) fn call(store: &mut kv::Store, name: &str, args: &Map<String, Value>) -> Option<Value> {
    let (text, is_error) = match run(store, name, args) {
        Ok(text) => (text, false),
        Err(Error::NoSuchTool) => return None,
        Err(e) => (e.to_string(), true),
    };
    Some(json!({ "content": [{ "type": "text", "text": text }], "isError": is_error }))
}

fn run(store: &mut kv::Store, name: &str, args: &Map<String, Value>) -> Result<String, Error> {
    match name {
        "time" => {
            only(args, &["offset"])?;
            let offset = optional(args, "offset")?
                .map(clock::parse_offset)
                .transpose()?;
            Ok(clock::describe(time::OffsetDateTime::now_utc(), offset))
        }
        "echo" => {
            only(args, &["text"])?;
            let text = required(args, "text")?;
            if text.len() > MAX_ECHO {
                return Err(Error::TooLong(text.len()));
            }
            Ok(text.to_owned())
        }
        "kv_set" => {
            only(args, &["key", "value"])?;
            let key = required(args, "key")?;
            let new = store.set(key, required(args, "value")?)?;
            let verb = if new { "stored" } else { "replaced" };
            Ok(format!(
                "{verb} `{key}` ({} of {} keys used)",
                store.len(),
                kv::MAX_KEYS
            ))
        }
        "kv_get" => {
            only(args, &["key"])?;
            Ok(store.get(required(args, "key")?)?.to_owned())
        }
        "kv_delete" => {
            only(args, &["key"])?;
            let key = required(args, "key")?;
            store.delete(key)?;
            Ok(format!("deleted `{key}`"))
        }
        "kv_list" => {
            only(args, &[])?;
            Ok(listing(store))
        }
        _ => Err(Error::NoSuchTool),
    }
}

fn listing(store: &kv::Store) -> String {
    if store.len() == 0 {
        return "the store is empty".to_owned();
    }
    let mut text = format!("{} of {} keys used:", store.len(), kv::MAX_KEYS);
    for (k, v) in store.entries() {
        text.push_str(&format!("\n{k} ({} bytes)", v.len()));
    }
    text
}

/// Refuses arguments the schema does not name.
fn only(args: &Map<String, Value>, known: &[&str]) -> Result<(), Error> {
    match args.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::Unknown(k.chars().take(64).collect())),
        None => Ok(()),
    }
}

fn optional<'a>(
    args: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, Error> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::NotString(name)),
    }
}

fn required<'a>(args: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, Error> {
    optional(args, name)?.ok_or(Error::Missing(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_text(store: &mut kv::Store, name: &str, args: Value) -> (bool, String) {
        let res = call(store, name, args.as_object().unwrap()).unwrap();
        let text = res["content"][0]["text"].as_str().unwrap().to_owned();
        (res["isError"].as_bool().unwrap(), text)
    }

    #[test]
    fn tools_bad_arguments_are_tool_errors_with_reasons() {
        let mut s = kv::Store::default();
        let cases = [
            ("echo", json!({}), "missing argument `text`"),
            (
                "echo",
                json!({"text": 5}),
                "argument `text` must be a string",
            ),
            ("echo", json!({"text": "a", "x": 1}), "unknown argument `x`"),
            ("kv_get", json!({"key": "nope"}), "no key `nope`"),
            (
                "kv_set",
                json!({"key": "a b", "value": "v"}),
                "key must be 1 to 64",
            ),
            (
                "time",
                json!({"offset": "Mars/Olympus"}),
                "offset `Mars/Olympus` is not",
            ),
        ];
        for (tool, args, want) in cases {
            let (is_error, text) = call_text(&mut s, tool, args);
            assert!(is_error && text.contains(want), "{tool}: {text}");
        }
    }

    #[test]
    fn tools_list_names_exactly_the_tools_that_exist() {
        let mut s = kv::Store::default();
        let listed = list();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 6);
        let none = Map::new();
        assert!(names.iter().all(|n| call(&mut s, n, &none).is_some()));
        assert!(call(&mut s, "test_simple_text", &none).is_none());
    }

    #[test]
    fn kv_list_shows_keys_and_sizes() {
        let mut s = kv::Store::default();
        assert_eq!(
            call_text(&mut s, "kv_list", json!({})).1,
            "the store is empty"
        );
        call_text(&mut s, "kv_set", json!({"key": "b", "value": "22"}));
        call_text(&mut s, "kv_set", json!({"key": "a", "value": "1"}));
        let (is_error, text) = call_text(&mut s, "kv_list", json!({}));
        assert!(!is_error);
        assert_eq!(text, "2 of 100 keys used:\na (1 bytes)\nb (2 bytes)");
    }
}
