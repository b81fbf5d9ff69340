//! The bridge's OAuth 2.1 client (PROTOCOL.md §7.2, SECURITY.md §6): an [`OAuthClient`] is
//! the [`Credentials`] of `connect`'s remote link. It sends the cached access token; when the
//! server refuses one (401, or 403 `insufficient_scope`) it refreshes, or runs the whole
//! authorization-code flow with PKCE S256 (discovery in `oauth/discovery.rs`, registration in
//! `oauth/registration.rs`, the token endpoint in `oauth/token.rs`), or steps up the scope.
//! Bounds per refused request: ≤ 3 token-endpoint requests, ≤ 1 browser launch; a token
//! refused right after the full flow produced it ends the retries. Tokens live in
//! `token_store.rs`; URL and SSRF rules in `url_guard.rs`; the browser and the loopback
//! callback in `browser.rs`. No token, verifier, code or secret is ever logged.

mod discovery;
mod flow;
mod pkce;
mod registration;
#[cfg(test)]
mod tests;
mod token;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::Url;
use tracing::warn;

use crate::bridge::browser::{self, Launcher};
use crate::bridge::token_store::{self, Record, TokenStore};
use crate::bridge::url_guard;
use crate::upstream::remote::Credentials;
use discovery::Challenge;

/// How long the user has to finish authorizing in the browser.
const BROWSER_WAIT: Duration = Duration::from_secs(300);
/// A token the full flow produced and the server refuses within this time is not retried.
const FRESH_TOKEN: Duration = Duration::from_secs(60);
/// Token-endpoint requests and browser launches per refused request.
const MAX_TOKEN_REQUESTS: u8 = 3;
const MAX_LAUNCHES: u8 = 1;
/// Consecutive scope step-ups without success.
const MAX_STEP_UPS: u8 = 2;

/// What `connect` configures.
#[derive(Clone)]
pub(crate) struct OAuthConfig {
    /// The MCP server URL given to `connect`.
    pub server_url: Url,
    /// Token/client store directory (created 0700).
    pub dir: PathBuf,
    /// A pre-registered client.
    pub client_id: Option<String>,
    /// Its secret (confidential client), read from a file by the CLI.
    pub client_secret: Option<String>,
    /// CIMD: an https URL used as `client_id` when the AS supports it.
    pub client_metadata_url: Option<String>,
    /// Scope override.
    pub scope: Option<String>,
    /// Follow the authorization redirect without a browser (tests, CI).
    pub headless: bool,
    /// 0: any free port on 127.0.0.1.
    pub callback_port: u16,
    /// RFC 8707 `resource` on authorization and token requests.
    pub send_resource: bool,
    /// Discovery may reach loopback and private addresses (local development).
    pub allow_private: bool,
}

