//! The operator's console (`/ui` on the admin listener), end to end through a real relay:
//! who may use it (`auth`), the operator's actions (`actions`), the client configurations
//! and extensions (`connect`); `operator` is their browser stand-in.

mod actions;
mod auth;
mod connect;
mod operator;
