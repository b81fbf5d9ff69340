//! `GET /ui/events`: the live stream a page's script redraws from (SSE): the page's view
//! every second, and each new audit record as it comes.
//!
//! Owns: the stream's pacing and its bounds (how many streams at once, how far a slow reader
//! may fall behind). Does not own: the documents it sends (`events.rs`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `GET /ui/events?view=VIEW`.
pub(crate) async fn events() -> Response {
    StatusCode::NOT_FOUND.into_response()
}
