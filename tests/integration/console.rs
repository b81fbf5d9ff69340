//! The operator's console (`/ui` on the admin listener), one file per concern:
//!
//! - `pages`: the servers, sessions, traffic and audit pages, their assets and the live
//!   stream (`/ui/events`): rendered with current data, hostile names shown as text, the
//!   stream's snapshots and audit records, its cap.

mod pages;
