//! `connect`'s link to the remote server (issue 14): credentials on every legacy SSE request,
//! a hostile SSE server that sends one huge line, and the cause of a failed link named to the
//! host and in the logs. Helpers (`Server`, `Bridge`, `raw_server_with`) are the parent's.

use super::*;

// Issue 14, bug 1: `--bearer-env` and an `Authorization` header reach a relay that requires
// them over legacy HTTP+SSE too (GET /sse and POST /message); on main both got 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_sends_authorization_over_legacy_sse() {
    let dir = tempdir();
    let (key, s) = keyed_server(&dir);
    let sse = format!("{}/sse", s.base);
    let env = "MCP_RELAY_BRIDGE_SSE_TOKEN";
    let header = format!("Authorization: Bearer {key}");
    let with_env = [(env, key.as_str())];
    let cases = [
        (["--bearer-env", env], &with_env[..]),
        (["--header", header.as_str()], &[][..]),
    ];
    for (creds, envs) in cases {
        let args = [&["--transport", "sse"][..], &creds[..], &[sse.as_str()][..]].concat();
        let mut b = Bridge::spawn_env(&args, envs, "debug");
        b.initialize().await;
        let r = b.call(json!(1), "echo", json!({"text": "sse-auth"})).await;
        assert_eq!(text_of(&r), "sse-auth", "{args:?}: {r}\n{}", b.stderr());
        let (code, _) = b.eof().await;
        assert_eq!(code, Some(0));
        assert!(!b.stderr().contains(&key), "key on stderr");
        b.assert_clean();
    }
}

/// A legacy SSE server that answers `tools/call` `flood` with one `bytes`-long data line on
/// its stream (no line end until the end), then the real answer; other calls are echoed.
async fn flooding_legacy_server(bytes: usize) -> String {
    let (push, pushes) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut flood = b"event: message\ndata: ".to_vec();
    flood.resize(bytes, b'x');
    flood.extend_from_slice(b"\n\n");
    let flood = Arc::new(flood);
    let (addr, _seen, _) = raw_server_with(
        Arc::new(move |req: &RawRequest| {
            if req.method == "GET" && req.path.starts_with("/sse") {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                            event: endpoint\ndata: /message?s=1\n\n";
                return (head.as_bytes().to_vec(), true);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let result = match v["method"].as_str().unwrap_or_default() {
                "initialize" => json!({"protocolVersion":"2024-11-05","capabilities":{"tools":{}},
                    "serverInfo":{"name":"flood","version":"1"}}),
                "tools/call" => {
                    if v["params"]["name"] == "flood" {
                        // Pushed in 8 KiB writes, like a server trickling one line.
                        for c in flood.chunks(8 << 10) {
                            let _ = push.send(c.to_vec());
                        }
                    }
                    json!({"content":[{"type":"text","text": v["params"]["arguments"]["text"]}]})
                }
                _ => json!({}),
            };
            if v.get("id").is_some() {
                let msg = json!({"jsonrpc":"2.0","id":v["id"],"result":result});
                let _ = push.send(format!("event: message\ndata: {msg}\n\n").into_bytes());
            }
            (http_response("202 Accepted", &[], b""), false)
        }),
        Some(pushes),
    )
    .await;
    format!("http://{addr}/sse")
}

// Issue 14, bug 11: one over-long SSE line is dropped in linear time and the stream goes on:
// the message after it still arrives and the bridge keeps answering. On main the link broke
// (and the answer after the flood was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_drops_a_huge_sse_line_and_keeps_the_stream() {
    let url = flooding_legacy_server(48 << 20).await;
    let mut b = Bridge::spawn(&["--transport", "sse", "--max-message", "1MiB", &url]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "flood", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let r = b.call(json!(1), "flood", json!({"text": "after"})).await;
    assert_eq!(text_of(&r), "after", "{r}\n{}", b.stderr());
    let r = b.call(json!(2), "echo", json!({"text": "still"})).await;
    assert_eq!(text_of(&r), "still", "{r}\n{}", b.stderr());
    assert!(b.stderr().contains("over the size cap"), "{}", b.stderr());
    assert!(b.alive());
    b.assert_clean();
}

/// The host's `initialize` fails: its error message, and the bridge's log.
async fn refused_initialize(args: &[&str]) -> (String, String) {
    let mut b = Bridge::spawn(args);
    let init = b.initialize_raw().await;
    assert_eq!(init["error"]["code"], -31006, "{init}");
    let message = init["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(b.alive());
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    b.assert_clean();
    (message, b.stderr())
}

// Issue 14, bug 8: a refused key, a closed port and an untrusted certificate are named to
// the host (the -31006 message) and in the log, in the user's terms; a refused key is not
// blamed on OAuth, and the log speaks of the remote link, not of a child or pid 0. On main
// the host saw `server unavailable` only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_names_why_the_server_cannot_be_used() {
    // (a) a wrong API key.
    let dir = tempdir();
    let (_key, s) = keyed_server(&dir);
    let (msg, log) = refused_initialize(&["--header", "X-API-Key: mcpr_wrong", &s.url]).await;
    let want = format!(
        "the server refused the credential (HTTP 401 from {})",
        s.url
    );
    assert!(msg.contains(&want), "{msg}");
    assert!(log.contains(&want), "{log}");
    assert!(!log.to_lowercase().contains("oauth"), "{log}");
    assert!(
        !log.contains("shared child") && !log.contains("pid=0"),
        "{log}"
    );

    // (b) nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (msg, log) = refused_initialize(&["--oauth", "off", &url]).await;
    let want = format!("cannot reach 127.0.0.1:{port}: connection refused");
    assert!(msg.contains(&want), "{msg}");
    assert!(log.contains(&want), "{log}");

    // (c) a certificate no trusted CA signed.
    let (cert, key) = cert_generate();
    let tls = Server::fixture(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &dir.join("rec-tls.log"),
    );
    let (msg, log) = refused_initialize(&[&tls.url]).await;
    let want = "TLS: the certificate of 127.0.0.1 is not valid";
    assert!(msg.contains(want), "{msg}");
    assert!(log.contains(want), "{log}");
}
