//! The console's pages, rendered on the server (maud: escaped by construction), and its
//! static assets (one stylesheet, one script, shipped inside the binary).
//!
//! Owns: the page layout and navigation, the servers, sessions, traffic and audit pages,
//! the assets. Does not own: the live stream the pages' script reads (`events.rs`), the
//! connect page (`connect.rs`), authentication (`auth.rs`).

use axum::extract::State;
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
