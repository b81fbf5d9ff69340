//! The operator's console (`/ui` on the admin listener, issue 20): a real relay with named
//! servers and real fixture children, driven over real sockets.
//!
//! - `data`: the JSON views (`/ui/api/*`): servers with their children's restarts, last exit
//!   and stderr lines, sessions with their client, counters, traffic, the filtered audit feed,
//!   and `/health?deep=1`'s ping times.

mod data;
