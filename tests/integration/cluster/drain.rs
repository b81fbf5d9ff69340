//! The drain of a fleet replica (issue 19 §3): SIGTERM makes `/ready` say 503 at once while
//! the replica keeps serving its sessions (directly, and forwarded by its peers) and a new one
//! that still reaches it, for the drain window; then it shuts down as a single relay does
//! (exit 0) and its sessions answer 404 through the peers. A second signal skips the rest of
//! the window; without sessions there is nothing to wait for. Replicas that are not draining
//! never notice. A stream this replica forwards to a peer ends when its shutdown starts.

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::fleet::Fleet;
use crate::support::{patience, poll_until, text_of, Client, Relay};

const VERSION: &str = "2025-11-25";

/// `GET {base}/ready`: its status.
async fn ready(base: &str) -> u16 {
    reqwest::get(format!("{base}/ready"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A session through `url`.
async fn session(url: &str) -> Client {
    let mut c = Client::new(url);
    c.initialize(VERSION).await;
    c
}

/// The same session, through another replica's `url`.
fn via(c: &Client, url: &str) -> Client {
    let mut other = Client::new(url);
    other.session = c.session.clone();
    other.version = c.version.clone();
    other
}

/// `echo` through `c`: the text it got back and the node that ran it (panics on anything
/// but a 200 answer).
async fn echo(c: &Client, text: &str) -> (String, String) {
    let reply = c.call(json!(7), "echo", json!({ "text": text })).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let node = reply.header("mcp-relay-node").unwrap_or_default();
    (text_of(&reply.messages()[0]), node)
}

/// Sends `sig` to the relay (it keeps running until it decides to stop).
fn signal(relay: &Relay, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(relay.pid() as i32), sig).unwrap();
}

/// Waits (at most the patience) for the relay to exit on its own; its exit code.
async fn exited(relay: &mut Relay) -> Option<i32> {
    let deadline = std::time::Instant::now() + patience();
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = relay.child.try_wait() {
            return status.code();
        }
        // The poll interval of a wait for the exit, not a guess at how long it takes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

fn window(seconds: &str) -> Vec<String> {
    vec!["--drain-window".to_owned(), seconds.to_owned()]
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_serves_sessions_through_the_window_then_exits() {
    let mut fleet = Fleet::start(3, |i| if i == 2 { window("10s") } else { vec![] }, &[]);
    let c2 = session(&fleet.url(2)).await;
    let c0 = session(&fleet.url(0)).await;
    assert!(c2.session.as_deref().unwrap().starts_with("r2."));
    assert_eq!(ready(&fleet.admin(2)).await, 200);

    signal(fleet.relay(2), Signal::SIGTERM);
    let admin2 = fleet.admin(2);
    poll_until("r2 unready", || ready(&admin2), |s| *s == 503).await;
    let health: serde_json::Value = reqwest::get(format!("{}/health", fleet.admin(2)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "draining", "{health}");
    // Its answers close their connections: a load balancer keeps none idle to it.
    let index = reqwest::get(format!("{}/", fleet.base(2))).await.unwrap();
    assert_eq!(index.headers()["connection"], "close");
    let index = reqwest::get(format!("{}/", fleet.base(0))).await.unwrap();
    assert!(index.headers().get("connection").is_none());
    // Its session is still served, directly and through its peers.
    assert_eq!(echo(&c2, "direct").await, ("direct".into(), "r2".into()));
    let through_r0 = via(&c2, &fleet.url(0));
    assert_eq!(echo(&through_r0, "via").await, ("via".into(), "r2".into()));
    // A new session that still reaches it is served too.
    let late = session(&fleet.url(2)).await;
    assert!(late.session.as_deref().unwrap().starts_with("r2."));
    assert_eq!(echo(&late, "late").await.0, "late");
    // A client going through another replica gets its new session there.
    let moved = session(&fleet.url(1)).await;
    assert!(moved.session.as_deref().unwrap().starts_with("r1."));
    assert_eq!(echo(&c0, "unaware").await, ("unaware".into(), "r0".into()));
    assert_eq!(ready(&fleet.admin(0)).await, 200);

    // The window ends on its own; then the usual shutdown, exit 0.
    let r2 = fleet.relays[2].as_mut().unwrap();
    assert_eq!(exited(r2).await, Some(0), "{}", r2.logs());
    let logs = r2.final_logs();
    let line = |what: &str| logs.lines().find(|l| l.contains(what)).unwrap_or_default();
    // One session when the drain began, two (the late one) when its window ended.
    assert!(line("window_ms=").contains("sessions=1"), "{logs}");
    let over = line("drain window over");
    assert!(
        over.contains("sessions=2") && over.contains("reason=\"window_ended\""),
        "{logs}"
    );
    // Its sessions are gone: 404 through a peer. The other replicas never noticed.
    let gone = through_r0
        .call(json!(8), "echo", json!({"text": "x"}))
        .await;
    assert_eq!(gone.status, 404, "{gone:?}");
    assert_eq!(echo(&c0, "still here").await.0, "still here");
    assert_eq!(echo(&moved, "still here").await.0, "still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_second_signal_skips_the_window() {
    // No admin listener: the main router's probes say it. A window far longer than the
    // test's patience: only the second signal can end it.
    let mut relay = Relay::start(&["--node", "r0", "--drain-window", "600s"], &[]);
    let c = session(&relay.url).await;
    assert_eq!(ready(&relay.base).await, 200);

    signal(&relay, Signal::SIGTERM);
    poll_until("/ready 503", || ready(&relay.base), |s| *s == 503).await;
    assert_eq!(echo(&c, "draining").await.0, "draining");

    signal(&relay, Signal::SIGTERM);
    assert_eq!(exited(&mut relay).await, Some(0), "{}", relay.logs());
    assert!(relay.final_logs().contains("reason=\"signal\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_without_sessions_ends_at_once() {
    let mut fleet = Fleet::start(2, |_| window("600s"), &[]);
    let c = session(&fleet.url(0)).await;
    // The session lives on r0; r1 has none and does not wait.
    signal(fleet.relay(1), Signal::SIGTERM);
    let r1 = fleet.relays[1].as_mut().unwrap();
    assert_eq!(exited(r1).await, Some(0), "{}", r1.logs());
    assert!(r1.final_logs().contains("reason=\"no_sessions\""));
    assert_eq!(echo(&c, "unaware").await.0, "unaware");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_ends_forwarded_streams_at_the_shutdown() {
    // r0 forwards a GET stream to r1's session; its grace is far longer than the test's
    // patience, so only ending that stream at the shutdown lets it exit in time.
    let grace = || vec!["--shutdown-grace".to_owned(), "600s".to_owned()];
    let mut fleet = Fleet::start(2, |i| if i == 0 { grace() } else { vec![] }, &[]);
    let c1 = session(&fleet.url(1)).await;
    let through0 = via(&c1, &fleet.url(0));
    let stream = through0.get(None).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["mcp-relay-node"], "r1");

    // r0 holds no session: its drain window ends at once, then the shutdown.
    signal(fleet.relay(0), Signal::SIGTERM);
    let r0 = fleet.relays[0].as_mut().unwrap();
    assert_eq!(exited(r0).await, Some(0), "{}", r0.logs());
    // The client's stream ended (it would resume through another node).
    let mut body = stream.bytes_stream();
    let end = tokio::time::timeout(patience(), async {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {}
    });
    assert!(end.await.is_ok(), "the forwarded stream is still open");
    assert_eq!(echo(&c1, "unaware").await.0, "unaware");
}
