//! The company identity provider's OpenID Connect discovery document and its JWKS, fetched
//! with the authorization server's HTTP client (no redirects, 10 s timeout) and cached. The
//! provider is configured by the operator, so it is trusted: its URLs may be https or http on
//! a loopback host, and nothing here goes through the SSRF guard. A key id missing from the
//! cached JWKS refreshes it at most once per [`JWKS_REFRESH`]; a reload that names another
//! issuer discovers it anew. What the document's URLs are
//! used for (the login leg, the ID token) is `upstream.rs` and `upstream/id_token.rs`.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

use crate::config::oauth_server::UpstreamConfig;

/// The shortest time between two JWKS fetches caused by an unknown key id.
const JWKS_REFRESH: Duration = Duration::from_secs(30);
/// The largest discovery document, JWKS or token answer read from the provider.
pub(super) const MAX_BODY: usize = 256 * 1024;

/// The parts of the discovery document the relay uses.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

#[derive(Debug)]
struct Cached {
    meta: Metadata,
    jwks: JwkSet,
    fetched: Instant,
}

/// The provider's discovered metadata and keys, cached for the life of the server.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    /// Held across a fetch, so concurrent logins make one request (single flight).
    cache: tokio::sync::Mutex<Option<Cached>>,
}

/// Why the provider's metadata or keys could not be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("identity provider unreachable: {0}")]
    Fetch(#[from] reqwest::Error),
    #[error("identity provider answered {0}")]
    Status(u16),
    #[error("identity provider document too large")]
    TooLarge,
    #[error("identity provider document is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("identity provider names issuer `{0}`, not the configured one")]
    WrongIssuer(String),
    #[error("identity provider endpoint is neither https nor loopback http")]
    Endpoint,
}

impl Discovery {
    /// The discovery document, fetched on first use.
    pub(super) async fn metadata(
        &self,
        http: &reqwest::Client,
        cfg: &UpstreamConfig,
    ) -> Result<Metadata, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| c.meta.issuer == cfg.issuer) {
            return Ok(c.meta.clone());
        }
        let c = discover(http, cfg).await?;
        let meta = c.meta.clone();
        *cache = Some(c);
        Ok(meta)
    }

    /// The key `kid` names (or the only key, when the token names none); a `kid` not in the
    /// cached set refreshes it when the last fetch is older than [`JWKS_REFRESH`].
    pub(super) async fn key(
        &self,
        http: &reqwest::Client,
        cfg: &UpstreamConfig,
        kid: Option<&str>,
    ) -> Result<Option<Jwk>, Error> {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_none_or(|c| c.meta.issuer != cfg.issuer) {
            *cache = Some(discover(http, cfg).await?);
        }
        let Some(c) = cache.as_mut() else {
            return Ok(None);
        };
        if let Some(k) = find(&c.jwks, kid) {
            return Ok(Some(k));
        }
        if c.fetched.elapsed() < JWKS_REFRESH {
            return Ok(None);
        }
        c.fetched = Instant::now();
        c.jwks = serde_json::from_slice(&get(http, &c.meta.jwks_uri).await?)?;
        Ok(find(&c.jwks, kid))
    }
}

/// The key named `kid`; without a `kid`, the set's only key.
fn find(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// Fetches and checks the document, then its JWKS.
async fn discover(http: &reqwest::Client, cfg: &UpstreamConfig) -> Result<Cached, Error> {
    let url = format!("{}/.well-known/openid-configuration", cfg.issuer);
    let meta: Metadata = serde_json::from_slice(&get(http, &url).await?)?;
    if meta.issuer != cfg.issuer {
        return Err(Error::WrongIssuer(meta.issuer));
    }
    for u in [
        &meta.authorization_endpoint,
        &meta.token_endpoint,
        &meta.jwks_uri,
    ] {
        if !endpoint_ok(u) {
            return Err(Error::Endpoint);
        }
    }
    let jwks = serde_json::from_slice(&get(http, &meta.jwks_uri).await?)?;
    Ok(Cached {
        meta,
        jwks,
        fetched: Instant::now(),
    })
}

/// https, or http on a loopback host; no credentials, no fragment.
pub(super) fn endpoint_ok(u: &str) -> bool {
    let Ok(url) = url::Url::parse(u) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let scheme = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    scheme && url.host().is_some() && url.username().is_empty() && url.password().is_none()
}

/// GET `url`: a 200 answer's body, at most [`MAX_BODY`] bytes.
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, Error> {
    let res = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(Error::Status(res.status().as_u16()));
    }
    body(res).await
}

/// A response body, at most [`MAX_BODY`] bytes.
pub(super) async fn body(res: reqwest::Response) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > MAX_BODY {
            return Err(Error::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_https_or_loopback_http_only() {
        assert!(endpoint_ok("https://idp.example.com/authorize"));
        assert!(endpoint_ok("http://127.0.0.1:8080/authorize"));
        assert!(endpoint_ok("http://[::1]:8080/token"));
        assert!(endpoint_ok("http://localhost/token"));
        assert!(!endpoint_ok("http://idp.example.com/authorize"));
        assert!(!endpoint_ok("javascript:alert(1)"));
        assert!(!endpoint_ok("https://user:pw@idp.example.com/"));
        assert!(!endpoint_ok("not a url"));
    }
}
