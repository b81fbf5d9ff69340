//! Many sessions: 1,000 create/delete cycles leave no process behind; 64 concurrent sessions
//! with colliding ids and interleaved calls never see each other's answers; out of file
//! descriptors, new sessions are refused and the relay recovers (`scale/descriptors.rs`).

use futures_util::future::join_all;
use serde_json::json;

use crate::support::{eventually, text_of, Relay};

#[cfg(target_os = "linux")]
mod descriptors;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_thousand_sessions_created_and_deleted_leave_no_child_behind() {
    let relay = Relay::start(&[], &[]);
    let tasks = (0..8).map(|w| {
        let url = relay.url.clone();
        tokio::spawn(async move {
            for i in 0..125 {
                let mut c = crate::support::Client::new(&url);
                c.initialize("2025-11-25").await;
                if i % 25 == 0 {
                    let r = c
                        .call(json!(w), "echo", json!({"text": format!("{w}-{i}")}))
                        .await;
                    assert_eq!(text_of(&r.messages()[0]), format!("{w}-{i}"));
                }
                assert_eq!(c.delete().await, 200);
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
    eventually("all children gone", || relay.children().is_empty()).await;
    let h = relay.health().await;
    assert_eq!(
        (h["sessions"].as_u64(), h["children"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b5_sixty_four_sessions_with_colliding_ids_get_only_their_own_answers() {
    let relay = Relay::start(&[], &[]);
    let tasks = (0..64).map(|s| {
        let url = relay.url.clone();
        tokio::spawn(async move {
            let mut c = crate::support::Client::new(&url);
            c.initialize("2025-11-25").await;
            let calls = (0..10).map(|i| {
                let c = c.clone();
                // Same ids in every session, in both forms.
                let id = if i % 2 == 0 {
                    json!(i)
                } else {
                    json!(i.to_string())
                };
                async move {
                    let text = format!("session {s} call {i}");
                    let r = c.call(id.clone(), "echo", json!({"text": text})).await;
                    let m = &r.messages()[0];
                    assert_eq!(m["id"], id);
                    assert_eq!(text_of(m), text);
                }
            });
            join_all(calls).await;
            c.delete().await
        })
    });
    for t in join_all(tasks).await {
        assert_eq!(t.unwrap(), 200);
    }
}
