//! IP rules: a denied address gets 403 on POST, GET, WebSocket and metadata and a closed TCP
//! connection; an empty allow list is a config error; `--deny-ip`/`--allow-ip` act like
//! `[network]`.

use super::*;

#[tokio::test]
async fn ip_deny_is_403_on_post_get_ws_and_metadata_and_closes_tcp() {
    let cfg = config("[network]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.2/32\"]\n");
    let relay = serve(&cfg, &["--tcp-listen", "127.0.0.1:0"]);
    let denied = http_from(OTHER);
    expect_403_ip(
        post(&denied, &relay.url, &[], &init_request(json!(0), VERSION)).await,
        "post",
    )
    .await;
    let get = denied
        .get(&relay.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    expect_403_ip(get, "get").await;
    let ws = denied
        .get(format!("{}/ws", relay.base))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "mcp")
        .send()
        .await
        .unwrap();
    expect_403_ip(ws, "ws upgrade").await;
    let meta = denied
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            relay.base
        ))
        .send()
        .await
        .unwrap();
    expect_403_ip(meta, "metadata").await;
    // TCP: closed at once, nothing written.
    let addr: SocketAddr = tcp_listening(&relay).await.parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{OTHER}:0").parse().unwrap()).unwrap();
    let mut tcp = sock.connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .expect("not closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The allowed address is served on both fronts.
    let res = post(
        &reqwest::Client::new(),
        &relay.url,
        &[],
        &init_request(json!(0), VERSION),
    )
    .await;
    session_of(res).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let line = init_request(json!(7), VERSION).to_string() + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut w, line.as_bytes())
        .await
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(r));
    let answer = tokio::time::timeout(patience(), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["id"], 7, "{v}");
}

#[tokio::test]
async fn an_empty_allow_list_is_a_config_error() {
    let cfg = config("[network]\nallow = []\n");
    let out = Command::new(RELAY)
        .args(["serve", "--config", cfg.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("network.allow"),
        "{out:?}"
    );
}

/// The network rules have command-line shortcuts: `--deny-ip` refuses, `--allow-ip` admits.
#[tokio::test]
async fn deny_ip_and_allow_ip_flags_apply_like_the_network_section() {
    let denied = crate::support::Relay::start(&["--deny-ip", "127.0.0.0/8"], &[]);
    let r = denied
        .client()
        .post(crate::support::init_request(
            serde_json::json!(1),
            "2025-11-25",
        ))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let allowed = crate::support::Relay::start(&["--allow-ip", "127.0.0.1"], &[]);
    let mut c = allowed.client();
    c.initialize("2025-11-25").await;
}
