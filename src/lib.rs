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

mod admin;
mod app;
mod bridge;
mod caller;
mod cert;
mod cli;
mod command;
mod config;
mod demo;
mod era;
mod error;
mod jsonrpc;
mod listener;
mod os;
mod policy;
mod relay;
mod secret;
mod session;
mod telemetry;
mod ticket;
mod tls;
mod token;
mod upstream;

pub use command::main;

// Used by the integration tests, which drive them against a real relay over a real socket.
pub use tls::install_provider;
pub use upstream::remote::{Alpn, RemoteSpec, Roots, TlsClient, TlsOptions, Trust};
