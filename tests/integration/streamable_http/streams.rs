//! What travels on streams: sampling to the caller and back, child messages on the GET
//! stream, progress with the client's token, cancellation, request timeouts, SSE polling and
//! resumption with `Last-Event-ID`, and the bounded replay buffer.

use super::*;

#[tokio::test]
async fn sampling_round_trip_goes_to_the_caller_and_back_to_the_child() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let res = c.post_builder()
        .body(json!({"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"sample","arguments":{}}}).to_string())
        .send()
        .await
        .unwrap();
    let mut events = res.bytes_stream().eventsource();
    let req = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    let child_id = req["id"].clone();

    // Another session may not answer it.
    let mut other = relay.client();
    other.initialize("2025-11-25").await;
    let r = other.post(json!({"jsonrpc":"2.0","id":child_id,"result":{"role":"assistant","content":{"type":"text","text":"stolen"}}})).await;
    assert_eq!(r.status, 400);

    let r = c.post(json!({"jsonrpc":"2.0","id":child_id,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"hello from client"}}})).await;
    assert_eq!(r.status, 202);
    let done = wait_event(&mut events, |v| v["id"] == "call-1").await;
    assert!(text_of(&done).contains("hello from client"), "{done}");
}

#[tokio::test]
async fn child_messages_without_a_single_request_go_to_the_get_stream() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-06-18").await;
    let get = c.get(None).await;
    assert_eq!(get.status(), 200);
    // A second standalone stream is a conflict.
    assert_eq!(c.get(None).await.status(), 409);
    let mut events = get.bytes_stream().eventsource();
    // Two calls in flight: the notifications of `notify` cannot be tied to one of them.
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!(1), "slow", json!({"ms": 600})).await })
    };
    crate::support::wait_recorded(&record, "\"slow\"", 1).await;
    let r = c.call(json!(2), "notify", json!({})).await;
    assert_eq!(text_of(r.messages().last().unwrap()), "notified");
    let n = wait_event(&mut events, |v| {
        v["method"] == "notifications/tools/list_changed"
    })
    .await;
    assert_eq!(n["jsonrpc"], "2.0");
    slow.await.unwrap();
}

#[tokio::test]
async fn progress_travels_on_the_request_stream_with_the_clients_token() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .post(
            json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"progress",
            "arguments":{"steps":3,"interval_ms":5},"_meta":{"progressToken":"p-1"}}}),
        )
        .await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 4);
    for (i, m) in msgs[..3].iter().enumerate() {
        assert_eq!(m["params"]["progressToken"], "p-1");
        assert_eq!(m["params"]["progress"], i + 1);
    }
    assert_eq!(msgs[3]["id"], 7);
}

#[tokio::test]
async fn cancellation_is_forwarded_with_the_relay_id_and_ends_the_stream() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!("slow-1"), "slow", json!({"ms": 20000})).await })
    };
    eventually("call reached child", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("\"slow\"")
    })
    .await;
    // A cancel for an unknown id is dropped; the real one is translated.
    let r = c.post(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"nope"}})).await;
    assert_eq!(r.status, 202);
    let r = c.post(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"user"}})).await;
    assert_eq!(r.status, 202);
    let reply = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .unwrap()
        .unwrap();
    assert!(reply.messages().is_empty(), "{reply:?}");
    // The stream ends when the relay handles the cancel; the child records it a moment later.
    eventually("cancel reached child", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("notifications/cancelled")
    })
    .await;
    let log = std::fs::read_to_string(&record).unwrap();
    let cancels: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("notifications/cancelled"))
        .collect();
    assert_eq!(cancels.len(), 1, "{log}");
    let call_line: Value =
        serde_json::from_str(log.lines().find(|l| l.contains("\"slow\"")).unwrap()).unwrap();
    let cancel: Value = serde_json::from_str(cancels[0]).unwrap();
    assert_eq!(cancel["params"]["requestId"], call_line["id"]);
    assert!(call_line["id"].is_u64());
}

#[tokio::test]
async fn request_timeout_answers_31008_and_cancels_in_the_child() {
    let relay = Relay::start(
        &["--request-timeout", "300ms", "--request-timeout-max", "1s"],
        &[],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.call(json!("t"), "slow", json!({"ms": 5000})).await;
    let m = &r.messages()[0];
    assert_eq!(
        (m["id"].clone(), m["error"]["code"].clone()),
        (json!("t"), json!(-31008))
    );
    eventually("child cancelled", || relay.logs().contains("cancelled")).await;
}

#[tokio::test]
async fn sse_polling_close_then_resume_with_last_event_id() {
    let relay = Relay::start(&["--sse-close-after", "300ms"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    // The standalone stream is open too: a resume must not be taken for a second one.
    let _standalone = c.get(None).await;
    let res = c.post_builder()
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":900}}}).to_string())
        .send()
        .await
        .unwrap();
    let first = read_reply(res).await;
    assert!(first.messages().is_empty(), "closed before the answer");
    let last_id = first.events.last().unwrap().id.clone();
    let resumed = c.get(Some(&last_id)).await;
    assert_eq!(resumed.status(), 200);
    let resumed = read_reply(resumed).await;
    // A resume replays what followed, with no new priming event (ids stay unique).
    assert!(
        resumed.events.iter().all(|e| !e.data.is_empty()),
        "{resumed:?}"
    );
    assert!(resumed.events.iter().all(|e| e.id != last_id));
    let answer = resumed.messages()[0].clone();
    assert_eq!(text_of(&answer), "slept 900");

    // Resuming again after the answer replays it (buffered), and only this stream's events.
    let again = c.get(Some(&last_id)).await;
    let evs = collect_events(again, 5).await;
    let data: Vec<&str> = evs
        .iter()
        .map(|e| e.data.as_str())
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(data.len(), 1);
    // An id of another session's stream replays nothing of it.
    let mut other = relay.client();
    other.initialize("2025-11-25").await;
    let foreign = other.get(Some(&last_id)).await;
    let evs = tokio::time::timeout(Duration::from_millis(500), collect_events(foreign, 3)).await;
    if let Ok(evs) = evs {
        assert!(evs.iter().all(|e| e.data.is_empty()));
    }
}

#[tokio::test]
async fn replay_buffer_is_bounded_per_session_oldest_finished_streams_first() {
    let relay = Relay::start(&["--replay-events", "3"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let mut last_ids = Vec::new();
    for i in 0..5 {
        let r = c
            .call(json!(i), "echo", json!({"text": format!("n{i}")}))
            .await;
        last_ids.push(r.events.last().unwrap().id.clone());
    }
    // The newest stream still replays its answer (resume from its priming event).
    let newest = last_ids[4].split('-').next().unwrap().to_owned();
    let r = c.get(Some(&format!("{newest}-0"))).await;
    let evs = collect_events(r, 1).await;
    assert_eq!(
        serde_json::from_str::<Value>(&evs[0].data).unwrap()["id"],
        4
    );
    // The oldest was dropped to keep the session within 3 buffered events.
    let oldest = last_ids[0].split('-').next().unwrap().to_owned();
    let r = c.get(Some(&format!("{oldest}-0"))).await;
    let evs = tokio::time::timeout(Duration::from_millis(400), collect_events(r, 2)).await;
    if let Ok(evs) = evs {
        assert!(evs.iter().all(|e| e.data.is_empty()), "{evs:?}");
    }
}
