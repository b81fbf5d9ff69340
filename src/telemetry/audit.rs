//! Audit log: the [`Record`] shape, its sanitising (SECURITY.md H1) and the writer that puts one
//! JSON line per record into a file (rotated by size, created 0600) or stdout.
//!
//! Owns: the record fields and their order, string capping and escaping, argument redaction
//! ([`redact_args`]), the bounded queue between the request path and the writer thread, rotation.
//! Does not own: deciding what to record and when (the relay's request guard fills a `Record`
//! and emits it on Drop), metrics (`telemetry/metrics.rs`) or ordinary logs (`telemetry.rs`).
//!
//! [`Audit::emit`] never blocks: it pushes onto a queue of [`QUEUE_CAPACITY`] records and counts
//! what does not fit. A dedicated std thread serializes, writes and rotates, so neither file I/O
//! nor a slow disk can stall a request.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
mod tests;

/// Records waiting for the writer; beyond this, [`Audit::emit`] drops and counts.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Longest string (in characters, marker included) kept in a record.
pub const MAX_STRING_CHARS: usize = 256;
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

/// `[audit]` in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Path of the audit log, or `-` for stdout. Created with mode 0600.
    pub file: String,
    /// Size at which the file is rotated (`"100MiB"` by default).
    #[serde(default = "default_max_size")]
    pub max_size: String,
    /// Rotated files kept (`audit.log.1` … `audit.log.<keep>`), 5 by default.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Top-level keys of `params.arguments` logged in clear (default: none; only a hash).
    #[serde(default)]
    pub allow_fields: Vec<String>,
}

// === impl AuditConfig ===

/// The most rotated files `keep` may ask for (each rotation renames them all).
pub const MAX_KEEP: usize = 1000;

impl AuditConfig {
    /// The rotation size in bytes.
    ///
    /// # Errors
    /// `max_size` is not a positive size.
    pub fn max_bytes(&self) -> Result<u64, AuditError> {
        self.max_size
            .parse::<bytesize::ByteSize>()
            .ok()
            .map(|s| s.as_u64())
            .filter(|&s| s > 0)
            .ok_or_else(|| AuditError::MaxSize {
                value: self.max_size.clone(),
            })
    }

    /// Every problem of these settings, each with its key, found without writing anything:
    /// the size, the rotation count, and whether the file can be opened for appending (or
    /// created in its directory). `file_key` names where `file` came from (`audit.file`,
    /// `--audit-log`); `file` should be absolute by now, so the message names the real path.
    pub fn problems(&self, file_key: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = self.max_bytes() {
            out.push(e.to_string());
        }
        if self.keep > MAX_KEEP {
            out.push(format!(
                "audit.keep: {} rotated files is more than {MAX_KEEP}",
                self.keep
            ));
        }
        if self.file != "-" {
            let path = Path::new(&self.file);
            if let Err(why) = check_writable(path) {
                out.push(format!(
                    "{file_key}: cannot write {}: {why}",
                    path.display()
                ));
            }
        }
        out
    }
}

/// Whether `path` can be appended to, or created: an existing file is opened for appending
/// (which changes nothing), a missing one needs a writable directory (access(2), which also
/// knows read-only file systems).
fn check_writable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(_) => OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let why = |e: &dyn std::fmt::Display| format!("directory {}: {e}", dir.display());
            let meta = std::fs::metadata(dir).map_err(|e| why(&e))?;
            if !meta.is_dir() {
                return Err(why(&crate::os::fs::not_a_directory()));
            }
            crate::os::fs::check_dir_writable(dir).map_err(|e| why(&e))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn default_max_size() -> String {
    "100MiB".to_owned()
}

fn default_keep() -> usize {
    5
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit.max_size `{value}` is not a positive size such as \"100MiB\"")]
    MaxSize { value: String },
    #[error("cannot open audit file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the audit writer thread")]
    Spawn(#[source] io::Error),
}

