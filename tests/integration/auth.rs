//! Authentication end to end (SECURITY.md §3, §4, §5, §8.A, §8.G3): the real relay with API
//! keys, JWT issuers and mTLS configured through `--config`, credentials minted by
//! `mcp-relay token`, every front (Streamable HTTP, legacy SSE, WebSocket, TCP, admin routes)
//! driven over a real socket, and the fixture child's stdin recorded to prove what reached it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    children_of, init_request, patience, tempdir, text_of, wait_recorded, Relay, ACCEPT_BOTH,
    FIXTURE, RELAY,
};
use crate::transports::{self, tcp_addr, ws_url, WsStream};

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
    let out = Command::new(RELAY)
        .args(["token", "key"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().trim().to_owned();
    assert!(key.starts_with("mcpr_"), "{text}");
    let at = text.find("[[auth.api_keys]]").expect("no config block");
    (key, text[at..].to_owned())
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

struct Lines {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Lines {
    async fn connect(addr: &str) -> Lines {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (r, w) = tcp.into_split();
        Lines {
            read: BufReader::new(r),
            write: w,
        }
    }

    async fn send(&mut self, text: &str) {
        self.write.write_all(text.as_bytes()).await.unwrap();
        self.write.write_all(b"\n").await.unwrap();
        self.write.flush().await.unwrap();
    }

    /// Writing after the relay closed may fail; either way is fine.
    async fn try_send(&mut self, text: &str) {
        let _ = self.write.write_all(format!("{text}\n").as_bytes()).await;
        let _ = self.write.flush().await;
    }

    /// The next line as JSON, `None` at EOF (or a reset).
    async fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(patience(), self.read.read_line(&mut line))
            .await
            .expect("tcp read timeout")
        {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    async fn until_id(&mut self, id: &Value) -> Value {
        loop {
            let v = self.next().await.expect("tcp connection ended");
            if &v["id"] == id && v.get("method").is_none() {
                return v;
            }
        }
    }

    /// initialize, initialized, `echo` → the echoed text.
    async fn echo(&mut self, text: &str) -> String {
        self.send(&init_request(json!(0), VERSION).to_string())
            .await;
        let init = self.until_id(&json!(0)).await;
        assert_eq!(init["result"]["serverInfo"]["name"], "mcp-relay-fixture");
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        self.send(&call("echo", text).to_string()).await;
        text_of(&self.until_id(&json!(1)).await)
    }
}

fn call(tool: &str, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":tool,"arguments":{"text":text}}})
}

fn ws_request(
    relay: &Relay,
    headers: &[(&str, String)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = ws_url(relay).into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    req
}

/// The next text message as JSON; `None` once the connection closed.
async fn ws_next(ws: &mut WsStream) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(patience(), ws.next())
            .await
            .expect("ws read timeout");
        match m {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

async fn ws_until_id(ws: &mut WsStream, id: &Value) -> Value {
    loop {
        let v = ws_next(ws).await.expect("ws connection ended");
        if &v["id"] == id && v.get("method").is_none() {
            return v;
        }
    }
}

async fn ws_echo(ws: &mut WsStream, text: &str) -> String {
    let init = init_request(json!(0), VERSION).to_string();
    ws.send(Message::text(init)).await.unwrap();
    let init = ws_until_id(ws, &json!(0)).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-relay-fixture");
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(call("echo", text).to_string()))
        .await
        .unwrap();
    text_of(&ws_until_id(ws, &json!(1)).await)
}

async fn tcp_listening(relay: &Relay) -> String {
    crate::support::eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    tcp_addr(relay)
}

// === A1: every route needs a credential ===

#[tokio::test]
async fn a1_every_route_without_credentials_is_401_with_metadata_challenge() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], Some(&record));
    let http = reqwest::Client::new();
    let base = relay.base.clone();
    let init = init_request(json!(0), VERSION).to_string();
    let tool = call("echo", "leak").to_string();
    let json_post = |url: String, body: &str| {
        http.post(url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .body(body.to_owned())
    };
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("POST /mcp initialize", json_post(relay.url.clone(), &init)),
        (
            "POST /mcp tools/call in a made-up session",
            json_post(relay.url.clone(), &tool)
                .header("mcp-session-id", "0123456789abcdef0123456789abcdef")
                .header("mcp-protocol-version", VERSION),
        ),
        (
            "GET /mcp",
            http.get(&relay.url).header("accept", "text/event-stream"),
        ),
        (
            "DELETE /mcp",
            http.delete(&relay.url)
                .header("mcp-session-id", "0123456789abcdef0123456789abcdef"),
        ),
        ("PUT /mcp", http.put(&relay.url).body(init.clone())),
        (
            "GET /sse",
            http.get(format!("{base}/sse"))
                .header("accept", "text/event-stream"),
        ),
        (
            "POST /message",
            json_post(format!("{base}/message?sessionId=x"), &tool),
        ),
        ("GET /health", http.get(format!("{base}/health"))),
        ("GET /ready", http.get(format!("{base}/ready"))),
        ("GET /nonexistent", http.get(format!("{base}/nonexistent"))),
        (
            "GET /ws without upgrade headers",
            http.get(format!("{base}/ws")),
        ),
    ];
    for (what, req) in cases {
        let res = tokio::time::timeout(patience(), req.send())
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer"))
            .unwrap();
        expect_401(res, false, what).await;
    }

    // WebSocket upgrade: 401 with the challenge, never 101.
    let err = tokio_tungstenite::connect_async(ws_request(&relay, &[]))
        .await
        .expect_err("websocket upgraded without credentials");
    let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
        panic!("websocket: not an HTTP refusal: {err}");
    };
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = String::from_utf8(res.body().clone().unwrap_or_default()).unwrap();
    check_401(
        res.status().as_u16(),
        &www,
        &body,
        false,
        "websocket upgrade",
    );

    // TCP: a first line that is not a credential gets one error line, then EOF.
    let addr = tcp_listening(&relay).await;
    for first in [
        init.as_str(),
        r#"{"authorization":"Bearer not-a-token"}"#,
        r#"{"x-api-key":"mcpr_unknown"}"#,
        "",
        "garbage",
    ] {
        let mut tcp = Lines::connect(&addr).await;
        tcp.send(first).await;
        if first.is_empty() {
            // An empty line is not a credential either (the relay may have closed already).
            tcp.try_send(&init).await;
        }
        let err = tcp.next().await.expect("no error line");
        assert_eq!(err["error"]["code"], -31001, "tcp {first:?}: {err}");
        assert_eq!(err["error"]["data"]["source"], "mcp-relay", "{err}");
        tcp.try_send(&tool).await;
        assert_eq!(tcp.next().await, None, "tcp {first:?}: not closed");
    }

    // Nothing of the above reached a child.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        lines_of(&record).is_empty(),
        "child stdin got: {:?}",
        lines_of(&record)
    );
    // Positive control: the record does catch what an authenticated caller sends.
    let token = setup.mint("alice", "user", &[]);
    works(&relay, &[auth(&token)], "control").await;
    wait_recorded(&record, "\"control\"", 1).await;
    let lines = lines_of(&record);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"method\":\"initialize\""))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("leak")), "{lines:?}");
}

