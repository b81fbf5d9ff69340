//! What the pages need of a browser: the two cookies, the CSRF rule for their forms, and
//! See Other redirects.
//!
//! - `mcpr_browser`: a random value naming this browser. A pending authorization request
//!   records the value of the browser that opened it as its CSRF token; a form is accepted
//!   only when its hidden `csrf` field AND the cookie both equal it (double submit bound to
//!   the request), and, when the browser sends `Origin`, only from the issuer's origin. A page
//!   fetched by an attacker for their own request carries the attacker's value, which the
//!   victim's browser does not have.
//! - `mcpr_session`: the login session (stored hashed).
//!
//! Both are `HttpOnly`, `SameSite=Lax` (a cross-site POST carries neither), `Path=/oauth/`,
//! and `Secure` when the issuer is https.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

pub(super) const SESSION_COOKIE: &str = "mcpr_session";
pub(super) const BROWSER_COOKIE: &str = "mcpr_browser";

/// A cookie's value from the request.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// A `Set-Cookie` value; `max_age` zero removes the cookie.
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    max_age: std::time::Duration,
    secure: bool,
) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path("/oauth/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a form post is this browser's own, for a request opened with `expected`.
pub(super) fn check_form(
    headers: &HeaderMap,
    form_csrf: &str,
    expected: &str,
    issuer: &str,
) -> Result<(), &'static str> {
    let same = |a: &str| bool::from(a.as_bytes().ct_eq(expected.as_bytes()));
    if !same(form_csrf) {
        return Err("csrf_mismatch");
    }
    match cookie(headers, BROWSER_COOKIE) {
        Some(c) if same(&c) => {}
        _ => return Err("csrf_cookie_mismatch"),
    }
    match headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""))
    {
        None => Ok(()),
        Some(o) if o == issuer => Ok(()),
        Some(_) => Err("cross_origin_form"),
    }
}

/// 303 See Other to `location` (already validated by the caller).
pub(super) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut().insert(header::LOCATION, v);
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The client's redirect URI with an OAuth error (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
pub(super) fn error_redirect(
    issuer: &str,
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> String {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(st) = state {
        pairs.push(("state", st));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// `uri` with `pairs` appended to its query.
pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// Where the consent form may end up: the redirect URI's origin (`https://claude.ai`), or
/// its scheme for a private-use one (`cursor:`).
pub(super) fn form_target(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => "'none'".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(c) = cookie {
            h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn a_form_needs_the_field_the_cookie_and_the_origin() {
        let iss = "https://relay.example";
        let ok = headers(Some("a=1; mcpr_browser=Zq81xW"), Some(iss));
        assert_eq!(check_form(&ok, "Zq81xW", "Zq81xW", iss), Ok(()));
        assert_eq!(
            check_form(&ok, "other", "Zq81xW", iss),
            Err("csrf_mismatch")
        );
        let foreign = headers(Some("mcpr_browser=Kd02pp"), None);
        assert_eq!(
            check_form(&foreign, "Zq81xW", "Zq81xW", iss),
            Err("csrf_cookie_mismatch")
        );
        let none = headers(None, None);
        assert_eq!(
            check_form(&none, "Zq81xW", "Zq81xW", iss),
            Err("csrf_cookie_mismatch")
        );
        let evil = headers(Some("mcpr_browser=Zq81xW"), Some("https://evil.example"));
        assert_eq!(
            check_form(&evil, "Zq81xW", "Zq81xW", iss),
            Err("cross_origin_form")
        );
        let null = headers(Some("mcpr_browser=Zq81xW"), Some("null"));
        assert_eq!(
            check_form(&null, "Zq81xW", "Zq81xW", iss),
            Err("cross_origin_form")
        );
    }

    #[test]
    fn cookies_are_http_only_lax_and_scoped() {
        let v = set_cookie(
            SESSION_COOKIE,
            "v",
            std::time::Duration::from_secs(60),
            true,
        );
        let s = v.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/oauth/",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(s.contains(part), "{s}");
        }
    }
}
