//! Authentication: which credential a request or connection presents, and the [`Principal`] it
//! proves (the types themselves are `caller.rs`).
//!
//! The checks live beside this file: `api_key.rs` (hashed keys), `jwt.rs` (JWT access tokens,
//! JWKS), `mtls.rs` (mTLS identities). `policy/phases.rs` runs authentication in its place in
//! the order; `error.rs` maps an [`AuthFailure`] to 401 or 403.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::{header, HeaderMap, HeaderValue};

mod refusals;

use crate::caller::{AuthFailure, AuthMethod, Principal};
use crate::policy::api_key::{ApiKeys, KEY_PREFIX};
use crate::policy::issued::{self, IssuedTokens};
use crate::policy::jwt::JwtVerifier;
use crate::policy::mtls::MtlsMap;
use crate::tls::client::CertIdentity;

// === Authenticator ===

/// Query parameters that look like credentials: refused, never read (SECURITY.md §5).
const QUERY_CREDENTIALS: &[&str] = &[
    "access_token",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "auth",
    "authorization",
    "bearer",
    "jwt",
];

/// Credentials longer than this are refused before any parsing (SECURITY.md §2).
pub(crate) const MAX_CREDENTIAL: usize = 8 * 1024;

/// Establishes the principal of a request from its credentials: mTLS identity, API key
/// (`Authorization: Bearer mcpr_…` or `X-API-Key`), JWT (`Authorization: Bearer`). With no
/// authentication configured everyone is anonymous (or named by `--identity-header`).
#[derive(Debug)]
pub(crate) struct Authenticator {
    api_keys: Option<ApiKeys>,
    jwt: Option<JwtVerifier>,
    /// The relay's own tokens, when the built-in authorization server is on.
    issued: Option<Arc<IssuedTokens>>,
    mtls: Option<MtlsMap>,
    identity_header: Option<String>,
    required_scopes: Vec<String>,
    resource: String,
    metadata_url: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    /// Why credentials were refused, for the operator (`authn/refusals.rs`).
    refusals: refusals::RefusalLog,
}

/// The authentication settings, already validated (built by `config`).
#[derive(Debug, Default)]
pub(crate) struct AuthParts {
    pub api_keys: Option<ApiKeys>,
    pub jwt: Option<JwtVerifier>,
    pub issued: Option<Arc<IssuedTokens>>,
    pub mtls: Option<MtlsMap>,
    pub identity_header: Option<String>,
    pub required_scopes: Vec<String>,
    /// The relay's canonical resource URI (tokens' audience, PRM `resource`).
    pub resource: String,
    /// Issuers listed in the protected-resource metadata.
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

impl Authenticator {
    pub(crate) fn new(parts: AuthParts) -> Authenticator {
        let metadata_url = metadata_url(&parts.resource);
        Authenticator {
            api_keys: parts.api_keys.filter(|k| !k.is_empty()),
            jwt: parts.jwt,
            issued: parts.issued,
            mtls: parts.mtls,
            identity_header: parts.identity_header,
            required_scopes: parts.required_scopes,
            resource: parts.resource,
            metadata_url,
            authorization_servers: parts.authorization_servers,
            scopes_supported: parts.scopes_supported,
            refusals: refusals::RefusalLog::default(),
        }
    }

    #[cfg(test)]
    /// No authentication: everyone is anonymous.
    pub(crate) fn none() -> Authenticator {
        Authenticator::new(AuthParts::default())
    }

    /// Whether any credential is required.
    pub(crate) fn is_enabled(&self) -> bool {
        self.api_keys.is_some()
            || self.jwt.is_some()
            || self.issued.is_some()
            || self.mtls.is_some()
    }

    /// Whether client certificates map to principals.
    pub(crate) fn has_mtls(&self) -> bool {
        self.mtls.is_some()
    }

    /// The JWT verifier, when tokens are accepted (`token jwt --config` reads its audiences).
    pub(crate) fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// Whether bearer tokens (JWT) are accepted: the relay is an OAuth resource server.
    pub(crate) fn is_oauth(&self) -> bool {
        self.jwt.is_some() || self.issued.is_some()
    }

    /// The relay's own issuer, when the built-in authorization server is on.
    pub(crate) fn issued(&self) -> Option<&Arc<IssuedTokens>> {
        self.issued.as_ref()
    }

    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// The resource a request under `mount` (`/servers/NAME`, `/endpoints/NAME`; `None` for
    /// the main path) is for. With the built-in authorization server each mounted relay is its
    /// own resource (`<origin>/servers/NAME/mcp`), so its tokens open that server only; with
    /// external issuers every path is the one configured resource.
    pub(crate) fn resource_for(&self, mount: Option<&str>) -> std::borrow::Cow<'_, str> {
        match mount.filter(|m| !m.is_empty() && self.issued.is_some()) {
            Some(m) => format!("{}{m}/mcp", origin_of(&self.resource)).into(),
            None => self.resource.as_str().into(),
        }
    }

