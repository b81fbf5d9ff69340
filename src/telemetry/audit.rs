//! Audit log: the [`Record`] shape, its sanitising (SECURITY.md H1) and the writer that puts one
//! JSON line per record into a file (rotated by size, created 0600) or stdout.
//!
//! Owns: the record fields and their order, string capping and escaping, argument redaction
//! ([`redact_args`]), the bounded queue between the request path and the writer thread, rotation.
//! Does not own: deciding what to record and when (the relay's request guard fills a `Record`
//! and emits it on Drop), metrics (`telemetry/metrics.rs`) or ordinary logs (`telemetry.rs`).
//!
//! A handle also knows which named server the relay holding it serves ([`Audit::for_server`]):
//! every record of that relay carries the name, and its requests' metrics and spans the label.
//!
//! [`Audit::emit`] never blocks: it pushes onto a queue of [`QUEUE_CAPACITY`] records and counts
//! what does not fit. A dedicated std thread serializes, writes and rotates, so neither file I/O
//! nor a slow disk can stall a request.

use std::fs::OpenOptions;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

mod sanitize;
#[cfg(test)]
mod tests;
mod writer;

use super::metrics::{self, ServerLabel};
pub(crate) use sanitize::{cap, redact_args};
use writer::{open_log, spawn_writer, FileSink, Sink};

/// Records waiting for the writer; beyond this, [`Audit::emit`] drops and counts.
pub(crate) const QUEUE_CAPACITY: usize = 10_000;
/// Longest string (in characters, marker included) kept in a record.
pub(crate) const MAX_STRING_CHARS: usize = 256;

/// `[audit]` in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditConfig {
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
pub(crate) const MAX_KEEP: usize = 1000;

impl AuditConfig {
    /// The rotation size in bytes.
    ///
    /// # Errors
    /// `max_size` is not a positive size.
    pub(crate) fn max_bytes(&self) -> Result<u64, Error> {
        self.max_size
            .parse::<bytesize::ByteSize>()
            .ok()
            .map(|s| s.as_u64())
            .filter(|&s| s > 0)
            .ok_or_else(|| Error::MaxSize {
                value: self.max_size.clone(),
            })
    }

