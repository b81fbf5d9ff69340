//! The console's pages, rendered on the server (maud: escaped by construction), and its
//! static assets (one stylesheet, one script, shipped inside the binary).
//!
//! Owns: the page layout and navigation, the servers, sessions, traffic and audit pages,
//! the assets. Does not own: the live stream the pages' script reads (`events.rs`), the
//! connect page (`connect.rs`), authentication (`auth.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;

use super::Deps;

/// `GET /ui`: the servers page.
pub(crate) async fn index() -> Redirect {
    Redirect::to("/ui/servers")
}

/// `GET /ui/servers`.
pub(crate) async fn servers(State(deps): State<Deps>) -> Response {
    Json(deps.console.servers()).into_response()
}

/// `GET /ui/sessions`.
pub(crate) async fn sessions(State(deps): State<Deps>) -> Response {
    Json(deps.console.sessions()).into_response()
}

/// `GET /ui/traffic`.
pub(crate) async fn traffic() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `GET /ui/audit`.
pub(crate) async fn audit() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `GET /ui/static/FILE`: the stylesheet and the script.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let _ = file;
    StatusCode::NOT_FOUND.into_response()
}
