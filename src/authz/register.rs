//! `POST /oauth/register`: RFC 7591 dynamic client registration under the configured policy
//! (`open`; `allow-list`, where every redirect URI must match one of the operator's glob
//! patterns; `off`, 404). The metadata is validated ([`validate`]: redirect URIs per
//! `redirect.rs`, auth method, grant and response types, scope, name), a confidential client
//! gets a secret shown once and stored hashed, and each address may register
//! `registrations_per_hour` clients (`lockout.rs`). Every answer is audited. Client ID
//! metadata documents (the other way a client appears) are `cimd.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::audit::{Event, Fact};
use super::redirect::{is_allowed_redirect, MAX_REDIRECT_URIS};
use super::store::clients::{Client, AUTH_BASIC, AUTH_NONE, AUTH_POST, SOURCE_REGISTERED};
use super::store::{hash, now};
use super::{no_store, oauth_error, random_token, AuthServer};
use crate::caller::Caller;
use crate::config::oauth_server::Registration;

/// The largest registration body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The longest `client_name` kept.
const MAX_NAME: usize = 200;

/// A registration as validated.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Metadata {
    pub redirect_uris: Vec<String>,
    pub auth_method: &'static str,
    pub grant_types: Vec<String>,
    pub client_name: Option<String>,
    pub scope: Option<String>,
}

/// A refusal: the RFC 7591 error code and the fixed reason (also the audit reason).
type Refusal = (&'static str, &'static str);

/// The registration endpoint.
pub(super) async fn serve(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let deny = |reason| Fact {
        refused: Some(reason),
        ..Fact::default()
    };
    if s.cfg().registration == Registration::Off {
        s.audit(&caller, Event::Register, deny("registration_off"));
        return oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "registration is off",
        );
    }
    if !s.lockout.load().may_register(caller.peer.map(|p| p.ip)) {
        s.audit(&caller, Event::Register, deny("rate_limited"));
        return oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            "too many registrations from this address",
        );
    }
    let meta = match read(&headers, body).await.and_then(|v| validate(&v)) {
        Ok(m) => m,
        Err((error, reason)) => {
            s.audit(&caller, Event::Register, deny(reason));
            let status = if reason == "body_too_large" {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return oauth_error(status, error, reason);
        }
    };
    if s.cfg().registration == Registration::AllowList
        && !meta
            .redirect_uris
            .iter()
            .all(|u| allowed(&s.cfg().redirect_patterns, u))
    {
        s.audit(&caller, Event::Register, deny("redirect_uri_not_allowed"));
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uri_not_allowed",
        );
    }
    let (client, answer) = build(meta);
    if s.store.put_client(&client).await.is_err() {
        s.audit(&caller, Event::Register, deny("state_error"));
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "state_error",
        );
    }
    let fact = Fact {
        client_id: Some(&client.client_id),
        ..Fact::default()
    };
    s.audit(&caller, Event::Register, fact);
    no_store(StatusCode::CREATED, answer)
}

/// The JSON body (`application/json`, at most 64 KiB, an object).
async fn read(headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(("invalid_client_metadata", "not_json"));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ("invalid_client_metadata", "body_too_large"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(("invalid_client_metadata", "not_json")),
    }
}

/// Long because each RFC 7591 field has its own check and reason, read best in one place.
/// Validates the metadata a client asks for.
pub(super) fn validate(v: &Value) -> Result<Metadata, Refusal> {
    let bad = |reason| ("invalid_client_metadata", reason);
    let uris = strings(v.get("redirect_uris")).ok_or(("invalid_redirect_uri", "redirect_uris"))?;
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(("invalid_redirect_uri", "redirect_uris_count"));
    }
    for u in &uris {
        is_allowed_redirect(u).map_err(|r| ("invalid_redirect_uri", r))?;
    }
    let auth_method = match v.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => AUTH_NONE,
        Some(m) => [AUTH_NONE, AUTH_POST, AUTH_BASIC]
            .into_iter()
            .find(|k| m.as_str() == Some(*k))
            .ok_or(bad("token_endpoint_auth_method"))?,
    };
    let grant_types = match v.get("grant_types") {
        None | Some(Value::Null) => vec!["authorization_code".to_owned()],
        g => strings(g).ok_or(bad("grant_types"))?,
    };
    if grant_types.is_empty()
        || grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(bad("grant_types"));
    }
    let response_types = match v.get("response_types") {
        None | Some(Value::Null) => vec!["code".to_owned()],
        r => strings(r).ok_or(bad("response_types"))?,
    };
    if response_types.is_empty() || response_types.iter().any(|r| r != "code") {
        return Err(bad("response_types"));
    }
    let client_name = match v.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n))
            if n.chars().count() <= MAX_NAME && !n.chars().any(char::is_control) =>
        {
            Some(n.clone())
        }
        Some(_) => return Err(bad("client_name")),
    };
    let scope = match v.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(sc))
            if sc.len() <= 1000 && sc.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Some(sc.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        Some(_) => return Err(bad("scope")),
    };
    Ok(Metadata {
        redirect_uris: uris,
        auth_method,
        grant_types,
        client_name,
        scope,
    })
}

