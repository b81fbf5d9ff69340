//! Front transports. Each file translates one framing to and from `jsonrpc::Frame` and calls
//! the relay core; none holds policy or session logic. `streamable_http` is session-per-id
//! over HTTP; the connection-oriented fronts share `duplex` (one connection, one session).

pub mod duplex;
pub mod sse;
pub mod stdio;
pub mod streamable_http;
pub mod tcp;
pub mod websocket;
