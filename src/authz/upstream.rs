//! The company identity provider (`[oauth_server.upstream]`): the relay as an OpenID Connect
//! client of the operator's issuer. `GET /oauth/upstream/start?request=ID` sends the browser
//! of a pending authorization request to the provider (authorization code, PKCE S256, state
//! and nonce; both ends only for the browser that opened the request, by its `mcpr_browser`
//! cookie, `browser.rs`); `GET /oauth/upstream/callback` takes
//! the code back, redeems it, checks the ID token and maps its claims to the subject, then
//! hands over to the login (`login::logged_in`), which opens the session and goes on to
//! consent. Discovery and keys are `upstream/discovery.rs`; the ID token's checks and the
//! claim mapping `upstream/id_token.rs`. Every refusal is audited here (`Event::Login`), a
//! success by `logged_in`.

mod discovery;
mod id_token;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::audit::{Event, Fact};
use super::browser::{self, BROWSER_COOKIE};
use super::store::{self, flow::Pending};
use super::{random_token, AuthServer};
use crate::caller::Caller;
use crate::config::oauth_server::UpstreamConfig;
pub(crate) use discovery::Discovery;

/// What a person sees for any failure (nothing the provider sent is shown).
const FAILED: &str = "The sign-in with your identity provider did not succeed.";

