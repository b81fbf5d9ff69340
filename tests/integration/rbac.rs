//! Roles (RBAC) and the audit log end to end (SECURITY.md §3, §8.B, §8.H1): real tokens minted
//! by `mcp-relay token jwt`, the seed `examples/permissions.json`, the fixture recording its
//! stdin so "nothing reached the child" is checked on the child's side, and the audit file read
//! back line by line.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::{
    eventually, patience, read_reply, tempdir, text_of, wait_event, wait_recorded, Client, Relay,
    Reply, ACCEPT_BOTH, FIXTURE, RELAY,
};

/// Name of the env var holding the HMAC secret, set on the relay's and minter's Command only.
const SECRET_VAR: &str = "RELAY_TEST_SECRET";
const SECRET: &str = "rbac-integration-secret-0123456789abcdefghijkl";
const RESOURCE: &str = "http://relay.test/mcp";
const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/permissions.json");
const MODERN: &str = "2026-07-28";

/// A relay with JWT auth, a roles file and an audit log, wrapping a recording fixture.
struct Rig {
    relay: Relay,
    record: PathBuf,
    audit: PathBuf,
}

struct Opts<'a> {
    roles: &'a str,
    relay: &'a [&'a str],
    child: &'a [&'a str],
    /// `--config` text; when set, `--audit-log` is not passed (the file names it).
    config: Option<String>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            roles: SEED,
            relay: &[],
            child: &[],
            config: None,
        }
    }
}

