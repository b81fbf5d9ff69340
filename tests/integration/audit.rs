//! The audit log through real requests: every JSON-RPC request gets exactly one line whatever
//! happens to it (answered, refused by the child, timed out, cancelled by the client, lost with
//! its child, malformed), and a clean shutdown writes everything before the relay exits.
//! Decisions under roles are covered in `rbac.rs`, refused credentials in `auth.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, tempdir, Relay};

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn with_id<'a>(records: &'a [Value], id: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["id"] == id).collect()
}

fn start(extra: &[&str]) -> (Relay, PathBuf, PathBuf) {
    let dir = tempdir();
    let audit = dir.join("audit.log");
    let audit_arg = audit.to_str().unwrap().to_owned();
    let mut args = vec!["--audit-log", audit_arg.as_str()];
    args.extend_from_slice(extra);
    let (relay, record) = Relay::start_recorded(&args, &[]);
    (relay, audit, record)
}

#[tokio::test]
async fn h1_every_request_outcome_is_one_audit_line() {
    let (relay, audit, record) = start(&["--request-timeout", "1s"]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;

    let ok = c.call(json!("ok"), "echo", json!({"text": "hi"})).await;
    assert_eq!(ok.messages().len(), 1);
    let unknown = c.call(json!("unknown"), "no_such_tool", json!({})).await;
    assert_eq!(unknown.messages()[0]["error"]["code"], -32602);
    let late = c.call(json!("late"), "slow", json!({"ms": 5000})).await;
    assert_eq!(late.messages()[0]["error"]["code"], -31008);

    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!("gone"), "slow", json!({"ms": 20000})).await })
    };
    eventually("the slow call reached the child", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("\"ms\":20000")
    })
    .await;
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled",
        "params":{"requestId":"gone"}});
    assert_eq!(c.post(cancel).await.status, 202);
    tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .unwrap()
        .unwrap();

    let junk = c
        .post_raw("{\"jsonrpc\":\"2.0\",\"id\":\"bad\",".into())
        .await;
    assert_eq!(junk.status, 400);

    let crash = c.call(json!("crash"), "crash", json!({"code": 3})).await;
    assert_eq!(crash.messages()[0]["error"]["code"], -31007);

    eventually("six request lines", || {
        let r = lines(&audit);
        ["ok", "unknown", "late", "gone", "crash"]
            .iter()
            .all(|id| with_id(&r, &format!("\"{id}\"")).len() == 1)
            && r.iter().any(|l| l["error_code"] == -32700)
    })
    .await;
    let r = lines(&audit);
    let one = |id: &str| with_id(&r, &format!("\"{id}\""))[0].clone();
    let expect = [
        ("ok", "ok", None),
        ("unknown", "error", Some(-32602)),
        ("late", "timeout", Some(-31008)),
        ("gone", "cancelled", None),
        ("crash", "error", Some(-31007)),
    ];
    for (id, outcome, code) in expect {
        let rec = one(id);
        assert_eq!(rec["outcome"], outcome, "{rec}");
        assert_eq!(rec["error_code"].as_i64(), code, "{rec}");
        assert_eq!(rec["method"], "tools/call", "{rec}");
        assert_eq!(rec["transport"], "streamable_http", "{rec}");
        assert_eq!(rec["auth"], "none", "{rec}");
        assert!(rec["session"].is_string(), "{rec}");
        assert!(
            rec["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{rec}"
        );
        assert!(rec["latency_ms"].as_f64().unwrap() >= 0.0, "{rec}");
        assert!(rec["bytes_in"].as_u64().unwrap() > 0, "{rec}");
    }
    assert_eq!(one("ok")["name"], "echo");
    assert!(one("ok")["bytes_out"].as_u64().unwrap() > 0);
    assert!(one("ok")["args"]["sha256"].is_string(), "{}", one("ok"));
    let bad = r.iter().find(|l| l["error_code"] == -32700).unwrap();
    assert_eq!(bad["outcome"], "refused", "{bad}");
    // Nothing else was recorded twice: one line per request (initialize included).
    let ids: Vec<String> = r
        .iter()
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
}

#[tokio::test]
async fn h2_clean_shutdown_writes_every_record_before_exit() {
    let (mut relay, audit, _) = start(&[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    for i in 0..50 {
        c.call(json!(i), "echo", json!({"text": "x"})).await;
    }
    assert_eq!(relay.terminate(), Some(0));
    let r = lines(&audit);
    let calls = r.iter().filter(|l| l["method"] == "tools/call").count();
    assert_eq!(calls, 50, "{r:?}");
}

/// Issue 14, bug 10: behind a trusted proxy the audit `client` is the forwarded address, with
/// the client's own port only when the proxy gave one, never joined to the proxy's port; the
/// proxy itself is recorded as `peer`.
#[tokio::test]
async fn d6_forwarded_client_is_audited_without_the_proxy_port() {
    let (relay, audit, _) = start(&["--trusted-proxy", "127.0.0.1/32"]);
    let c = relay.client();
    let sends = [
        ("xff", "x-forwarded-for", "198.51.100.1, 203.0.113.7"),
        ("fwd", "forwarded", "for=\"[2001:db8::1]:4711\""),
        ("direct", "x-nothing", "-"),
    ];
    for (id, name, value) in sends {
        let res = c
            .post_builder()
            .header(name, value)
            .body(crate::support::init_request(json!(id), "2025-11-25").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{id}");
    }
    eventually("three initialize lines", || {
        let r = lines(&audit);
        ["xff", "fwd", "direct"]
            .iter()
            .all(|id| with_id(&r, &format!("\"{id}\"")).len() == 1)
    })
    .await;
    let r = lines(&audit);
    let one = |id: &str| with_id(&r, &format!("\"{id}\""))[0].clone();
    let xff = one("xff");
    assert_eq!(xff["client"], "203.0.113.7", "{xff}");
    let proxy = xff["peer"].as_str().unwrap_or_default();
    assert!(proxy.starts_with("127.0.0.1:"), "{xff}");
    let fwd = one("fwd");
    assert_eq!(fwd["client"], "[2001:db8::1]:4711", "{fwd}");
    assert!(fwd["peer"]
        .as_str()
        .unwrap_or_default()
        .starts_with("127.0.0.1:"));
    let direct = one("direct");
    assert!(
        direct["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{direct}"
    );
    assert!(direct.get("peer").is_none(), "{direct}");
}
