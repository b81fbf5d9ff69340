//! The operator's actions (`POST /ui/actions/ACTION`): restart a server's children, end a
//! session, revoke a principal's sessions, reload the configuration. Each is confirmed on a
//! page of its own first, checked against the console session's CSRF token, and audited with
//! the operator's identity.
//!
//! Owns: the confirmation step, the actions' audit records. Does not own: what an action does
//! to the relays (`Console`, `hub/console.rs`) or to the configuration (`app.rs`).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `POST /ui/actions/ACTION`: without `confirm=yes`, the confirmation page; with it, the action.
pub(crate) async fn act(Path(action): Path<String>) -> Response {
    let _ = action;
    StatusCode::NOT_FOUND.into_response()
}
