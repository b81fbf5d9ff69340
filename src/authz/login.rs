//! Logging in: the login page, `POST /oauth/login` (local users, Argon2id), the login
//! session (`mcpr_session`), and `POST /oauth/logout`.
//!
//! A login form is checked in this order: the pending request exists → the form is this
//! browser's own (`browser::check_form`) → neither the user name nor the address is locked out
//! (`lockout.rs`) → the password, verified off the async threads; an unknown or disabled user
//! costs the same hash as a known one and gets the same answer, so the page reveals nothing
//! about which names exist. Every outcome is audited. A success (here, or from the company
//! identity provider, `upstream.rs`) goes through [`logged_in`]: a new session, then consent.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;

use super::audit::{Event, Fact};
use super::browser::{self, SESSION_COOKIE};
use super::store::flow::{Pending, Subject};
use super::{grant, pages, store, AuthServer};
use crate::caller::Caller;

/// The login form.
#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// What a person sees for a wrong password, an unknown user or a disabled one alike.
const BAD_LOGIN: &str = "That user name and password do not match.";
const LOCKED: &str = "Too many failed sign-ins. Wait a few minutes, then try again.";
const EXPIRED: &str = "This sign-in request has expired or was already used.";

pub(super) async fn submit(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = store::now();
    let Ok(Some(pending)) = s.store.request(&form.request, now).await else {
        return s.error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    let client_id = pending.request.client_id.clone();
    // A name that is no user's is not recorded: it may be a password typed in the wrong field.
    let known = s.cfg().user(&form.username).is_some();
    let refuse = |reason: &'static str| Fact {
        user: known.then_some(form.username.as_str()),
        client_id: Some(client_id.as_str()),
        refused: Some(reason),
        ..Fact::default()
    };
    if let Err(reason) = browser::check_form(&headers, &form.csrf, &pending.csrf, &s.cfg().issuer) {
        s.audit(&caller, Event::Login, refuse(reason));
        return s.error_page(StatusCode::FORBIDDEN, "This form was not sent from this browser's sign-in page. Start again from your application.");
    }
    let client_name = client_name(&s, &client_id).await;
    let addr = caller.peer.map(|p| p.ip);
    let lockout = s.lockout.load_full();
    if !lockout.attempt(&form.username, addr) {
        s.audit(&caller, Event::Login, refuse("locked_out"));
        return page(
            &s,
            &pending,
            &client_name,
            &form.username,
            Some(LOCKED),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = s
        .cfg()
        .user(&form.username)
        .filter(|u| !u.disabled)
        .cloned();
    let operator_disabled = s.store.is_disabled(&form.username).await.unwrap_or(true);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = form.password.clone();
    let verified = tokio::task::spawn_blocking(move || verify(hash.as_deref(), &password))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified && !operator_disabled) else {
        let locked = lockout.locked(&form.username, addr);
        s.audit(
            &caller,
            Event::Login,
            refuse(if locked {
                "locked_out"
            } else {
                "bad_credentials"
            }),
        );
        let (msg, status) = match locked {
            true => (LOCKED, StatusCode::TOO_MANY_REQUESTS),
            false => (BAD_LOGIN, StatusCode::UNAUTHORIZED),
        };
        return page(
            &s,
            &pending,
            &client_name,
            &form.username,
            Some(msg),
            status,
        );
    };
    lockout.succeeded(&user.name, addr);
    let subject = Subject {
        name: user.name.clone(),
        roles: user.roles.clone(),
        method: "password".into(),
    };
    logged_in(&s, &caller, &pending, subject).await
}

/// A person proved who they are: audit, a new login session, then consent (or the code, when
/// they consented before).
pub(super) async fn logged_in(
    s: &AuthServer,
    caller: &Caller,
    pending: &Pending,
    subject: Subject,
) -> Response {
    let now = store::now();
    let id = super::random_token(32);
    let ttl = s.cfg().login_session_ttl;
    if s.store
        .put_session(&id, &subject, now, now + ttl.as_secs() as i64)
        .await
        .is_err()
    {
        return s.error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in service is unavailable right now.",
        );
    }
    s.audit(
        caller,
        Event::Login,
        Fact {
            user: Some(&subject.name),
            client_id: Some(&pending.request.client_id),
            ..Fact::default()
        },
    );
    let mut res = grant::proceed(s, caller, pending, &subject).await;
    let cookie = browser::set_cookie(SESSION_COOKIE, &id, ttl, s.secure_cookies());
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

/// The subject of this browser's live login session, unless the user was disabled since.
pub(super) async fn current(s: &AuthServer, headers: &HeaderMap, now: i64) -> Option<Subject> {
    let id = browser::cookie(headers, SESSION_COOKIE)?;
    let subject = s.store.session(&id, now).await.ok()??;
    let disabled = s.store.is_disabled(&subject.name).await.unwrap_or(true);
    let local_gone =
        subject.method == "password" && s.cfg().user(&subject.name).is_none_or(|u| u.disabled);
    (!disabled && !local_gone).then_some(subject)
}

/// The login page for `pending`.
pub(super) fn page(
    s: &AuthServer,
    pending: &Pending,
    client: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let cfg = s.cfg();
    let p = pages::LoginPage {
        brand: &cfg.name,
        has_logo: cfg.logo.is_some(),
        request: &pending.id,
        csrf: &pending.csrf,
        client,
        passwords: !cfg.users.is_empty(),
        upstream: cfg.upstream.as_ref().map(|u| u.name.as_str()),
        username,
        error,
    };
    let target = browser::form_target(&pending.request.redirect_uri);
    pages::respond(status, pages::login(&p), Some(&target))
}

/// The display name of a client (its id when it has none).
pub(super) async fn client_name(s: &AuthServer, client_id: &str) -> String {
    match s.store.client(client_id).await {
        Ok(Some(c)) if !c.name.is_empty() => c.name,
        _ => client_id.to_owned(),
    }
}

/// The logout form: ends this browser's session.
pub(super) async fn logout(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = browser::cookie(&headers, SESSION_COOKIE) {
        let user = s.store.session(&id, store::now()).await.ok().flatten();
        let _ = s.store.delete_session(&id).await;
        s.audit(
            &caller,
            Event::Logout,
            Fact {
                user: user.as_ref().map(|u| u.name.as_str()),
                ..Fact::default()
            },
        );
    }
    let cfg = s.cfg();
    let page = pages::error(&cfg.name, cfg.logo.is_some(), "You are signed out.");
    let mut res = pages::respond(StatusCode::OK, page, None);
    let gone = browser::set_cookie(
        SESSION_COOKIE,
        "",
        std::time::Duration::ZERO,
        s.secure_cookies(),
    );
    res.headers_mut().append(header::SET_COOKIE, gone);
    res
}

/// Verifies `password` against a PHC hash; with no hash, against a throwaway one, so an
/// unknown user costs the same time.
pub(super) fn verify(hash: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(super::random_token(16).as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let known = hash.is_some();
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or(dummy)) else {
        return false;
    };
    let ok = argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && known
}
