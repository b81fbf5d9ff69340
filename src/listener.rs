//! Front transports. Each file translates one framing to and from `jsonrpc::Frame` and calls
//! the relay core; none holds policy or session logic. Today: `streamable_http`.

pub mod streamable_http;
