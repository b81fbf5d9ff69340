//! The first run (issue 14): the bundled demo server (`mcp-relay demo-server`) behind the
//! relay, the startup log naming every endpoint, and `GET /` on the main listener (its
//! content, and the same Host and authentication guard as the MCP endpoint).

use serde_json::{json, Value};

use crate::support::{eventually, mint_api_key, tempdir, text_of, Client, Relay, RELAY};

const VERSION: &str = "2025-11-25";

/// `mcp-relay serve --listen 127.0.0.1:0 EXTRA -- mcp-relay demo-server`.
fn demo_relay(extra: &[&str]) -> Relay {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", RELAY, "demo-server"]);
    Relay::start_raw(&args)
}

/// A tool call's (isError, text).
async fn call(c: &Client, id: u64, tool: &str, args: Value) -> (bool, String) {
    let reply = c.call(json!(id), tool, args).await;
    assert_eq!(reply.status, 200, "{tool}: {reply:?}");
    let msg = &reply.messages()[0];
    assert_eq!(msg["id"], id, "{msg}");
    (msg["result"]["isError"] == true, text_of(msg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_server_behind_the_relay_serves_its_tools() {
    let relay = demo_relay(&[]);
    let mut c = relay.client();
    let init = c.initialize(VERSION).await.messages()[0].clone();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-relay-demo");
    assert_eq!(init["result"]["protocolVersion"], VERSION);
    let list = c
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    let tools: Vec<String> = list.messages()[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tools,
        ["time", "echo", "kv_set", "kv_get", "kv_list", "kv_delete"]
    );
    assert_eq!(
        call(&c, 2, "echo", json!({"text": "héllo"})).await,
        (false, "héllo".into())
    );
    let (err, text) = call(&c, 3, "kv_set", json!({"key": "city", "value": "Lyon"})).await;
    assert!(!err && text.starts_with("stored `city`"), "{text}");
    assert_eq!(
        call(&c, 4, "kv_get", json!({"key": "city"})).await,
        (false, "Lyon".into())
    );
    let (_, listing) = call(&c, 5, "kv_list", json!({})).await;
    assert!(listing.contains("city (4 bytes)"), "{listing}");
    // The time is now, within what a loaded machine can delay.
    let (err, time) = call(&c, 6, "time", json!({"offset": "+01:00"})).await;
    let unix: u64 = time
        .lines()
        .find_map(|l| l.strip_prefix("Unix: "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{time}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(!err && unix.abs_diff(now) < 300, "{time}");
    assert!(time.contains("At +01:00: "), "{time}");
    // Bad input: tool errors the model can read, and a protocol error for an unknown tool.
    let bad = [
        ("echo", json!({}), "missing argument `text`"),
        ("kv_get", json!({"key": "nowhere"}), "no key `nowhere`"),
        (
            "kv_set",
            json!({"key": "../etc", "value": "x"}),
            "key must be",
        ),
        ("time", json!({"offset": "Europe/Paris"}), "is not `Z`"),
    ];
    for (i, (tool, args, want)) in bad.into_iter().enumerate() {
        let (err, text) = call(&c, 10 + i as u64, tool, args).await;
        assert!(err && text.contains(want), "{tool}: {text}");
    }
    let unknown = c.call(json!(20), "test_simple_text", json!({})).await;
    assert_eq!(
        unknown.messages()[0]["error"]["code"],
        -32602,
        "{unknown:?}"
    );
    // Each session has its own child, so its own store.
    let mut other = relay.client();
    other.initialize(VERSION).await;
    assert!(call(&other, 1, "kv_get", json!({"key": "city"})).await.0);
}

/// The `key=value` fields of the first log line containing every one of `needles`.
fn log_fields(logs: &str, needles: &[&str]) -> Vec<(String, String)> {
    let line = logs
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{logs}"));
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn field(fields: &[(String, String)], name: &str) -> String {
    let found = fields.iter().find(|(k, _)| k == name);
    found.map(|(_, v)| v.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_log_lists_every_endpoint_and_each_answers() {
    let relay = demo_relay(&[
        "--tcp-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    eventually("the index is logged", || {
        relay.logs().contains("endpoint index")
    })
    .await;
    let logs = relay.logs();
    let base = &relay.base;
    let url = |transport: &str| {
        field(
            &log_fields(&logs, &["listening", &format!("transport=\"{transport}\"")]),
            "url",
        )
    };
    assert_eq!(url("streamable_http"), format!("{base}/mcp"));
    let ws = base.replacen("http://", "ws://", 1);
    assert_eq!(url("websocket"), format!("{ws}/ws"));
    let sse = log_fields(&logs, &["listening", "transport=\"sse\""]);
    assert_eq!(field(&sse, "url"), format!("{base}/sse"));
    assert_eq!(field(&sse, "message_url"), format!("{base}/message"));
    assert!(url("tcp").starts_with("tcp://127.0.0.1:"), "{logs}");
    let admin = log_fields(&logs, &["listening", "transport=\"admin\""]);
    let metrics = field(&admin, "url");
    assert!(metrics.ends_with("/metrics"), "{logs}");
    let index = field(&log_fields(&logs, &["endpoint index"]), "url");
    assert_eq!(index, format!("{base}/"));
    // Every logged HTTP endpoint is really there.
    let http = reqwest::Client::new();
    let status = |u: String| {
        let req = http.get(u).header("accept", "text/event-stream");
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(metrics).await, 200);
    assert_eq!(status(field(&admin, "health")).await, 200);
    assert_eq!(status(field(&admin, "ready")).await, 200);
    assert_eq!(status(index.clone()).await, 200);
    // The probes moved to the admin listener: the index no longer names them.
    let page: Value = http
        .get(&index)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["endpoints"]["sse"], "/sse", "{page}");
    assert!(page["endpoints"].get("health").is_none(), "{page}");
    // GET on the MCP path without a session: 400, not 404.
    assert_eq!(status(format!("{base}/mcp")).await, 400);
    let tcp = url("tcp").replacen("tcp://", "", 1);
    assert!(tokio::net::TcpStream::connect(tcp).await.is_ok());

    // Without --admin-listen the probes are logged on the main listener.
    let plain = demo_relay(&[]);
    eventually("the probes are logged", || {
        plain.logs().contains("transport=\"probes\"")
    })
    .await;
    let probes = log_fields(&plain.logs(), &["listening", "transport=\"probes\""]);
    assert_eq!(field(&probes, "url"), format!("{}/health", plain.base));
    assert_eq!(field(&probes, "ready"), format!("{}/ready", plain.base));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_answers_text_or_json_and_never_names_the_command() {
    let relay = demo_relay(&[]);
    let http = reqwest::Client::new();
    let res = http.get(format!("{}/", relay.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = res.text().await.unwrap();
    for want in [
        "mcp-relay ",
        env!("CARGO_PKG_VERSION"),
        "/mcp",
        "/ws",
        "/sse",
        "/message",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let res = http
        .get(format!("{}/", relay.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["name"], "mcp-relay");
    assert_eq!(page["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(page["endpoints"]["streamable_http"], "/mcp");
    assert_eq!(page["endpoints"]["health"], "/health");
    for body in [text.as_str(), &page.to_string()] {
        assert!(
            !body.contains("demo-server") && !body.contains(RELAY),
            "{body}"
        );
    }
    let post = http.post(format!("{}/", relay.base)).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_is_behind_the_host_guard_and_authentication() {
    let (key, block) = mint_api_key(&["--id", "first-run"]);
    let config = tempdir().join("relay.toml");
    std::fs::write(&config, block).unwrap();
    let relay = demo_relay(&["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let get = |path: &str, host: Option<&str>, key: Option<&str>| {
        let mut req = http.get(format!("{}{path}", relay.base));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        async move { req.send().await.unwrap() }
    };
    // DNS rebinding: a foreign Host is refused before anything else, as on /mcp.
    let rebound = get("/", Some("evil.example"), Some(&key)).await;
    let rebound_mcp = get("/mcp", Some("evil.example"), Some(&key)).await;
    assert_eq!(rebound.status(), 403);
    assert_eq!(rebound.status(), rebound_mcp.status());
    // No credential: the same 401 and challenge as the MCP endpoint.
    let anonymous = get("/", None, None).await;
    let anonymous_mcp = get("/mcp", None, None).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.status(), anonymous_mcp.status());
    assert_eq!(
        anonymous.headers().get("www-authenticate"),
        anonymous_mcp.headers().get("www-authenticate")
    );
    assert!(!anonymous.text().await.unwrap().contains("/mcp"));
    assert_eq!(get("/", None, Some(&key)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_yields_to_an_mcp_path_of_slash() {
    let relay = demo_relay(&["--path", "/"]);
    assert_eq!(relay.url, format!("{}/", relay.base));
    // GET / is the MCP endpoint's GET: a stream needs `Accept: text/event-stream`.
    let res = reqwest::Client::new()
        .get(&relay.url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
    let mut c = relay.client();
    c.initialize(VERSION).await;
    assert_eq!(call(&c, 1, "echo", json!({"text": "root"})).await.1, "root");
    assert!(!relay.logs().contains("endpoint index"), "{}", relay.logs());
}
