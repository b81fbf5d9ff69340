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
    let main = path == WELL_KNOWN || auth.metadata_url().ends_with(path);
    // With the built-in authorization server every mounted relay is a resource of its own.
    let mount = match auth.issued() {
        Some(_) if !main => mounted_resource(path),
        _ => None,
    };
    if !auth.is_oauth() || !(main || mount.is_some()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return Error::MethodNotAllowed(Allow::GetHead).into_response();
    }
    let body = auth.metadata(mount).to_string();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `/.well-known/oauth-protected-resource/servers/NAME/mcp` → `/servers/NAME` (the same for
/// `/endpoints/`). Any name: the document is public and says nothing about which exist.
fn mounted_resource(path: &str) -> Option<&str> {
    use crate::config::servers::{ENDPOINTS_MOUNT, SERVERS_MOUNT};
    let rest = path.strip_prefix(WELL_KNOWN)?;
    let mount = rest.strip_suffix("/mcp")?;
    let name = [SERVERS_MOUNT, ENDPOINTS_MOUNT]
        .iter()
        .find_map(|m| mount.strip_prefix(m)?.strip_prefix('/'))?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(mount)
}