    /// The RFC 9728 metadata URL for the resource (path-inserted well-known URI).
    pub(crate) fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The RFC 9728 document of the resource at `mount` ([`Authenticator::resource_for`]).
    pub(crate) fn metadata(&self, mount: Option<&str>) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": self.resource_for(mount),
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        let scopes = if self.scopes_supported.is_empty() {
            &self.required_scopes
        } else {
            &self.scopes_supported
        };
        if !scopes.is_empty() {
            doc["scopes_supported"] = scopes.clone().into();
        }
        doc
    }

    /// The `WWW-Authenticate` value for a refusal (RFC 6750 §3, RFC 9728 §5.1).
    pub(crate) fn challenge(&self, failure: AuthFailure, mount: Option<&str>) -> String {
        let mut params = Vec::new();
        match failure {
            AuthFailure::Missing => {}
            AuthFailure::InsufficientScope => {
                params.push("error=\"insufficient_scope\"".to_owned());
                params.push(format!("scope=\"{}\"", self.required_scopes.join(" ")));
            }
            _ => params.push("error=\"invalid_token\"".to_owned()),
        }
        // The metadata exists only when tokens from an authorization server are accepted.
        if self.is_oauth() {
            let url = match mount.filter(|m| !m.is_empty() && self.issued.is_some()) {
                Some(_) => metadata_url(&self.resource_for(mount)).into(),
                None => std::borrow::Cow::Borrowed(self.metadata_url.as_str()),
            };
            params.push(format!("resource_metadata=\"{url}\""));
        }
        match params.is_empty() {
            true => "Bearer".to_owned(),
            false => format!("Bearer {}", params.join(", ")),
        }
    }

    /// The principal of one request. `cert` is the verified mTLS client identity, if any. A
    /// refused credential is logged with its reason (debug; info once a minute per reason).
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        cert: Option<&CertIdentity>,
        mount: Option<&str>,
    ) -> Result<Principal, AuthFailure> {
        if !self.is_enabled() {
            return self.unauthenticated(headers);
        }
        let result = self.check(headers, query, cert, mount).await;
        if let Err(failure) = &result {
            let expected = |issuer: &str| match self.jwt.as_ref().and_then(|j| j.audiences(issuer))
            {
                Some(list) => list.join(","),
                None => self.resource.clone(),
            };
            self.refusals.note(*failure, headers, &expected);
        }
        result
    }

    /// [`Authenticator::authenticate`] with authentication configured.
    async fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        cert: Option<&CertIdentity>,
        mount: Option<&str>,
    ) -> Result<Principal, AuthFailure> {
        if query.is_some_and(query_has_credential) {
            return Err(AuthFailure::Refused("credential_in_query"));
        }
        let presented = presented(headers)?;
        let from_cert = match (cert, &self.mtls) {
            (Some(id), Some(map)) => Some(map.principal(id)?),
            _ => None,
        };
        let from_header = match presented {
            Some(Presented::ApiKey(key)) => Some(self.api_key(key)?),
            Some(Presented::Bearer(token)) => Some(self.bearer(token, mount).await?),
            None => None,
        };
        let principal = match (from_cert, from_header) {
            (Some(c), Some(h)) if c.name != h.name => {
                return Err(AuthFailure::Refused("conflicting_credentials"))
            }
            (_, Some(h)) => h,
            (Some(c), None) => c,
            (None, None) => return Err(AuthFailure::Missing),
        };
        if principal.method == AuthMethod::Jwt
            && !self
                .required_scopes
                .iter()
                .all(|s| principal.scopes.contains(s))
        {
            return Err(AuthFailure::InsufficientScope);
        }
        Ok(principal)
    }

    /// A bearer value: an API key when it has the key prefix, else a JWT: the relay's own
    /// when its `iss` says so (bound to the resource of `mount`), else an external issuer's.
    async fn bearer(&self, token: &str, mount: Option<&str>) -> Result<Principal, AuthFailure> {
        if token.starts_with(KEY_PREFIX) {
            return self.api_key(token);
        }
        if let Some(own) = &self.issued {
            if own.claims_issuer(issued::unverified_issuer(token).as_deref()) {
                return own.verify(token, &self.resource_for(mount));
            }
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(token).await,
            None if self.issued.is_some() => Err(AuthFailure::Invalid("unknown_issuer")),
            None => self.api_key(token),
        }
    }

    fn api_key(&self, key: &str) -> Result<Principal, AuthFailure> {
        match &self.api_keys {
            Some(keys) => keys.verify(key, SystemTime::now()),
            None => Err(AuthFailure::Invalid("api_keys_not_accepted")),
        }
    }

    /// No authentication configured: anonymous, or the `--identity-header` name.
    fn unauthenticated(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let Some(name) = &self.identity_header else {
            return Ok(Principal::anonymous());
        };
        let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match value {
            None => Err(AuthFailure::Missing),
            Some(v) if crate::caller::identity_is_valid(v) => Ok(Principal {
                name: v.to_owned(),
                method: AuthMethod::IdentityHeader,
                ..Principal::anonymous()
            }),
            Some(_) => Err(AuthFailure::Invalid("bad_identity")),
        }
    }
}