#[tokio::test]
async fn a1_protected_resource_metadata_is_public_and_as_configured() {
    let setup = Setup::new("scopes_supported = [\"mcp\", \"mcp:admin\"]", "");
    let relay = setup.serve(&[], None);
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = http
            .get(format!("{}{path}", relay.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["resource"], RESOURCE, "{doc}");
        assert_eq!(doc["authorization_servers"], json!(["https://auth.test"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["scopes_supported"], json!(["mcp", "mcp:admin"]));
    }
    // Another resource's metadata path is not served.
    let other = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/other",
            relay.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

// === A2: algorithm confusion ===

fn rs256_setup() -> (PathBuf, Setup) {
    let public = fixtures().join("rsa_public.pem");
    let tables = format!(
        "[[auth.jwt]]\nissuer = \"rs-issuer\"\nalgorithms = [\"RS256\"]\npublic_keys = [\"{}\"]\n",
        public.display()
    );
    (public, Setup::new("", &tables))
}

#[tokio::test]
async fn a2_alg_none_is_401_invalid_token() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let body = b64(&claims("mallory"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("alg {alg}")).await;
        }
    }
    // The same claims, properly signed, pass (the claims were not the problem).
    let good = setup.hs256(hs_header(), &claims("mallory"));
    assert_eq!(post_init(&relay.url, &[auth(&good)]).await.status(), 200);
}

#[tokio::test]
async fn a2_hs256_signed_with_our_rsa_public_key_is_401_and_rs256_is_200() {
    let (public, setup) = rs256_setup();
    let relay = setup.serve(&[], None);
    let mut rs_claims = claims("svc");
    rs_claims["iss"] = json!("rs-issuer");
    let pem = std::fs::read(&public).unwrap();
    let der = std::fs::read(fixtures().join("rsa_public.der")).unwrap();
    let jwk = std::fs::read(fixtures().join("rsa_public.jwk.json")).unwrap();
    let pem_trimmed = String::from_utf8(pem.clone()).unwrap().trim().to_owned();
    for (what, key) in [
        ("pem", pem.clone()),
        ("pem without newline", pem_trimmed.into_bytes()),
        ("der", der),
        ("jwk", jwk),
    ] {
        for header in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT", "kid": "rsa"}),
        ] {
            let token = sign(
                header,
                &rs_claims,
                &EncodingKey::from_secret(&key),
                Algorithm::HS256,
            );
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("HS256 with the public key ({what})")).await;
        }
    }
    // A genuine RS256 token from `token jwt --key-file` is accepted.
    let out = Command::new(RELAY)
        .args(["token", "jwt", "--key-file"])
        .arg(fixtures().join("rsa_private.pem"))
        .args([
            "--alg",
            "RS256",
            "--issuer",
            "rs-issuer",
            "--user",
            "svc",
            "--roles",
            "user",
            "--expires-in",
            "1h",
            "--audience",
            RESOURCE,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    works(&relay, &[auth(&token)], "rs256").await;
    // Signed by another RSA key: refused.
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let forged = sign(
        json!({"alg": "RS256", "typ": "at+jwt"}),
        &rs_claims,
        &other,
        Algorithm::RS256,
    );
    expect_401(
        post_init(&relay.url, &[auth(&forged)]).await,
        true,
        "RS256 by another key",
    )
    .await;
}

// === A3: audience, expiry, nbf, issuer ===

#[tokio::test]
async fn a3_wrong_or_missing_audience_is_401_and_an_array_holding_ours_is_200() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let mut cases = Vec::new();
    let mut c = claims("alice");
    c["aud"] = json!("https://evil.example/api");
    cases.push(("other audience", setup.hs256(hs_header(), &c)));
    c.as_object_mut().unwrap().remove("aud");
    cases.push(("missing aud", setup.hs256(hs_header(), &c)));
    for aud in [
        json!([]),
        json!(null),
        json!(42),
        json!(["http://relay.test/mcp/"]),
    ] {
        c["aud"] = aud;
        cases.push(("odd aud", setup.hs256(hs_header(), &c)));
    }
    cases.push((
        "token for another relay instance",
        setup.mint("alice", "user", &["--audience", "http://other.test/mcp"]),
    ));
    cases.push((
        "audience of a relay on another port",
        setup.mint(
            "alice",
            "user",
            &["--audience", "http://127.0.0.1:8080/mcp"],
        ),
    ));
    for (what, token) in &cases {
        expect_401(post_init(&relay.url, &[auth(token)]).await, true, what).await;
    }
    c["aud"] = json!(["http://other.test/mcp", RESOURCE]);
    let array = setup.hs256(hs_header(), &c);
    works(&relay, &[auth(&array)], "aud array").await;
}

#[tokio::test]
async fn a3_expired_future_nbf_and_wrong_issuer_are_401() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    // Minted for two seconds: accepted now, refused once expired.
    let minted = Instant::now();
    let short = setup.mint("alice", "user", &["--expires-in", "2s"]);
    assert_eq!(post_init(&relay.url, &[auth(&short)]).await.status(), 200);
    let refused = until_refused(&relay.url, &[auth(&short)], "expired token").await;
    assert!(
        refused.duration_since(minted) >= Duration::from_millis(900),
        "refused too early"
    );
    // The shortest lifetime, as the CLI mints it: refused after at most a second.
    let one = setup.mint("alice", "user", &["--expires-in", "1s"]);
    until_refused(&relay.url, &[auth(&one)], "1s token").await;

    let t = now();
    let mut c = claims("alice");
    c["exp"] = json!(t - 120);
    c["iat"] = json!(t - 3600);
    c["nbf"] = json!(t - 3600);
    let expired = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c["nbf"] = json!(t + 600);
    let future = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    let no_exp = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("iss");
    let no_iss = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c["iss"] = json!("mcp-relay ");
    let near_iss = setup.hs256(hs_header(), &c);
    let issuer = setup.mint("alice", "user", &["--issuer", "https://evil.example"]);
    for (what, token) in [
        ("expired two minutes ago", expired),
        ("nbf ten minutes ahead", future),
        ("no exp", no_exp),
        ("no iss", no_iss),
        ("issuer with a trailing space", near_iss),
        ("wrong issuer", issuer),
    ] {
        expect_401(post_init(&relay.url, &[auth(&token)]).await, true, what).await;
    }
}

