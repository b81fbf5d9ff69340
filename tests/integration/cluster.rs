//! A fleet of relays (`[cluster]`, docs/fleet.md): three `mcp-relay serve` processes on
//! loopback that know each other as peers (`support::fleet`). The tests, by concern:
//!
//! - `forward`: a request for another node's session is carried to its owner (POST, GET
//!   streams and their resumption, DELETE, legacy SSE `/message`), answered there
//!   (`mcp-relay-node`), counted once against the principal, by the owner; a dead owner's
//!   sessions answer 404 quickly, a silent one 503; mounts, bodies and headers cross the hop.
//! - `forged`: ids naming unknown nodes, other epochs or addresses connect to nothing and
//!   answer 404; forwarded requests are not forwarded again; only the owner authenticates.
//! - `drain`: SIGTERM on a replica: `/ready` 503 at once, its sessions served for the drain
//!   window, then the usual shutdown; a second signal skips the rest.
//! - `limits`: rates (principal, tool) and the concurrency cap (HTTP and TCP) shared through a
//!   real redis-server hold for the whole fleet; a killed replica's leases come back after one
//!   lease; over-limit buckets skip the store; Sentinel; a SIGHUP keeps the store.
//! - `store_down`: redis-server paused or killed: the `local` fallback (each replica's share),
//!   `closed` (503 + `Retry-After`), `mcp_relay_store_up`, and recovery.
//! - `store_fleet`: the store tests' configs, clients and lease count (their replicas come
//!   from `support::fleet`).
//! - `modern`: 2026-07-28 task handles and sealed `requestState` carry their node's tag; a
//!   follow-up or retry through another node is forwarded to it.
//! - `cache`: the response cache, in memory and in the fleet's store.

use serde_json::{json, Value};

use crate::support::fleet::{metric, Fleet};
use crate::support::{text_of, Client};

mod cache;
mod drain;
mod forged;
mod forward;
mod limits;
mod modern;
mod store_down;
mod store_fleet;

const VERSION: &str = "2025-11-25";

/// The node an id names (`r1.0a0b0c0d.…` → `r1`).
fn node_of(id: &str) -> &str {
    id.split('.').next().unwrap()
}

/// A client of relay `i`'s Streamable HTTP endpoint using `session`'s session.
fn client_at(fleet: &Fleet, i: usize, session: &Client) -> Client {
    let mut c = session.clone();
    c.url = fleet.url(i);
    c
}

/// `mcp_relay_forwarded_total{outcome}` of relay `i`.
async fn forwarded(fleet: &Fleet, i: usize, outcome: &str) -> f64 {
    let text = fleet.metrics(i).await;
    metric(
        &text,
        &format!("mcp_relay_forwarded_total{{outcome=\"{outcome}\"}}"),
    )
}

/// A `tools/call` of the fixture's `echo` with `text`; the answer's text.
async fn echo(c: &Client, id: i64, text: &str) -> (u16, Option<String>, Value) {
    let r = c.call(json!(id), "echo", json!({"text": text})).await;
    let node = r.header("mcp-relay-node");
    let msg = r.messages().last().cloned().unwrap_or(Value::Null);
    (r.status, node, json!({"text": text_of(&msg), "msg": msg}))
}