/// A JSON array of strings.
fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Whether `uri` matches one of the operator's patterns: exactly, or as a glob whose `*`
/// never crosses a `/` (so `https://*.example.com/cb` cannot reach another host's path).
pub(super) fn allowed(patterns: &[String], uri: &str) -> bool {
    patterns.iter().any(|p| {
        p == uri
            || globset::GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .is_ok_and(|g| g.compile_matcher().is_match(uri))
    })
}

/// The client to store and the 201 answer (with the secret, shown this once).
fn build(m: Metadata) -> (Client, Value) {
    let client_id = random_token(16);
    let now = now();
    let secret = (m.auth_method != AUTH_NONE).then(|| random_token(32));
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "redirect_uris": m.redirect_uris,
        "token_endpoint_auth_method": m.auth_method,
        "grant_types": m.grant_types,
        "response_types": ["code"],
    });
    if let Some(n) = &m.client_name {
        answer["client_name"] = n.clone().into();
    }
    if let Some(sc) = &m.scope {
        answer["scope"] = sc.clone().into();
    }
    let client = Client {
        client_id,
        secret_hash: secret.as_deref().map(hash),
        auth_method: m.auth_method.to_owned(),
        name: m.client_name.unwrap_or_default(),
        redirect_uris: m.redirect_uris,
        metadata: answer.to_string(),
        source: SOURCE_REGISTERED.to_owned(),
        created: now,
        expires: None,
    };
    if let Some(secret) = secret {
        answer["client_secret"] = secret.into();
        answer["client_secret_expires_at"] = 0.into();
    }
    (client, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_defaults_to_a_public_code_client() {
        let m = validate(&json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}))
            .unwrap();
        assert_eq!(m.auth_method, AUTH_NONE);
        assert_eq!(m.grant_types, vec!["authorization_code"]);
        assert_eq!(m.client_name, None);
    }

    #[test]
    fn validate_refuses_bad_metadata() {
        let uri = json!(["https://a.example/cb"]);
        for (body, reason) in [
            (json!({}), "redirect_uris"),
            (json!({"redirect_uris": []}), "redirect_uris_count"),
            (
                json!({"redirect_uris": "https://a.example/cb"}),
                "redirect_uris",
            ),
            (json!({"redirect_uris": [1]}), "redirect_uris"),
            (
                json!({"redirect_uris": vec!["https://a.example/cb"; 11]}),
                "redirect_uris_count",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb#f"]}),
                "redirect_uri_fragment",
            ),
            (
                json!({"redirect_uris": ["http://a.example/cb"]}),
                "redirect_uri_http_not_loopback",
            ),
            (
                json!({"redirect_uris": uri, "token_endpoint_auth_method": "private_key_jwt"}),
                "token_endpoint_auth_method",
            ),
            (
                json!({"redirect_uris": uri, "grant_types": ["implicit"]}),
                "grant_types",
            ),
            (
                json!({"redirect_uris": uri, "grant_types": ["client_credentials"]}),
                "grant_types",
            ),
            (
                json!({"redirect_uris": uri, "response_types": ["token"]}),
                "response_types",
            ),
            (
                json!({"redirect_uris": uri, "client_name": "a\u{1b}[31m"}),
                "client_name",
            ),
            (
                json!({"redirect_uris": uri, "client_name": "x".repeat(201)}),
                "client_name",
            ),
            (json!({"redirect_uris": uri, "scope": 5}), "scope"),
        ] {
            assert_eq!(validate(&body).map_err(|e| e.1), Err(reason), "{body}");
        }
    }

    #[test]
    fn allowed_globs_stay_within_a_path_segment() {
        let p = vec![
            "https://claude.ai/api/mcp/auth_callback".to_owned(),
            "https://*.example.com/cb".to_owned(),
        ];
        assert!(allowed(&p, "https://claude.ai/api/mcp/auth_callback"));
        assert!(allowed(&p, "https://app.example.com/cb"));
        assert!(!allowed(
            &p,
            "https://claude.ai.evil.com/api/mcp/auth_callback"
        ));
        assert!(!allowed(&p, "https://evil.com/x.example.com/cb"));
        assert!(!allowed(&p, "https://claude.ai/api/mcp/auth_callback/x"));
    }
}
