//! Audit sanitising (SECURITY.md H1): strings capped at [`MAX_STRING_CHARS`], every control
//! character escaped so one record is one line, and tool-argument redaction ([`redact_args`]:
//! allow-listed keys in clear, sensitive ones never, the rest hashed). Does not own the record
//! fields (`audit.rs`) or writing them (`audit/writer.rs`).

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Record, MAX_STRING_CHARS};

/// Appended to a string that was cut at [`MAX_STRING_CHARS`].
const CUT_MARKER: char = '…';
/// Argument keys whose value is never logged, even when allow-listed (matched in lowercase).
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "credential",
];
const REDACTED: &str = "[redacted]";

/// One JSON line (with its `\n`): strings capped, every control character escaped.
pub(super) fn to_line(record: &Record) -> String {
    let clean = sanitize(record);
    let mut line = match serde_json::to_string(&clean) {
        Ok(json) => escape_beyond_json(&json),
        // Unreachable with these field types; still one well-formed line.
        Err(_) => r#"{"outcome":"error","reason":"audit_serialize_failed"}"#.to_owned(),
    };
    line.push('\n');
    line
}

pub(super) fn sanitize(record: &Record) -> Record {
    let opt = |s: &Option<String>| s.as_deref().map(cap);
    Record {
        time: cap(&record.time),
        principal: cap(&record.principal),
        key_id: opt(&record.key_id),
        client: opt(&record.client),
        peer: opt(&record.peer),
        session: opt(&record.session),
        method: opt(&record.method),
        id: opt(&record.id),
        name: opt(&record.name),
        rule: opt(&record.rule),
        args: record.args.as_ref().map(cap_value),
        ..record.clone()
    }
}

/// Caps a string at [`MAX_STRING_CHARS`] characters, the last being `…` when it was cut.
#[must_use]
pub(crate) fn cap(s: &str) -> String {
    match s.char_indices().nth(MAX_STRING_CHARS - 1) {
        // More than one character from the last kept position on: cut there, add the marker.
        Some((end, _)) if s[end..].chars().nth(1).is_some() => {
            format!("{}{CUT_MARKER}", &s[..end])
        }
        _ => s.to_owned(),
    }
}

pub(super) fn cap_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(cap(s)),
        Value::Array(items) => Value::Array(items.iter().map(cap_value).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (cap(k), cap_value(v))).collect())
        }
        other => other.clone(),
    }
}

/// `serde_json` escapes U+0000..U+001F; this also escapes DEL, C1 controls (U+009B is a CSI),
/// line/paragraph separators and bidi overrides. Such characters only occur inside JSON
/// strings, where `\uXXXX` means the same character, so the line stays valid and equal.
pub(super) fn escape_beyond_json(json: &str) -> String {
    if !json.chars().any(needs_escape) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_escape(c) {
            use std::fmt::Write as _;
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `{"sha256": "<hex of the raw text>", "fields": {…}}` for `params.arguments`, or `None`.
///
/// Only top-level keys named in `allow_fields` appear in `fields`: strings (capped), numbers,
/// booleans and null as they are, objects and arrays as `{"sha256": …}`. A key that looks like
/// a secret (password, token, authorization, …) is `"[redacted]"` even when allow-listed.
#[must_use]
pub(crate) fn redact_args(arguments: Option<&RawValue>, allow_fields: &[String]) -> Option<Value> {
    let raw = arguments?;
    let mut out = Map::new();
    out.insert("sha256".to_owned(), Value::String(sha256_hex(raw.get())));
    if !allow_fields.is_empty() {
        // Borrowed raw values: nested objects are hashed as sent, never parsed.
        if let Ok(top) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) {
            let fields: Map<String, Value> = allow_fields
                .iter()
                .filter_map(|k| top.get(k).map(|v| (cap(k), allowed_value(k, v))))
                .collect();
            if !fields.is_empty() {
                out.insert("fields".to_owned(), Value::Object(fields));
            }
        }
    }
    Some(Value::Object(out))
}

pub(super) fn allowed_value(key: &str, raw: &RawValue) -> Value {
    if is_sensitive(key) {
        return Value::String(REDACTED.to_owned());
    }
    let text = raw.get();
    if text.starts_with(['{', '[']) {
        return hash_object(text);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(s)) => Value::String(cap(&s)),
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => v,
        // Objects and arrays were handled above; a number serde_json cannot hold is hashed.
        Ok(Value::Array(_) | Value::Object(_)) | Err(_) => hash_object(text),
    }
}

pub(super) fn hash_object(text: &str) -> Value {
    let mut m = Map::new();
    m.insert("sha256".to_owned(), Value::String(sha256_hex(text)));
    Value::Object(m)
}

pub(super) fn is_sensitive(key: &str) -> bool {
    let lower = key.to_lowercase().replace('-', "_");
    SENSITIVE_KEYS.iter().any(|s| lower.contains(s))
}

pub(super) fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}
