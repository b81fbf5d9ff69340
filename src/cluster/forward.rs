//! Forwarding a request for another replica's session to that replica, unbuffered.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::Cluster;
use crate::caller::ClientAddr;
use crate::cluster::config::ClusterConfig;
use crate::error::Error;

/// The HTTP client to the peers.
#[derive(Debug)]
pub(crate) struct Forwarder {}

impl Forwarder {
    pub(crate) fn new(_cfg: &ClusterConfig) -> Forwarder {
        Forwarder {}
    }

    /// Carries `req` to the owner of the session it names.
    pub(crate) async fn forward(
        &self,
        _cluster: &Cluster,
        _req: Request,
        _client: Option<ClientAddr>,
    ) -> Response {
        Error::UnknownSession.into_response()
    }
}