// === A4: where credentials may come from, and what headers may not do ===

#[tokio::test]
async fn a4_credentials_in_the_query_string_are_401_even_when_valid() {
    let (key, block) = api_key(&["--id", "ci", "--principal", "ci-bot", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&[], Some(&record));
    let token = setup.mint("alice", "user", &[]);
    // Both credentials are valid where they belong.
    works(&relay, &[("x-api-key", key.clone())], "key ok").await;
    works(&relay, &[auth(&token)], "jwt ok").await;
    let init = init_request(json!(0), VERSION);
    for (what, query, headers) in [
        ("api_key", format!("api_key={key}"), vec![]),
        ("access_token", format!("access_token={token}"), vec![]),
        ("Access_Token", format!("x=1&Access_Token={token}"), vec![]),
        (
            "access_token beside a valid header",
            format!("access_token={token}"),
            vec![auth(&token)],
        ),
        (
            "api_key beside a valid header",
            format!("api_key={key}"),
            vec![("x-api-key", key.clone())],
        ),
    ] {
        let url = format!("{}?{query}", relay.url);
        expect_401(post_json(&url, &headers, init.clone()).await, true, what).await;
    }
    // The legacy message route too.
    let url = format!("{}/message?sessionId=x&api_key={key}", relay.base);
    expect_401(
        post_json(&url, &[], call("echo", "q")).await,
        true,
        "/message?api_key",
    )
    .await;
    // Refused requests reached no child, and no key text is in the logs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        lines_of(&record)
            .iter()
            .filter(|l| l.contains("\"method\":\"initialize\""))
            .count(),
        2
    );
    let logs = relay.logs();
    assert!(!logs.contains(&key), "api key in the relay log");
    assert!(!logs.contains(&token), "token in the relay log");
}

#[tokio::test]
async fn a4_kid_with_path_or_sql_text_is_401() {
    let (public, rs) = rs256_setup();
    let relay = rs.serve(&[], None);
    let hostname = std::fs::read("/etc/hostname").unwrap_or_default();
    let pem = std::fs::read(&public).unwrap();
    let public_path = public.to_str().unwrap();
    let cases: Vec<(&str, &[u8])> = vec![
        ("/dev/null", b"".as_slice()),
        ("../../../../../../../../dev/null", b"".as_slice()),
        ("/etc/hostname", hostname.as_slice()),
        (public_path, pem.as_slice()),
        ("../rsa_public.pem", pem.as_slice()),
        ("x' UNION SELECT 'attacker' -- ", b"attacker".as_slice()),
        ("1; DROP TABLE keys; --", b"attacker".as_slice()),
        ("\" OR \"\"=\"", b"attacker".as_slice()),
    ];
    for iss in [ISSUER, "rs-issuer"] {
        for (kid, key) in &cases {
            let mut c = claims("mallory");
            c["iss"] = json!(iss);
            let token = sign(
                json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                &c,
                &EncodingKey::from_secret(key),
                Algorithm::HS256,
            );
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("{iss} kid {kid:?}")).await;
        }
    }
    // RS256 by another key with a kid naming a file: still refused.
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let mut c = claims("mallory");
    c["iss"] = json!("rs-issuer");
    let token = sign(
        json!({"alg": "RS256", "kid": fixtures().join("rsa2_public.pem")}),
        &c,
        &other,
        Algorithm::RS256,
    );
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "rs256 kid path",
    )
    .await;
    // The relay is still there and still accepts good tokens.
    let good = rs.mint("alice", "user", &[]);
    works(&relay, &[auth(&good)], "after kid probes").await;
}

#[tokio::test]
async fn a4_jku_and_x5u_headers_are_401_and_never_fetched() {
    let watch = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    watch.set_nonblocking(true).unwrap();
    let at = watch.local_addr().unwrap();
    let (_, rs) = rs256_setup();
    let relay = rs.serve(&[], None);
    let attacker =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let jku = format!("http://{at}/jwks.json");
    let x5u = format!("http://{at}/cert.pem");
    let mut c = claims("mallory");
    c["iss"] = json!("rs-issuer");
    let headers = [
        json!({"alg": "RS256", "typ": "at+jwt", "jku": jku}),
        json!({"alg": "RS256", "typ": "at+jwt", "jku": jku, "kid": "attacker"}),
        json!({"alg": "RS256", "typ": "at+jwt", "x5u": x5u}),
        json!({"alg": "RS256", "typ": "at+jwt", "x5u": x5u, "jku": jku, "kid": "k"}),
    ];
    for header in headers {
        let token = sign(header.clone(), &c, &attacker, Algorithm::RS256);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &header.to_string(),
        )
        .await;
    }
    // The HMAC issuer ignores them as well.
    for header in [
        json!({"alg": "HS256", "jku": jku}),
        json!({"alg": "HS256", "x5u": x5u}),
    ] {
        let token = sign(
            header.clone(),
            &claims("mallory"),
            &EncodingKey::from_secret(b"attacker-chosen-secret-of-32-bytes!!"),
            Algorithm::HS256,
        );
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &header.to_string(),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    match watch.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the relay connected to the jku/x5u listener: {other:?}"),
    }
}

// === A5: credentials never reach the child ===