/// The leg as stored with the pending request (`oauth_requests.upstream`).
#[derive(Debug, Serialize, Deserialize)]
struct Leg {
    /// The random part of `state` (which is `REQUEST_ID.RANDOM`).
    state: String,
    nonce: String,
    verifier: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct StartQuery {
    request: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /oauth/upstream/start?request=ID`: a 303 to the provider's authorization endpoint.
pub(super) async fn start(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(cfg) = s.cfg().upstream.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cfg = &cfg;
    let pending = match q.request.as_deref() {
        Some(id) => s.store.request(id, store::now()).await.ok().flatten(),
        None => None,
    };
    let Some(pending) = pending else {
        return fail(&s, &caller, "unknown_request", None);
    };
    if !same_browser(&headers, &pending) {
        return fail(&s, &caller, "csrf_cookie_mismatch", None);
    }
    let meta = match s.upstream.metadata(&s.http, cfg).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "identity provider discovery failed");
            return fail(&s, &caller, "idp_unavailable", None);
        }
    };
    let leg = Leg {
        state: random_token(32),
        nonce: random_token(32),
        verifier: random_token(32),
    };
    let json = serde_json::to_string(&leg).unwrap_or_default();
    if s.store.set_upstream(&pending.id, &json).await.is_err() {
        return fail(&s, &caller, "store_error", None);
    }
    let Ok(mut url) = url::Url::parse(&meta.authorization_endpoint) else {
        return fail(&s, &caller, "idp_unavailable", None);
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", &s.url("/oauth/upstream/callback"))
        .append_pair("scope", &cfg.scopes.join(" "))
        .append_pair("state", &format!("{}.{}", pending.id, leg.state))
        .append_pair("nonce", &leg.nonce)
        .append_pair("code_challenge", &sha256(&leg.verifier))
        .append_pair("code_challenge_method", "S256");
    browser::see_other(url.as_str())
}

/// `GET /oauth/upstream/callback?code&state` (or `error`): the provider sends the browser
/// back; the login goes on at `login::logged_in` when the ID token holds.
pub(super) async fn callback(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(cfg) = s.cfg().upstream.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cfg = &cfg;
    let Some((pending, leg)) = claim_leg(&s, q.state.as_deref(), &headers).await else {
        return fail(&s, &caller, "idp_bad_state", None);
    };
    if q.error.is_some() {
        return fail(&s, &caller, "idp_error", None);
    }
    let Some(code) = q.code.as_deref() else {
        return fail(&s, &caller, "idp_error", None);
    };
    let subject = match login(&s, cfg, code, &leg).await {
        Ok(subject) => subject,
        Err(reason) => return fail(&s, &caller, reason, None),
    };
    // One name, one person: an identity-provider principal never takes a local user's name
    // (their consents, their disabled flag, their roles in the roles file).
    if s.cfg().user(&subject.name).is_some() {
        return fail(&s, &caller, "idp_name_taken_by_local_user", None);
    }
    match s.store.is_disabled(&subject.name).await {
        Ok(false) => {}
        Ok(true) => return fail(&s, &caller, "user_disabled", Some(&subject.name)),
        Err(_) => return fail(&s, &caller, "store_error", Some(&subject.name)),
    }
    super::login::logged_in(&s, &caller, &pending, subject).await
}

/// The pending request `state` names, with its leg, when the random part matches and the
/// browser is the one that opened the request; the leg is removed (single use).
async fn claim_leg(
    s: &AuthServer,
    state: Option<&str>,
    headers: &HeaderMap,
) -> Option<(Pending, Leg)> {
    let (id, random) = state?.split_once('.')?;
    let pending = s.store.request(id, store::now()).await.ok()??;
    let stored = pending.upstream.clone()?;
    let leg: Leg = serde_json::from_str(&stored).ok()?;
    let same = bool::from(leg.state.as_bytes().ct_eq(random.as_bytes()));
    if !same || !same_browser(headers, &pending) {
        return None;
    }
    s.store
        .take_upstream(id, &stored)
        .await
        .ok()?
        .then_some(())?;
    Some((pending, leg))
}

/// Redeems the code and checks the ID token: the subject it names.
async fn login(
    s: &AuthServer,
    cfg: &UpstreamConfig,
    code: &str,
    leg: &Leg,
) -> Result<super::store::flow::Subject, &'static str> {
    let token = exchange(s, cfg, code, leg).await?;
    let kid = id_token::kid(&token)?;
    let key = match s.upstream.key(&s.http, cfg, kid.as_deref()).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err("idp_bad_signature"),
        Err(e) => {
            tracing::warn!(error = %e, "identity provider keys not fetched");
            return Err("idp_unavailable");
        }
    };
    let claims = id_token::verify(&token, &key, cfg, &leg.nonce, store::now())?;
    id_token::subject(&claims, cfg)
}

/// The code exchange at the token endpoint: the ID token.
async fn exchange(
    s: &AuthServer,
    cfg: &UpstreamConfig,
    code: &str,
    leg: &Leg,
) -> Result<String, &'static str> {
    let meta = s
        .upstream
        .metadata(&s.http, cfg)
        .await
        .map_err(|_| "idp_unavailable")?;
    let redirect_uri = s.url("/oauth/upstream/callback");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", leg.verifier.as_str()),
    ];
    let mut req = s.http.post(&meta.token_endpoint);
    match &cfg.client_secret {
        // RFC 6749 §2.3.1: both parts form-encoded before Basic.
        Some(secret) => {
            let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            let user: String = enc(&cfg.client_id);
            let pass: String = enc(secret);
            req = req.basic_auth(user, Some(pass));
        }
        None => form.push(("client_id", cfg.client_id.as_str())),
    }
    let res = req
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|_| "idp_unavailable")?;
    if res.status() != reqwest::StatusCode::OK {
        return Err("idp_exchange_failed");
    }
    let body = discovery::body(res)
        .await
        .map_err(|_| "idp_exchange_failed")?;
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "idp_exchange_failed")?;
    answer
        .get("id_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or("idp_exchange_failed")
}

/// Whether the request comes from the browser that opened `pending` (its `mcpr_browser`
/// cookie is the request's CSRF value).
fn same_browser(headers: &HeaderMap, pending: &Pending) -> bool {
    browser::cookie(headers, BROWSER_COOKIE)
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(pending.csrf.as_bytes())))
}

/// Audits the refusal and answers with the error page (nothing from the provider on it).
fn fail(s: &AuthServer, caller: &Caller, reason: &'static str, user: Option<&str>) -> Response {
    s.audit(
        caller,
        Event::Login,
        Fact {
            user,
            refused: Some(reason),
            ..Fact::default()
        },
    );
    s.error_page(StatusCode::BAD_REQUEST, FAILED)
}

/// BASE64URL(SHA-256(v)): the PKCE challenge.
fn sha256(v: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, v.as_bytes()))
}
