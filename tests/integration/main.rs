#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

//! One integration binary (STYLE.md §9): every test drives the real `mcp-relay` binary over a
//! real socket, wrapping the real `mcp-relay-fixture` child.
//!
//! - `cli`: flags, exit codes, errors before binding, signals and shutdown.
//! - `first_run`: the bundled demo server behind the relay, the startup log's endpoints,
//!   `GET /` (content, Host and authentication guard).
//! - `sse`: legacy HTTP+SSE (`/sse`, `/message`): scenario, refusals, connection lifetime.
//! - `streamable_http`: status codes, headers, sessions, streams, resumability, guards.
//! - `transparency`: bytes through the relay equal bytes straight from the child.
//! - `child`: child faults (crash, junk, oversize lines, stderr floods, spawn failure).
//! - `scale`: many sessions: no leftover processes, no cross-talk.
//! - `tls`: `cert generate`, HTTPS and TLS-TCP, plaintext refused, certificate reload.
//! - `auth`: credentials at every route and front, sessions bound to principals, mTLS
//!   (SECURITY.md §8.A, G3).
//! - `rbac`: roles and the audit log end to end (SECURITY.md §8.B, H1), every front.
//! - `limits`: rate limits, concurrency cap, IP rules, trusted proxies, CORS (SECURITY.md
//!   §8.C2, §8.D6).
//! - `connection_limits`: the per-principal cap per message on TCP/WebSocket, WebSocket 1013
//!   after sustained limiting.
//! - `overload`: memory-budget shedding (503, no keep-alive) and recovery, via SIGHUP.
//! - `otel`: OpenTelemetry spans received by a stand-in OTLP collector.
//! - `audit`: one audit line per request whatever its outcome; written before exit.
//! - `metrics`: the admin listener: exact counts after a scripted workload, Host and token
//!   checks, per-slot `/health`.
//! - `weak_secrets`: placeholder and guessable secrets refused by `serve`, `check-config` and
//!   SIGHUP (issue 14).
//! - `bridge`: `mcp-relay connect` (the stdio bridge) as a host drives it: every transport,
//!   credentials, tool filters, reconnects, malformed input, hostile servers (SECURITY.md §6, §8.F).

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
mod config;
mod connection_limits;
mod exhaustion;
mod first_run;
mod limits;
mod metrics;
mod modern;
#[cfg(unix)]
mod otel;
#[cfg(unix)]
mod overload;
mod rbac;
#[cfg(unix)]
mod reload;
mod remote;
mod scale;
mod session_expiry;
#[cfg(unix)]
mod shared;
mod sse;
mod streamable_http;
#[cfg(unix)]
mod tls;
mod transparency;
mod transports;
#[cfg(unix)]
mod weak_secrets;