#[tokio::test]
async fn a5_bearer_token_api_key_and_cookie_never_reach_the_child() {
    let (key, block) = api_key(&["--id", "a5", "--principal", "bob", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let record = tempdir().join("stdin.log");
    let audit = tempdir().join("audit.log");
    let relay = setup.serve(&["--audit-log", audit.to_str().unwrap()], Some(&record));
    let token = setup.mint("alice", "user", &[]);
    let cookie = "session=COOKIE-SECRET-4f1d2c";
    let signature = token.rsplit('.').next().unwrap().to_owned();
    works(
        &relay,
        &[auth(&token), ("cookie", cookie.to_owned())],
        "a5-jwt",
    )
    .await;
    works(
        &relay,
        &[("x-api-key", key.clone()), ("cookie", cookie.to_owned())],
        "a5-key",
    )
    .await;
    wait_recorded(&record, "a5-jwt", 1).await;
    wait_recorded(&record, "a5-key", 1).await;
    let secrets = [
        token.as_str(),
        signature.as_str(),
        key.as_str(),
        "COOKIE-SECRET-4f1d2c",
        setup.secret.as_str(),
    ];
    let stdin = std::fs::read_to_string(&record).unwrap();
    let children = children_of(relay.pid());
    assert!(!children.is_empty(), "no child to inspect");
    let mut places = vec![("child stdin".to_owned(), stdin.into_bytes())];
    for pid in children {
        for file in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            places.push((format!("/proc/{pid}/{file}"), bytes));
        }
    }
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "{place} holds a credential ({})",
                &s[..8]
            );
        }
    }
    let logs = relay.logs();
    for s in secrets {
        assert!(
            !logs.contains(s),
            "relay log holds a credential ({})",
            &s[..8]
        );
    }
    // The audit log names the key by id and holds no credential, also for a refusal.
    let wrong = format!("{}x", &token[..token.len() - 1]);
    expect_401(
        post_init(&relay.url, &[auth(&wrong)]).await,
        true,
        "tampered",
    )
    .await;
    crate::support::eventually("audit written", || {
        let a = std::fs::read_to_string(&audit).unwrap_or_default();
        a.contains("\"key_id\":\"a5\"") && a.contains("\"decision\"") && a.lines().count() >= 5
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    for s in secrets.iter().chain([&wrong.as_str()]) {
        assert!(
            !text.contains(s),
            "audit log holds a credential ({})",
            &s[..8]
        );
    }
}

// === A6: a session is not authentication ===

#[tokio::test]
async fn a6_session_of_another_principal_is_404_and_without_token_401() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&["--roles", &permissions()], Some(&record));
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let a = works(&relay, &[auth(&alice)], "alice").await;
    let session = a.session.clone().expect("no session id");

    let mut b = client(&relay, &[auth(&bob)]);
    b.session = Some(session.clone());
    b.version = a.version.clone();
    let reply = b
        .call(json!(1), "echo", json!({"text": "bob-was-here"}))
        .await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], -31003, "{reply:?}");
    let get = b.get(None).await;
    assert_eq!(get.status(), 404);
    assert_eq!(b.delete().await, 404);

    let mut anon = client(&relay, &[]);
    anon.session = Some(session.clone());
    anon.version = a.version.clone();
    let res = anon
        .post_builder()
        .body(call("echo", "anon-was-here").to_string())
        .send()
        .await
        .unwrap();
    expect_401(res, false, "no token with a session").await;
    let res = anon.request(reqwest::Method::DELETE).send().await.unwrap();
    expect_401(res, false, "DELETE without token").await;

    // Alice's session survived all of it; nothing of Bob's or the anonymous reached the child.
    let again = a
        .call(json!(2), "echo", json!({"text": "still-alice"}))
        .await;
    assert_eq!(text_of(&again.messages()[0]), "still-alice");
    wait_recorded(&record, "still-alice", 1).await;
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("bob-was-here") && !stdin.contains("anon-was-here"));
}

