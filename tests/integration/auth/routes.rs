//! A1: every route and front needs a credential; the metadata document is public.

use super::*;
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
    let err = tokio_tungstenite::connect_async(ws_request(&ws_url(&relay), &[]))
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
        let mut tcp = Lines::tcp(&addr).await;
        tcp.send_raw(first).await;
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

    // Nothing of the above reached a child. Not a race guard: a window in which nothing may
    // arrive, then the check (the positive control below shows the record catches traffic).
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

// === A4: a credential's name in the query string, however it is spelt ===

#[tokio::test]
async fn a4_percent_encoded_credential_names_in_the_query_are_401_like_plain_ones() {
    // Issue 14, bug 12: names were compared without percent-decoding, so these passed.
    let (key, block) = api_key(&["--id", "enc", "--principal", "enc-bot", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&[], Some(&record));
    let token = setup.mint("alice", "user", &[]);
    let good = auth(&token);
    for query in [
        format!("access_token={token}"),
        format!("access%5Ftoken={token}"),
        format!("%61ccess_token={token}"),
        format!("ACCESS_TOKEN={token}"),
        format!("x=1&%41ccess%5ftoken={token}"),
        format!("api%2Dkey={key}"),
        format!("%6Bey={key}"),
    ] {
        let url = format!("{}?{query}", relay.url);
        // With and without a valid header: the query alone decides.
        for headers in [vec![], vec![good.clone()]] {
            let what = format!("?{query} with {} header(s)", headers.len());
            expect_401(post_init(&url, &headers).await, true, &what).await;
        }
    }
    // The legacy message route reads `sessionId` decoded too; an encoded credential is refused.
    let url = format!("{}/message?%73essionId=x&api%5Fkey={key}", relay.base);
    expect_401(
        post_json(&url, &[], call("echo", "q")).await,
        true,
        "/message?api%5Fkey",
    )
    .await;
    // An ordinary query (even an encoded one) with a valid header still works.
    let url = format!("{}?trace=on&note=access%20token", relay.url);
    assert_eq!(
        post_init(&url, std::slice::from_ref(&good)).await.status(),
        200
    );
    // Only the two ordinary initializes reached the child; no credential is in the logs.
    crate::support::eventually("the ordinary initialize at the child", || {
        lines_of(&record)
            .iter()
            .any(|l| l.contains("\"method\":\"initialize\""))
    })
    .await;
    assert_eq!(
        lines_of(&record)
            .iter()
            .filter(|l| l.contains("\"method\":\"initialize\""))
            .count(),
        1
    );
    let logs = relay.logs();
    assert!(!logs.contains(&key) && !logs.contains(&token));
}
