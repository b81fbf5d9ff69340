//! The OAuth 2.0 client credentials grant (RFC 6749 §4.4) as a [`Credentials`] source for
//! `serve --upstream`: a token is asked for with the client's id and secret (HTTP Basic,
//! §2.3.1), cached until `expires_in` says it lapsed, and asked for again when the upstream
//! refuses the current one (once per refusal; concurrent refusals share one request).
//!
//! The token endpoint must be https (http only on a loopback address): the client secret goes
//! there. No redirects, no environment proxies, a bounded answer. The secret and the tokens
//! are never logged. Built by `remote/upstream_access.rs`; the bridge's interactive OAuth
//! client is `bridge/oauth.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Url;
use serde::Deserialize;
use tracing::{info, warn};

use super::access::Credentials;

/// How long the token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A token this close to its expiry is not sent any more.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// A token fetched this recently answers a refusal without another request.
const FRESH: Duration = Duration::from_secs(2);
/// The largest token response read.
const MAX_ANSWER: usize = 64 * 1024;

/// What the grant asks for.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) audience: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why a token was not obtained.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("the token endpoint must be an https:// URL (http:// only on loopback)")]
    Insecure,
    #[error("not a URL")]
    Url,
    #[error("http client setup failed")]
    Client(#[source] reqwest::Error),
    #[error("token request failed")]
    Network(#[source] reqwest::Error),
    #[error("token endpoint answered {0}")]
    Status(u16),
    #[error("token endpoint answer is not a bearer token")]
    Answer,
}

/// A cached token.
struct Token {
    value: String,
    fetched: Instant,
    expires: Option<Instant>,
}

/// The client credentials source.
pub(crate) struct ClientCredentials {
    http: reqwest::Client,
    url: Url,
    grant: Grant,
    token: Mutex<Option<Token>>,
    /// One token request at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("url", &self.url.as_str())
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
}

impl ClientCredentials {
    pub(crate) fn new(url: &str, grant: Grant) -> Result<ClientCredentials, Error> {
        let url = Url::parse(url).map_err(|_| Error::Url)?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(Error::Insecure);
        }
        let http = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("mcp-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.without_url()))?;
        Ok(ClientCredentials {
            http,
            url,
            grant,
            token: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Asks the token endpoint for a new token and caches it.
    async fn fetch(&self) -> Result<(), Error> {
        let g = &self.grant;
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&g.client_id),
            enc(&g.client_secret)
        ));
        let mut form = vec![("grant_type", "client_credentials")];
        for (k, v) in [
            ("scope", &g.scope),
            ("resource", &g.resource),
            ("audience", &g.audience),
        ] {
            if let Some(v) = v {
                form.push((k, v.as_str()));
            }
        }
        let mut auth = reqwest::header::HeaderValue::try_from(format!("Basic {basic}"))
            .map_err(|_| Error::Answer)?;
        auth.set_sensitive(true);
        let res = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::Network(e.without_url()))?;
        let status = res.status();
        if !status.is_success() {
            return Err(Error::Status(status.as_u16()));
        }
        if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(Error::Answer);
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| Error::Network(e.without_url()))?;
        if body.len() > MAX_ANSWER {
            return Err(Error::Answer);
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| Error::Answer)?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") || answer.access_token.is_empty() {
            return Err(Error::Answer);
        }
        let now = Instant::now();
        *lock(&self.token) = Some(Token {
            value: answer.access_token,
            fetched: now,
            expires: answer.expires_in.map(|s| now + Duration::from_secs(s)),
        });
        info!(token_endpoint = %self.url.origin().ascii_serialization(), expires_in = ?answer.expires_in, "upstream token obtained");
        Ok(())
    }

    /// A new token, unless one was fetched a moment ago.
    async fn renew(&self) -> bool {
        let _one = self.fetching.lock().await;
        // Another refusal just fetched one.
        let fresh = lock(&self.token)
            .as_ref()
            .is_some_and(|t| t.fetched.elapsed() < FRESH);
        if fresh {
            return true;
        }
        match self.fetch().await {
            Ok(()) => true,
            Err(e) => {
                warn!(token_endpoint = %self.url.origin().ascii_serialization(), error = %e, "upstream token request failed");
                false
            }
        }
    }
}

fn expiring(t: &Token) -> bool {
    t.expires
        .is_some_and(|e| e.saturating_duration_since(Instant::now()) < EXPIRY_MARGIN)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Credentials for ClientCredentials {
    fn authorization(&self) -> Option<String> {
        // An expiring token is not sent: the upstream's refusal renews it.
        lock(&self.token)
            .as_ref()
            .filter(|t| !expiring(t))
            .map(|t| format!("Bearer {}", t.value))
    }

    fn refused<'a>(
        &'a self,
        status: u16,
        _challenge: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { status == 401 && self.renew().await })
    }
}
