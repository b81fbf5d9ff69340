//! Who may use the console: the admin bearer token (a header, or pasted once into the login
//! form), a user of the authorization server with the `admin` role, or anyone on a loopback
//! admin listener when no admin credential is configured (the same rule as the other admin
//! paths). A browser that logged in (or reached a loopback-open console) holds a console
//! session: a cookie (`mcp-relay-console`, HttpOnly, SameSite=Strict, Path=/ui) naming a
//! server-side entry with the operator's name and the CSRF token its forms carry.
//!
//! Owns: the console's authentication, its sessions and CSRF tokens (`auth/sessions.rs`), the
//! login throttle, the login and logout routes, the same-origin rule the admin guard applies
//! to browser requests, the security headers of every console answer, the console's audit
//! records. Does not own: the Host/Origin checks that run before it (`admin.rs`), checking
//! user passwords ([`Operators`](super::Operators), `authz/operators.rs`).

#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod sessions;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

pub(crate) use sessions::Gate;

use super::layout::{self, Tab};
use super::{Deps, Operator};
use crate::telemetry::audit::Record;

/// The console session's cookie.
pub(crate) const COOKIE: &str = "mcp-relay-console";
/// The operator of a request that carried the admin bearer token.
pub(crate) const BEARER: &str = "admin-token";
/// The operator on a loopback admin listener with no admin credential configured.
pub(crate) const LOOPBACK: &str = "loopback";
/// The operator of a request to the login page or the assets without a credential.
pub(crate) const ANONYMOUS: &str = "";
/// The challenge of every console 401.
const CHALLENGE: &str = "Bearer realm=\"mcp-relay-admin\"";
/// The audit outcome of a refusal for want of a credential.
pub(crate) const UNAUTHENTICATED: &str = "unauthenticated";
/// The audit outcome of a refused action.
pub(crate) const DENIED: &str = "denied";

/// The CSP of every console answer: no inline code, nothing from elsewhere, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest login or action form read.
pub(crate) const MAX_FORM: usize = 8 * 1024;

/// A console session started by this request: its answer sets the cookie.
#[derive(Debug, Clone)]
struct NewSession {
    id: String,
    secure: bool,
}

/// The operator of a request to a console path, or the refusal to send. Also starts the
/// console session of a browser on a loopback-open console (marked for [`secure_headers`]).
/// A user's console session holds only while the user is still an administrator: a user
/// disabled or no longer `admin` ends it at their next request.
pub(crate) async fn authenticate(
    deps: &Deps,
    req: &mut Request,
) -> Result<Operator, Box<Response>> {
    if let Some(given) = crate::admin::bearer(req.headers()) {
        if deps.token.as_ref().is_some_and(|t| same_secret(given, t)) {
            return Ok(operator(BEARER, None));
        }
        crate::telemetry::metrics::auth_failure("admin_invalid_token");
        return Err(refusal(deps, req, "invalid_token"));
    }
    if let Some(id) = cookie(req.headers(), COOKIE) {
        if let Some((name, csrf)) = deps.gate.sessions.get(&id) {
            if still_operator(deps, &name).await {
                return Ok(operator(&name, Some(csrf)));
            }
            deps.gate.sessions.end(&id);
        }
    }
    let path = req.uri().path();
    if open(deps) {
        if path.starts_with("/ui/api/") || path == "/ui/events" || path.starts_with("/ui/static/") {
            return Ok(operator(LOOPBACK, None));
        }
        if !own_navigation(req.headers()) {
            // Another site's request starts no session (it could evict the operator's).
            return Ok(operator(LOOPBACK, None));
        }
        let (id, csrf) = deps.gate.sessions.start(LOOPBACK);
        let secure = https(req);
        req.extensions_mut().insert(NewSession { id, secure });
        return Ok(operator(LOOPBACK, Some(csrf)));
    }
    if path == "/ui/login" || path.starts_with("/ui/static/") {
        return Ok(operator(ANONYMOUS, None));
    }
    crate::telemetry::metrics::auth_failure("admin_missing_token");
    Err(refusal(deps, req, "missing_credential"))
}

/// Whether the console session of `name` still holds: a `user:` operator must still be an
/// administrator of the authorization server (exists, not disabled, holds `admin`).
async fn still_operator(deps: &Deps, name: &str) -> bool {
    match (name.strip_prefix("user:"), &deps.operators) {
        (None, _) => true,
        (Some(user), Some(ops)) => ops.is_operator(user).await,
        (Some(_), None) => false,
    }
}

/// Whether a browser request is the console's own (`Sec-Fetch-Site` absent, `none` or
/// `same-origin`), not another site's.
fn own_navigation(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all("sec-fetch-site").iter();
    match (all.next(), all.next()) {
        (None, _) => true,
        (Some(v), None) => matches!(v.as_bytes(), b"same-origin" | b"none"),
        _ => false,
    }
}

