//! `POST /oauth/revoke`.
use super::AuthServer;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
pub(super) async fn serve(State(_s): State<Arc<AuthServer>>) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