enum Presented<'a> {
    ApiKey(&'a str),
    Bearer(&'a str),
}

/// The one credential in the headers; two that disagree are refused.
fn presented(headers: &HeaderMap) -> Result<Option<Presented<'_>>, AuthFailure> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let bearer = match (auth.next(), auth.next()) {
        (Some(_), Some(_)) => return Err(AuthFailure::Refused("duplicate_credentials")),
        (Some(v), None) => Some(bearer_value(v)?),
        (None, _) => None,
    };
    let mut keys = headers.get_all("x-api-key").iter();
    let key = match (keys.next(), keys.next()) {
        (Some(_), Some(_)) => return Err(AuthFailure::Refused("duplicate_credentials")),
        (Some(v), None) => Some(credential_text(v)?),
        (None, _) => None,
    };
    match (bearer, key) {
        (Some(b), Some(k)) if b != k => Err(AuthFailure::Refused("conflicting_credentials")),
        (_, Some(k)) => Ok(Some(Presented::ApiKey(k))),
        (Some(b), None) => Ok(Some(Presented::Bearer(b))),
        (None, None) => Ok(None),
    }
}

fn bearer_value(v: &HeaderValue) -> Result<&str, AuthFailure> {
    let text = credential_text(v)?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(AuthFailure::Invalid("malformed_authorization"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Invalid("unsupported_scheme"));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthFailure::Invalid("malformed_authorization"));
    }
    Ok(token)
}

fn credential_text(v: &HeaderValue) -> Result<&str, AuthFailure> {
    if v.len() > MAX_CREDENTIAL {
        return Err(AuthFailure::Invalid("credential_too_large"));
    }
    v.to_str()
        .map_err(|_| AuthFailure::Invalid("malformed_authorization"))
}

/// Whether a query string names a credential parameter (case-insensitive). Names are
/// compared as a server reads them, percent-decoded (`%61ccess_token`, `access%5Ftoken`) and
/// with `+` as a space, so no spelling of a name slips past the rule.
pub(crate) fn query_has_credential(query: &str) -> bool {
    query_names(query).any(|name| {
        QUERY_CREDENTIALS
            .iter()
            .any(|c| name.trim().eq_ignore_ascii_case(c))
    })
}

/// The parameter names of a query string, decoded (`application/x-www-form-urlencoded`, as
/// axum's `Query` reads them): every check of a name must see what the handler will see.
pub(crate) fn query_names(query: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    form_urlencoded::parse(query.as_bytes()).map(|(name, _)| name)
}

/// `https://host/mcp` → `https://host/.well-known/oauth-protected-resource/mcp` (RFC 9728 §3).
pub(crate) fn metadata_url(resource: &str) -> String {
    let Some((scheme, rest)) = resource.split_once("://") else {
        return String::new();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = path.trim_end_matches('/');
    format!("{scheme}://{authority}{WELL_KNOWN}{path}")
}

/// `https://host:8443/mcp` → `https://host:8443`.
pub(crate) fn origin_of(url: &str) -> &str {
    let Some(i) = url.find("://") else {
        return url;
    };
    match url[i + 3..].find('/') {
        Some(j) => &url[..i + 3 + j],
        None => url,
    }
}

/// Whether `path` is one of the built-in authorization server's (`authz.rs`): its metadata
/// (RFC 8414 and the OpenID discovery alias) and everything under `/oauth/`.
pub(crate) fn is_authz_path(path: &str) -> bool {
    path.starts_with(AUTHZ_PREFIX)
        || path == "/.well-known/oauth-authorization-server"
        || path == "/.well-known/openid-configuration"
}

/// Where the authorization server's endpoints and pages live.
pub(crate) const AUTHZ_PREFIX: &str = "/oauth/";

/// The RFC 9728 well-known prefix.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_prefix() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn a4_query_credentials_are_recognised_in_any_case() {
        assert!(query_has_credential("a=1&Access_Token=x"));
        assert!(query_has_credential("api_key=x"));
        assert!(!query_has_credential("sessionId=abc"));
    }

    #[test]
    fn a4_query_credentials_are_recognised_however_their_name_is_encoded() {
        // Issue 14, bug 12: names were compared without percent-decoding.
        for q in [
            "access%5Ftoken=x",
            "%61ccess_token=x",
            "a=1&%41CCESS%5fTOKEN=x",
            "api%2Dkey=x",
            "%20token=x",
            "token+=x",
        ] {
            assert!(query_has_credential(q), "{q}");
        }
        for q in ["sessionId=abc", "access%5Ftokens=x", "q=access_token", ""] {
            assert!(!query_has_credential(q), "{q}");
        }
    }

    #[test]
    fn disagreeing_headers_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.insert("x-api-key", HeaderValue::from_static("b"));
        assert!(matches!(
            presented(&h),
            Err(AuthFailure::Refused("conflicting_credentials"))
        ));
        h.insert("x-api-key", HeaderValue::from_static("a"));
        assert!(matches!(presented(&h), Ok(Some(Presented::ApiKey("a")))));
    }
}
