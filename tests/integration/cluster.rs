//! A fleet of relays (docs/fleet.md): several real `mcp-relay serve` processes on free
//! loopback ports, each `--node rN` with the others as `--peer`s, around the real fixture.
//!
//! The tests, by concern:
//! - `limits`: rates (principal, tool) and the concurrency cap (HTTP and TCP) shared through a
//!   real redis-server hold for the whole fleet; a killed replica's leases come back after one
//!   lease; over-limit buckets skip the store; Sentinel; a SIGHUP keeps the store.
//! - `store_down`: redis-server paused or killed: the `local` fallback (each replica's share),
//!   `closed` (503 + `Retry-After`), `mcp_relay_store_up`, and recovery.
//!
//! `store_fleet` starts the replicas of these tests.

mod limits;
mod store_down;
mod store_fleet;
