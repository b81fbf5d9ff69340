//! Streamable HTTP: status codes, headers, session lifecycle, streams, resumability,
//! server→client requests, cancellation, guards and limits (PROTOCOL.md §2, SECURITY.md §3).
//! The tests, by concern:
//!
//! - `sessions`: initialize, status codes, batches, DELETE, idle expiry, JSON response mode,
//!   a modern request to a legacy child, `/health` and `/ready`.
//! - `streams`: server→client requests, the GET stream, progress, cancellation, timeouts,
//!   polling and resumption with `Last-Event-ID`, the bounded replay buffer.
//! - `guards`: Host and Origin, the body cap, the session cap, parser bombs, relay errors' ids.

use std::time::Duration;

use eventsource_stream::Eventsource;
use serde_json::{json, Value};

use crate::support::{
    collect_events, eventually, init_request, read_reply, text_of, wait_event, Client, Relay,
};

fn code(reply: &crate::support::Reply) -> i64 {
    reply.json()["error"]["code"].as_i64().unwrap_or(0)
}

mod guards;
mod sessions;
mod streams;
