//! Consent: the page that says which application, sent back where, wants which servers and
//! scopes as whom (`GET /oauth/consent`), and the decision (`POST /oauth/consent`). The code
//! it leads to is `grant.rs`'s.
//!
//! A decision is accepted only from the browser that opened the request, logged in
//! (`browser::check_form`, the session cookie). Allowing stores the consent when asked to
//! remember it (revocable: `mcp-relay oauth grants revoke`), issues a single-use code (60 s)
//! and redirects to the client with `code`, `state` and `iss`; denying redirects with
//! `access_denied`. Both end the request, so a form cannot be replayed.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use super::audit::{Event, Fact};
use super::browser;
use super::{grant, login, pages, store, AuthServer};
use crate::caller::Caller;

const EXPIRED: &str = "This sign-in request has expired or was already used.";

#[derive(Debug, Deserialize)]
pub(super) struct ShowQuery {
    #[serde(default)]
    request: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsentForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    remember: Option<String>,
}

pub(super) async fn show(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let now = store::now();
    let Ok(Some(pending)) = s.store.request(&q.request, now).await else {
        return s.error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    let client = match s.store.client(&pending.request.client_id).await {
        Ok(Some(c)) => c,
        _ => return s.error_page(StatusCode::BAD_REQUEST, EXPIRED),
    };
    let Some(subject) = login::current(&s, &headers, now).await else {
        return login::page(&s, &pending, &client.name, "", None, StatusCode::OK);
    };
    let r = &pending.request;
    let scopes: Vec<&str> = r.scope.split_whitespace().collect();
    let resource_name = s.resource_name(&r.resource).unwrap_or_default();
    let target = browser::form_target(&r.redirect_uri);
    let cfg = s.cfg();
    let page = pages::ConsentPage {
        brand: &cfg.name,
        has_logo: cfg.logo.is_some(),
        request: &pending.id,
        csrf: &pending.csrf,
        user: &subject.name,
        client: if client.name.is_empty() {
            &client.client_id
        } else {
            &client.name
        },
        client_id: &client.client_id,
        self_named: client.source == store::clients::SOURCE_REGISTERED,
        redirect_host: &target,
        resource: &r.resource,
        resource_name: &resource_name,
        scopes: &scopes,
        roles: &subject.roles,
    };
    pages::respond(StatusCode::OK, pages::consent(&page), Some(&target))
}

pub(super) async fn submit(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let now = store::now();
    let Ok(Some(pending)) = s.store.request(&form.request, now).await else {
        return s.error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    let r = &pending.request;
    let subject = login::current(&s, &headers, now).await;
    let refuse = |reason: &'static str| Fact {
        user: subject.as_ref().map(|u| u.name.as_str()),
        client_id: Some(r.client_id.as_str()),
        refused: Some(reason),
        ..Fact::default()
    };
    if let Err(reason) = browser::check_form(&headers, &form.csrf, &pending.csrf, &s.cfg().issuer) {
        s.audit(&caller, Event::Consent, refuse(reason));
        return s.error_page(StatusCode::FORBIDDEN, "This form was not sent from this browser's sign-in page. Start again from your application.");
    }
    let Some(subject) = subject.clone() else {
        s.audit(&caller, Event::Consent, refuse("not_logged_in"));
        let name = login::client_name(&s, &r.client_id).await;
        return login::page(
            &s,
            &pending,
            &name,
            "",
            Some("Your sign-in has expired. Sign in again."),
            StatusCode::UNAUTHORIZED,
        );
    };
    if form.decision != "approve" {
        let _ = s.store.delete_request(&pending.id).await;
        s.audit(&caller, Event::Consent, refuse("user_denied"));
        let to = browser::error_redirect(
            &s.cfg().issuer,
            &r.redirect_uri,
            "access_denied",
            "the user denied access",
            r.state.as_deref(),
        );
        return browser::see_other(&to);
    }
    s.audit(
        &caller,
        Event::Consent,
        Fact {
            user: Some(&subject.name),
            client_id: Some(&r.client_id),
            ..Fact::default()
        },
    );
    if form.remember.is_some() {
        let _ = s
            .store
            .put_consent(&subject.name, &r.client_id, &r.resource, &r.scope, now)
            .await;
    }
    grant::issue(&s, &caller, &pending, &subject).await
}
