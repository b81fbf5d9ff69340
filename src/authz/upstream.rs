//! The company identity provider.
use super::AuthServer;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
/// The provider's discovered metadata, cached.
#[derive(Debug, Default)]
pub(crate) struct Discovery;
pub(super) async fn start(State(_s): State<Arc<AuthServer>>) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
pub(super) async fn callback(State(_s): State<Arc<AuthServer>>) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
