//! mcp-relay: put stdio MCP servers on the network, safely.
//!
//! Map of the crate, one line per module, bottom layer first. A module imports only from its
//! own layer and the layers below, with no import cycle (`python3 scripts/layers.py`);
//! docs/ARCHITECTURE.md has the layers, the flow of one request and where each concern lives.
//!
//! 0. Leaves:
//!    - `os`: what differs between operating systems (process trees, memory readings, signals,
//!      private files), native and portable (docs/platforms.md).
//!    - `jsonrpc`: raw frames, the ambiguity rule, id splicing, `params` fields read on demand.
//!    - `caller`: who is calling (`Caller`, `Principal`, `Transport`), why authentication failed.
//!    - `secret`: secret references (`env:NAME`, `file:/path`) and the weak-secret rules.
//! 1. What every request speaks:
//!    - `error`: the one error → wire mapping (HTTP, JSON-RPC, WebSocket close codes, `Allow`).
//!    - `era`: protocol versions, the 2026-07-28 header checks (`era::modern`), the sealed
//!      `requestState` and task handles (`era::state`), the legacy-face translations.
//!    - `tls`: TLS for the listeners, certificate reload; `tls::client`: mTLS verification.
//!    - `telemetry`: logging, the audit log, Prometheus metrics, OpenTelemetry spans.
//!    - `session`: session ids, the session table, expiry; `session::stream`: SSE streams, replay.
//! 2. Checks and children:
//!    - `policy`: the policy phases in one order (`policy::phases`), one file per check.
//!    - `ticket`: what one admitted request is owed (audit record, list filter, span, slot).
//!    - `upstream`: id multiplexing in front of a child; `upstream::stdio` the child process,
//!      `upstream::supervisor` restarts and pools, `upstream::remote` servers on the network,
//!      `upstream::translate` a legacy child's input requests as rounds for modern clients.
//! 3. Configuration, and a server inside the relay built on the upstream mux:
//!    - `config`: a `serve` command line → the validated `ServeConfig` (`config::load`).
//!    - `face`: the legacy face of a modern-only child, one in-process server per legacy
//!      session (`initialize`, `ping`, log level, subscriptions kept; input rounds unpacked).
//! 4. `relay`: the transport-agnostic core: sessions and their children, `Relay::post` (the
//!    session state machine of every front), `Relay::stateless` (2026-07-28 requests, served
//!    natively or by a legacy child through `relay::legacy`; task handles, `relay::tasks`).
//! 5. Fronts:
//!    - `listener`: the front transports (Streamable HTTP, legacy SSE, WebSocket, TCP, stdio),
//!      framing only, and the HTTP router behind the guard.
//!    - `admin`: `/health`, `/ready` and the admin listener's `/metrics`.
//! 6. Several servers:
//!    - `aggregate`: the in-process server merging the named servers on the main path and on
//!      tool subsets (one session on each server's relay per aggregate session).
//!    - `hub`: one relay per named server, mounted at `/servers/NAME/`; the aggregate and
//!      endpoint relays; reload across them.
//! 7. Commands:
//!    - `command`: the whole program (`mcp_relay::main`: parse, logging, dispatch, exit code).
//!    - `cli`: the subcommands' clap types and `cli::parse`.
//!    - `app`: `serve` and `stdio`: bind, run, SIGHUP reload, ordered shutdown.
//!    - `bridge`: `connect`, the bridge for stdio-only hosts (OAuth, token store, URL guard).
//!    - `token`: `token key|secret|jwt`, credentials for the relay's own auth config.
//!    - `cert`: `cert generate`, self-signed development certificates.
//!    - `authz`: the built-in OAuth 2.1 authorization server (`[oauth_server]`): metadata,
//!      authorize, login and consent pages, token, registration, revocation; its state in
//!      SQLite or PostgreSQL (`authz::store`).
//!    - `oauth_cli`: `oauth clients|grants|users`, the operator's view of the authorization
//!      server's state (list, revoke, disable).
//!    - `demo`: `demo-server`, the bundled stdio MCP server to try the relay with.

mod admin;
mod aggregate;
mod app;
mod authz;
mod bridge;
mod caller;
mod cert;
mod cli;
mod cluster;
mod command;
mod config;
mod demo;
mod era;
mod error;
mod face;
mod hub;
mod jsonrpc;
mod listener;
mod oauth_cli;
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
