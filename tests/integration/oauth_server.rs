//! The built-in authorization server (`[oauth_server]`, issue 18) end to end: a real `mcp-relay
//! serve` with the section on, driven over HTTP and through `mcp-relay oauth`. One module per
//! concern:
//!
//! - `storage`: the state in SQLite and in PostgreSQL (a server the test starts) survives a
//!   restart (signing keys, clients, grants); `mcp-relay oauth clients|grants|users` on both.

mod storage;
