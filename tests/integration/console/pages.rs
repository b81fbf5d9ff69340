//! The console's pages, assets and live stream on a real relay with a loopback admin listener
//! (open without a credential): each page is HTML with current data and no inline code (as
//! its CSP requires), a
//! hostile client name and tool name show as text, the stream sends snapshots and each new
//! audit record (filtered), a browser resuming with an id from before a restart gets new
//! records, at most 32 streams are open at once, the assets have their types.

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::support::{patience, poll_until, Client, Relay};

const VERSION: &str = "2025-11-25";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const ESCAPED: &str = "&lt;img src=x onerror=alert(1)&gt;";

/// A relay around the fixture with a loopback admin listener (so the console is open), and
/// the admin listener's base URL.
async fn relay() -> (Relay, String) {
    let relay = Relay::start(&["--admin-listen", "127.0.0.1:0"], &[]);
    let admin = relay.admin_base().await;
    (relay, admin)
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .timeout(patience())
        .send()
        .await
        .unwrap()
}

fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A page's status and body, after checking it is HTML.
async fn page(admin: &str, path: &str) -> (u16, String) {
    let res = get(&format!("{admin}{path}")).await;
    let status = res.status().as_u16();
    assert!(content_type(&res).starts_with("text/html"), "{path}");
    (status, res.text().await.unwrap())
}

/// A session whose client calls itself `name`.
async fn session_named(relay: &Relay, name: &str) -> Client {
    let mut c = relay.client();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": name, "version": "6.6.6"}}});
    let reply = c.post(init).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    c.session = reply.header("mcp-session-id");
    c.version = Some(VERSION.to_owned());
    let ack = c
        .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    assert_eq!(ack.status, 202);
    c
}

