//! Roles (RBAC) and the audit log end to end (SECURITY.md §3, §8.B, §8.H1): real tokens minted
//! by `mcp-relay token jwt`, the seed `examples/permissions.json`, the fixture recording its
//! stdin so "nothing reached the child" is checked on the child's side, and the audit file read
//! back line by line.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::support::{
    eventually, patience, read_reply, tempdir, text_of, wait_event, wait_recorded, Client, Relay,
    Reply, ACCEPT_BOTH, FIXTURE,
};

/// Name of the env var holding the HMAC secret, set on the relay's and minter's Command only.
const SECRET_VAR: &str = "RELAY_TEST_SECRET";
const SECRET: &str = "zaLR0-K0XGP0anZeAz_0SwSxmGjVnN7I4RGHsyA-OTo";
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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Relay::start_env(&args, &[(SECRET_VAR, SECRET)])
}

/// `mcp-relay token jwt` for `user` with `roles` (comma-separated), audience [`RESOURCE`].
fn mint(user: &str, roles: &str) -> String {
    crate::support::mint_jwt(SECRET_VAR, SECRET, user, roles, RESOURCE)
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

/// A role reading prompts and resources under name rules (names.rs, modern.rs).
const READER_ROLES: &str = r#"{
  "reader": {
    "allowedMethods": ["*/list", "prompts/get", "resources/read"],
    "prompts": {"deny": ["internal_*"]},
    "resources": {"allow": ["file:///public/*"]}
  },
  "admin": {"allowedMethods": ["*"]}
}"#;

mod audit;
mod defaults;
mod fronts;
mod lists;
mod modern;
mod names;
mod parsing;
mod seed;
mod servers;
