//! TCP, WebSocket and legacy SSE apply the same roles and audit.

use super::*;

use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::ws::Ws;
use crate::support::{tcp_addr, ws_url};

// === connection fronts ===

#[tokio::test]
async fn b1_tcp_and_websocket_fronts_apply_the_same_roles_and_audit() {
    let rig = rig(Opts {
        relay: &["--tcp-listen", "127.0.0.1:0"],
        ..Opts::default()
    });
    let token = mint("ursula", "user");
    let bearer = format!("Bearer {token}");
    let tcp = Lines::tcp_with(&tcp_addr(&rig.relay), &json!({ "authorization": bearer })).await;
    let ws = Ws::connect_with(&ws_url(&rig.relay), &[("authorization", bearer.clone())]).await;
    applies_roles(&rig, "tcp", tcp).await;
    applies_roles(&rig, "websocket", ws).await;
    // Both connections' echo calls reached the child; neither denied request did.
    wait_recorded(&rig.record, "\"echo\"", 2).await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("foo/bar"), 0);
}

/// One connection front: roles applied per message, each decision audited.
async fn applies_roles(rig: &Rig, transport: &str, mut f: impl Conn) {
    let init = f
        .exchange(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    assert!(init.get("result").is_some(), "{transport}: {init}");
    f.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let list = f.exchange(req(json!(1), "tools/list", json!({}))).await;
    let tools = tool_names(&list);
    assert!(tools.contains(&"echo".to_owned()), "{transport}");
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{transport}"
    );
    let ok = f.exchange(call(json!(2), "echo")).await;
    assert_eq!(text_of(&ok), "hi", "{transport}");
    let denied = f.exchange(call(json!(3), "delete_everything")).await;
    assert_unknown(&denied, json!(3), -32602, "Unknown tool: delete_everything");
    let m = f.exchange(req(json!(4), "foo/bar", json!({}))).await;
    assert_unknown(&m, json!(4), -32601, "Method not found");
    let rec = rig
        .audited(json!({"transport": transport, "name": "delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "deny", "{rec}");
    assert_eq!(rec["principal"], "ursula");
    assert_eq!(rec["auth"], "jwt");
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
