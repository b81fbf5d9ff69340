//! RFC 8414 authorization-server metadata (also at `/.well-known/openid-configuration`, which
//! MCP clients probe too), the JWKS of the signing keys, and the branding logo.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AuthServer;
use crate::config::oauth_server::{logo_type, Registration};

/// The metadata document.
pub(super) async fn serve(State(s): State<Arc<AuthServer>>) -> Response {
    let cfg = s.cfg();
    let auth_methods = ["none", "client_secret_post", "client_secret_basic"];
    let mut doc = json!({
        "issuer": cfg.issuer,
        "authorization_endpoint": s.url("/oauth/authorize"),
        "token_endpoint": s.url("/oauth/token"),
        "revocation_endpoint": s.url("/oauth/revoke"),
        "jwks_uri": s.url("/oauth/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": cfg.scopes,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": cfg.client_metadata_documents,
    });
    if cfg.registration != Registration::Off {
        doc["registration_endpoint"] = s.url("/oauth/register").into();
    }
    ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(doc)).into_response()
}

/// The JWKS: every key whose tokens may still be live.
pub(super) async fn jwks(State(s): State<Arc<AuthServer>>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=60")],
        axum::Json(s.keys.jwks()),
    )
        .into_response()
}

/// The configured logo, or 404.
pub(super) async fn logo(State(s): State<Arc<AuthServer>>) -> Response {
    let Some(path) = &s.cfg().logo else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (Some(kind), Ok(bytes)) = (logo_type(path), tokio::fs::read(path).await) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        bytes,
    )
        .into_response()
}