    /// Every problem of these settings, each with its key, found without writing anything:
    /// the size, the rotation count, and whether the file can be opened for appending (or
    /// created in its directory). `file_key` names where `file` came from (`audit.file`,
    /// `--audit-log`); `file` should be absolute by now, so the message names the real path.
    pub(crate) fn problems(&self, file_key: &str) -> Vec<String> {
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
pub(crate) enum Error {
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

/// One audit line. Strings are capped and escaped when written; `None` fields are omitted.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Record {
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
    /// `streamable_http` | `sse` | `websocket` | `tcp` | `stdio` | `aggregate` (a named
    /// server's request that came through the aggregate).
    pub transport: &'static str,
    /// The named server the request was for; absent on a single-server relay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
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

/// Where every record also goes as it is emitted, before the file's queue: the console's
/// feed (`telemetry/live.rs`). Called on the request path: must not block.
pub(crate) trait Tap: Send + Sync + std::fmt::Debug {
    /// Takes one record (its `time` is empty when there is no audit file: the tap knows
    /// when it took it).
    fn record(&self, record: Record);
}

/// What travels from [`Audit`] to the writer thread.
#[derive(Debug)]
enum Msg {
    Record(Box<Record>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Inner {
    /// The writer's queue; `None` when there is no audit file, only the console's feed.
    tx: Option<mpsc::Sender<Msg>>,
    dropped: AtomicU64,
    allow_fields: Vec<String>,
    /// The operator console's feed (`telemetry/live.rs`), when the console is on.
    live: Option<Arc<dyn Tap>>,
}

/// Cheap clone handle to the audit writer (or a disabled no-op), as one relay holds it.
#[derive(Clone, Debug)]
pub(crate) struct Audit {
    inner: Option<Arc<Inner>>,
    /// The named server of the relay holding this handle, and its metrics label.
    server: Option<(Arc<str>, ServerLabel)>,
}

// === impl Audit ===

impl Audit {
    /// Opens (or creates, 0600) the file and starts the writer thread. Needs no Tokio runtime.
    ///
    /// # Errors
    /// An unparsable or zero `max_size`, a file that cannot be opened, or no thread.
    pub(crate) fn start(cfg: &AuditConfig, live: Option<Arc<dyn Tap>>) -> Result<Audit, Error> {
        let sink = if cfg.file == "-" {
            Sink::Stdout(BufWriter::new(io::stdout()))
        } else {
            let max = cfg.max_bytes()?;
            let path = PathBuf::from(&cfg.file);
            let (file, size) = open_log(&path).map_err(|source| Error::Open {
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
        let (audit, rx) = Audit::channel(cfg.allow_fields.clone(), live);
        spawn_writer(rx, sink).map_err(Error::Spawn)?;
        Ok(audit)
    }

    /// Records that go only to the console's feed (no audit file configured).
    #[must_use]
    pub(crate) fn live_only(live: Arc<dyn Tap>) -> Audit {
        let inner = Inner {
            tx: None,
            dropped: AtomicU64::new(0),
            allow_fields: Vec::new(),
            live: Some(live),
        };
        Audit {
            inner: Some(Arc::new(inner)),
            server: None,
        }
    }

    /// A handle whose [`emit`](Audit::emit) does nothing.
    #[must_use]
    pub(crate) fn disabled() -> Audit {
        Audit {
            inner: None,
            server: None,
        }
    }

    /// The same log, for the relay of the named server `server` (`None`: a single-server
    /// relay, or the aggregate): its records carry the name, its metrics the label.
    #[must_use]
    pub(crate) fn for_server(&self, server: Option<&str>) -> Audit {
        Audit {
            inner: self.inner.clone(),
            server: server.map(|s| (Arc::from(s), metrics::server_label(Some(s)))),
        }
    }

    /// The named server of the relay holding this handle.
    #[must_use]
    pub(crate) fn server(&self) -> Option<&str> {
        self.server.as_ref().map(|(s, _)| &**s)
    }

    /// The metrics label of [`Audit::server`].
    #[must_use]
    pub(crate) fn server_label(&self) -> ServerLabel {
        self.server.as_ref().map(|(_, l)| *l).unwrap_or_default()
    }

    #[must_use]
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a record without blocking; drops it (and counts) when the queue is full.
    /// Hands it to the console's feed too when it is on (without an audit file, only there,
    /// and unstamped: the feed stamps it when it is read).
    pub(crate) fn emit(&self, mut record: Record) {
        let Some(inner) = &self.inner else { return };
        let Some(tx) = &inner.tx else {
            if let Some(live) = &inner.live {
                live.record(record);
            }
            return;
        };
        if record.time.is_empty() {
            record.time = now_rfc3339();
        }
        if let Some(live) = &inner.live {
            live.record(record.clone());
        }
        if tx.try_send(Msg::Record(Box::new(record))).is_err() {
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

    #[cfg(test)]
    /// Records dropped because the queue was full (or the writer had stopped).
    #[must_use]
    pub(crate) fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Resolves once every record emitted before this call is written and flushed to the OS.
    pub(crate) async fn flush(&self) {
        let Some(tx) = self.inner.as_ref().and_then(|i| i.tx.as_ref()) else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Whether records carry their arguments (hashed, or in clear for `allow_fields`): only
    /// with an audit file; the console's feed alone does not need them on the request path.
    #[must_use]
    pub(crate) fn wants_args(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.tx.is_some())
    }

    /// Argument keys that [`redact_args`] may log in clear.
    #[must_use]
    pub(crate) fn allow_fields(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |i| &i.allow_fields)
    }

    /// The handle and the queue's receiving end, with no writer attached yet.
    fn channel(
        allow_fields: Vec<String>,
        live: Option<Arc<dyn Tap>>,
    ) -> (Audit, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let inner = Inner {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
            allow_fields,
            live,
        };
        (
            Audit {
                inner: Some(Arc::new(inner)),
                server: None,
            },
            rx,
        )
    }
}

/// `2026-11-21T20:41:49.123Z` (RFC 3339, UTC, milliseconds), without `time`'s formatting feature.
fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as [`now_rfc3339`] writes it.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
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