#[tokio::test]
async fn a6_role_change_applies_on_the_next_request() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    // The seed's roles plus one that may call tools but not `echo`.
    let mut roles: Value =
        serde_json::from_str(&std::fs::read_to_string(permissions()).unwrap()).unwrap();
    roles["noecho"] = json!({"allowedMethods": ["tools/call", "*/list"],
        "tools": {"deny": ["echo"]}});
    let roles_file = tempdir().join("roles.json");
    std::fs::write(&roles_file, roles.to_string()).unwrap();
    let relay = setup.serve(&["--roles", roles_file.to_str().unwrap()], Some(&record));
    let user = setup.mint("alice", "user", &[]);
    let readonly = setup.mint("alice", "readonly", &[]);
    let noecho = setup.mint("alice", "noecho", &[]);
    let mut a = works(&relay, &[auth(&user)], "as-user").await;
    let bearer = |t: &str| vec![("authorization".to_owned(), format!("Bearer {t}"))];

    // Same sub, same session, a token with another role: its roles apply at once.
    a.extra = bearer(&noecho);
    let reply = a.call(json!(2), "echo", json!({"text": "as-noecho"})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let msg = &reply.messages()[0];
    assert_eq!(msg["id"], 2, "{msg}");
    assert_eq!(msg["error"]["code"], -32602, "{msg}");
    assert_eq!(msg["error"]["message"], "Unknown tool: echo", "{msg}");
    // `readonly` blocks tools/call itself: the answer for an unknown method (SECURITY.md §3).
    a.extra = bearer(&readonly);
    let reply = a
        .call(json!(3), "echo", json!({"text": "as-readonly"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let msg = &reply.messages()[0];
    assert_eq!(msg["id"], 3, "{msg}");
    assert_eq!(msg["error"]["code"], -32601, "{msg}");
    // Listing is still allowed for readonly.
    let list = a
        .post(json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .await;
    assert!(list.messages()[0]["result"]["tools"].is_array(), "{list:?}");
    // And back: the user token calls again in the same session.
    a.extra = bearer(&user);
    let reply = a
        .call(json!(5), "echo", json!({"text": "user-again"}))
        .await;
    assert_eq!(text_of(&reply.messages()[0]), "user-again");
    wait_recorded(&record, "user-again", 1).await;
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("as-readonly") && !stdin.contains("as-noecho"));
}

#[tokio::test]
async fn a6_conflicting_or_duplicate_credentials_are_401() {
    let (key, block) = api_key(&["--id", "k", "--principal", "alice", "--roles", "user"]);
    let (other_key, other_block) =
        api_key(&["--id", "k2", "--principal", "bob", "--roles", "user"]);
    let setup = Setup::new("", &format!("{block}\n{other_block}"));
    let relay = setup.serve(&[], None);
    let token = setup.mint("alice", "user", &[]);
    let token_b = setup.mint("bob", "user", &[]);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "bearer jwt and a different x-api-key",
            vec![auth(&token), ("x-api-key", key.clone())],
        ),
        (
            "bearer key and a different x-api-key",
            vec![auth(&key), ("x-api-key", other_key.clone())],
        ),
        ("the same token twice", vec![auth(&token), auth(&token)]),
        ("two different tokens", vec![auth(&token), auth(&token_b)]),
        (
            "two x-api-key headers",
            vec![("x-api-key", key.clone()), ("x-api-key", key.clone())],
        ),
    ];
    for (what, headers) in cases {
        expect_401(post_init(&relay.url, &headers).await, true, what).await;
    }
    // The same key in both places is one credential.
    works(
        &relay,
        &[auth(&key), ("x-api-key", key.clone())],
        "same key",
    )
    .await;
}

// === API keys ===

#[tokio::test]
async fn api_key_in_bearer_or_x_api_key_works_and_unknown_or_expired_is_401() {
    let (key, block) = api_key(&["--id", "ci", "--principal", "ci-bot", "--roles", "user"]);
    let (old, old_block) = api_key(&[
        "--id",
        "old",
        "--principal",
        "ci-bot",
        "--roles",
        "user",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    let (later, later_block) = api_key(&[
        "--id",
        "later",
        "--principal",
        "ci-bot",
        "--expires",
        "2999-01-01T00:00:00Z",
    ]);
    let (unknown, _) = api_key(&["--id", "nobody"]);
    let setup = Setup::new("", &format!("{block}\n{old_block}\n{later_block}"));
    let relay = setup.serve(&[], None);
    works(&relay, &[auth(&key)], "key as bearer").await;
    works(&relay, &[("x-api-key", key.clone())], "key as x-api-key").await;
    works(
        &relay,
        &[("X-Api-Key", later.clone())],
        "key with future expiry",
    )
    .await;
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (what, headers) in [
        ("unknown key (bearer)", vec![auth(&unknown)]),
        (
            "unknown key (x-api-key)",
            vec![("x-api-key", unknown.clone())],
        ),
        ("tampered key", vec![("x-api-key", tampered)]),
        (
            "key without prefix",
            vec![("x-api-key", key[5..].to_owned())],
        ),
        ("expired key (bearer)", vec![auth(&old)]),
        ("expired key (x-api-key)", vec![("x-api-key", old.clone())]),
        (
            "basic scheme",
            vec![("authorization", format!("Basic {key}"))],
        ),
    ] {
        expect_401(post_init(&relay.url, &headers).await, true, what).await;
    }
}

// === Scopes ===

#[tokio::test]
async fn scope_required_scope_missing_is_403_insufficient_scope_and_present_is_200() {
    let setup = Setup::new("required_scopes = [\"mcp\"]", "");
    let relay = setup.serve(&[], None);
    for extra in [&[][..], &["--scope", "mcp:read other"][..]] {
        let token = setup.mint("alice", "user", extra);
        let res = post_init(&relay.url, &[auth(&token)]).await;
        assert_eq!(res.status(), 403, "{extra:?}");
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.starts_with("Bearer "), "{www}");
        assert!(www.contains("error=\"insufficient_scope\""), "{www}");
        assert!(www.contains("scope=\"mcp\""), "{www}");
        assert!(
            www.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{www}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], -31002, "{body}");
    }
    let token = setup.mint("alice", "user", &["--scope", "mcp"]);
    works(&relay, &[auth(&token)], "scoped").await;
    let token = setup.mint("alice", "user", &["--scope", "openid mcp profile"]);
    works(&relay, &[auth(&token)], "scoped among others").await;
    // The metadata advertises the required scope.
    let doc: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        relay.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["scopes_supported"], json!(["mcp"]));
}

// === WebSocket and TCP ===

#[tokio::test]
async fn websocket_and_tcp_with_a_valid_credential_work_end_to_end() {
    let (key, block) = api_key(&["--id", "t", "--principal", "tcp-bot", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let token = setup.mint("alice", "user", &[]);
    let addr = tcp_listening(&relay).await;

    let (mut ws, res) = tokio_tungstenite::connect_async(ws_request(&relay, &[auth(&token)]))
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    assert_eq!(ws_echo(&mut ws, "over ws").await, "over ws");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(&relay, &[("x-api-key", key.clone())]))
            .await
            .unwrap();
    assert_eq!(ws_echo(&mut ws, "ws key").await, "ws key");
    // A bad token on the upgrade: 401 invalid_token, no 101.
    let err = tokio_tungstenite::connect_async(ws_request(&relay, &[auth("x.y.z")]))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
        panic!("{err}")
    };
    assert_eq!(res.status(), 401);

    for first in [
        json!({"authorization": format!("Bearer {token}")}),
        json!({"Authorization": format!("bearer {token}")}),
        json!({"x-api-key": key}),
    ] {
        let mut tcp = Lines::connect(&addr).await;
        tcp.send(&first.to_string()).await;
        assert_eq!(tcp.echo("over tcp").await, "over tcp", "{first}");
    }
    // The full transport scenario after the credential line.
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let line = json!({"authorization": format!("Bearer {token}")}).to_string() + "\n";
    w.write_all(line.as_bytes()).await.unwrap();
    let mut c = transports::Client::lines(Box::new(BufReader::new(r)), Box::new(w));
    transports::scenario(&mut c).await;
}

#[tokio::test]
async fn websocket_connection_is_closed_when_its_token_expires() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let token = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&token);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&relay, &[auth(&token)]))
        .await
        .unwrap();
    assert_eq!(ws_echo(&mut ws, "before expiry").await, "before expiry");
    let ended = loop {
        match ws_next(&mut ws).await {
            Some(_) => continue,
            None => break now(),
        }
    };
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    assert!(ended <= exp + 5, "closed at {ended}, long after exp {exp}");
}

#[tokio::test]
async fn tcp_connection_is_closed_when_its_token_expires() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let token = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&token);
    let mut tcp = Lines::connect(&addr).await;
    tcp.send(&json!({"authorization": format!("Bearer {token}")}).to_string())
        .await;
    assert_eq!(tcp.echo("before expiry").await, "before expiry");
    while tcp.next().await.is_some() {}
    let ended = now();
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    assert!(ended <= exp + 5, "closed at {ended}, long after exp {exp}");
}

fn claim_exp(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_u64().unwrap()
}

// === G3: mTLS ===

mod mtls {
    use super::*;
    use mcp_relay::tls::client::testing::{make_ca, make_client};

