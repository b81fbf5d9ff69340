//! The built-in authorization server (`[oauth_server]`), end to end through a real relay: one
//! module per concern in `oauth_server/`.

mod idp;
