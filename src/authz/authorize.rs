//! `GET /oauth/authorize`: an authorization request (authorization code with PKCE, OAuth 2.1)
//! checked in two stages. First the client and its redirect URI: until both are known good,
//! every problem is an error page and nothing redirects (no open redirect). Then the rest
//! (`response_type=code`, a S256 `code_challenge`, a `resource` among the relay's, scopes
//! among the offered): problems go back to the client's redirect URI as OAuth errors with its
//! `state` and our `iss`.
//!
//! A good request is stored (`oauth_requests`, ten minutes) under a random id, bound to this
//! browser (`browser.rs`), and answered with the login page — or, for a browser with a login
//! session, the consent page, or at once the code when the user already consented.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::audit::{Event, Fact};
use super::browser::{self, BROWSER_COOKIE};
use super::store::clients::Client;
use super::store::flow::{AuthRequest, Pending};
use super::{cimd, grant, login, pages, redirect, register, store, AuthServer};
use crate::caller::Caller;
use crate::config::oauth_server::Registration;

/// How long a person has to log in and consent.
pub(super) const REQUEST_TTL: i64 = 600;

/// The parameters of one request, each given at most once.
type Params = HashMap<String, String>;

pub(super) async fn serve(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(msg) => return s.error_page(StatusCode::BAD_REQUEST, msg),
    };
    let (client, redirect_uri) = match first_stage(&s, &caller, &params).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let client_id = client.client_id.clone();
    let state = params.get("state").cloned();
    let back = |error: &str, description: &str, reason: &'static str| {
        s.audit(&caller, Event::Authorize, refused(&client_id, reason));
        browser::see_other(&browser::error_redirect(
            &s.cfg().issuer,
            &redirect_uri,
            error,
            description,
            state.as_deref(),
        ))
    };
    let request = match check(&s, &params) {
        Ok((challenge, resource, scope)) => AuthRequest {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            challenge,
            resource,
            scope,
        },
        Err((error, description, reason)) => return back(error, description, reason),
    };
    let now = store::now();
    let (browser_id, new_cookie) = match browser::cookie(&headers, BROWSER_COOKIE) {
        Some(v) => (v, false),
        None => (super::random_token(24), true),
    };
    let pending = Pending {
        id: super::random_token(24),
        request,
        csrf: browser_id.clone(),
        upstream: None,
        expires: now + REQUEST_TTL,
    };
    if s.store.put_request(&pending).await.is_err() {
        return s.error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in service is unavailable right now.",
        );
    }
    let mut res = match login::current(&s, &headers, now).await {
        Some(subject) => grant::proceed(&s, &caller, &pending, &subject).await,
        None => login::page(&s, &pending, &client.name, "", None, StatusCode::OK),
    };
    if new_cookie {
        let c = browser::set_cookie(
            BROWSER_COOKIE,
            &browser_id,
            Duration::from_secs(24 * 3600),
            s.secure_cookies(),
        );
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// The first stage: the client and the redirect URI it is sent back to. A problem here is
/// an error page (and an audit record), never a redirect.
async fn first_stage(
    s: &AuthServer,
    caller: &Caller,
    params: &Params,
) -> Result<(Client, String), Response> {
    let client_id = params.get("client_id").cloned().unwrap_or_default();
    let client = match cimd::client(s, &client_id).await {
        Ok(c) => c,
        Err(reason) => {
            s.audit(caller, Event::Authorize, refused(&client_id, reason));
            let msg = match reason {
                "state_unavailable" => "The sign-in service is unavailable right now.",
                _ => "This application is not known here (unknown or unusable client ID).",
            };
            return Err(s.error_page(StatusCode::BAD_REQUEST, msg));
        }
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(r)
            if client
                .redirect_uris
                .iter()
                .any(|reg| redirect::matches(reg, r)) =>
        {
            r.clone()
        }
        Some(_) => {
            s.audit(
                caller,
                Event::Authorize,
                refused(&client_id, "redirect_uri_mismatch"),
            );
            return Err(s.error_page(
                StatusCode::BAD_REQUEST,
                "The application asked to be sent back to an address it did not register.",
            ));
        }
        // OAuth 2.1 §4.1.1: optional only when exactly one is registered.
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            s.audit(
                caller,
                Event::Authorize,
                refused(&client_id, "redirect_uri_missing"),
            );
            return Err(s.error_page(
                StatusCode::BAD_REQUEST,
                "The application did not say where to send you back.",
            ));
        }
    };
    // Under `allow-list` every redirect must match a pattern now, whatever the client was
    // registered or fetched with (client ID metadata documents, a narrowed list).
    let cfg = s.cfg();
    if cfg.registration == Registration::AllowList
        && !register::allowed(&cfg.redirect_patterns, &redirect_uri)
    {
        s.audit(
            caller,
            Event::Authorize,
            refused(&client.client_id, "redirect_uri_not_allowed"),
        );
        return Err(s.error_page(
            StatusCode::BAD_REQUEST,
            "This application's address is not among those this service allows.",
        ));
    }
    Ok((client, redirect_uri))
}

/// The query as single-valued parameters (RFC 6749 §3.1: a repeated one is an error).
fn params(query: &str) -> Result<Params, &'static str> {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if v.len() > 2048 {
            return Err("A parameter of the sign-in request is too long.");
        }
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err("The sign-in request repeats a parameter.");
        }
    }
    Ok(out)
}

type Refusal = (&'static str, &'static str, &'static str);

/// The second stage: response type, PKCE, resource, scopes. Returns the challenge, the
/// resource and the granted scopes.
fn check(s: &AuthServer, p: &Params) -> Result<(String, String, String), Refusal> {
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        _ => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
                "bad_response_type",
            ))
        }
    }
    let challenge = p.get("code_challenge").map(String::as_str).unwrap_or("");
    match p.get("code_challenge_method").map(String::as_str) {
        _ if challenge.is_empty() => {
            return Err((
                "invalid_request",
                "PKCE is required: code_challenge with method S256",
                "pkce_missing",
            ))
        }
        Some("S256") => {}
        _ => {
            return Err((
                "invalid_request",
                "PKCE method must be S256",
                "pkce_not_s256",
            ))
        }
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err((
            "invalid_request",
            "code_challenge is not a S256 challenge",
            "pkce_malformed",
        ));
    }
    let main = s.resources().remove(0).0;
    let resource = match p.get("resource") {
        Some(r) if s.resource_name(r).is_some() => r.clone(),
        Some(_) => {
            return Err((
                "invalid_target",
                "the resource is not served here",
                "unknown_resource",
            ))
        }
        None => main,
    };
    let offered = &s.cfg().scopes;
    let scope: Vec<&str> = match p.get("scope") {
        Some(sc) if !sc.trim().is_empty() => sc.split_whitespace().collect(),
        _ => offered.iter().map(String::as_str).collect(),
    };
    if scope.iter().any(|sc| !offered.iter().any(|o| o == sc)) {
        return Err((
            "invalid_scope",
            "a requested scope is not offered",
            "unknown_scope",
        ));
    }
    Ok((challenge.to_owned(), resource, scope.join(" ")))
}

fn refused<'a>(client_id: &'a str, reason: &'static str) -> Fact<'a> {
    Fact {
        client_id: Some(client_id),
        refused: Some(reason),
        ..Fact::default()
    }
}

impl AuthServer {
    /// An error page with the operator's branding.
    pub(super) fn error_page(&self, status: StatusCode, message: &str) -> Response {
        let cfg = self.cfg();
        pages::respond(
            status,
            pages::error(&cfg.name, cfg.logo.is_some(), message),
            None,
        )
    }
}