/// Writes `text` as a roles file in a fresh directory and returns its path.
fn roles_file(text: &str) -> String {
    let path = tempdir().join("roles.json");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn rig(o: Opts<'_>) -> Rig {
    let dir = tempdir();
    let record = dir.join("stdin.log");
    let audit = dir.join("audit.log");
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        RESOURCE,
        "--jwt-secret",
        "env:RELAY_TEST_SECRET",
        "--roles",
        o.roles,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match &o.config {
        Some(text) => {
            let cfg = dir.join("relay.toml");
            std::fs::write(&cfg, text.replace("AUDIT_FILE", audit.to_str().unwrap())).unwrap();
            args.extend(["--config".to_owned(), cfg.to_str().unwrap().to_owned()]);
        }
        None => args.extend(["--audit-log".to_owned(), audit.to_str().unwrap().to_owned()]),
    }
    args.extend(o.relay.iter().map(|s| (*s).to_owned()));
    args.extend([
        "--".to_owned(),
        FIXTURE.to_owned(),
        "--record".to_owned(),
        record.to_str().unwrap().to_owned(),
    ]);
    args.extend(o.child.iter().map(|s| (*s).to_owned()));
    Rig {
        relay: start_with_secret(&args),
        record,
        audit,
    }
}

/// [`Relay::start_raw`] with the secret in the relay's environment only.
fn start_with_secret(args: &[String]) -> Relay {
    let mut child = Command::new(RELAY)
        .args(args)
        .env("RUST_LOG", "info")
        .env(SECRET_VAR, SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("url=http://") {
                if let Some(t) = tx.take() {
                    let url = line[i + 4..].split_whitespace().next().unwrap_or("");
                    let _ = t.send(url.to_owned());
                }
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let url = rx
        .recv_timeout(patience())
        .unwrap_or_else(|_| panic!("relay did not start: {}", logs.lock().unwrap()));
    let base = url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    Relay {
        child,
        url,
        base,
        logs,
    }
}

/// `mcp-relay token jwt` for `user` with `roles` (comma-separated), audience [`RESOURCE`].
fn mint(user: &str, roles: &str) -> String {
    let out = Command::new(RELAY)
        .args([
            "token",
            "jwt",
            "--secret",
            "env:RELAY_TEST_SECRET",
            "--user",
            user,
            "--roles",
            roles,
            "--expires-in",
            "1h",
            "--audience",
            RESOURCE,
        ])
        .env(SECRET_VAR, SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An HS256 token with exactly `claims` plus `iss`/`aud`/`exp` (no `roles` unless given).
fn hand_token(sub: &str, extra: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"sub": sub, "iss": "mcp-relay", "aud": RESOURCE,
        "iat": now, "exp": now + 3600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

impl Rig {
    fn client(&self, token: &str) -> Client {
        let mut c = self.relay.client();
        c.extra
            .push(("authorization".to_owned(), format!("Bearer {token}")));
        c
    }

    /// A client for a freshly minted token, initialized at `version`.
    async fn session(&self, user: &str, roles: &str, version: &str) -> Client {
        let mut c = self.client(&mint(user, roles));
        c.initialize(version).await;
        c
    }

    fn recorded(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Lines the child received that contain `needle`.
    fn recorded_with(&self, needle: &str) -> usize {
        self.recorded()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends a `ping` tagged in `_meta` on `c` and waits until the child has it: everything `c`
    /// sent before has reached the child by then (one ordered stdin). The relay rewrites ids,
    /// so the tag travels in `params`.
    async fn barrier(&self, c: &Client, tag: &str) {
        let tag = format!("barrier-{tag}");
        let r = c
            .post(json!({"jsonrpc":"2.0","id":tag,"method":"ping","params":{"_meta":{"tag":tag}}}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        wait_recorded(&self.record, &tag, 1).await;
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit).unwrap_or_default()
    }

    fn audit_lines(&self) -> Vec<Value> {
        self.audit_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits for an audit record matching every member of `want`, and returns it.
    async fn audited(&self, want: Value) -> Value {
        let want = want.as_object().unwrap().clone();
        let matches = |r: &Value| want.iter().all(|(k, v)| &r[k] == v);
        eventually(&format!("audit record {want:?}"), || {
            self.audit_lines().iter().any(matches)
        })
        .await;
        self.audit_lines().into_iter().find(matches).unwrap()
    }
}

fn req(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
}

fn call(id: Value, tool: &str) -> Value {
    req(
        id,
        "tools/call",
        json!({"name": tool, "arguments": {"text": "hi"}}),
    )
}

/// The single JSON-RPC message of a reply.
fn one(r: &Reply) -> Value {
    let m = r.messages();
    assert_eq!(m.len(), 1, "{r:?}");
    m[0].clone()
}

fn tool_names(msg: &Value) -> Vec<String> {
    names(msg, "tools", "name")
}

fn names(msg: &Value, array: &str, field: &str) -> Vec<String> {
    msg["result"][array]
        .as_array()
        .unwrap_or_else(|| panic!("no {array}: {msg}"))
        .iter()
        .map(|t| t[field].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts `msg` is exactly the unknown-name answer: this code and message, no `data`.
fn assert_unknown(msg: &Value, id: Value, code: i64, message: &str) {
    assert_eq!(msg["id"], id, "{msg}");
    assert_eq!(msg["error"]["code"], code, "{msg}");
    assert_eq!(msg["error"]["message"], message, "{msg}");
    assert!(
        msg["error"].get("data").is_none(),
        "relay marker leaked: {msg}"
    );
    assert!(msg.get("result").is_none());
}

// === seed roles ===

/// readonly blocks the method `tools/call` itself: a denied method is answered like an
/// unknown one (-32601, SECURITY.md §3), whatever the tool.
#[tokio::test]
async fn b1_seed_readonly_lists_tools_but_a_call_is_method_not_found_that_never_reaches_the_child()
{
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    assert!(tool_names(&list).contains(&"echo".to_owned()), "{list}");
    let r = c.post(call(json!(2), "echo")).await;
    assert_eq!(r.status, 200);
    assert_unknown(&one(&r), json!(2), -32601, "Method not found");
    rig.barrier(&c, "ro").await;
    assert_eq!(rig.recorded_with("tools/call"), 0, "{:?}", rig.recorded());
    let deny = rig
        .audited(json!({"principal":"rita","method":"tools/call","decision":"deny"}))
        .await;
    assert_eq!(deny["auth"], "jwt");
    assert_eq!(deny["name"], "echo");
    assert_eq!(deny["outcome"], "denied");
    assert_eq!(deny["error_code"], -32601);
    assert!(
        deny["rule"].as_str().unwrap().starts_with("readonly."),
        "{deny}"
    );
}

/// A role that may list but call no tool sees the catalogue its name rules allow (readonly
/// "can list"); lists of callers that can call show only what they can call.
#[tokio::test]
async fn b1_seed_readonly_tools_list_is_the_catalogue() {
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    let names = tool_names(&list);
    assert!(names.contains(&"echo".to_owned()), "{list}");
    assert!(names.contains(&"delete_everything".to_owned()), "{list}");
}

#[tokio::test]
async fn b1_seed_union_of_readonly_and_user_lists_only_callable_tools() {
    let rig = rig(Opts::default());
    let c = rig.session("una", "readonly,user", "2025-11-25").await;
    let r = c.post(call(json!(1), "delete_everything")).await;
    assert_unknown(
        &one(&r),
        json!(1),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(text_of(&one(&c.post(call(json!(2), "echo")).await)), "hi");
    let tools = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(tools.contains(&"echo".to_owned()));
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
}

#[tokio::test]
async fn b1_seed_readonly_call_is_denied_before_the_child_and_audited_with_its_rule() {
    // The part of the readonly case that holds whatever the error shape: nothing reaches the
    // child, the answer carries no relay marker, the audit names the blocking rule.
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let r = c.post(call(json!(2), "echo")).await;
    assert_eq!(r.status, 200);
    let msg = one(&r);
    assert_eq!(msg["id"], 2);
    assert!(msg["error"].get("data").is_none(), "{msg}");
    rig.barrier(&c, "ro2").await;
    assert_eq!(rig.recorded_with("tools/call"), 0);
    let deny = rig
        .audited(json!({"principal":"rita","method":"tools/call","decision":"deny"}))
        .await;
    assert_eq!(deny["rule"], "readonly.blockedMethods[0]");
    assert_eq!(deny["auth"], "jwt");
    assert_eq!(deny["outcome"], "denied");
}

#[tokio::test]
async fn b1_seed_user_delete_tool_is_hidden_and_unknown_while_echo_works() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    let tools = tool_names(&list);
    assert!(tools.contains(&"echo".to_owned()), "{tools:?}");
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
    let ok = one(&c.post(call(json!(2), "echo")).await);
    assert_eq!(text_of(&ok), "hi");
    let r = c.post(call(json!(3), "delete_everything")).await;
    assert_eq!(r.status, 200);
    assert_unknown(
        &one(&r),
        json!(3),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "user").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("\"echo\""), 1);

    let allow = rig
        .audited(json!({"principal":"ursula","method":"tools/call","name":"echo"}))
        .await;
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["auth"], "jwt");
    assert_eq!(allow["outcome"], "ok");
    assert_eq!(allow["rule"], "user.allowedMethods[0]");
    assert!(allow.get("error_code").is_none(), "{allow}");
    let deny = rig
        .audited(json!({"principal":"ursula","name":"delete_everything"}))
        .await;
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["method"], "tools/call");
    assert_eq!(deny["rule"], "user.tools.deny[0]");
    assert_eq!(deny["outcome"], "denied");
    assert_eq!(deny["error_code"], -32602);
    let listed = rig
        .audited(json!({"principal":"ursula","method":"tools/list"}))
        .await;
    assert_eq!(listed["decision"], "allow");
    // One line per request: initialize, tools/list, echo, delete, ping.
    eventually("five ursula records", || {
        rig.audit_lines()
            .iter()
            .filter(|r| r["principal"] == "ursula" && r.get("method").is_some())
            .count()
            == 5
    })
    .await;
}

#[tokio::test]
async fn b1_seed_admin_sees_and_calls_every_tool() {
    let rig = rig(Opts::default());
    let c = rig.session("alice", "admin", "2025-11-25").await;
    let tools = tool_names(&one(&c.post(req(json!(1), "tools/list", json!({}))).await));
    for t in ["echo", "delete_everything", "notify", "env"] {
        assert!(tools.contains(&t.to_owned()), "{t} missing from {tools:?}");
    }
    let del = one(&c.post(call(json!(2), "delete_everything")).await);
    assert_eq!(text_of(&del), "deleted");
    let p = one(&c.post(req(json!(3), "prompts/list", json!({}))).await);
    assert_eq!(names(&p, "prompts", "name"), ["greet", "internal_debug"]);
    let x = one(&c.post(req(json!(4), "x-anything", json!({"a":1}))).await);
    assert_eq!(x["result"]["method"], "x-anything");
    rig.barrier(&c, "admin").await;
    assert_eq!(rig.recorded_with("delete_everything"), 1);
    let rec = rig
        .audited(json!({"principal":"alice","name":"delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["rule"], "admin.allowedMethods[0]");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["auth"], "jwt");
}

// === B1 ===

/// The seed roles plus a `ghost_*` deny, for a tool the fixture does not have.
const GHOST_ROLES: &str = r#"{
  "admin": {"allowedMethods": ["*"]},
  "user": {
    "allowedMethods": ["tools/call", "*/list"],
    "tools": {"deny": ["delete_*", "ghost_*"]}
  }
}"#;

#[tokio::test]
async fn b1_denied_tool_answer_is_byte_identical_to_the_fixtures_unknown_tool() {
    let roles = roles_file(GHOST_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let user = rig.session("ursula", "user", "2025-11-25").await;
    let admin = rig.session("alice", "admin", "2025-11-25").await;
    let denied = user.post(call(json!(9), "ghost_tool")).await;
    rig.barrier(&user, "ghost").await;
    assert_eq!(
        rig.recorded_with("ghost_tool"),
        0,
        "a denied call reached the child"
    );
    let unknown = admin.post(call(json!(9), "ghost_tool")).await;
    wait_recorded(&rig.record, "ghost_tool", 1).await;
    assert_eq!(denied.status, unknown.status);
    assert_eq!(denied.raw(), unknown.raw(), "denied vs truly unknown");
    assert_unknown(&one(&denied), json!(9), -32602, "Unknown tool: ghost_tool");
    let rec = rig
        .audited(json!({"principal":"ursula","name":"ghost_tool"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "user.tools.deny[1]");
}

#[tokio::test]
async fn b1_json_response_mode_filters_lists_and_denies_like_sse() {
    let rig = rig(Opts {
        relay: &["--response-mode", "json"],
        ..Opts::default()
    });
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let r = c.post(req(json!(1), "tools/list", json!({}))).await;
    assert!(r.events.is_empty(), "expected a JSON answer: {r:?}");
    assert!(!tool_names(&one(&r)).contains(&"delete_everything".to_owned()));
    let r = c.post(call(json!(2), "delete_everything")).await;
    assert_eq!(r.status, 200);
    assert_unknown(
        &one(&r),
        json!(2),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "json").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
}

#[tokio::test]
async fn b1_resumed_stream_replays_the_filtered_list() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let r = c.post(req(json!(1), "tools/list", json!({}))).await;
    assert!(!tool_names(&one(&r)).contains(&"delete_everything".to_owned()));
    let stream = r
        .events
        .last()
        .unwrap()
        .id
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    let resumed = c.get(Some(&format!("{stream}-0"))).await;
    assert_eq!(resumed.status(), 200);
    let evs = crate::support::collect_events(resumed, 1).await;
    let replayed: Value = serde_json::from_str(&evs[0].data).unwrap();
    assert_eq!(replayed["id"], 1);
    let tools = tool_names(&replayed);
    assert!(tools.contains(&"echo".to_owned()));
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
}

#[tokio::test]
async fn b1_tools_list_stays_filtered_after_list_changed() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let first = tool_names(&one(&c.post(req(json!(1), "tools/list", json!({}))).await));
    assert!(!first.contains(&"delete_everything".to_owned()));
    let get = c.get(None).await;
    assert_eq!(get.status(), 200);
    let mut events = eventsource_stream::Eventsource::eventsource(get.bytes_stream());
    let r = c.post(call(json!(2), "notify")).await;
    let inline = r
        .messages()
        .iter()
        .any(|m| m["method"] == "notifications/tools/list_changed");
    if !inline {
        wait_event(&mut events, |v| {
            v["method"] == "notifications/tools/list_changed"
        })
        .await;
    }
    let again = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(again.contains(&"echo".to_owned()));
    assert!(
        !again.contains(&"delete_everything".to_owned()),
        "{again:?}"
    );
    assert_eq!(first, again);
}

// === B2 ===

#[tokio::test]
async fn b2_ambiguous_keys_under_roles_are_400_and_the_child_sees_nothing() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","name":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"echo","Name":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","name\u0000":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":13,"method":"tools/list","Method":"tools/call","params":{"name":"delete_everything"}}"#,
        r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","method":"tools/list","params":{"name":"delete_everything"}}"#,
    ];
    for body in cases {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b2").await;
    assert_eq!(
        rig.recorded_with("delete_everything"),
        0,
        "{:?}",
        rig.recorded()
    );
    assert_eq!(rig.recorded_with("tools/"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b2_deep_duplicates_and_folded_meta_keys_under_roles_are_400() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        // Duplicate keys below `params`.
        r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a","text":"b"}}}"#,
        // `_meta` keys the relay reads, folded.
        r#"{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"progressToken":"p","ProgressToken":"q"}}}"#,
        r#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","_Meta":{},"_meta":{}}}"#,
        // A control character instead of NUL.
        r#"{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"echo","name\u001f":"delete_everything"}}"#,
        // Envelope `Params` beside `params`.
        r#"{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"delete_everything"}}"#,
    ];
    for body in cases {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b2deep").await;
    assert_eq!(rig.recorded_with("tools/"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b2_escaped_identical_names_are_rejected_or_decided_on_the_decoded_name() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    // Escaped key, allowed tool: 400, or the child runs exactly `echo`.
    let r = c
        .post_raw(
            r#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"n\u0061me":"echo","arguments":{"text":"esc"}}}"#
                .to_owned(),
        )
        .await;
    if r.status != 400 {
        assert_eq!(text_of(&one(&r)), "esc", "{r:?}");
    }
    // Escaped key or escaped value naming a denied tool: 400, or Unknown tool; never the child.
    let denied = [
        (21, r#"{"n\u0061me":"delete_everything","arguments":{}}"#),
        (22, r#"{"name":"delete\u005feverything","arguments":{}}"#),
        (23, r#"{"name":"\u0064elete_everything","arguments":{}}"#),
    ];
    for (id, params) in denied {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#);
        let r = c.post_raw(body.clone()).await;
        if r.status == 400 {
            assert_eq!(r.json()["error"]["code"], -32600, "{body}");
        } else {
            assert_eq!(r.status, 200);
            assert_unknown(
                &one(&r),
                json!(id),
                -32602,
                "Unknown tool: delete_everything",
            );
        }
    }
    rig.barrier(&c, "esc").await;
    assert_eq!(
        rig.recorded_with("delete_everything"),
        0,
        "a denied tool reached the child: {:?}",
        rig.recorded()
    );
    // What the child ran for the escaped key is exactly the authorized name, or nothing: the
    // child's own JSON parser reads `echo` out of the bytes it got.
    let calls: Vec<Value> = rig
        .recorded()
        .iter()
        .filter(|l| l.contains("tools/call"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(calls.len() <= 1, "{calls:?}");
    for c in &calls {
        assert_eq!(c["params"]["name"], "echo", "{c}");
    }
}

// === B3 ===

#[tokio::test]
async fn b3_batches_on_2025_06_18_are_400_and_never_reach_the_child() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-06-18").await;
    let bodies = [
        json!([
            call(json!(30), "echo"),
            call(json!(31), "delete_everything")
        ])
        .to_string(),
        "[]".to_owned(),
        json!([[call(json!(32), "echo")]]).to_string(),
    ];
    for body in bodies {
        let r = c.post_raw(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b3").await;
    assert_eq!(rig.recorded_with("tools/call"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b3_batch_on_2025_03_26_answers_each_element_under_its_own_decision() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-03-26").await;
    let r = c
        .post(json!([
            call(json!(40), "echo"),
            call(json!(41), "delete_everything")
        ]))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut msgs = r.messages();
    if msgs.len() == 1 && msgs[0].is_array() {
        msgs = msgs[0].as_array().unwrap().clone();
    }
    let by_id = |id: i64| msgs.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(text_of(&by_id(40)), "hi");
    assert_unknown(
        &by_id(41),
        json!(41),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "b3b").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("\"name\":\"echo\""), 1);
    rig.audited(json!({"principal":"ursula","name":"delete_everything","decision":"deny"}))
        .await;

    // A list inside a batch is filtered like one on its own.
    let r = c
        .post(json!([
            req(json!(42), "tools/list", json!({})),
            req(json!(43), "prompts/list", json!({}))
        ]))
        .await;
    let msgs = r.messages();
    let list = msgs.iter().find(|m| m["id"] == 42).unwrap();
    assert!(tool_names(list).contains(&"echo".to_owned()));
    assert!(
        !tool_names(list).contains(&"delete_everything".to_owned()),
        "{list}"
    );

    let pings_before = rig.recorded_with("\"ping\"");
    let pings: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc":"2.0","id":1000 + i,"method":"ping"}))
        .collect();
    let r = c.post(Value::Array(pings)).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"]["code"], -32600);
    rig.barrier(&c, "b3c").await;
    assert_eq!(rig.recorded_with("\"ping\""), pings_before + 1);
}

// === B6 ===

#[tokio::test]
async fn b6_near_miss_and_unknown_methods_are_method_not_found_without_reaching_the_child() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        (50, "TOOLS/CALL"),
        (51, "tools/call "),
        (52, "foo/bar"),
        // Look-alikes: capital I for l, a tab, a doubled slash, a fullwidth solidus, NUL.
        (53, "tooIs/call"),
        (54, "tools/call\t"),
        (55, "tools//call"),
        (56, "tools\u{ff0f}call"),
        (57, "tools/call\u{0}"),
        (58, "Tools/Call"),
    ];
    for (id, method) in cases {
        let r = c
            .post(req(
                json!(id),
                method,
                json!({"name":"echo","arguments":{}}),
            ))
            .await;
        assert_eq!(r.status, 200, "{method}");
        assert_unknown(&one(&r), json!(id), -32601, "Method not found");
    }
    rig.barrier(&c, "b6").await;
    for method in [
        "TOOLS/CALL",
        "tools/call",
        "foo/bar",
        "tooIs",
        "tools/",
        "Tools",
    ] {
        assert_eq!(rig.recorded_with(method), 0, "{:?}", rig.recorded());
    }
    let rec = rig
        .audited(json!({"principal":"ursula","method":"foo/bar"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["error_code"], -32601);
    assert_eq!(rec["rule"], "user.default_deny");
}

/// Everything but `initialize` and `ping` is denied for `token`.
async fn assert_denied_everything(rig: &Rig, token: &str, who: &str) {
    let mut c = rig.client(token);
    c.initialize("2025-11-25").await;
    for (id, method, params) in [
        (60, "tools/list", json!({})),
        (61, "tools/call", json!({"name":"echo","arguments":{}})),
        (62, "prompts/list", json!({})),
        (
            63,
            "resources/read",
            json!({"uri":"file:///public/readme.txt"}),
        ),
    ] {
        let r = c.post(req(json!(id), method, params)).await;
        assert_eq!(r.status, 200, "{who} {method}");
        let msg = one(&r);
        assert_eq!(msg["id"], id, "{who} {method}: {msg}");
        assert!(msg.get("error").is_some(), "{who} {method} allowed: {msg}");
        // No known role: every method is denied as a method.
        assert_unknown(&msg, json!(id), -32601, "Method not found");
    }
    rig.barrier(&c, who).await;
    for method in ["tools/list", "tools/call", "prompts/list", "resources/read"] {
        assert_eq!(
            rig.recorded_with(method),
            0,
            "{who}: {method} reached the child"
        );
    }
    let rec = rig
        .audited(json!({"principal": who, "method": "tools/list"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "no_role");
}

#[tokio::test]
async fn b6_token_without_roles_claim_gets_only_initialize_and_ping() {
    let rig = rig(Opts::default());
    assert_denied_everything(&rig, &hand_token("nobody", json!({})), "nobody").await;
}

#[tokio::test]
async fn b6_token_with_empty_or_unknown_roles_gets_only_initialize_and_ping() {
    let rig = rig(Opts::default());
    assert_denied_everything(&rig, &mint("empty", ""), "empty").await;
    assert_denied_everything(&rig, &mint("stranger", "superuser"), "stranger").await;
}

#[tokio::test]
async fn b6_roles_claim_of_the_wrong_type_is_refused() {
    // One string is an accepted form (`jwt.rs`: "Array of strings or one string"); numbers,
    // objects and mixed arrays are not.
    let rig = rig(Opts::default());
    for roles in [
        json!(7),
        json!({"admin": true}),
        json!(["admin", 1]),
        json!(null),
    ] {
        let c = rig.client(&hand_token("typo", json!({ "roles": roles })));
        let r = c
            .post(crate::support::init_request(json!(0), "2025-11-25"))
            .await;
        assert_eq!(r.status, 401, "roles {roles}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -31001, "{}", r.body);
    }
    assert_eq!(rig.recorded().len(), 0);
    rig.audited(json!({"outcome":"unauthenticated", "error_code": -31001}))
        .await;
}

// === prompts and resources ===

const READER_ROLES: &str = r#"{
  "reader": {
    "allowedMethods": ["*/list", "prompts/get", "resources/read"],
    "prompts": {"deny": ["internal_*"]},
    "resources": {"allow": ["file:///public/*"]}
  },
  "admin": {"allowedMethods": ["*"]}
}"#;

#[tokio::test]
async fn b1_prompts_and_resources_are_filtered_and_denied_like_unknown_names() {
    let roles = roles_file(READER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let c = rig.session("rhea", "reader", "2025-11-25").await;
    let p = one(&c.post(req(json!(1), "prompts/list", json!({}))).await);
    assert_eq!(names(&p, "prompts", "name"), ["greet"]);
    let r = one(&c.post(req(json!(2), "resources/list", json!({}))).await);
    assert_eq!(names(&r, "resources", "uri"), ["file:///public/readme.txt"]);
    let t = one(&c
        .post(req(json!(3), "resources/templates/list", json!({})))
        .await);
    assert_eq!(
        names(&t, "resourceTemplates", "uriTemplate"),
        ["file:///public/{name}"]
    );
    let ok = one(&c
        .post(req(json!(4), "prompts/get", json!({"name":"greet"})))
        .await);
    assert!(ok.get("result").is_some(), "{ok}");
    let ok = one(&c
        .post(req(
            json!(5),
            "resources/read",
            json!({"uri":"file:///public/readme.txt"}),
        ))
        .await);
    assert!(ok.get("result").is_some(), "{ok}");

    let denied = one(&c
        .post(req(
            json!(6),
            "prompts/get",
            json!({"name":"internal_debug"}),
        ))
        .await);
    assert_unknown(&denied, json!(6), -32602, "Unknown prompt: internal_debug");
    let denied = one(&c
        .post(req(
            json!(7),
            "resources/read",
            json!({"uri":"file:///secret/keys.txt"}),
        ))
        .await);
    assert_eq!(denied["error"]["code"], -32002, "{denied}");
    assert_eq!(denied["error"]["message"], "Resource not found", "{denied}");
    // The spec's form carries the URI; nothing else (no relay marker).
    assert_eq!(
        denied["error"]["data"],
        json!({"uri": "file:///secret/keys.txt"}),
        "{denied}"
    );
    // The fixture's own answer for a resource it does not have, for comparison.
    let missing = one(&c
        .post(req(
            json!(7),
            "resources/read",
            json!({"uri":"file:///public/missing.txt"}),
        ))
        .await);
    assert_eq!(
        denied["error"]["code"], missing["error"]["code"],
        "denied vs truly missing"
    );
    assert_eq!(denied["error"]["message"], missing["error"]["message"]);
    assert_eq!(
        missing["error"]["data"],
        json!({"uri": "file:///public/missing.txt"})
    );

    rig.barrier(&c, "pr").await;
    assert_eq!(rig.recorded_with("internal_debug"), 0);
    assert_eq!(rig.recorded_with("file:///secret/keys.txt"), 0);
    let rec = rig
        .audited(json!({"principal":"rhea","name":"internal_debug"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "reader.prompts.deny[0]");
    let rec = rig
        .audited(json!({"principal":"rhea","name":"file:///secret/keys.txt"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["error_code"], -32002);
    assert_eq!(rec["rule"], "reader.resources.default_deny");
}

// === shared mode ===

#[tokio::test]
async fn b1_shared_child_sessions_with_different_roles_get_their_own_tools_list() {
    let rig = rig(Opts {
        relay: &["--session-mode", "shared"],
        ..Opts::default()
    });
    let admin = rig.session("alice", "admin", "2025-11-25").await;
    let user = rig.session("ursula", "user", "2025-11-25").await;
    for round in 0..5 {
        let (a, u) = tokio::join!(
            admin.post(req(json!(round), "tools/list", json!({}))),
            user.post(req(json!(round), "tools/list", json!({})))
        );
        let (a, u) = (tool_names(&one(&a)), tool_names(&one(&u)));
        assert!(a.contains(&"delete_everything".to_owned()), "admin {a:?}");
        assert!(!u.contains(&"delete_everything".to_owned()), "user {u:?}");
        assert_eq!(a.len(), u.len() + 1);
    }
    let r = user.post(call(json!(99), "delete_everything")).await;
    assert_unknown(
        &one(&r),
        json!(99),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(rig.recorded_with("delete_everything"), 0);
}

// === modern era ===

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

async fn modern_post(c: &Client, body: &Value) -> Reply {
    let mut b = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", body["method"].as_str().unwrap());
    if let Some(name) = body["params"]["name"].as_str() {
        b = b.header("mcp-name", name);
    }
    for (k, v) in &c.extra {
        b = b.header(k, v);
    }
    read_reply(b.body(body.to_string()).send().await.unwrap()).await
}

fn modern_call(id: i64, tool: &str, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":tool,"arguments":{"text":text},"_meta":modern_meta()}})
}

#[tokio::test]
async fn b1_modern_denied_tool_is_200_unknown_tool_and_denied_method_is_404() {
    let rig = rig(Opts {
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let user = rig.client(&mint("ursula", "user"));
    let ok = modern_post(&user, &modern_call(1, "echo", "hi")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(text_of(&one(&ok)), "hi");
    let list = modern_post(
        &user,
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":modern_meta()}}),
    )
    .await;
    assert!(!tool_names(&one(&list)).contains(&"delete_everything".to_owned()));
    let r = modern_post(&user, &modern_call(3, "delete_everything", "hi")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(
        &one(&r),
        json!(3),
        -32602,
        "Unknown tool: delete_everything",
    );
    // `user` lists allowedMethods, so an unlisted method is denied.
    let r = modern_post(
        &user,
        &json!({"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{
            "ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":"b"},
            "_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_unknown(&one(&r), json!(4), -32601, "Method not found");
    // readonly: `tools/call` itself is blocked.
    let ro = rig.client(&mint("rita", "readonly"));
    let r = modern_post(&ro, &modern_call(5, "echo", "readonly-marker")).await;
    let msg = one(&r);
    assert!(msg["error"].get("data").is_none(), "{msg}");
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("completion/complete"), 0);
    assert_eq!(rig.recorded_with("readonly-marker"), 0);
    let rec = rig
        .audited(json!({"principal":"ursula","name":"delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "user.tools.deny[0]");
}

#[tokio::test]
async fn b1_modern_denied_prompt_and_resource_are_200_with_minus_32602() {
    let roles = roles_file(READER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let c = rig.client(&mint("rhea", "reader"));
    let list = modern_post(
        &c,
        &json!({"jsonrpc":"2.0","id":1,"method":"prompts/list","params":{"_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(names(&one(&list), "prompts", "name"), ["greet"]);
    let r = modern_post(
        &c,
        &json!({"jsonrpc":"2.0","id":2,"method":"prompts/get",
            "params":{"name":"internal_debug","_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(&one(&r), json!(2), -32602, "Unknown prompt: internal_debug");
    let read = json!({"jsonrpc":"2.0","id":3,"method":"resources/read",
        "params":{"uri":"file:///secret/keys.txt","_meta":modern_meta()}});
    let res = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "resources/read")
        .header("mcp-name", "file:///secret/keys.txt")
        .header("authorization", c.extra[0].1.clone())
        .body(read.to_string())
        .send()
        .await
        .unwrap();
    let r = read_reply(res).await;
    assert_eq!(r.status, 200, "{r:?}");
    let msg = one(&r);
    assert_eq!(msg["error"]["code"], -32602, "{msg}");
    assert!(msg["error"]["data"].get("source").is_none(), "{msg}");
    assert_eq!(rig.recorded_with("internal_debug"), 0);
    assert_eq!(rig.recorded_with("file:///secret/keys.txt"), 0);
}

#[tokio::test]
async fn b4_modern_name_header_body_mismatch_is_400_and_rbac_reads_the_body() {
    let rig = rig(Opts {
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let c = rig.client(&mint("ursula", "user"));
    // Warm the pool so the child has seen its one tools/list.
    let ok = modern_post(&c, &modern_call(1, "echo", "hi")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    for (id, header, body) in [
        (2, "echo", "delete_everything"),
        (3, "delete_everything", "echo"),
    ] {
        let msg = modern_call(id, body, "mismatch");
        let res = c
            .http
            .post(&c.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", header)
            .header("authorization", c.extra[0].1.clone())
            .body(msg.to_string())
            .send()
            .await
            .unwrap();
        let r = read_reply(res).await;
        assert_eq!(r.status, 400, "header {header}, body {body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32020, "{}", r.body);
    }
    assert_eq!(rig.recorded_with("mismatch"), 0, "{:?}", rig.recorded());
    // Header and body agree on the denied name: decided from the body, Unknown tool.
    let r = modern_post(&c, &modern_call(4, "delete_everything", "agreed")).await;
    assert_unknown(
        &one(&r),
        json!(4),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(rig.recorded_with("agreed"), 0);
}

// === H1 ===

#[tokio::test]
async fn h1_hostile_name_and_secret_arguments_make_one_redacted_audit_line() {
    let rig = rig(Opts {
        config: Some(
            "[audit]\nfile = \"AUDIT_FILE\"\nallow_fields = [\"path\", \"password\"]\n".into(),
        ),
        ..Opts::default()
    });
    let c = rig.session("alice", "admin", "2025-11-25").await;
    let hostile = "evil\nname\u{1b}[31mred";
    let r = c
        .post(req(
            json!(70),
            "tools/call",
            json!({"name": hostile, "arguments": {"password":"hunter2","token":"abc","path":"/x"}}),
        ))
        .await;
    assert_eq!(r.status, 200);
    let rec = rig
        .audited(json!({"principal":"alice","method":"tools/call","id":"70"}))
        .await;
    let text = rig.audit_text();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("\"abc\""), "{text}");
    assert!(!text.contains('\u{1b}'), "raw ESC in the audit file");
    // Every line parses on its own: the hostile name did not split the record.
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines
        .iter()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    assert_eq!(
        lines.iter().filter(|l| l.contains("\"id\":\"70\"")).count(),
        1
    );
    assert_eq!(rec["name"], hostile);
    let args = &rec["args"];
    let sha = args["sha256"].as_str().unwrap_or_else(|| panic!("{rec}"));
    assert_eq!(sha.len(), 64);
    assert!(sha.chars().all(|ch| ch.is_ascii_hexdigit()));
    assert_eq!(args["fields"]["path"], "/x");
    assert_eq!(args["fields"]["password"], "[redacted]");
    assert!(args["fields"].get("token").is_none(), "{rec}");
    assert_eq!(rec["decision"], "allow");
}

#[tokio::test]
async fn h1_hostile_principal_and_10kb_values_are_one_capped_line_each() {
    let rig = rig(Opts {
        config: Some("[audit]\nfile = \"AUDIT_FILE\"\nallow_fields = [\"path\"]\n".into()),
        ..Opts::default()
    });
    let sub = "mallory\n{\"principal\":\"alice\"}\u{1b}[2J";
    let c = rig.session(sub, "user", "2025-11-25").await;
    let long_name = format!("delete_{}", "A".repeat(10_000));
    let r = c
        .post(req(
            json!(80),
            "tools/call",
            json!({"name": long_name, "arguments": {"path": "B".repeat(10_000)}}),
        ))
        .await;
    assert_unknown(
        &one(&r),
        json!(80),
        -32602,
        &format!("Unknown tool: {long_name}"),
    );
    let ok = c
        .post(req(
            json!(81),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x", "path": "C".repeat(10_000)}}),
        ))
        .await;
    assert_eq!(text_of(&one(&ok)), "x");
    let deny = rig.audited(json!({"id":"80"})).await;
    let allow = rig.audited(json!({"id":"81"})).await;
    let text = rig.audit_text();
    assert!(!text.contains('\u{1b}'), "raw ESC in the audit file");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_ne!(
            v["principal"], "alice",
            "principal forged by a hostile sub: {line}"
        );
        assert!(
            line.len() < 4096,
            "uncapped audit line: {} bytes",
            line.len()
        );
    }
    for rec in [&deny, &allow] {
        assert_eq!(rec["principal"], sub, "{rec}");
    }
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["rule"], "user.tools.deny[0]");
    assert!(
        deny["name"].as_str().unwrap().chars().count() <= 256,
        "{deny}"
    );
    assert!(deny["name"].as_str().unwrap().starts_with("delete_AAA"));
    assert_eq!(allow["decision"], "allow");
    let path = allow["args"]["fields"]["path"].as_str().unwrap();
    assert!(
        path.chars().count() <= 256 && path.starts_with("CCC"),
        "{allow}"
    );
    assert_eq!(allow["args"]["sha256"].as_str().unwrap().len(), 64);
}

// === connection fronts ===

/// A newline- or message-delimited JSON-RPC connection: TCP lines or WebSocket text frames.
enum Front {
    Tcp(tokio::io::BufReader<tokio::net::TcpStream>),
    Ws(Box<crate::transports::WsStream>),
}

impl Front {
    async fn tcp(relay: &Relay, token: &str) -> Front {
        use tokio::io::AsyncWriteExt as _;
        let addr = crate::transports::tcp_addr(relay);
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let hello = json!({"authorization": format!("Bearer {token}")}).to_string() + "\n";
        tcp.write_all(hello.as_bytes()).await.unwrap();
        Front::Tcp(tokio::io::BufReader::new(tcp))
    }

    async fn ws(relay: &Relay, token: &str) -> Front {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = crate::transports::ws_url(relay)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("sec-websocket-protocol", "mcp".parse().unwrap());
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Front::Ws(Box::new(ws))
    }

    async fn send(&mut self, v: &Value) {
        use futures_util::SinkExt as _;
        use tokio::io::AsyncWriteExt as _;
        match self {
            Front::Tcp(s) => {
                let line = v.to_string() + "\n";
                s.get_mut().write_all(line.as_bytes()).await.unwrap();
            }
            Front::Ws(ws) => ws
                .send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
                .await
                .unwrap(),
        }
    }

    /// The answer to request `id` (notifications in between are skipped).
    async fn answer(&mut self, id: &Value) -> Value {
        use futures_util::StreamExt as _;
        use tokio::io::AsyncBufReadExt as _;
        let read = async {
            loop {
                let v: Value = match self {
                    Front::Tcp(s) => {
                        let mut line = String::new();
                        assert!(s.read_line(&mut line).await.unwrap() > 0, "closed");
                        serde_json::from_str(&line).unwrap()
                    }
                    Front::Ws(ws) => match ws.next().await {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                            serde_json::from_str(&t).unwrap()
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("websocket ended: {other:?}"),
                    },
                };
                if &v["id"] == id && v.get("method").is_none() {
                    return v;
                }
            }
        };
        tokio::time::timeout(patience(), read)
            .await
            .expect("answer timeout")
    }

    async fn request(&mut self, v: Value) -> Value {
        self.send(&v).await;
        self.answer(&v["id"]).await
    }
}

#[tokio::test]
async fn b1_tcp_and_websocket_fronts_apply_the_same_roles_and_audit() {
    let rig = rig(Opts {
        relay: &["--tcp-listen", "127.0.0.1:0"],
        ..Opts::default()
    });
    let token = mint("ursula", "user");
    for (transport, mut f) in [
        ("tcp", Front::tcp(&rig.relay, &token).await),
        ("websocket", Front::ws(&rig.relay, &token).await),
    ] {
        let init = f
            .request(crate::support::init_request(json!(0), "2025-11-25"))
            .await;
        assert!(init.get("result").is_some(), "{transport}: {init}");
        f.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        let list = f.request(req(json!(1), "tools/list", json!({}))).await;
        let tools = tool_names(&list);
        assert!(tools.contains(&"echo".to_owned()), "{transport}");
        assert!(
            !tools.contains(&"delete_everything".to_owned()),
            "{transport}"
        );
        let ok = f.request(call(json!(2), "echo")).await;
        assert_eq!(text_of(&ok), "hi", "{transport}");
        let denied = f.request(call(json!(3), "delete_everything")).await;
        assert_unknown(&denied, json!(3), -32602, "Unknown tool: delete_everything");
        let m = f.request(req(json!(4), "foo/bar", json!({}))).await;
        assert_unknown(&m, json!(4), -32601, "Method not found");
        let rec = rig
            .audited(json!({"transport": transport, "name": "delete_everything"}))
            .await;
        assert_eq!(rec["decision"], "deny", "{rec}");
        assert_eq!(rec["principal"], "ursula");
        assert_eq!(rec["auth"], "jwt");
    }
    // Both connections' echo calls reached the child; neither denied request did.
    wait_recorded(&rig.record, "\"echo\"", 2).await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("foo/bar"), 0);
}

#[tokio::test]
async fn a6_role_change_applies_on_the_next_request_of_the_same_session() {
    let rig = rig(Opts::default());
    let mut c = rig.session("ursula", "admin", "2025-11-25").await;
    let del = one(&c.post(call(json!(1), "delete_everything")).await);
    assert_eq!(text_of(&del), "deleted");
    // Same principal, same session, a new token with fewer roles: the new roles apply.
    c.extra = vec![(
        "authorization".to_owned(),
        format!("Bearer {}", mint("ursula", "user")),
    )];
    let r = c.post(call(json!(2), "delete_everything")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(
        &one(&r),
        json!(2),
        -32602,
        "Unknown tool: delete_everything",
    );
    let tools = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(!tools.contains(&"delete_everything".to_owned()));
    rig.barrier(&c, "a6").await;
    assert_eq!(rig.recorded_with("delete_everything"), 1);
    // Another principal's token on this session: 404, not a role switch.
    c.extra = vec![(
        "authorization".to_owned(),
        format!("Bearer {}", mint("alice", "admin")),
    )];
    let r = c.post(call(json!(4), "delete_everything")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(rig.recorded_with("delete_everything"), 1);
}

#[tokio::test]
async fn b1_legacy_sse_front_applies_roles_per_message() {
    use futures_util::StreamExt as _;
    let rig = rig(Opts::default());
    let token = mint("ursula", "user");
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/sse", rig.relay.base))
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = Box::pin(eventsource_stream::Eventsource::eventsource(
        res.bytes_stream(),
    ));
    let first = tokio::time::timeout(patience(), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event, "endpoint");
    let endpoint = format!("{}{}", rig.relay.base, first.data);
    let post = |body: Value, token: String| {
        let http = http.clone();
        let endpoint = endpoint.clone();
        async move {
            http.post(&endpoint)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Without a credential the POST is refused even though the stream is open.
    let status = http
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(call(json!(9), "echo").to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    let init = crate::support::init_request(json!(0), "2025-11-25");
    assert_eq!(post(init, token.clone()).await, 202);
    wait_event(&mut events, |v| v["id"] == 0).await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(note, token.clone()).await, 202);
    assert_eq!(
        post(req(json!(1), "tools/list", json!({})), token.clone()).await,
        202
    );
    let list = wait_event(&mut events, |v| v["id"] == 1).await;
    assert!(!tool_names(&list).contains(&"delete_everything".to_owned()));
    assert_eq!(
        post(call(json!(2), "delete_everything"), token.clone()).await,
        202
    );
    let denied = wait_event(&mut events, |v| v["id"] == 2).await;
    assert_unknown(&denied, json!(2), -32602, "Unknown tool: delete_everything");
    assert_eq!(post(call(json!(3), "echo"), token.clone()).await, 202);
    let ok = wait_event(&mut events, |v| v["id"] == 3).await;
    assert_eq!(text_of(&ok), "hi");
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    let rec = rig
        .audited(json!({"transport": "sse", "name": "delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["principal"], "ursula");
}
