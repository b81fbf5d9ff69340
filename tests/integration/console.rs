//! The operator's console (`/ui` on the admin listener), end to end through a real relay:
//! who may use it (`auth`), the operator's actions (`actions`), the client configurations
//! and extensions (`connect`); `operator` is their browser stand-in. `data`: the JSON views
//! (`/ui/api/*`): servers with their children's restarts, last exit and stderr lines,
//! sessions with their client, counters, traffic, the filtered audit feed, and
//! `/health?deep=1`'s ping times. `pages`: the servers, sessions, traffic and audit pages,
//! their assets and the live stream (`/ui/events`): rendered with current data, hostile names
//! shown as text, the stream's snapshots and audit records, its cap.

mod actions;
mod auth;
mod connect;
mod data;
mod operator;
mod pages;
