//! The drain of a fleet replica (issue 19 §3): SIGTERM makes `/ready` say 503 at once while
//! the replica keeps serving its sessions (and a new one that still reaches it) for the drain
//! window, then shuts down as a single relay does (exit 0). A second signal skips the rest of
//! the window; without sessions there is nothing to wait for. Replicas that are not draining
//! never notice.

use nix::sys::signal::Signal;
use serde_json::json;

use super::local_fleet::{exited, signal, start};
use crate::support::{poll_until, text_of, Client, Relay};

const VERSION: &str = "2025-11-25";

/// `GET {base}/ready`: its status.
async fn ready(base: &str) -> u16 {
    reqwest::get(format!("{base}/ready"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A session on `relay`.
async fn session(relay: &Relay) -> Client {
    let mut c = relay.client();
    c.initialize(VERSION).await;
    c
}

/// `echo` through `c`: the text it got back (panics on anything but a 200 answer).
async fn echo(c: &Client, text: &str) -> String {
    let reply = c.call(json!(7), "echo", json!({ "text": text })).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    text_of(&reply.messages()[0])
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_serves_sessions_through_the_window_then_exits() {
    let window = |i| match i {
        2 => vec!["--drain-window".to_owned(), "10s".to_owned()],
        _ => vec![],
    };
    let mut fleet = start(3, window, &[]);
    let c2 = session(&fleet[2]).await;
    let c0 = session(&fleet[0]).await;
    assert!(c2.session.as_deref().unwrap().starts_with("r2."));
    assert_eq!(ready(&fleet[2].base).await, 200);

    signal(&fleet[2], Signal::SIGTERM);
    poll_until("r2 unready", || ready(&fleet[2].base), |s| *s == 503).await;
    let health = fleet[2].health().await;
    assert_eq!(health["status"], "draining", "{health}");
    // Its session is still served, and a new session that still reaches it too.
    assert_eq!(echo(&c2, "while draining").await, "while draining");
    let late = session(&fleet[2]).await;
    assert!(late.session.as_deref().unwrap().starts_with("r2."));
    assert_eq!(echo(&late, "late").await, "late");
    // A client going through another replica gets its new session there.
    let moved = session(&fleet[1]).await;
    assert!(moved.session.as_deref().unwrap().starts_with("r1."));
    assert_eq!(echo(&moved, "moved").await, "moved");
    assert_eq!(echo(&c0, "unaware").await, "unaware");
    assert_eq!(ready(&fleet[0].base).await, 200);

    // The window ends on its own; then the usual shutdown, exit 0.
    assert_eq!(exited(&mut fleet[2]).await, Some(0), "{}", fleet[2].logs());
    let logs = fleet[2].logs();
    let line = |what: &str| logs.lines().find(|l| l.contains(what)).unwrap_or_default();
    // One session when the drain began, two (the late one) when its window ended.
    assert!(line("window_ms=").contains("sessions=1"), "{logs}");
    let over = line("drain window over");
    assert!(
        over.contains("sessions=2") && over.contains("reason=\"window_ended\""),
        "{logs}"
    );
    // The other replicas never noticed.
    assert_eq!(echo(&c0, "still here").await, "still here");
    assert_eq!(echo(&moved, "still here").await, "still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_second_signal_skips_the_window() {
    // A window far longer than the test's patience: only the second signal can end it.
    let extra = |_| {
        ["--drain-window", "600s", "--admin-listen", "127.0.0.1:0"]
            .map(str::to_owned)
            .to_vec()
    };
    let mut fleet = start(1, extra, &[]);
    let admin = fleet[0].admin_base().await;
    let c = session(&fleet[0]).await;
    assert_eq!(ready(&admin).await, 200);

    signal(&fleet[0], Signal::SIGTERM);
    poll_until("admin /ready 503", || ready(&admin), |s| *s == 503).await;
    assert_eq!(echo(&c, "draining").await, "draining");

    signal(&fleet[0], Signal::SIGTERM);
    assert_eq!(exited(&mut fleet[0]).await, Some(0), "{}", fleet[0].logs());
    assert!(fleet[0].logs().contains("reason=\"signal\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_without_sessions_ends_at_once() {
    let extra = |_| ["--drain-window", "600s"].map(str::to_owned).to_vec();
    let mut fleet = start(2, extra, &[]);
    let c = session(&fleet[0]).await;
    // The session lives on r0; r1 has none and does not wait.
    signal(&fleet[1], Signal::SIGTERM);
    assert_eq!(exited(&mut fleet[1]).await, Some(0), "{}", fleet[1].logs());
    assert!(fleet[1].logs().contains("reason=\"no_sessions\""));
    assert_eq!(echo(&c, "unaware").await, "unaware");
}
