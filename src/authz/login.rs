//! The login form.
use super::AuthServer;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
pub(super) async fn submit(State(_s): State<Arc<AuthServer>>) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
pub(super) async fn logout(State(_s): State<Arc<AuthServer>>) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
/// Placeholder until the login lands: opens the session and goes on to consent.
pub(super) async fn logged_in(
    _s: &AuthServer,
    _caller: &crate::caller::Caller,
    _pending: &super::store::flow::Pending,
    _subject: super::store::flow::Subject,
) -> Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
