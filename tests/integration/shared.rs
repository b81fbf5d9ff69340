//! `--session-mode shared` and `per-identity`: many sessions on one child. Colliding ids,
//! tokens and cancellations stay per session; child requests reach only their session;
//! global notifications fan out by the rules; the child restarts under its sessions; 500
//! sessions run on exactly N children.
//! The tests, by concern:
//!
//! - `isolation`: colliding ids, tokens and cancellations, one initialize, sampling and child
//!   requests that reach only their session.
//! - `notifications`: list-changed fan-out, log levels per session, subscriptions.
//! - `faults`: the shared child killed or crash-looping, 500 sessions on N children, the
//!   in-flight cap, a session that stops reading.
//! - `per_identity`: one child per identity, env templates, the idle TTL.

use std::collections::{HashMap, HashSet};

use eventsource_stream::Eventsource;
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::{
    eventually, init_request, read_reply, text_of, wait_event, wait_recorded, Client, Relay,
};

const SHARED: &[&str] = &["--session-mode", "shared"];

async fn session(relay: &Relay) -> Client {
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    c
}

async fn pid_of(c: &Client) -> String {
    text_of(&c.call(json!("pid"), "pid", json!({})).await.messages()[0])
}

/// Opens the standalone GET stream and returns its event stream.
async fn listen(
    c: &Client,
) -> impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin
{
    let res = c.get(None).await;
    assert_eq!(res.status(), 200);
    Box::pin(res.bytes_stream().eventsource())
}

/// JSON-RPC messages that arrive on `stream` within `ms` milliseconds.
async fn drain_for(
    stream: &mut (impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>
              + Unpin),
    ms: u64,
) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if !ev.data.is_empty() {
            out.push(serde_json::from_str(&ev.data).unwrap());
        }
    }
    out
}

mod faults;
mod isolation;
mod notifications;
mod per_identity;
