//! Tests for the audit record, its sanitising (SECURITY.md H1), redaction, rotation and the
//! non-blocking queue. Files live in a fresh directory under the system temp dir.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::sanitize::cap;
use serde_json::{json, Value};

use super::sanitize::{sha256_hex, to_line};
use super::writer::numbered;
use super::*;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh empty directory, removed on Drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mcp-relay-audit-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn log(&self) -> PathBuf {
        self.0.join("audit.log")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(file: &std::path::Path) -> AuditConfig {
    AuditConfig {
        file: file.to_string_lossy().into_owned(),
        max_size: default_max_size(),
        keep: default_keep(),
        allow_fields: Vec::new(),
    }
}

fn record() -> Record {
    Record {
        principal: "alice".to_owned(),
        auth: "api_key",
        key_id: Some("k1".to_owned()),
        client: Some("127.0.0.1:5555".to_owned()),
        transport: "streamable_http",
        method: Some("tools/call".to_owned()),
        id: Some("1".to_owned()),
        name: Some("echo".to_owned()),
        decision: "allow",
        outcome: "ok",
        latency_ms: 1.5,
        bytes_in: 10,
        bytes_out: 20,
        ..Record::default()
    }
}

/// Emits the records through a real file writer and returns the raw file text.
async fn written(records: Vec<Record>) -> String {
    let dir = TempDir::new("written");
    let audit = Audit::start(&config(&dir.log()), None).unwrap();
    for r in records {
        audit.emit(r);
    }
    audit.flush().await;
    std::fs::read_to_string(dir.log()).unwrap()
}

fn parse_lines(text: &str) -> Vec<Value> {
    assert!(text.ends_with('\n'), "every line ends with a newline");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn allow(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test]
async fn h1_newline_in_principal_is_escaped_on_one_line() {
    let mut r = record();
    r.principal = "mallory\n{\"principal\":\"admin\"}\r\n".to_owned();
    let text = written(vec![r]).await;
    assert_eq!(text.matches('\n').count(), 1);
    assert!(!text.contains('\r'));
    let lines = parse_lines(&text);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["principal"],
        "mallory\n{\"principal\":\"admin\"}\r\n"
    );
}

#[tokio::test]
async fn h1_ansi_escapes_in_name_are_escaped() {
    let mut r = record();
    r.name = Some("\u{1b}[31mred\u{1b}[0m \u{9b}2J \u{7f} \u{2028} \u{202e}evil".to_owned());
    r.rule = Some("bell\u{7}".to_owned());
    let text = written(vec![r.clone()]).await;
    for c in [
        '\u{1b}', '\u{9b}', '\u{7f}', '\u{2028}', '\u{202e}', '\u{7}',
    ] {
        assert!(!text.contains(c), "raw {c:?} in {text:?}");
    }
    assert!(text.contains("\\u001b[31m"));
    assert!(text.contains("\\u009b"));
    let lines = parse_lines(&text);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["name"], r.name.unwrap());
}