/// Opens the live stream with `query`; panics unless it answers 200 as an event stream.
async fn stream(
    admin: &str,
    query: &str,
) -> impl Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin {
    let res = reqwest::Client::new()
        .get(format!("{admin}/ui/events?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    assert!(content_type(&res).starts_with("text/event-stream"));
    res.bytes_stream().eventsource()
}

/// The next event named `name` whose JSON satisfies `pred`.
async fn next_event(
    events: &mut (impl Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin),
    name: &str,
    pred: impl Fn(&Value) -> bool,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {name} event in time"))
            .expect("stream ended")
            .expect("sse error");
        if ev.event != name {
            continue;
        }
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        if pred(&v) {
            return (ev.id, v);
        }
    }
}

#[tokio::test]
async fn pages_are_html_with_their_data_and_no_inline_code() {
    let (relay, admin) = relay().await;
    let mut c = relay.client();
    c.initialize(VERSION).await;
    c.call(json!(1), "echo", json!({"text": "hi"})).await;

    for (path, title) in [
        ("/ui/servers", "Servers"),
        ("/ui/sessions", "Sessions"),
        ("/ui/traffic", "Traffic"),
        ("/ui/audit", "Audit"),
    ] {
        let res = get(&format!("{admin}{path}")).await;
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        let (status, body) = page(&admin, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(
            body.contains(&format!("<h1>{title}</h1>")),
            "{path}: {body}"
        );
        assert!(body.contains("src=\"/ui/static/console.js\""), "{path}");
        assert!(body.contains("href=\"/ui/static/console.css\""), "{path}");
        // The CSP forbids inline code: every script is loaded, no element carries a style.
        assert_eq!(body.matches("<script").count(), 1, "{path}");
        assert!(!body.contains(" style="), "{path}");
        assert!(!body.contains(" onclick="), "{path}");
    }
    // The audit and traffic pages show the call just made, the servers page the restart
    // button.
    let (_, audit) = page(&admin, "/ui/audit?tool=echo").await;
    assert!(audit.contains(">echo</span>"), "{audit}");
    let (_, traffic) = page(&admin, "/ui/traffic").await;
    assert!(traffic.contains(">echo</th>"), "{traffic}");
    let (_, servers) = page(&admin, "/ui/servers").await;
    assert!(
        servers.contains("action=\"/ui/actions/restart\"")
            && servers.contains("action=\"/ui/actions/reload\""),
        "{servers}"
    );
    let res = get(&format!("{admin}/ui")).await;
    assert_eq!(res.url().path(), "/ui/servers");
}

#[tokio::test]
async fn hostile_client_and_tool_names_render_as_text() {
    let (relay, admin) = relay().await;
    let c = session_named(&relay, HOSTILE).await;
    c.call(json!(1), HOSTILE, json!({})).await;

    let audit = poll_until(
        "the hostile tool's call on the audit page",
        || async { page(&admin, "/ui/audit").await.1 },
        |body| body.contains(ESCAPED),
    )
    .await;
    assert!(!audit.contains(HOSTILE), "{audit}");
    assert!(!audit.contains("<img"), "{audit}");

    let sessions = poll_until(
        "the hostile client's session on the sessions page",
        || async { page(&admin, "/ui/sessions").await.1 },
        |body| body.contains(ESCAPED),
    )
    .await;
    assert!(!sessions.contains(HOSTILE), "{sessions}");
    assert!(sessions.contains("6.6.6"), "{sessions}");
}

#[tokio::test]
async fn the_stream_sends_snapshots_and_each_new_audit_record() {
    let (relay, admin) = relay().await;
    let mut c = relay.client();
    c.initialize(VERSION).await;

    let mut servers = stream(&admin, "view=servers").await;
    let (_, snapshot) = next_event(&mut servers, "snapshot", |_| true).await;
    assert!(snapshot.is_array(), "{snapshot}");
    // Another one comes a second later.
    next_event(&mut servers, "snapshot", |_| true).await;

    let mut sessions = stream(&admin, "view=sessions").await;
    next_event(&mut sessions, "snapshot", |v| v.is_array()).await;
    let mut traffic = stream(&admin, "view=traffic").await;
    next_event(&mut traffic, "snapshot", |v| v["per_second"].is_array()).await;

    // Only `echo` calls pass this feed's filter; the `add` call made first is not sent.
    let mut audit = stream(&admin, "view=audit&tool=echo").await;
    c.call(json!("a"), "add", json!({"a": 1, "b": 2})).await;
    c.call(json!("e"), "echo", json!({"text": "live"})).await;
    let (id, batch) = next_event(&mut audit, "audit", |_| true).await;
    let records = batch.as_array().unwrap();
    assert!(!records.is_empty());
    for r in records {
        assert_eq!(r["record"]["name"], "echo", "{batch}");
        assert_eq!(r["record"]["method"], "tools/call", "{batch}");
    }
    let last = records.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(id, last.to_string());

    // A reconnecting browser's Last-Event-ID: only records after it (here the next echo).
    let res = reqwest::Client::new()
        .get(format!("{admin}/ui/events?view=audit&tool=echo&after=0"))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let mut again = res.bytes_stream().eventsource();
    c.call(json!("f"), "echo", json!({"text": "again"})).await;
    let (_, batch) = next_event(&mut again, "audit", |_| true).await;
    for r in batch.as_array().unwrap() {
        assert!(r["seq"].as_u64().unwrap() > last, "{batch}");
    }

    let res = get(&format!("{admin}/ui/events?view=nothing")).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_browser_resuming_from_before_a_restart_gets_the_new_records() {
    let (relay, admin) = relay().await;
    let mut c = relay.client();
    c.initialize(VERSION).await;
    // An id from the previous process, far beyond this one's records.
    let res = reqwest::Client::new()
        .get(format!("{admin}/ui/events?view=audit&tool=echo"))
        .header("last-event-id", "52000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut resumed = res.bytes_stream().eventsource();
    c.call(json!("r"), "echo", json!({"text": "after restart"}))
        .await;
    let (_, batch) = next_event(&mut resumed, "audit", |_| true).await;
    assert!(
        batch
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["record"]["name"] == "echo"),
        "{batch}"
    );
}

#[tokio::test]
async fn at_most_32_streams_are_open_at_once() {
    let (_relay, admin) = relay().await;
    let http = reqwest::Client::new();
    let open = |http: reqwest::Client| {
        let url = format!("{admin}/ui/events?view=servers");
        async move { http.get(url).send().await.unwrap() }
    };
    let mut held = Vec::new();
    for _ in 0..32 {
        let res = open(http.clone()).await;
        assert_eq!(res.status(), 200);
        held.push(res);
    }
    let refused = open(http.clone()).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    // A closed stream gives its place back.
    held.pop();
    poll_until(
        "a stream's place given back",
        || open(http.clone()),
        |res| res.status() == 200,
    )
    .await;
    drop(held);
}

#[tokio::test]
async fn assets_are_served_with_their_content_types() {
    let (_relay, admin) = relay().await;
    for (file, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let res = get(&format!("{admin}/ui/static/{file}")).await;
        assert_eq!(res.status(), 200, "{file}");
        assert!(content_type(&res).starts_with(kind), "{file}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty(), "{file}");
        // The script writes every value as text.
        assert!(!body.contains("innerHTML") && !body.contains("insertAdjacentHTML"));
    }
    let res = get(&format!("{admin}/ui/static/other.js")).await;
    assert_eq!(res.status(), 404);
}