fn operator(name: &str, csrf: Option<String>) -> Operator {
    Operator {
        name: name.to_owned(),
        csrf,
    }
}

/// Whether the console is open without a credential: a loopback admin listener and no admin
/// credential configured.
fn open(deps: &Deps) -> bool {
    deps.loopback && deps.token.is_none() && deps.operators.is_none()
}

/// 401: the login page for a browser's page request, else text with the admin challenge.
/// A refused action is audited.
fn refusal(deps: &Deps, req: &Request, why: &'static str) -> Box<Response> {
    let path = req.uri().path();
    if let Some(action) = path.strip_prefix("/ui/actions/") {
        let method = format!("console/{}", bounded(action));
        let client = peer(req);
        refused(deps, "", &method, None, (UNAUTHENTICATED, why), client);
    }
    let page = req.method() == Method::GET
        && !(path.starts_with("/ui/api/")
            || path == "/ui/events"
            || path.starts_with("/ui/connect/"));
    let mut res = match page {
        true => unauthorized(login_markup(None, false)),
        false => crate::admin::token_required(),
    };
    harden(res.headers_mut());
    Box::new(res)
}

/// A 401 login page, with the admin challenge as every 401 carries.
fn unauthorized(page: Markup) -> Response {
    let mut res = layout::respond(StatusCode::UNAUTHORIZED, page);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    res
}

/// `s` cut to at most 64 characters (a name from the request, for an audit record).
pub(crate) fn bounded(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

/// Whether `given` is `secret`, in constant time.
pub(crate) fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == secret.len() && bool::from(given.ct_eq(secret))
}

/// Whether a form's `csrf` value is the operator's: their console session's token (compared
/// in constant time), or none at all for a caller that sent the bearer token itself (no
/// browser adds that header on its own).
pub(crate) fn csrf_ok(op: &Operator, given: &str) -> bool {
    match &op.csrf {
        Some(token) => !given.is_empty() && same_secret(given.as_bytes(), token.as_bytes()),
        None => op.name == BEARER,
    }
}

