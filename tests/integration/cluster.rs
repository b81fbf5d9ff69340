//! A fleet of relays behind a load balancer (issue 19, docs/fleet.md): several `mcp-relay
//! serve` processes on known loopback ports, each naming the others its peers.
//!
//! - `drain`: SIGTERM on a replica: `/ready` 503 at once, its sessions served for the drain
//!   window, then the usual shutdown; a second signal skips the rest.
//! - `cache`: the response cache, in memory and in the fleet's store.
//! - `local_fleet`, `local_redis`: starting the replicas and a Redis server (until the
//!   shared harness has them).

mod cache;
mod drain;
mod local_fleet;
mod local_redis;
