//! The console's live stream (`GET /ui/events`, SSE) and its JSON snapshots
//! (`GET /ui/api/VIEW`): what each page's script redraws from.
//!
//! Owns: the snapshot documents (servers, sessions, traffic, audit), the stream's pacing and
//! bounds. Does not own: the data (`Console`, `telemetry/live.rs`), rendering (`pages.rs`).
