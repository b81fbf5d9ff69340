//! The console's live stream (`GET /ui/events`, SSE) and its JSON snapshots
//! (`GET /ui/api/VIEW`): what each page's script redraws from.
//!
//! Owns: the snapshot documents (servers, sessions, traffic, audit), the stream's pacing and
//! bounds. Does not own: the data (`Console`, `telemetry/live.rs`), rendering (`pages.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Deps;

/// `GET /ui/api/VIEW`: one view's JSON (`servers`, `sessions`, `traffic`, `audit`).
pub(crate) async fn snapshot(State(deps): State<Deps>, Path(view): Path<String>) -> Response {
    match view.as_str() {
        "servers" => axum::Json(deps.console.servers()).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
