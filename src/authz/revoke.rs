//! `POST /oauth/revoke` (RFC 7009): `token` and an optional `token_type_hint`, the client
//! authenticated as at the token endpoint (`client_auth.rs`). A refresh token of this client
//! revokes its whole family (grant); an access token (short-lived, not tracked), an unknown
//! token or another client's token gets the same 200 with nothing done, so the answer tells
//! nothing. Every request is audited.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::audit::{Event, Fact};
use super::client_auth::{authenticate, read_form};
use super::store::now;
use super::{oauth_error, AuthServer};
use crate::caller::Caller;

/// The revocation endpoint.
pub(super) async fn serve(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let deny = |reason, client_id| Fact {
        client_id,
        refused: Some(reason),
        ..Fact::default()
    };
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(res) => {
            s.audit(&caller, Event::Revoke, deny("invalid_form", None));
            return res;
        }
    };
    let client = match authenticate(&s, &headers, &form).await {
        Ok(c) => c,
        Err(r) => {
            s.audit(
                &caller,
                Event::Revoke,
                deny(r.reason, r.client_id.as_deref()),
            );
            return r.answer();
        }
    };
    let id = Some(client.client_id.as_str());
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        s.audit(&caller, Event::Revoke, deny("token_missing", id));
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token_missing");
    };
    let family = match s.store.refresh_family(token).await {
        Ok(f) => f,
        Err(_) => {
            s.audit(&caller, Event::Revoke, deny("state_error", id));
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "state_error",
            );
        }
    };
    let fact = match &family {
        None => deny("unknown_token", id),
        Some(f) if f.client_id != client.client_id => Fact {
            grant: Some(&f.id),
            ..deny("client_mismatch", id)
        },
        Some(f) => {
            if s.store
                .revoke_family(&f.id, now(), "revoked")
                .await
                .is_err()
            {
                s.audit(&caller, Event::Revoke, deny("state_error", id));
                return oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "state_error",
                );
            }
            Fact {
                user: Some(&f.subject.name),
                client_id: id,
                grant: Some(&f.id),
                refused: None,
            }
        }
    };
    s.audit(&caller, Event::Revoke, fact);
    // RFC 7009 §2.2: the content of the answer is ignored; an empty body, not cached.
    (
        StatusCode::OK,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
    )
        .into_response()
}
