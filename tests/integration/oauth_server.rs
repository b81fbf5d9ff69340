//! The built-in OAuth 2.1 authorization server (`[oauth_server]`), end to end through a real
//! relay: `flow.rs` drives it (registration, the HTML forms, the token endpoint); the other
//! files each test one concern.

mod connect;
mod endpoints;
mod flow;
mod idp;
mod lifecycle;
mod pages;
mod storage;
mod tokens;