/// Whether a browser request is same-origin: one `Origin` equal to `http://` or `https://`
/// plus its one `Host` (which the guard has accepted), so a form the console itself served
/// may be posted back.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let one = |name| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::to_ascii_lowercase),
            _ => None,
        }
    };
    let (Some(origin), Some(host)) = (one(header::ORIGIN), one(header::HOST)) else {
        return false;
    };
    [("http://", &host), ("https://", &host)]
        .iter()
        .any(|(scheme, h)| origin.strip_prefix(scheme) == Some(h.as_str()))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` of a console session (`id` empty: its removal).
fn set_cookie(id: &str, secure: bool) -> HeaderValue {
    let age = match id.is_empty() {
        true => 0,
        false => sessions::LIFETIME.as_secs(),
    };
    let secure = if secure { "; Secure" } else { "" };
    let v = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the request came over https (the admin listener itself is plain HTTP).
fn https(req: &Request) -> bool {
    req.uri().scheme_str() == Some("https")
}

/// The client's address, when the listener recorded it.
pub(crate) fn peer(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The headers of every console answer: strict CSP, no framing, no sniffing, no caching
/// (unless the route chose its own caching, as the assets do), and the cookie of a console
/// session started by this request.
pub(crate) async fn secure_headers(req: Request, next: Next) -> Response {
    let new = req.extensions().get::<NewSession>().cloned();
    let mut res = next.run(req).await;
    harden(res.headers_mut());
    if let Some(s) = new {
        res.headers_mut()
            .append(header::SET_COOKIE, set_cookie(&s.id, s.secure));
    }
    res
}

fn harden(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Reads a url-encoded form body of at most [`MAX_FORM`] bytes.
pub(crate) async fn read_form(req: Request) -> Result<Vec<(String, String)>, Response> {
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large\n").into_response())?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

/// The value of `name` in a form (`""` when absent).
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// One audit record of the console (`method` `console/...`), with the operator's identity.
pub(crate) fn audit(
    deps: &Deps,
    op: &str,
    method: &str,
    target: Option<&str>,
    failed: Option<&'static str>,
    client: Option<IpAddr>,
) {
    deps.audit.emit(Record {
        decision: "allow",
        outcome: if failed.is_some() { "error" } else { "ok" },
        reason: failed,
        ..console_record(op, method, target, client)
    });
}

/// The audit record of a console request refused (`decision` `deny`): `outcome` is
/// [`UNAUTHENTICATED`] (no or a wrong credential) or [`DENIED`], `reason` says why.
pub(crate) fn refused(
    deps: &Deps,
    op: &str,
    method: &str,
    target: Option<&str>,
    (outcome, reason): (&'static str, &'static str),
    client: Option<IpAddr>,
) {
    deps.audit.emit(Record {
        decision: "deny",
        outcome,
        reason: Some(reason),
        ..console_record(op, method, target, client)
    });
}

/// What every console record says: who, from where, which action on what.
fn console_record(op: &str, method: &str, target: Option<&str>, client: Option<IpAddr>) -> Record {
    Record {
        principal: op.to_owned(),
        auth: "admin",
        client: client.map(|c| c.to_string()),
        transport: "console",
        method: Some(method.to_owned()),
        name: target.map(str::to_owned),
        ..Record::default()
    }
}

/// What a wrong token, user or password gets (the same for each, so nothing is revealed).
const BAD_LOGIN: &str = "That token, or that user name and password, is not right.";
const LOCKED: &str = "Too many failed sign-ins from this address. Wait a few minutes.";

/// The login form: the admin token, or a user name and password when the authorization
/// server has admin users.
fn login_markup(error: Option<&str>, users: bool) -> Markup {
    let body = html! {
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        form method="post" action="/ui/login" {
            fieldset {
                legend { "Admin token" }
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="off";
            }
            @if users {
                fieldset {
                    legend { "Or an administrator of the authorization server" }
                    label for="username" { "User name" }
                    input #username type="text" name="username" autocomplete="username";
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password";
                }
            }
            button type="submit" { "Sign in" }
        }
    };
    layout::page("Sign in", Tab::Other, None, None, body)
}

/// `GET /ui/login`: the login form (the console itself for a signed-in operator).
pub(crate) async fn login_page(
    State(deps): State<Deps>,
    axum::Extension(op): axum::Extension<Operator>,
) -> Response {
    if op.name != ANONYMOUS {
        return Redirect::to("/ui/servers").into_response();
    }
    layout::respond(StatusCode::OK, login_markup(None, deps.operators.is_some()))
}

/// `POST /ui/login`: checks the token or the user's password, then starts a console session
/// and goes to the console. The right admin token always logs in (it cannot be guessed);
/// wrong tokens and passwords are throttled per address (429 with `Retry-After`), and a
/// user's password also by the authorization server's per-user lockout.
pub(crate) async fn login(State(deps): State<Deps>, req: Request) -> Response {
    let addr = peer(&req);
    let secure = https(&req);
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let (token, user) = (field(&form, "token"), field(&form, "username"));
    let users = deps.operators.is_some();
    let tried = (!user.is_empty() && token.is_empty()).then(|| bounded(user));
    let right_token = !token.is_empty()
        && deps
            .token
            .as_ref()
            .is_some_and(|t| same_secret(token.as_bytes(), t));
    if !right_token && !deps.gate.throttle.attempt(addr) {
        let why = (UNAUTHENTICATED, "locked_out");
        refused(&deps, "", "console/login", tried, why, addr);
        let mut res = layout::respond(
            StatusCode::TOO_MANY_REQUESTS,
            login_markup(Some(LOCKED), users),
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(sessions::LOCKOUT.as_secs()),
        );
        return res;
    }
    let name = match (
        &deps.operators,
        right_token,
        token.is_empty() && !user.is_empty(),
    ) {
        (_, true, _) => Some(BEARER.to_owned()),
        (Some(ops), false, true) => {
            let client = addr.map(|a| a.to_string()).unwrap_or_default();
            let password = field(&form, "password");
            let name = ops.verify(user, password, &client).await;
            name.map(|n| format!("user:{n}"))
        }
        _ => None,
    };
    let Some(name) = name else {
        let why = (UNAUTHENTICATED, "bad_credentials");
        refused(&deps, "", "console/login", tried, why, addr);
        return unauthorized(login_markup(Some(BAD_LOGIN), users));
    };
    deps.gate.throttle.succeeded(addr);
    let (id, _) = deps.gate.sessions.start(&name);
    audit(&deps, &name, "console/login", None, None, addr);
    let mut res = Redirect::to("/ui/servers").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&id, secure));
    res
}

/// `POST /ui/logout`: ends the console session (its form carries the CSRF token).
pub(crate) async fn logout(
    State(deps): State<Deps>,
    axum::Extension(op): axum::Extension<Operator>,
    req: Request,
) -> Response {
    let addr = peer(&req);
    let secure = https(&req);
    let id = cookie(req.headers(), COOKIE);
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let (Some(id), true) = (id, op.csrf.is_some() && csrf_ok(&op, field(&form, "csrf"))) else {
        return (
            StatusCode::FORBIDDEN,
            "the form is not this console session's\n",
        )
            .into_response();
    };
    deps.gate.sessions.end(&id);
    audit(&deps, &op.name, "console/logout", None, None, addr);
    let mut res = Redirect::to("/ui/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie("", secure));
    res
}

#[cfg(test)]
mod tests;