impl OAuthConfig {
    /// The defaults for `server_url`: default store directory, `resource` sent, a browser.
    pub(crate) fn new(server_url: Url) -> OAuthConfig {
        OAuthConfig {
            server_url,
            dir: TokenStore::default_dir().unwrap_or_else(|| PathBuf::from(".mcp-relay-oauth")),
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            scope: None,
            headless: false,
            callback_port: 0,
            send_resource: true,
            allow_private: false,
        }
    }
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("server_url", &self.server_url.as_str())
            .field("dir", &self.dir)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_metadata_url", &self.client_metadata_url)
            .field("scope", &self.scope)
            .field("headless", &self.headless)
            .field("callback_port", &self.callback_port)
            .field("send_resource", &self.send_resource)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

/// Why authorization failed. Messages never carry tokens, codes or fetched content.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    #[error("discovery failed: {0}")]
    Discovery(&'static str),
    #[error("url refused: {0}")]
    Guard(#[from] url_guard::Error),
    #[error("no protected resource metadata")]
    NoResourceMetadata,
    #[error("no authorization server metadata")]
    NoAsMetadata,
    #[error("authorization server answered {0}")]
    Status(u16),
    #[error("authorization server metadata names another issuer")]
    IssuerMismatch,
    #[error("protected resource metadata names another resource")]
    ResourceMismatch,
    #[error("authorization server does not support pkce s256")]
    NoS256,
    #[error("no way to register a client with this authorization server (configure a client id)")]
    NoRegistration,
    #[error("client registration failed: {0}")]
    Registration(&'static str),
    #[error("authorization response names another issuer")]
    IssMismatch,
    #[error("authorization did not complete: {0}")]
    Browser(#[from] browser::Error),
    #[error("token request refused: {0}")]
    Token(String),
    #[error("token response unusable: {0}")]
    TokenResponse(&'static str),
    #[error("token store failed")]
    Store(#[from] token_store::Error),
    #[error("too many token requests for one refused request")]
    TooManyTokenRequests,
    #[error("too many browser launches for one refused request")]
    TooManyLaunches,
}

/// In-memory state: the record in use and what the loop guards need.
#[derive(Debug, Default)]
struct Current {
    record: Option<Record>,
    /// The access token the last refresh produced.
    refreshed: Option<String>,
    /// The access token the last full flow produced, and when.
    full: Option<(String, Instant)>,
    /// The scope last asked for.
    scope: Option<String>,
    /// The access token the last step-up produced, and how many in a row.
    stepped: Option<(String, u8)>,
}

/// The bridge's OAuth client; see the module docs.
pub(crate) struct OAuthClient {
    cfg: OAuthConfig,
    /// The canonical server URL (no fragment).
    server: Url,
    store: TokenStore,
    launcher: Launcher,
    current: Mutex<Current>,
    /// One renewal at a time.
    flow: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("server", &self.server.as_str())
            .field("headless", &self.cfg.headless)
            .finish_non_exhaustive()
    }
}

/// One renewal: its budget of token requests and launches.
pub(crate) struct Flow<'a> {
    client: &'a OAuthClient,
    token_requests: u8,
    launches: u8,
}

impl OAuthClient {
    /// Opens the store and loads the tokens last used for this server.
    pub(crate) fn new(cfg: OAuthConfig) -> Result<Arc<OAuthClient>, Error> {
        OAuthClient::with_launcher(cfg, Launcher::System)
    }

    /// Like [`OAuthClient::new`] with a given way of opening the browser.
    pub(crate) fn with_launcher(
        cfg: OAuthConfig,
        launcher: Launcher,
    ) -> Result<Arc<OAuthClient>, Error> {
        let server = canonical(&cfg.server_url)?;
        if cfg.client_secret.is_some() && cfg.client_id.is_none() {
            return Err(Error::Config("a client secret needs a client id"));
        }
        let store = TokenStore::open(&cfg.dir, server.as_str())?;
        let record = match store.current_issuer() {
            Some(issuer) => store.load(&issuer).unwrap_or_else(|e| {
                warn!(error = %e, "stored oauth record ignored");
                None
            }),
            None => None,
        };
        let scope = cfg.scope.clone();
        Ok(Arc::new(OAuthClient {
            cfg,
            server,
            store,
            launcher,
            current: Mutex::new(Current {
                record,
                scope,
                ..Current::default()
            }),
            flow: tokio::sync::Mutex::new(()),
        }))
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The access token in use.
    fn access(&self) -> Option<String> {
        self.current()
            .record
            .as_ref()
            .and_then(|r| r.tokens.as_ref())
            .map(|t| t.access_token.clone())
    }

    /// Renews after a refusal; true when a retry may succeed.
    async fn renew(&self, status: u16, challenge: Option<&str>) -> Result<bool, Error> {
        let refused = self.access();
        let _one = self.flow.lock().await;
        if self.access() != refused {
            return Ok(true); // renewed while this request waited
        }
        if self.adopt_stored(refused.as_deref())? {
            return Ok(true); // another bridge renewed
        }
        let challenge = Challenge::parse(challenge);
        let mut flow = Flow {
            client: self,
            token_requests: 0,
            launches: 0,
        };
        match status {
            403 if challenge.insufficient_scope() => flow.step_up(&challenge, refused).await,
            401 => flow.unauthorized(&challenge, refused).await,
            _ => Ok(false),
        }
    }

    /// Takes the stored record when its token differs from the one refused.
    fn adopt_stored(&self, refused: Option<&str>) -> Result<bool, Error> {
        let Some(issuer) = self.store.current_issuer() else {
            return Ok(false);
        };
        let Some(rec) = self.store.load(&issuer)? else {
            return Ok(false);
        };
        let stored = rec.tokens.as_ref().map(|t| t.access_token.as_str());
        if stored.is_some() && stored != refused {
            self.current().record = Some(rec);
            return Ok(true);
        }
        Ok(false)
    }
}

impl Credentials for OAuthClient {
    fn authorization(&self) -> Option<String> {
        self.access().map(|t| format!("Bearer {t}"))
    }

    fn refused<'a>(
        &'a self,
        status: u16,
        challenge: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            match self.renew(status, challenge).await {
                Ok(retry) => retry,
                Err(e) => {
                    warn!(error = %e, "oauth authorization failed");
                    false
                }
            }
        })
    }
}

/// The server URL as the `resource` and store key: parsed, without fragment.
fn canonical(u: &Url) -> Result<Url, Error> {
    let mut u = u.clone();
    u.set_fragment(None);
    match u.scheme() {
        "https" | "http" => Ok(u),
        _ => Err(Error::Config("server url must be http or https")),
    }
}

/// Space-separated scope sets joined, order kept, duplicates dropped.
fn union_scope(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for s in a.into_iter().chain(b).flat_map(str::split_whitespace) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}