    struct Tls {
        relay: Relay,
        server_cert: Vec<u8>,
        ca: (String, String),
    }

    fn start() -> Tls {
        start_with(None, &[])
    }

    /// A TLS relay with `[auth.mtls]` (one mapped client, `svc`), optionally the HS256 issuer
    /// of `jwt` too, and `extra` flags.
    fn start_with(jwt: Option<&Setup>, extra: &[&str]) -> Tls {
        let dir = tempdir();
        let out = Command::new(RELAY)
            .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let ca = make_ca("auth-it client CA").unwrap();
        std::fs::write(dir.join("clients-ca.pem"), &ca.0).unwrap();
        let jwt_table = match jwt {
            Some(setup) => {
                let secret = dir.join("jwt.secret");
                std::fs::write(&secret, &setup.secret).unwrap();
                format!(
                    "[[auth.jwt]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\n\
                     secret = \"file:{}\"\n",
                    secret.display()
                )
            }
            None => String::new(),
        };
        let config = dir.join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "[auth]\nresource = \"{RESOURCE}\"\n\n[auth.mtls]\nca = \"clients-ca.pem\"\n\n\
                 [[auth.mtls.clients]]\nmatch = \"dns:client.example.com\"\nprincipal = \"svc\"\n\
                 roles = [\"user\"]\n\n{jwt_table}"
            ),
        )
        .unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let roles = permissions();
        let mut args = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--roles",
            roles.as_str(),
        ];
        args.extend_from_slice(extra);
        let relay = serve(&config, &args, None);
        assert!(relay.url.starts_with("https://"), "{}", relay.url);
        Tls {
            relay,
            server_cert: std::fs::read(&cert).unwrap(),
            ca,
        }
    }

    impl Tls {
        fn http(&self, identity: Option<(String, String)>) -> reqwest::Client {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&self.server_cert).unwrap());
            if let Some((cert, key)) = identity {
                let pem = format!("{cert}\n{key}");
                b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
            }
            b.build().unwrap()
        }

        fn client_cert(&self, sans: &[&str]) -> (String, String) {
            make_client(&self.ca.0, &self.ca.1, sans, None).unwrap()
        }

        async fn init(
            &self,
            identity: Option<(String, String)>,
        ) -> reqwest::Result<reqwest::Response> {
            self.http(identity)
                .post(&self.relay.url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .body(init_request(json!(0), VERSION).to_string())
                .send()
                .await
        }
    }

    #[tokio::test]
    async fn g3_mapped_client_certificate_is_200() {
        let tls = start();
        let id = tls.client_cert(&["dns:client.example.com"]);
        let mut c = crate::support::Client::new(&tls.relay.url);
        c.http = tls.http(Some(id));
        c.initialize(VERSION).await;
        let reply = c.call(json!(1), "echo", json!({"text": "mtls"})).await;
        assert_eq!(text_of(&reply.messages()[0]), "mtls");
        // DNS names match case-insensitively.
        let upper = tls.client_cert(&["dns:CLIENT.Example.COM"]);
        assert_eq!(tls.init(Some(upper)).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn g3_no_foreign_or_expired_certificate_fails_the_handshake() {
        let tls = start();
        let res = tls.init(None).await;
        assert!(res.is_err(), "no certificate: {res:?}");
        let foreign_ca = make_ca("auth-it client CA").unwrap();
        let foreign = make_client(
            &foreign_ca.0,
            &foreign_ca.1,
            &["dns:client.example.com"],
            None,
        )
        .unwrap();
        let res = tls.init(Some(foreign)).await;
        assert!(res.is_err(), "foreign CA: {res:?}");
        let past = time::OffsetDateTime::now_utc() - time::Duration::days(2);
        let expired = make_client(
            &tls.ca.0,
            &tls.ca.1,
            &["dns:client.example.com"],
            Some(past),
        )
        .unwrap();
        let res = tls.init(Some(expired)).await;
        assert!(res.is_err(), "expired: {res:?}");
        // The listener still serves good clients.
        let good = tls.client_cert(&["dns:client.example.com"]);
        assert_eq!(tls.init(Some(good)).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn g3_prefix_suffix_or_unmapped_san_is_403() {
        let tls = start();
        for sans in [
            &["dns:client.example.com.evil.org"][..],
            &["dns:evilclient.example.com"][..],
            &["dns:x.client.example.com"][..],
            &["dns:other.example.com"][..],
            &["email:client.example.com@evil.org"][..],
            &["uri:dns:client.example.com"][..],
        ] {
            let id = tls.client_cert(sans);
            let res = tls.init(Some(id)).await.unwrap();
            assert_eq!(res.status(), 403, "{sans:?}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], -31002, "{sans:?}: {body}");
        }
    }

    #[tokio::test]
    async fn g3_certificate_and_token_naming_different_principals_are_401() {
        let setup = Setup::new("", "");
        let tls = start_with(Some(&setup), &[]);
        let id = || Some(tls.client_cert(&["dns:client.example.com"]));
        let send = |identity, token: Option<String>| {
            let mut b = tls
                .http(identity)
                .post(&tls.relay.url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .body(init_request(json!(0), VERSION).to_string());
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            b.send()
        };
        let alice = setup.mint("alice", "user", &[]);
        let svc = setup.mint("svc", "user", &[]);
        expect_401(
            send(id(), Some(alice.clone())).await.unwrap(),
            true,
            "cert svc + token alice",
        )
        .await;
        expect_401(
            send(id(), Some("x.y.z".into())).await.unwrap(),
            true,
            "cert + bad token",
        )
        .await;
        assert_eq!(send(id(), Some(svc)).await.unwrap().status(), 200);
        assert_eq!(send(id(), None).await.unwrap().status(), 200);
    }

    fn tls_connector(tls: &Tls, identity: Option<(String, String)>) -> tokio_rustls::TlsConnector {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        mcp_relay::tls::install_provider();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&tls.server_cert) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
    }

    #[tokio::test]
    async fn g3_tls_tcp_mapped_certificate_needs_no_credential_line_and_unmapped_is_refused() {
        let tls = start_with(None, &["--tcp-listen", "127.0.0.1:0"]);
        crate::support::eventually("tls listening", || tls.relay.logs().contains("url=tls://"))
            .await;
        let logs = tls.relay.logs();
        let at = logs.find("url=tls://").unwrap() + 10;
        let addr = logs[at..].split_whitespace().next().unwrap().to_owned();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

        let good = tls_connector(&tls, Some(tls.client_cert(&["dns:client.example.com"])));
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let stream = good.connect(name.clone(), tcp).await.unwrap();
        let (r, w) = tokio::io::split(stream);
        let mut c = transports::Client::lines(Box::new(BufReader::new(r)), Box::new(w));
        transports::scenario(&mut c).await;

        // An unmapped certificate: one -31002 error line, then the connection closes.
        let bad = tls_connector(
            &tls,
            Some(tls.client_cert(&["dns:client.example.com.evil.org"])),
        );
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let stream = bad.connect(name.clone(), tcp).await.unwrap();
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        let _ = w
            .write_all(format!("{}\n", init_request(json!(0), VERSION)).as_bytes())
            .await;
        let mut line = String::new();
        tokio::time::timeout(patience(), r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        let err: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(err["error"]["code"], -31002, "{err}");
        line.clear();
        let n = tokio::time::timeout(patience(), r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "not closed: {line}");

        // No certificate: the handshake (or the first read) fails.
        let none = tls_connector(&tls, None);
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if let Ok(stream) = none.connect(name, tcp).await {
            let (r, mut w) = tokio::io::split(stream);
            let _ = w
                .write_all(format!("{}\n", init_request(json!(0), VERSION)).as_bytes())
                .await;
            let mut r = BufReader::new(r);
            let mut line = String::new();
            let read = tokio::time::timeout(patience(), r.read_line(&mut line))
                .await
                .unwrap();
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "answered without a cert: {line}"
            );
        }
    }
}

// === Legacy SSE and Streamable HTTP streams ===

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// `GET /sse` with `headers`: the event stream (endpoint read) and the message URL.
async fn legacy_open(relay: &Relay, headers: &[(&str, String)]) -> (Events, String) {
    use eventsource_stream::Eventsource;
    let mut b = reqwest::Client::new()
        .get(format!("{}/sse", relay.base))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let res = b.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut events: Events = Box::pin(res.bytes_stream().eventsource());
    let first = tokio::time::timeout(patience(), events.next())
        .await
        .expect("endpoint timeout")
        .expect("stream ended")
        .expect("sse error");
    assert_eq!(first.event, "endpoint");
    (events, format!("{}{}", relay.base, first.data))
}

/// Reads until the stream ends; the time (s) it ended, or `None` if still open at `until`.
async fn stream_end(events: &mut Events, until: u64) -> Option<u64> {
    let left = Duration::from_secs(until.saturating_sub(now()));
    let read = async {
        while let Some(Ok(_)) = events.next().await {}
        now()
    };
    tokio::time::timeout(left, read).await.ok()
}

#[tokio::test]
async fn a6_legacy_sse_connection_is_bound_to_its_principal_and_closed_at_expiry() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&[], Some(&record));
    let alice = setup.mint("alice", "user", &["--expires-in", "4s"]);
    let exp = claim_exp(&alice);
    let bob = setup.mint("bob", "user", &[]);
    let (mut events, endpoint) = legacy_open(&relay, &[auth(&alice)]).await;
    let init = init_request(json!(0), VERSION);
    let res = post_json(&endpoint, &[auth(&alice)], init).await;
    assert_eq!(res.status(), 202);
    // Bob cannot post into Alice's connection; nobody can without a credential.
    let res = post_json(&endpoint, &[auth(&bob)], call("echo", "bob-sse")).await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31003, "{body}");
    expect_401(
        post_json(&endpoint, &[], call("echo", "anon-sse")).await,
        false,
        "legacy post without token",
    )
    .await;
    let res = post_json(&endpoint, &[auth(&alice)], call("echo", "alice-sse")).await;
    assert_eq!(res.status(), 202);
    wait_recorded(&record, "alice-sse", 1).await;
    let ended = stream_end(&mut events, exp + 10)
        .await
        .expect("legacy stream still open 10 s after exp");
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("bob-sse") && !stdin.contains("anon-sse"));
}

