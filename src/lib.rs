//! mcp-relay: put stdio MCP servers on the network, safely.
//!
//! Map of the crate (see docs/ARCHITECTURE.md for the flow of one request):
//! - `cli`, `config`: command line → validated [`config::ServeConfig`].
//! - `app`: `serve` (bind, run, ordered shutdown). `cert`: `cert generate` (dev certificates).
//! - `tls`: rustls setup, certificate reload, the TLS-accepting listener.
//! - `listener`: front transports (Streamable HTTP), framing only.
//! - `policy`: request checks in one ordered place (Host, Origin).
//! - `relay`: the transport-agnostic core; `session::stream`: SSE streams with replay.
//! - `session`: session ids, table, expiry.
//! - `upstream`: id multiplexing in front of a child; `upstream::stdio`: the supervised child.
//! - `jsonrpc`: raw frames, the ambiguity rule, id splicing. `era`: protocol versions.
//! - `error`: the one error → wire mapping. `admin`: `/health`, `/ready`.
//! - `os`: what differs between operating systems (process trees, memory readings, signals,
//!   private files), native and portable (docs/platforms.md).
//! - `demo`: `demo-server`, the bundled stdio MCP server to try the relay with.

pub mod admin;
pub mod app;
pub mod bridge;
pub mod caller;
pub mod cert;
pub mod cli;
pub mod config;
pub mod demo;
pub mod era;
pub mod error;
pub mod jsonrpc;
pub mod listener;
pub mod os;
pub mod policy;
pub mod relay;
pub mod secret;
pub mod session;
pub mod telemetry;
pub mod ticket;
pub mod tls;
pub mod token;
pub mod upstream;
