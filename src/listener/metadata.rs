//! OAuth 2.0 Protected Resource Metadata (RFC 9728), served at the well-known URI derived from
//! the relay's canonical resource (`/.well-known/oauth-protected-resource/<path>`, and the
//! bare prefix for clients that do not insert the path). Public by design: it is how a client
//! learns where to get a token. Served only when bearer tokens are accepted.

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{Allow, Error};
use crate::policy::authn::WELL_KNOWN;
use crate::policy::RequestPolicy;

/// Answers a request under the well-known prefix.
pub(super) fn serve(policy: &RequestPolicy, method: &Method, path: &str) -> Response {
    let auth = &policy.auth;
    let served = auth.is_oauth() && (path == WELL_KNOWN || auth.metadata_url().ends_with(path));
    if !served {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return Error::MethodNotAllowed(Allow::GetHead).into_response();
    }
    let body = auth.metadata().to_string();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}
