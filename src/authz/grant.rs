//! The end of the interactive part of a grant: [`proceed`], the step after every login (the
//! code at once when this user already allowed this client this resource and these scopes,
//! else the consent page), and [`issue`], the single-use code (60 s) and the redirect to the
//! client with `code`, `state` and `iss`. Whoever deletes the pending request issues its
//! code, so two tabs or a replayed form cannot both get one.

use axum::http::StatusCode;
use axum::response::Response;

use super::audit::{Event, Fact};
use super::browser;
use super::store::flow::{Code, Pending, Subject};
use super::{store, AuthServer};
use crate::caller::Caller;

/// How long a code may wait for its exchange.
const CODE_TTL: i64 = 60;

const EXPIRED: &str = "This sign-in request has expired or was already used.";

/// After a login: the code when consent is remembered, else the consent page.
pub(super) async fn proceed(
    s: &AuthServer,
    caller: &Caller,
    pending: &Pending,
    subject: &Subject,
) -> Response {
    let r = &pending.request;
    let remembered = s
        .store
        .has_consent(&subject.name, &r.client_id, &r.resource, &r.scope)
        .await
        .unwrap_or(false);
    match remembered {
        true => issue(s, caller, pending, subject).await,
        false => browser::see_other(&format!("/oauth/consent?request={}", pending.id)),
    }
}

/// Ends the request with a code for `subject`, redirecting to the client.
pub(super) async fn issue(
    s: &AuthServer,
    caller: &Caller,
    pending: &Pending,
    subject: &Subject,
) -> Response {
    let r = &pending.request;
    // Whoever deletes the request issues its code: two tabs cannot both get one.
    if !s.store.delete_request(&pending.id).await.unwrap_or(false) {
        return s.error_page(StatusCode::BAD_REQUEST, EXPIRED);
    }
    let code = super::random_token(32);
    let family = super::random_token(16);
    let stored = Code {
        family: family.clone(),
        client_id: r.client_id.clone(),
        redirect_uri: r.redirect_uri.clone(),
        challenge: r.challenge.clone(),
        resource: r.resource.clone(),
        scope: r.scope.clone(),
        subject: subject.clone(),
        expires: store::now() + CODE_TTL,
        used: None,
    };
    if s.store.put_code(&code, &stored).await.is_err() {
        return s.error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in service is unavailable right now.",
        );
    }
    s.audit(
        caller,
        Event::Authorize,
        Fact {
            user: Some(&subject.name),
            client_id: Some(&r.client_id),
            grant: Some(&family),
            ..Fact::default()
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    if let Some(st) = &r.state {
        pairs.push(("state", st));
    }
    let cfg = s.cfg();
    pairs.push(("iss", &cfg.issuer));
    browser::see_other(&browser::with_query(&r.redirect_uri, &pairs))
}