/// The module's error under its conventional name (`audit::Error`).
pub type Error = AuditError;

/// One audit line. Strings are capped and escaped when written; `None` fields are omitted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    /// RFC 3339 UTC with milliseconds; filled by [`Audit::emit`] when empty.
    pub time: String,
    pub principal: String,
    /// `none` | `identity_header` | `api_key` | `jwt` | `mtls`.
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The client's address: the socket peer, or what a trusted proxy forwarded (with the
    /// client's own port only when the proxy gave one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The trusted proxy the request came through, when `client` was forwarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `streamable_http` | `sse` | `websocket` | `tcp` | `stdio`.
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The JSON-RPC id as raw JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Tool or prompt name, or resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `allow` | `deny`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `ok` | `error` | `denied` | `cancelled` | `timeout` | `unauthenticated` | `refused`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub latency_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Output of [`redact_args`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// What travels from [`Audit`] to the writer thread.
#[derive(Debug)]
enum Msg {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
    allow_fields: Vec<String>,
}

/// Cheap clone handle to the audit writer (or a disabled no-op).
#[derive(Clone, Debug)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

// === impl Audit ===

impl Audit {
    /// Opens (or creates, 0600) the file and starts the writer thread. Needs no Tokio runtime.
    ///
    /// # Errors
    /// An unparsable or zero `max_size`, a file that cannot be opened, or no thread.
    pub fn start(cfg: &AuditConfig) -> Result<Audit, AuditError> {
        let sink = if cfg.file == "-" {
            Sink::Stdout(BufWriter::new(io::stdout()))
        } else {
            let max = cfg.max_bytes()?;
            let path = PathBuf::from(&cfg.file);
            let (file, size) = open_log(&path).map_err(|source| AuditError::Open {
                path: path.clone(),
                source,
            })?;
            Sink::File(FileSink {
                path,
                file,
                size,
                max,
                keep: cfg.keep,
            })
        };
        let (audit, rx) = Audit::channel(cfg.allow_fields.clone());
        spawn_writer(rx, sink).map_err(AuditError::Spawn)?;
        Ok(audit)
    }

    /// A handle whose [`emit`](Audit::emit) does nothing.
    #[must_use]
    pub fn disabled() -> Audit {
        Audit { inner: None }
    }

    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a record without blocking; drops it (and counts) when the queue is full.
    pub fn emit(&self, mut record: Record) {
        let Some(inner) = &self.inner else { return };
        if record.time.is_empty() {
            record.time = now_rfc3339();
        }
        if inner.tx.try_send(Msg::Record(Box::new(record))).is_err() {
            let before = inner.dropped.fetch_add(1, Ordering::Relaxed);
            if before == 0 {
                tracing::warn!(
                    target: "mcp_relay::audit",
                    capacity = QUEUE_CAPACITY,
                    "audit queue full or writer gone, dropping records"
                );
            }
        }
    }

    /// Records dropped because the queue was full (or the writer had stopped).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Resolves once every record emitted before this call is written and flushed to the OS.
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (done, wait) = oneshot::channel();
        if inner.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Argument keys that [`redact_args`] may log in clear.
    #[must_use]
    pub fn allow_fields(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |i| &i.allow_fields)
    }

    /// The handle and the queue's receiving end, with no writer attached yet.
    fn channel(allow_fields: Vec<String>) -> (Audit, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let inner = Inner {
            tx,
            dropped: AtomicU64::new(0),
            allow_fields,
        };
        (
            Audit {
                inner: Some(Arc::new(inner)),
            },
            rx,
        )
    }
}

// === writer ===

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(FileSink),
}

struct FileSink {
    path: PathBuf,
    file: BufWriter<File>,
    /// Bytes in the current file (existing length at open plus what we wrote).
    size: u64,
    max: u64,
    keep: usize,
}

fn spawn_writer(rx: mpsc::Receiver<Msg>, sink: Sink) -> io::Result<()> {
    std::thread::Builder::new()
        .name("audit-writer".to_owned())
        .spawn(move || run_writer(rx, sink))
        .map(drop)
}

