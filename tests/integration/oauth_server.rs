//! The built-in authorization server (`[oauth_server]`, issue 18), a module per concern.

mod endpoints;
