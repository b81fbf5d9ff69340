//! `POST /oauth/token` (RFC 6749 §3.2, OAuth 2.1): the `authorization_code` grant (PKCE S256,
//! the code's client, redirect URI and resource; a replayed code revokes its family) and the
//! `refresh_token` grant (rotation on every use; reuse revokes the family; a user disabled
//! since, or a local user gone from the config, is refused and their family revoked; a local
//! user's roles are read from the config again). [`mint`] is the one place access tokens
//! (ES256 JWT, `at+jwt`) and refresh tokens are made. Form reading and client authentication
//! are in `client_auth.rs`; codes are issued by the consent step (`consent.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::audit::{Event, Fact};
use super::client_auth::{authenticate, read_form, Form};
use super::store::clients::Client;
use super::store::flow::Subject;
use super::store::grants::{Family, Presented};
use super::store::now;
use super::{no_store, oauth_error, random_token, AuthServer};
use crate::caller::Caller;

/// The prefix of the relay's refresh tokens.
const REFRESH_PREFIX: &str = "mcprt_";

/// The `method` of a subject who logged in at the company identity provider.
const UPSTREAM_METHOD: &str = "upstream";

/// A refusal: the error code, its HTTP status, a fixed description and the audit reason.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    reason: &'static str,
}

fn refuse(error: &'static str, reason: &'static str) -> Refusal {
    let status = match error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    Refusal {
        status,
        error,
        reason,
    }
}

/// What a grant settled, for the audit record.
#[derive(Default)]
struct Outcome {
    user: Option<String>,
    grant: Option<String>,
}

/// The token endpoint.
pub(super) async fn serve(
    State(s): State<Arc<AuthServer>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(res) => {
            s.audit(&caller, Event::Token, refused("invalid_form"));
            return res;
        }
    };
    let event = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => Event::Refresh,
        _ => Event::Token,
    };
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        s.audit(&caller, event, refused("unsupported_grant_type"));
        return oauth_error(
            StatusCode::BAD_REQUEST,
            if grant_type.is_empty() {
                "invalid_request"
            } else {
                "unsupported_grant_type"
            },
            "grant_type must be authorization_code or refresh_token",
        );
    }
    let client = match authenticate(&s, &headers, &form).await {
        Ok(c) => c,
        Err(r) => {
            let fact = Fact {
                client_id: r.client_id.as_deref(),
                refused: Some(r.reason),
                ..Fact::default()
            };
            s.audit(&caller, event, fact);
            return r.answer();
        }
    };
    let mut outcome = Outcome::default();
    let result = if event == Event::Refresh {
        refresh(&s, &client, &form, &mut outcome).await
    } else {
        exchange(&s, &client, &form, &mut outcome).await
    };
    let fact = Fact {
        user: outcome.user.as_deref(),
        client_id: Some(&client.client_id),
        grant: outcome.grant.as_deref(),
        refused: result.as_ref().err().map(|r| r.reason),
    };
    s.audit(&caller, event, fact);
    match result {
        Ok(body) => no_store(StatusCode::OK, body),
        Err(r) => oauth_error(r.status, r.error, r.reason),
    }
}