#[tokio::test]
async fn a6_legacy_sse_stream_without_a_session_is_closed_at_expiry() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let alice = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&alice);
    let (mut events, _) = legacy_open(&relay, &[auth(&alice)]).await;
    let ended = stream_end(&mut events, exp + 8).await;
    assert!(ended.is_some(), "legacy stream still open 8 s after exp");
}

#[tokio::test]
async fn a6_streamable_http_get_stream_is_closed_when_its_token_expires() {
    use eventsource_stream::Eventsource;
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let alice = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&alice);
    let mut c = client(&relay, &[auth(&alice)]);
    c.initialize(VERSION).await;
    let res = c.get(None).await;
    assert_eq!(res.status(), 200);
    let mut events: Events = Box::pin(res.bytes_stream().eventsource());
    let ended = stream_end(&mut events, exp + 8).await;
    assert!(ended.is_some(), "GET stream still open 8 s after exp");
}

#[tokio::test]
async fn api_key_expiring_during_a_tcp_connection_closes_it() {
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let soon = soon
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let exp = time::OffsetDateTime::parse(&soon, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as u64;
    let (key, block) = api_key(&["--id", "soon", "--principal", "p", "--expires", &soon]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let mut tcp = Lines::connect(&addr).await;
    tcp.send(&json!({"x-api-key": key}).to_string()).await;
    assert_eq!(tcp.echo("key before expiry").await, "key before expiry");
    while tcp.next().await.is_some() {}
    let ended = now();
    assert!(ended >= exp, "closed at {ended}, before expiry {exp}");
    assert!(
        ended <= exp + 5,
        "closed at {ended}, long after expiry {exp}"
    );
    expect_401(
        post_init(&relay.url, &[("x-api-key", key.clone())]).await,
        true,
        "expired key over http",
    )
    .await;
}

/// The first TCP line's verdict for `line`: the first message back and whether it closed.
async fn tcp_first_line(addr: &str, line: &str) -> (Value, bool) {
    let mut tcp = Lines::connect(addr).await;
    tcp.send(line).await;
    tcp.try_send(&init_request(json!(0), VERSION).to_string())
        .await;
    let first = tcp.next().await.expect("no answer");
    let closed = first.get("error").is_some() && tcp.next().await.is_none();
    (first, closed)
}

#[tokio::test]
async fn a6_tcp_credential_line_with_two_disagreeing_credentials_is_refused() {
    let (key, block) = api_key(&["--id", "k", "--principal", "alice", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let alice = setup.mint("alice", "user", &[]);
    let line = json!({"authorization": format!("Bearer {alice}"), "x-api-key": key}).to_string();
    let (first, closed) = tcp_first_line(&addr, &line).await;
    assert_eq!(first["error"]["code"], -31001, "{first}");
    assert!(closed);
}

#[tokio::test]
async fn a6_tcp_credential_line_with_duplicate_authorization_keys_is_refused() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let mut failures = Vec::new();
    for (what, line) in [
        (
            "Authorization and authorization naming different principals",
            format!(r#"{{"Authorization":"Bearer {alice}","authorization":"Bearer {bob}"}}"#),
        ),
        (
            "authorization twice, different principals",
            format!(r#"{{"authorization":"Bearer {alice}","authorization":"Bearer {bob}"}}"#),
        ),
        (
            "authorization twice, a garbage value first",
            format!(r#"{{"authorization":"Bearer junk","authorization":"Bearer {bob}"}}"#),
        ),
    ] {
        let (first, closed) = tcp_first_line(&addr, &line).await;
        if first["error"]["code"] != -31001 || !closed {
            failures.push(format!("{what}: {first}"));
        }
    }
    assert!(failures.is_empty(), "accepted: {failures:#?}");
}

#[tokio::test]
async fn b6_missing_roles_claim_denies_and_a_malformed_one_is_401() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&["--roles", &permissions()], Some(&record));
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("roles");
    let no_roles = setup.hs256(hs_header(), &c);
    let mut a = client(&relay, &[auth(&no_roles)]);
    a.initialize(VERSION).await;
    let reply = a.call(json!(1), "echo", json!({"text": "no-roles"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -32601, "{reply:?}");
    let list = a
        .post(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    assert_eq!(list.messages()[0]["error"]["code"], -32601, "{list:?}");
    for roles in [
        json!(7),
        json!({"user": true}),
        json!([["user"]]),
        json!([1]),
    ] {
        let mut c = claims("alice");
        c["roles"] = roles.clone();
        let token = setup.hs256(hs_header(), &c);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &roles.to_string(),
        )
        .await;
    }
    for sub in [json!(null), json!(""), json!(42)] {
        let mut c = claims("alice");
        c["sub"] = sub.clone();
        let token = setup.hs256(hs_header(), &c);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &format!("sub {sub}"),
        )
        .await;
    }
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("sub");
    let token = setup.hs256(hs_header(), &c);
    expect_401(post_init(&relay.url, &[auth(&token)]).await, true, "no sub").await;
    // An ID token is not an access token.
    let token = setup.hs256(
        json!({"alg": "HS256", "typ": "id_token+jwt"}),
        &claims("alice"),
    );
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "id token typ",
    )
    .await;
    // Oversized token: refused before decoding.
    let mut c = claims("alice");
    c["pad"] = json!("x".repeat(9000));
    let token = setup.hs256(hs_header(), &c);
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "9 KB token",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!std::fs::read_to_string(&record)
        .unwrap_or_default()
        .contains("no-roles"));
}

#[tokio::test]
async fn a1_api_key_only_challenge_names_metadata_that_exists() {
    let (_, block) = api_key(&["--id", "only", "--roles", "user"]);
    let dir = tempdir();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!("[auth]\nresource = \"{RESOURCE}\"\n\n{block}"),
    )
    .unwrap();
    let relay = serve(&config, &[], None);
    let res = post_init(&relay.url, &[]).await;
    assert_eq!(res.status(), 401);
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    if www.contains("resource_metadata=") {
        // The advertised document must be there (same path on this listener).
        let path = METADATA.trim_start_matches("http://relay.test");
        let doc = reqwest::get(format!("{}{path}", relay.base)).await.unwrap();
        assert_eq!(
            doc.status(),
            200,
            "challenge {www} names a missing document"
        );
    }
}

/// The canonical URL cannot be guessed from port 0 (or 0.0.0.0): with JWT on, the relay
/// refuses to start without `--resource` instead of binding tokens to a wrong audience.
#[test]
fn a3_jwt_without_resource_on_an_ephemeral_port_is_a_usage_error() {
    let secret = Setup::new("", "");
    let file = tempdir().join("s");
    std::fs::write(&file, &secret.secret).unwrap();
    let out = std::process::Command::new(RELAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            &format!("file:{}", file.display()),
            "--",
            FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--resource"),
        "{out:?}"
    );
}

/// A loopback JWKS endpoint serving `body`; counts the requests it answered.
async fn jwks_server(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                loop {
                    use tokio::io::AsyncReadExt;
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let res = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(res.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a4_many_random_kids_cause_at_most_one_jwks_refresh() {
    use std::sync::atomic::Ordering;
    let mut jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("rsa_public.jwk.json")).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    let (url, hits) = jwks_server(json!({"keys": [jwk]}).to_string()).await;
    let tables = format!(
        "[[auth.jwt]]\nissuer = \"jwks-issuer\"\nalgorithms = [\"RS256\"]\njwks_url = \"{url}\"\n\
         jwks_refresh = \"30s\"\n"
    );
    let setup = Setup::new("", &tables);
    let relay = setup.serve(&[], None);
    let key =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa_private.pem")).unwrap())
            .unwrap();
    let mut c = claims("svc");
    c["iss"] = json!("jwks-issuer");
    // The known kid works (and loads the set).
    let good = sign(
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
        &c,
        &key,
        Algorithm::RS256,
    );
    works(&relay, &[auth(&good)], "jwks").await;
    let before = hits.load(Ordering::SeqCst);
    assert!(before >= 1, "the JWKS was never fetched");
    // 300 unknown kids, signed by the right key even: all refused, at most one refresh.
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let kid = format!("random-{i}-{}", rand_hex());
        let token = sign(
            json!({"alg": "RS256", "kid": kid}),
            &c,
            &key,
            Algorithm::RS256,
        );
        let http = http.clone();
        let url = relay.url.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("authorization", format!("Bearer {token}"))
                .body(init_request(json!(0), VERSION).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let refreshes = hits.load(Ordering::SeqCst) - before;
    assert!(
        refreshes <= 1,
        "{refreshes} JWKS refreshes for unknown kids"
    );
    // The known kid still works after the flood.
    works(&relay, &[auth(&good)], "jwks after").await;
}

fn rand_hex() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{n:08x}")
}
