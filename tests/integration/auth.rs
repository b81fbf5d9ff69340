//! Authentication end to end (SECURITY.md §3, §4, §5, §8.A, §8.G3): the real relay with API
//! keys, JWT issuers and mTLS configured through `--config`, credentials minted by
//! `mcp-relay token`, every front (Streamable HTTP, legacy SSE, WebSocket, TCP, admin routes)
//! driven over a real socket, and the fixture child's stdin recorded to prove what reached it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::conn::{scenario, Conn};
use crate::support::lines::Lines;
use crate::support::relay::tcp_listening;
use crate::support::ws::{ws_request, Ws};
use crate::support::{
    children_of, init_request, patience, tempdir, text_of, wait_recorded, ws_url, Relay,
    ACCEPT_BOTH, FIXTURE, RELAY,
};

const RESOURCE: &str = "http://relay.test/mcp";
const METADATA: &str = "http://relay.test/.well-known/oauth-protected-resource/mcp";
const ISSUER: &str = "mcp-relay";
const SECRET_ENV: &str = "MCP_RELAY_AUTH_IT_SECRET";
const VERSION: &str = "2025-06-18";

fn challenge() -> String {
    format!("Bearer resource_metadata=\"{METADATA}\"")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

fn permissions() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/permissions.json")
        .to_string_lossy()
        .into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// === Credentials ===

/// A `--config` file in its own directory, with an HS256 issuer (secret in a file next to it,
/// leeway 0 s so expiry tests need not wait 30 s) and whatever else the test adds.
struct Setup {
    secret: String,
    config: PathBuf,
}

impl Setup {
    /// `auth_keys`: extra lines inside `[auth]`; `tables`: extra tables after it.
    fn new(auth_keys: &str, tables: &str) -> Setup {
        let dir = tempdir();
        let out = Command::new(RELAY)
            .args(["token", "secret"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(secret.len() >= 32);
        let secret_file = dir.join("jwt.secret");
        std::fs::write(&secret_file, &secret).unwrap();
        let config = dir.join("relay.toml");
        let text = format!(
            "[auth]\nresource = \"{RESOURCE}\"\nauthorization_servers = [\"https://auth.test\"]\n\
             {auth_keys}\n\n[[auth.jwt]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\n\
             secret = \"file:{}\"\nleeway = \"0s\"\n\n{tables}\n",
            secret_file.display()
        );
        std::fs::write(&config, text).unwrap();
        Setup { secret, config }
    }

    /// `mcp-relay token jwt` for this issuer and our audience (`--expires-in 1h` unless given).
    fn mint(&self, user: &str, roles: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "token",
            "jwt",
            "--secret",
            "env:MCP_RELAY_AUTH_IT_SECRET",
            "--user",
            user,
            "--roles",
            roles,
        ];
        if !extra.contains(&"--audience") {
            args.extend_from_slice(&["--audience", RESOURCE]);
        }
        if !extra.contains(&"--expires-in") {
            args.extend_from_slice(&["--expires-in", "1h"]);
        }
        args.extend_from_slice(extra);
        let out = Command::new(RELAY)
            .args(&args)
            .env(SECRET_ENV, &self.secret)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// An HS256 token with any header and claims, signed with this issuer's secret.
    fn hs256(&self, header: Value, claims: &Value) -> String {
        sign(
            header,
            claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
            Algorithm::HS256,
        )
    }

    fn serve(&self, extra: &[&str], record: Option<&Path>) -> Relay {
        serve(&self.config, extra, record)
    }
}

/// `mcp-relay token key ARGS`: the key and its `[[auth.api_keys]]` block.
fn api_key(args: &[&str]) -> (String, String) {
    crate::support::mint_api_key(args)
}

/// `serve --listen 127.0.0.1:0 --resource RESOURCE --config FILE EXTRA -- fixture [--record]`.
fn serve(config: &Path, extra: &[&str], record: Option<&Path>) -> Relay {
    let config = config.to_str().unwrap();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        RESOURCE,
        "--config",
        config,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", FIXTURE]);
    if let Some(r) = record {
        args.extend_from_slice(&["--record", r.to_str().unwrap()]);
    }
    Relay::start_raw(&args)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A compact JWS with exactly this header (nothing added), signed with `key`.
fn sign(header: Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(&header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

/// Claims that pass every check of the HS256 issuer.
fn claims(sub: &str) -> Value {
    let t = now();
    json!({"sub": sub, "roles": ["user"], "iss": ISSUER, "aud": RESOURCE,
        "iat": t, "nbf": t, "exp": t + 3600})
}

fn hs_header() -> Value {
    json!({"alg": "HS256", "typ": "at+jwt"})
}

/// An RS256 issuer trusting the fixture RSA key; returns the key's path and the setup.
fn rs256_setup() -> (PathBuf, Setup) {
    let public = fixtures().join("rsa_public.pem");
    let tables = format!(
        "[[auth.jwt]]\nissuer = \"rs-issuer\"\nalgorithms = [\"RS256\"]\npublic_keys = [\"{}\"]\n",
        public.display()
    );
    (public, Setup::new("", &tables))
}

// === Requests and checks ===

fn auth(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// POST `initialize` to `url` with these headers.
async fn post_init(url: &str, headers: &[(&str, String)]) -> reqwest::Response {
    post_json(url, headers, init_request(json!(0), VERSION)).await
}

async fn post_json(url: &str, headers: &[(&str, String)], body: Value) -> reqwest::Response {
    let mut b = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(body.to_string());
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.send().await.unwrap()
}

/// A Streamable HTTP client sending `headers` with every request.
fn client(relay: &Relay, headers: &[(&str, String)]) -> crate::support::Client {
    let mut c = relay.client();
    c.extra = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    c
}

/// A session that initializes and answers an `echo` call.
async fn works(relay: &Relay, headers: &[(&str, String)], what: &str) -> crate::support::Client {
    let mut c = client(relay, headers);
    c.initialize(VERSION).await;
    let reply = c.call(json!(1), "echo", json!({"text": what})).await;
    assert_eq!(reply.status, 200, "{what}: {reply:?}");
    assert_eq!(text_of(&reply.messages()[0]), what, "{reply:?}");
    c
}

/// 401, the metadata challenge (`invalid` adds `error="invalid_token"`), body -31001.
async fn expect_401(res: reqwest::Response, invalid: bool, what: &str) {
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await.unwrap_or_default();
    check_401(status, &www, &body, invalid, what);
}

fn check_401(status: u16, www: &str, body: &str, invalid: bool, what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    if invalid {
        assert!(www.starts_with("Bearer "), "{what}: {www}");
        assert!(www.contains("error=\"invalid_token\""), "{what}: {www}");
        assert!(
            www.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{what}: {www}"
        );
    } else {
        assert_eq!(www, challenge(), "{what}");
    }
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: body {body:?}: {e}"));
    assert_eq!(v["jsonrpc"], "2.0", "{what}: {body}");
    assert_eq!(v["error"]["code"], -31001, "{what}: {body}");
    assert_eq!(v["error"]["data"]["source"], "mcp-relay", "{what}: {body}");
}

/// Polls `initialize` with `headers` until it is refused (401), or patience runs out.
async fn until_refused(url: &str, headers: &[(&str, String)], what: &str) -> Instant {
    let deadline = Instant::now() + patience();
    loop {
        let res = post_init(url, headers).await;
        if res.status() == 401 {
            expect_401(res, true, what).await;
            return Instant::now();
        }
        assert_eq!(res.status(), 200, "{what}");
        assert!(Instant::now() < deadline, "{what}: never refused");
        // The poll interval of a wait on a condition; each probe starts a session (and a
        // child), so it is not `poll_until`'s faster one.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lines_of(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

// --- Connection-oriented fronts ---

fn call(tool: &str, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":tool,"arguments":{"text":text}}})
}

/// initialize, initialized, `echo` on any message-per-unit front → the echoed text.
async fn echo_over(c: &mut impl Conn, text: &str) -> String {
    let init = c.initialize(VERSION).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-relay-fixture");
    c.send(call("echo", text)).await;
    text_of(&c.answer(&json!(1)).await)
}

fn claim_exp(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_u64().unwrap()
}

mod algorithms;
mod api_keys;
mod audience;
mod claims;
mod connections;
mod mtls;
mod routes;
mod scopes;
mod sessions;
mod sources;