/// Writer loop: ends when every [`Audit`] handle is gone, after a final flush.
fn run_writer(mut rx: mpsc::Receiver<Msg>, mut sink: Sink) {
    let mut failing = false;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Write everything already queued, then flush once.
        while let Some(msg) = next.take() {
            let result = match msg {
                Msg::Record(record) => sink.write_line(&to_line(&record)),
                Msg::Flush(done) => {
                    let r = sink.flush();
                    let _ = done.send(());
                    r
                }
            };
            report(&mut failing, result);
            next = rx.try_recv().ok();
        }
        report(&mut failing, sink.flush());
    }
    report(&mut failing, sink.flush());
}

/// Logs the first failure of a run of failures, and the recovery.
fn report(failing: &mut bool, result: io::Result<()>) {
    match result {
        Err(e) if !*failing => {
            *failing = true;
            tracing::error!(target: "mcp_relay::audit", error = %e, "audit write failed");
        }
        Ok(()) if *failing => {
            *failing = false;
            tracing::warn!(target: "mcp_relay::audit", "audit writes recovered");
        }
        _ => {}
    }
}

impl Sink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(line.as_bytes()),
            Sink::File(f) => f.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(f) => f.file.flush(),
        }
    }
}

impl FileSink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        // A failed rotation still writes the line (to the file still open) and reports.
        let rotated = if self.size > 0 && self.size.saturating_add(len) > self.max {
            self.rotate()
        } else {
            Ok(())
        };
        self.file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        rotated
    }

    /// `log.{keep-1}` → `log.{keep}` … `log` → `log.1`, then a fresh 0600 file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for i in (1..self.keep).rev() {
            rename_if_exists(&numbered(&self.path, i), &numbered(&self.path, i + 1))?;
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let (file, size) = open_log(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Opens for append, creating with mode 0600 (set at creation, never chmod afterwards).
fn open_log(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file =
        crate::os::fs::private_file(OpenOptions::new().create(true).append(true)).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

// === sanitising ===

/// One JSON line (with its `\n`): strings capped, every control character escaped.
fn to_line(record: &Record) -> String {
    let clean = sanitize(record);
    let mut line = match serde_json::to_string(&clean) {
        Ok(json) => escape_beyond_json(&json),
        // Unreachable with these field types; still one well-formed line.
        Err(_) => r#"{"outcome":"error","reason":"audit_serialize_failed"}"#.to_owned(),
    };
    line.push('\n');
    line
}

fn sanitize(record: &Record) -> Record {
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
pub fn cap(s: &str) -> String {
    match s.char_indices().nth(MAX_STRING_CHARS - 1) {
        // More than one character from the last kept position on: cut there, add the marker.
        Some((end, _)) if s[end..].chars().nth(1).is_some() => {
            format!("{}{CUT_MARKER}", &s[..end])
        }
        _ => s.to_owned(),
    }
}

fn cap_value(v: &Value) -> Value {
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
fn escape_beyond_json(json: &str) -> String {
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

fn needs_escape(c: char) -> bool {
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
pub fn redact_args(arguments: Option<&RawValue>, allow_fields: &[String]) -> Option<Value> {
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

fn allowed_value(key: &str, raw: &RawValue) -> Value {
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

fn hash_object(text: &str) -> Value {
    let mut m = Map::new();
    m.insert("sha256".to_owned(), Value::String(sha256_hex(text)));
    Value::Object(m)
}

fn is_sensitive(key: &str) -> bool {
    let lower = key.to_lowercase().replace('-', "_");
    SENSITIVE_KEYS.iter().any(|s| lower.contains(s))
}

fn sha256_hex(text: &str) -> String {
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

/// `2026-11-21T20:41:49.123Z` (RFC 3339, UTC, milliseconds), without `time`'s formatting feature.
fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
