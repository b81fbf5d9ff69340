//! Global notifications from the shared child: `list_changed` fans out, log messages follow
//! each session's level, resource updates reach subscribers only.

use super::*;

#[tokio::test]
async fn shared_list_changed_fans_out_and_log_messages_follow_each_sessions_level() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let quiet = session(&relay).await;
    let chatty = session(&relay).await;
    let plain = session(&relay).await;
    let busy = session(&relay).await;
    async fn set(c: &Client, level: &str, id: u64) -> crate::support::Reply {
        c.post(json!({"jsonrpc":"2.0","id":id,"method":"logging/setLevel",
            "params":{"level":level}}))
            .await
    }
    assert_eq!(
        set(&quiet, "error", 1).await.messages()[0]["result"],
        json!({})
    );
    assert_eq!(
        set(&chatty, "debug", 1).await.messages()[0]["result"],
        json!({})
    );
    wait_recorded(&record, r#""level":"debug""#, 1).await;
    let mut streams = Vec::new();
    for c in [&quiet, &chatty, &plain, &busy] {
        streams.push(listen(c).await);
    }
    let slow = {
        let busy = busy.clone();
        tokio::spawn(async move { busy.call(json!(9), "slow", json!({"ms": 1000})).await })
    };
    wait_recorded(&record, r#""name":"slow""#, 1).await;
    let r = plain.call(json!(1), "notify", json!({})).await;
    assert_eq!(text_of(r.messages().last().unwrap()), "notified");
    slow.await.unwrap();
    let mut got = Vec::new();
    for s in &mut streams {
        got.push(drain_for(s, 500).await);
    }
    let has =
        |msgs: &Vec<Value>, method: &str| msgs.iter().filter(|m| m["method"] == method).count();
    for (i, msgs) in got.iter().enumerate() {
        assert_eq!(
            has(msgs, "notifications/tools/list_changed"),
            1,
            "session {i}: {msgs:?}"
        );
    }
    assert_eq!(
        has(&got[0], "notifications/message"),
        0,
        "error level: {:?}",
        got[0]
    );
    assert_eq!(
        has(&got[1], "notifications/message"),
        1,
        "debug level: {:?}",
        got[1]
    );
    assert_eq!(
        has(&got[2], "notifications/message"),
        1,
        "no level: {:?}",
        got[2]
    );
    assert_eq!(
        has(&got[3], "notifications/message"),
        1,
        "no level: {:?}",
        got[3]
    );
}

#[tokio::test]
async fn shared_subscriptions_are_counted_and_updates_reach_subscribers_only() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let a = session(&relay).await;
    let b = session(&relay).await;
    let c = session(&relay).await;
    async fn sub(cl: &Client, method: &str, uri: &str) -> crate::support::Reply {
        cl.post(json!({"jsonrpc":"2.0","id":5,"method":method,"params":{"uri":uri}}))
            .await
    }
    for cl in [&a, &b] {
        assert_eq!(
            sub(cl, "resources/subscribe", "x://a").await.messages()[0]["id"],
            5
        );
    }
    assert_eq!(
        sub(&c, "resources/subscribe", "x://b").await.messages()[0]["id"],
        5
    );
    let log = std::fs::read_to_string(&record).unwrap();
    assert_eq!(log.matches(r#""uri":"x://a""#).count(), 1, "{log}");
    let mut streams = Vec::new();
    for cl in [&a, &b, &c] {
        streams.push(listen(cl).await);
    }
    let r = c.call(json!(1), "touch", json!({"uri": "x://a"})).await;
    assert_eq!(text_of(&r.messages()[0]), "touched x://a");
    let updated = |m: &Vec<Value>| {
        m.iter()
            .filter(|v| v["method"] == "notifications/resources/updated")
            .count()
    };
    assert_eq!(updated(&drain_for(&mut streams[0], 300).await), 1);
    assert_eq!(updated(&drain_for(&mut streams[1], 300).await), 1);
    assert_eq!(updated(&drain_for(&mut streams[2], 300).await), 0);
    // The child hears the unsubscribe only after the last subscriber left.
    sub(&a, "resources/unsubscribe", "x://a").await;
    assert_eq!(b.delete().await, 200);
    wait_recorded(&record, "resources/unsubscribe", 1).await;
    let r = c.call(json!(2), "touch", json!({"uri": "x://a"})).await;
    assert_eq!(text_of(&r.messages()[0]), "not subscribed: x://a");
}