#[tokio::test]
async fn h1_ten_kb_tool_name_is_capped() {
    let mut r = record();
    r.name = Some("x".repeat(10 * 1024));
    r.principal = "é".repeat(10 * 1024);
    let lines = parse_lines(&written(vec![r]).await);
    let name = lines[0]["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), MAX_STRING_CHARS);
    assert!(name.ends_with('…'));
    let principal = lines[0]["principal"].as_str().unwrap();
    assert_eq!(principal.chars().count(), MAX_STRING_CHARS);
    assert!(principal.starts_with("éé"));
}

#[tokio::test]
async fn h1_many_hostile_records_are_one_line_each() {
    let records: Vec<Record> = (0..50)
        .map(|i| {
            let mut r = record();
            r.principal = format!("p{i}\n\u{1b}]0;title\u{7}");
            r.session = Some("s\n".repeat(1000));
            r
        })
        .collect();
    let lines = parse_lines(&written(records).await);
    assert_eq!(lines.len(), 50);
    for (i, l) in lines.iter().enumerate() {
        assert!(l["principal"]
            .as_str()
            .unwrap()
            .starts_with(&format!("p{i}\n")));
    }
}

#[test]
fn cap_short_string_is_unchanged_and_long_is_utf8_safe() {
    assert_eq!(cap("abc"), "abc");
    let exact = "a".repeat(MAX_STRING_CHARS);
    assert_eq!(cap(&exact), exact);
    let long = "日本".repeat(MAX_STRING_CHARS);
    let capped = cap(&long);
    assert_eq!(capped.chars().count(), MAX_STRING_CHARS);
    assert!(capped.ends_with('…'));
}

#[test]
fn record_none_fields_are_omitted_in_order() {
    let line = to_line(&Record {
        time: "t".to_owned(),
        ..Record::default()
    });
    assert_eq!(
        line,
        "{\"time\":\"t\",\"principal\":\"\",\"auth\":\"\",\"transport\":\"\",\"decision\":\"\",\
         \"outcome\":\"\",\"latency_ms\":0.0,\"bytes_in\":0,\"bytes_out\":0}\n"
    );
}

#[tokio::test]
async fn emit_fills_time_as_rfc3339_millis() {
    let lines = parse_lines(&written(vec![record()]).await);
    let time = lines[0]["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-11-21T20:41:49.123Z".len(), "{time}");
    assert_eq!(&time[4..5], "-");
    assert_eq!(&time[10..11], "T");
    assert_eq!(&time[19..20], ".");
    assert!(time.ends_with('Z'));
}

#[test]
fn h1_password_token_authorization_are_redacted_even_when_allow_listed() {
    let args = raw(
        r#"{"query":"rust","Password":"hunter2","access_token":"t0k","Authorization":"Bearer x",
            "x-api-key":"k","limit":5,"deep":true}"#,
    );
    let allowed = allow(&[
        "query",
        "Password",
        "access_token",
        "Authorization",
        "x-api-key",
        "limit",
        "deep",
        "missing",
    ]);
    let out = redact_args(Some(&args), &allowed).unwrap();
    let fields = &out["fields"];
    assert_eq!(fields["query"], "rust");
    assert_eq!(fields["limit"], 5);
    assert_eq!(fields["deep"], true);
    for k in ["Password", "access_token", "Authorization", "x-api-key"] {
        assert_eq!(fields[k], "[redacted]", "{k}");
    }
    assert!(fields.get("missing").is_none());
    let text = out.to_string();
    for secret in ["hunter2", "t0k", "Bearer"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn redact_args_sha256_is_stable_and_hashes_raw_text() {
    let a = redact_args(Some(&raw("{}")), &[]).unwrap();
    assert_eq!(
        a,
        json!({"sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"})
    );
    let text = r#"{"b": 1, "a": 2}"#;
    let first = redact_args(Some(&raw(text)), &[]).unwrap();
    let second = redact_args(Some(&raw(text)), &[]).unwrap();
    assert_eq!(first, second);
    let reordered = redact_args(Some(&raw(r#"{"a": 2, "b": 1}"#)), &[]).unwrap();
    assert_ne!(
        first["sha256"], reordered["sha256"],
        "hash is over the bytes sent"
    );
}

#[test]
fn redact_args_without_arguments_is_none_and_unlisted_fields_are_omitted() {
    assert_eq!(redact_args(None, &allow(&["a"])), None);
    let out = redact_args(Some(&raw(r#"{"secret_plan":"x","b":"y"}"#)), &allow(&["a"])).unwrap();
    assert!(out.get("fields").is_none());
    assert_eq!(out.as_object().unwrap().len(), 1, "only the hash: {out}");
    let not_object = redact_args(Some(&raw("[1,2]")), &allow(&["a"])).unwrap();
    assert!(not_object.get("fields").is_none());
    assert!(not_object["sha256"].is_string());
}

#[test]
fn redact_args_nested_values_are_hashed_and_strings_capped() {
    let args = raw(r#"{"opts":{"password":"p"},"list":[1,2],"note":"NOTE"}"#);
    let mut text = String::from(r#"{"opts":{"password":"p"},"list":[1,2],"note":""#);
    text.push_str(&"n".repeat(5000));
    text.push_str("\"}");
    let long = raw(&text);
    let out = redact_args(Some(&args), &allow(&["opts", "list", "note"])).unwrap();
    assert_eq!(
        out["fields"]["opts"]["sha256"],
        sha256_hex(r#"{"password":"p"}"#)
    );
    assert_eq!(out["fields"]["list"]["sha256"], sha256_hex("[1,2]"));
    assert!(!out.to_string().contains("\"p\""));
    let out = redact_args(Some(&long), &allow(&["note"])).unwrap();
    let note = out["fields"]["note"].as_str().unwrap();
    assert_eq!(note.chars().count(), MAX_STRING_CHARS);
}

#[tokio::test]
async fn rotation_creates_dot_one_and_keeps_at_most_keep_files() {
    let dir = TempDir::new("rotate");
    let mut cfg = config(&dir.log());
    cfg.max_size = "2KiB".to_owned();
    cfg.keep = 2;
    let audit = Audit::start(&cfg, None).unwrap();
    for i in 0..200 {
        let mut r = record();
        r.id = Some(i.to_string());
        audit.emit(r);
    }
    audit.flush().await;
    let log = dir.log();
    let rotated = |n: usize| numbered(&log, n);
    assert!(log.exists());
    assert!(rotated(1).exists());
    assert!(rotated(2).exists());
    assert!(!rotated(3).exists());
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 3);
    for path in [log.clone(), rotated(1), rotated(2)] {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() <= 2048,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        parse_lines(&text);
        let native = !crate::os::PORTABLE;
        let mode = crate::os::fs::mode(&path);
        assert_eq!(mode, native.then_some(0o600), "{}", path.display());
    }
    // The newest record is in the live file, the older ones in .1.
    let last = parse_lines(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(last.last().unwrap()["id"], "199");
    let older = parse_lines(&std::fs::read_to_string(rotated(1)).unwrap());
    let last_older: u32 = older.last().unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let first_live: u32 = last[0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(last_older + 1, first_live);
}

#[tokio::test]
async fn audit_file_is_created_with_mode_0600() {
    let dir = TempDir::new("mode");
    let audit = Audit::start(&config(&dir.log()), None).unwrap();
    audit.emit(record());
    audit.flush().await;
    let native = !crate::os::PORTABLE;
    assert_eq!(crate::os::fs::mode(&dir.log()), native.then_some(0o600));
}

#[tokio::test]
async fn emit_when_queue_full_drops_without_blocking() {
    let dir = TempDir::new("full");
    // No writer yet: the queue fills up and stays full.
    let (audit, rx) = Audit::channel(Vec::new(), None);
    let started = Instant::now();
    for _ in 0..QUEUE_CAPACITY + 25 {
        audit.emit(record());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(audit.dropped(), 25);
    // Attach a writer: everything that was queued gets written.
    let (file, size) = open_log(&dir.log()).unwrap();
    let sink = Sink::File(FileSink {
        path: dir.log(),
        file,
        size,
        max: u64::MAX,
        keep: 1,
    });
    spawn_writer(rx, sink).unwrap();
    tokio::time::timeout(Duration::from_secs(30), audit.flush())
        .await
        .unwrap();
    let text = std::fs::read_to_string(dir.log()).unwrap();
    assert_eq!(text.lines().count(), QUEUE_CAPACITY);
}

#[tokio::test]
async fn flush_writes_every_emitted_record() {
    let dir = TempDir::new("flush");
    let audit = Audit::start(&config(&dir.log()), None).unwrap();
    let clones: Vec<Audit> = (0..4).map(|_| audit.clone()).collect();
    for (t, a) in clones.iter().enumerate() {
        for i in 0..500 {
            let mut r = record();
            r.id = Some(format!("{t}-{i}"));
            a.emit(r);
        }
    }
    audit.flush().await;
    let lines = parse_lines(&std::fs::read_to_string(dir.log()).unwrap());
    assert_eq!(lines.len(), 2000);
    assert_eq!(audit.dropped(), 0);
}

#[tokio::test]
async fn stdout_mode_does_not_panic() {
    let cfg = AuditConfig {
        file: "-".to_owned(),
        ..config(std::path::Path::new("unused"))
    };
    let audit = Audit::start(&cfg, None).unwrap();
    assert!(audit.is_enabled());
    audit.emit(record());
    audit.flush().await;
    assert_eq!(audit.dropped(), 0);
}

#[tokio::test]
async fn disabled_emit_and_flush_are_noops() {
    let audit = Audit::disabled();
    assert!(!audit.is_enabled());
    audit.emit(record());
    audit.flush().await;
    assert_eq!(audit.dropped(), 0);
    assert!(audit.allow_fields().is_empty());
}

#[test]
fn config_defaults_and_unknown_fields_are_rejected() {
    let cfg: AuditConfig = serde_json::from_str(r#"{"file":"/var/log/a.log"}"#).unwrap();
    assert_eq!(cfg.max_size, "100MiB");
    assert_eq!(cfg.keep, 5);
    assert!(cfg.allow_fields.is_empty());
    assert!(serde_json::from_str::<AuditConfig>(r#"{"file":"a","maxsize":"1MiB"}"#).is_err());
}

#[test]
fn start_with_bad_max_size_or_unopenable_path_fails() {
    let dir = TempDir::new("bad");
    let mut cfg = config(&dir.log());
    for bad in ["lots", "0", ""] {
        cfg.max_size = bad.to_owned();
        assert!(
            matches!(Audit::start(&cfg, None), Err(Error::MaxSize { .. })),
            "{bad}"
        );
    }
    let cfg = config(&dir.0.join("missing-dir").join("audit.log"));
    assert!(matches!(Audit::start(&cfg, None), Err(Error::Open { .. })));
}

#[test]
fn allow_fields_come_from_config() {
    let dir = TempDir::new("allow");
    let mut cfg = config(&dir.log());
    cfg.allow_fields = allow(&["query"]);
    let audit = Audit::start(&cfg, None).unwrap();
    assert_eq!(audit.allow_fields(), ["query".to_owned()]);
}

#[tokio::test]
async fn rotation_failure_keeps_writing_to_current_file() {
    let dir = TempDir::new("rotfail");
    // A directory where `audit.log.1` should go makes every rename fail.
    std::fs::create_dir_all(numbered(&dir.log(), 1).join("x")).unwrap();
    let mut cfg = config(&dir.log());
    cfg.max_size = "1KiB".to_owned();
    cfg.keep = 1;
    let audit = Audit::start(&cfg, None).unwrap();
    for _ in 0..50 {
        audit.emit(record());
    }
    audit.flush().await;
    let lines = parse_lines(&std::fs::read_to_string(dir.log()).unwrap());
    assert_eq!(lines.len(), 50);
}

#[tokio::test]
async fn a_named_servers_records_carry_the_server_and_the_aggregate_transport() {
    use crate::caller::{Caller, Principal, Transport};
    use crate::jsonrpc::{Frame, Message};
    let frame = |text: &'static str| -> Frame {
        match Message::parse(bytes::Bytes::from_static(text.as_bytes())).unwrap() {
            Message::Single(f) => f,
            _ => panic!("not one frame"),
        }
    };
    let dir = TempDir::new("server");
    let audit = Audit::start(&config(&dir.log()), None).unwrap();
    let github = audit.for_server(Some("github"));
    assert_eq!((github.server(), audit.server()), (Some("github"), None));
    let through = Caller::new(
        Principal::anonymous(),
        None::<std::net::SocketAddr>,
        Transport::Aggregate,
    );
    let direct = Caller::new(
        Principal::anonymous(),
        None::<std::net::SocketAddr>,
        Transport::StreamableHttp,
    );
    let call = frame(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#);
    let ping = frame(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    let allowed = crate::ticket::Ticket::allowed(&github, &through, None, &call, None, None);
    drop(allowed);
    let e = crate::error::Error::UnknownTool("x".into());
    crate::ticket::Ticket::refused(&github, &direct, None, Some(&call), &e, None);
    crate::ticket::Ticket::refused(&audit, &direct, None, Some(&ping), &e, None);
    audit.flush().await;
    let text = std::fs::read_to_string(dir.log()).unwrap();
    let lines = parse_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        (&lines[0]["server"], &lines[0]["transport"]),
        (&json!("github"), &json!("aggregate"))
    );
    assert_eq!(
        (&lines[1]["server"], &lines[1]["outcome"]),
        (&json!("github"), &json!("denied"))
    );
    // A single-server relay's records have no `server` at all.
    assert!(lines[2].get("server").is_none(), "{text}");
    // `server` comes right after `transport`.
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(r#""transport":"aggregate","server":"github","method""#),
        "{first}"
    );
}
