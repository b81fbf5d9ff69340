#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

//! One integration binary (STYLE.md §9): every test drives the real `mcp-relay` binary over a
//! real socket, wrapping the real `mcp-relay-fixture` child. A module with many tests keeps
//! its shared helpers in `name.rs` and its tests in `name/*.rs`, split by concern.
//!
//! - `support` (`support.rs`, `support/`): the harness, one client per front; modules take
//!   helpers from it and never from each other.
//! - `audit`: one audit line per request whatever its outcome; written before exit.
//! - `auth`: credentials at every route and front, sessions bound to principals, mTLS (§8.A, G3).
//! - `bridge`: `mcp-relay connect` as a host drives it, every transport, hostile servers (§8.F).
//! - `bridge_era`: `connect` lets a legacy host use a 2026-07-28 server unawares.
//! - `child`: child faults (crash, junk, oversize lines, stderr floods, spawn failure).
//! - `cli`: flags, exit codes, errors before binding, signals and shutdown.
//! - `cluster`: a fleet of relays: forwarding, shared limits, the drain, the response cache.
//! - `config`: examples validate, every error at once, `[serve]` keys, `schema`.
//! - `console`: the operator's console on the admin listener: login, actions, connect, the
//!   data views, the pages and their live stream.
//! - `connection_limits`: the per-principal cap per message on TCP/WebSocket/SSE; WebSocket 1013.
//! - `era_bridge`: 2026-07-28 clients in front of a legacy child: discovery, rounds of input,
//!   the sealed `requestState`, listen streams, logs, caching hints, session modes, era policy.
//! - `exhaustion`: slow heads and bodies, header floods, the connection cap (§8.D1–D3).
//! - `first_run`: the bundled demo server, the startup log's endpoints, `GET /` and its guard.
//! - `fixture_legacy`: the fixture's `--era legacy` conformance child (the 2026-07-28 names
//!   served with server->client requests), driven over its pipes without a relay.
//! - `legacy_face`: legacy sessions in front of a modern-only child (the relay's legacy face).
//! - `limits`: rate limits, concurrency cap, IP rules, trusted proxies, CORS (§8.C2, §8.D6).
//! - `metrics`: the admin listener: exact counts, Host and token checks, per-slot `/health`.
//! - `modern`: 2026-07-28 clients on a dual-era child: stateless POSTs, header checks, cancels.
//! - `otel`: OpenTelemetry spans received by a stand-in OTLP collector.
//! - `oauth_server`: the built-in authorization server: its state (SQLite, PostgreSQL) across
//!   restarts and `mcp-relay oauth`.
//! - `overload`: memory-budget shedding (503, no keep-alive) and recovery, via SIGHUP.
//! - `rbac`: roles and the audit log end to end on every front (§8.B, H1).
//! - `reload`: SIGHUP reloads credentials, roles and limits; a broken file keeps the old policy.
//! - `remote`: a front relay whose upstream is a remote relay over every transport, plain or TLS.
//! - `scale`: many sessions: no leftover processes, no cross-talk; out of file descriptors.
//! - `servers`: several servers behind one relay: per-server paths, the aggregate, subsets, reload.
//! - `servers_config`: `[servers]`, `[endpoints]`, `[aggregate]` in `check-config`, `schema`,
//!   start-up errors, and `--server NAME` serving one named server alone.
//! - `session_expiry`: idle per-session children reaped; open streams and connections kept.
//! - `shared`: `shared` and `per-identity` session modes: many sessions on one child.
//! - `spares`: `--spare-children`: per-session children started ahead of their sessions.
//! - `sse`: legacy HTTP+SSE (`/sse`, `/message`): scenario, refusals, connection lifetime.
//! - `streamable_http`: status codes, headers, sessions, streams, resumability, guards.
//! - `tls`: `cert generate`, HTTPS and TLS-TCP, plaintext refused, certificate reload.
//! - `transparency`: bytes through the relay equal bytes straight from the child.
//! - `transports`: the TCP, WebSocket and stdio fronts run the scenario; their abuse cases.
//! - `weak_secrets`: guessable secrets refused by `serve`, `check-config` and SIGHUP (issue 14).
//!
//! (§ numbers are SECURITY.md's.)

mod support;

// The throwaway CA and client certificates of the unit tests, the same file (it names no crate item).
#[path = "../../src/tls/client/testing.rs"]
mod certs;

// Modules that send signals or set Unix permissions are built on Unix only; the rest, `bridge`
// and `bridge_era` (`connect`) among them, on every OS (docs/platforms.md).
#[cfg(unix)]
mod audit;
mod auth;
mod bridge;
mod bridge_era;
#[cfg(unix)]
mod child;
#[cfg(unix)]
mod cli;
#[cfg(unix)]
mod cluster;
mod config;
mod connection_limits;
mod console;
#[cfg(unix)]
mod era_bridge;
mod exhaustion;
mod first_run;
mod fixture_legacy;
mod legacy_face;
mod limits;
mod metrics;
mod modern;
mod oauth_server;
#[cfg(unix)]
#[cfg(unix)]
mod otel;
#[cfg(unix)]
mod overload;
mod rbac;
#[cfg(unix)]
mod reload;
mod remote;
mod scale;
#[cfg(unix)]
mod servers;
mod servers_config;
mod session_expiry;
#[cfg(unix)]
mod shared;
#[cfg(unix)]
mod spares;
mod sse;
mod streamable_http;
#[cfg(unix)]
mod tls;
mod transparency;
mod transports;
#[cfg(unix)]
mod weak_secrets;
