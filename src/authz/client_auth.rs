//! What `/oauth/token` and `/oauth/revoke` share: reading their form body (RFC 6749 §3.2:
//! `application/x-www-form-urlencoded` only, at most 64 KiB, no parameter twice) and
//! authenticating the client per its registered `token_endpoint_auth_method` (`none`,
//! `client_secret_post`, `client_secret_basic`). Clients are found through `cimd.rs`
//! (registered, or a client ID metadata document). The grants are in `token.rs`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::store::clients::{Client, AUTH_BASIC, AUTH_NONE, AUTH_POST};
use super::{cimd, oauth_error, AuthServer};

/// The largest form body accepted.
pub(super) const MAX_FORM: usize = 64 * 1024;

/// A form's parameters (each at most once).
pub(super) type Form = HashMap<String, String>;

/// Reads the form body; an OAuth error answer when it is not one.
pub(super) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, Response> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return Err(oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the body is too large",
        ));
    };
    let mut form = Form::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a parameter is repeated",
            ));
        }
    }
    Ok(form)
}

/// Why client authentication failed: the audit reason, the client id when one was named,
/// and whether the answer must challenge for HTTP Basic.
#[derive(Debug)]
pub(super) struct Refused {
    pub reason: &'static str,
    pub client_id: Option<String>,
    basic: bool,
    /// `invalid_request` (malformed) rather than `invalid_client`.
    malformed: bool,
}

impl Refused {
    fn new(reason: &'static str, client_id: Option<&str>, basic: bool) -> Refused {
        Refused {
            reason,
            client_id: client_id.map(str::to_owned),
            basic,
            malformed: false,
        }
    }

    /// The RFC 6749 §5.2 answer: `invalid_client` 401 (with `WWW-Authenticate: Basic` when
    /// Basic was used or is the client's method), or `invalid_request` 400.
    pub(super) fn answer(&self) -> Response {
        if self.malformed {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", self.reason);
        }
        let mut res = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
        if self.basic {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\", charset=\"UTF-8\""),
            );
        }
        res
    }
}

/// The client of a token or revocation request, authenticated per its method.
pub(super) async fn authenticate(
    s: &AuthServer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Client, Refused> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(v) => Some(basic_credentials(v).ok_or(Refused::new("basic_malformed", None, true))?),
        None => None,
    };
    let form_id = form.get("client_id").map(String::as_str);
    let form_secret = form.get("client_secret").map(String::as_str);
    let (id, secret, used_basic) = match (&basic, form_secret) {
        (Some(_), Some(_)) => {
            let mut r = Refused::new("two client authentication methods", form_id, true);
            r.malformed = true;
            return Err(r);
        }
        (Some((id, _)), _) if form_id.is_some_and(|f| f != id) => {
            return Err(Refused::new("client_id_mismatch", Some(id), true));
        }
        (Some((id, secret)), None) => (id.as_str(), Some(secret.as_str()), true),
        (None, secret) => match form_id {
            Some(id) => (id, secret, false),
            None => return Err(Refused::new("no_client_id", None, false)),
        },
    };
    let client = cimd::client(s, id)
        .await
        .map_err(|reason| Refused::new(reason, Some(id), used_basic))?;
    let basic_client = client.auth_method == AUTH_BASIC;
    let refuse = |reason| Err(Refused::new(reason, Some(id), used_basic || basic_client));
    let method = match (used_basic, secret) {
        (true, _) => AUTH_BASIC,
        (false, Some(_)) => AUTH_POST,
        (false, None) => AUTH_NONE,
    };
    if method != client.auth_method {
        return refuse("auth_method_mismatch");
    }
    match secret {
        Some(secret) if !client.secret_matches(secret) => refuse("bad_client_secret"),
        _ => Ok(client),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        let joined = format!("v={s}");
        url::form_urlencoded::parse(joined.as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    (!id.is_empty()).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let enc = STANDARD.encode("my%20client:s%3Acr+t");
        let v = HeaderValue::from_str(&format!("Basic {enc}")).unwrap();
        assert_eq!(
            basic_credentials(&v),
            Some(("my client".into(), "s:cr t".into()))
        );
        let v = HeaderValue::from_static("Bearer abc");
        assert_eq!(basic_credentials(&v), None);
        let v = HeaderValue::from_static("Basic !!!");
        assert_eq!(basic_credentials(&v), None);
    }
}