fn refused(reason: &'static str) -> Fact<'static> {
    Fact {
        refused: Some(reason),
        ..Fact::default()
    }
}

/// Long because the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6 read best in their order.
/// The `authorization_code` grant.
async fn exchange(
    s: &AuthServer,
    client: &Client,
    form: &Form,
    out: &mut Outcome,
) -> Result<Value, Refusal> {
    let get = |k: &str| form.get(k).map(String::as_str);
    let code = get("code").ok_or(refuse("invalid_request", "code_missing"))?;
    let redirect_uri =
        get("redirect_uri").ok_or(refuse("invalid_request", "redirect_uri_missing"))?;
    let verifier = get("code_verifier").ok_or(refuse("invalid_request", "pkce_missing"))?;
    if !verifier_is_valid(verifier) {
        return Err(refuse("invalid_request", "pkce_malformed"));
    }
    let now = now();
    let code = s
        .store
        .redeem_code(code, &client.client_id, now)
        .await
        .map_err(|_| refuse("server_error", "state_error"))?
        .ok_or(refuse("invalid_grant", "unknown_code"))?;
    out.user = Some(code.subject.name.clone());
    out.grant = Some(code.family.clone());
    if code.used.is_some() {
        let _ = s
            .store
            .revoke_family(&code.family, now, "code_replay")
            .await;
        return Err(refuse("invalid_grant", "code_replay"));
    }
    if code.expires < now {
        return Err(refuse("invalid_grant", "code_expired"));
    }
    if code.client_id != client.client_id {
        return Err(refuse("invalid_grant", "client_mismatch"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(refuse("invalid_grant", "redirect_uri_mismatch"));
    }
    if !pkce_matches(verifier, &code.challenge) {
        return Err(refuse("invalid_grant", "pkce_mismatch"));
    }
    if get("resource").is_some_and(|r| r != code.resource) {
        return Err(refuse("invalid_target", "resource_mismatch"));
    }
    let subject = current_subject(s, &code.subject)
        .await
        .map_err(|r| refuse("invalid_grant", r))?;
    let family = Family {
        id: code.family,
        client_id: code.client_id,
        subject,
        resource: code.resource,
        scope: code.scope,
        created: now,
        last_used: now,
        revoked: None,
        revoked_reason: None,
    };
    s.store
        .put_family(&family)
        .await
        .map_err(|_| refuse("server_error", "state_error"))?;
    mint(s, &family)
        .await
        .map_err(|r| refuse("server_error", r))
}

/// Long because each refusal of a refresh names its own reason, in the order they apply.
/// The `refresh_token` grant: checked against its family before it is used, then rotated.
async fn refresh(
    s: &AuthServer,
    client: &Client,
    form: &Form,
    out: &mut Outcome,
) -> Result<Value, Refusal> {
    let get = |k: &str| form.get(k).map(String::as_str);
    let token = get("refresh_token").ok_or(refuse("invalid_request", "refresh_token_missing"))?;
    let state_err = |_| refuse("server_error", "state_error");
    let peek = s.store.refresh_family(token).await.map_err(state_err)?;
    if let Some(f) = &peek {
        out.user = Some(f.subject.name.clone());
        out.grant = Some(f.id.clone());
        if f.client_id != client.client_id {
            return Err(refuse("invalid_grant", "client_mismatch"));
        }
        if get("resource").is_some_and(|r| r != f.resource) {
            return Err(refuse("invalid_target", "resource_mismatch"));
        }
        if get("scope").is_some_and(|sc| !is_subset(sc, &f.scope)) {
            return Err(refuse("invalid_scope", "scope_not_granted"));
        }
    }
    let now = now();
    let mut family = match s
        .store
        .present_refresh(token, now)
        .await
        .map_err(state_err)?
    {
        Presented::Live(f) if f.client_id == client.client_id => f,
        Presented::Live(_) | Presented::Unknown => {
            return Err(refuse("invalid_grant", "unknown_refresh_token"))
        }
        Presented::Reused(f) => {
            out.grant = Some(f.id);
            return Err(refuse("invalid_grant", "refresh_reuse"));
        }
    };
    out.user = Some(family.subject.name.clone());
    out.grant = Some(family.id.clone());
    // A grant lives `refresh_token_ttl` from its login, however often it is refreshed: then
    // the person logs in again (and a company-IdP user is checked there again).
    if now - family.created > s.cfg().refresh_token_ttl.as_secs() as i64 {
        let _ = s
            .store
            .revoke_family(&family.id, now, "grant_expired")
            .await;
        return Err(refuse("invalid_grant", "grant_expired"));
    }
    family.subject = match current_subject(s, &family.subject).await {
        Ok(subject) => subject,
        Err(reason) => {
            let _ = s.store.revoke_family(&family.id, now, reason).await;
            return Err(refuse("invalid_grant", reason));
        }
    };
    if let Some(scope) = get("scope") {
        family.scope = scope.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    mint(s, &family)
        .await
        .map_err(|r| refuse("server_error", r))
}

/// The subject as it stands now: refused when disabled (by the operator, or a local user
/// marked `disabled` or gone from the config); a local user's roles from the config.
async fn current_subject(s: &AuthServer, subject: &Subject) -> Result<Subject, &'static str> {
    if s.store
        .is_disabled(&subject.name)
        .await
        .map_err(|_| "state_error")?
    {
        return Err("user_disabled");
    }
    if subject.method == UPSTREAM_METHOD {
        return Ok(subject.clone());
    }
    match s.cfg().user(&subject.name) {
        Some(u) if !u.disabled => Ok(Subject {
            roles: u.roles.clone(),
            ..subject.clone()
        }),
        Some(_) => Err("user_disabled"),
        None => Err("user_unknown"),
    }
}

/// Mints an access token for `family` (its client, subject and roles, resource and scope)
/// and a new refresh token in it: the token response (RFC 6749 §5.1).
pub(super) async fn mint(s: &AuthServer, family: &Family) -> Result<Value, &'static str> {
    let now = now();
    let ttl = s.cfg().access_token_ttl.as_secs() as i64;
    let claims = json!({
        "iss": s.cfg().issuer,
        "sub": family.subject.name,
        "aud": family.resource,
        "client_id": family.client_id,
        "scope": family.scope,
        "roles": family.subject.roles,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": random_token(16),
    });
    let access = s.keys.sign(&claims).ok_or("no_signing_key")?;
    let refresh = format!("{REFRESH_PREFIX}{}", random_token(32));
    let refresh_ttl = s.cfg().refresh_token_ttl.as_secs() as i64;
    s.store
        .put_refresh(&refresh, &family.id, now + refresh_ttl)
        .await
        .map_err(|_| "state_error")?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": family.scope,
    }))
}

/// Whether every scope of `asked` is in `granted`.
fn is_subset(asked: &str, granted: &str) -> bool {
    asked
        .split_whitespace()
        .all(|a| granted.split_whitespace().any(|g| g == a))
}

/// RFC 7636 §4.1: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~`.
pub(super) fn verifier_is_valid(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// BASE64URL(SHA256(verifier)) equals the challenge (constant time).
pub(super) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use subtle::ConstantTimeEq;
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_is_valid(verifier));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches(verifier, verifier));
    }

    #[test]
    fn verifier_is_valid_checks_length_and_alphabet() {
        assert!(!verifier_is_valid(&"a".repeat(42)));
        assert!(verifier_is_valid(&"a".repeat(43)));
        assert!(verifier_is_valid(&"a".repeat(128)));
        assert!(!verifier_is_valid(&"a".repeat(129)));
        assert!(!verifier_is_valid(&format!("{}+", "a".repeat(43))));
        assert!(!verifier_is_valid(&format!("{}=", "a".repeat(43))));
    }

    #[test]
    fn is_subset_of_granted_scopes() {
        assert!(is_subset("mcp", "mcp admin"));
        assert!(is_subset("", "mcp"));
        assert!(!is_subset("admin", "mcp"));
        assert!(!is_subset("mc", "mcp"));
    }
}
