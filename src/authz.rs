//! The built-in OAuth 2.1 authorization server (`[oauth_server]`, docs/oauth-server.md): what
//! lets a claude.ai connector, Claude Desktop, VS Code or Cursor log in to the relay with
//! nothing else running. Off unless configured; then the protected-resource metadata names it
//! and the relay accepts its tokens (`policy/issued.rs`) beside any external issuer.
//!
//! Routes (all on the main listener, behind the guard's network phases and per-IP rate, with
//! no principal): RFC 8414 metadata and its OpenID alias (`metadata.rs`), `/oauth/authorize`
//! (`authorize.rs`), the login and consent pages (`login.rs`, `consent.rs`, HTML in
//! `pages.rs`), the company identity provider's leg (`upstream.rs`), `/oauth/token`
//! (`token.rs`), `/oauth/register` and client ID metadata documents (`register.rs`,
//! `cimd.rs`), `/oauth/revoke` (`revoke.rs`), `/oauth/jwks` and the logo. State lives in
//! `store.rs` (SQLite or PostgreSQL), signing keys in `keys.rs`, login throttling in
//! `lockout.rs`. Every login, consent, token issue/refresh/revoke and registration is audited
//! (`audit.rs`), never with a secret.

mod audit;
mod authorize;
mod browser;
mod cimd;
mod client_auth;
mod consent;
mod grant;
mod keys;
mod lockout;
mod login;
mod metadata;
mod operators;
mod pages;
mod redirect;
mod register;
mod revoke;
pub(crate) mod store;
mod token;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::config::oauth_server::OAuthServerConfig;
use crate::hub::Hub;
use crate::policy::issued::IssuedTokens;
use crate::telemetry::audit::Audit;
use keys::Keyring;
use lockout::Lockout;
pub(crate) use operators::is_operator;
use store::Store;

/// The authorization server of one `serve`.
pub(crate) struct AuthServer {
    /// Swapped by a SIGHUP ([`AuthServer::reload`]).
    cfg: ArcSwap<OAuthServerConfig>,
    store: Store,
    keys: Keyring,
    /// The relays whose resources tokens may be for (reloads change the named servers).
    hub: Arc<Hub>,
    audit: Audit,
    /// Rebuilt by a reload that changes its settings.
    lockout: ArcSwap<Lockout>,
    /// Outbound HTTP: the company identity provider (configured, trusted) and client ID
    /// metadata documents (through the SSRF guard, `cimd.rs`).
    http: reqwest::Client,
    upstream: upstream::Discovery,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.cfg.load().issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Opens the state, brings the signing keys up to date and starts the minute timer
    /// (rotation, other replicas' keys, expired rows). A failure is a startup error.
    pub(crate) async fn start(
        cfg: Arc<OAuthServerConfig>,
        hub: Arc<Hub>,
        audit: Audit,
    ) -> anyhow::Result<Arc<AuthServer>> {
        let verifier: Arc<IssuedTokens> = hub
            .main()
            .policy()
            .auth
            .issued()
            .cloned()
            .context("the authorization server has no verifier")?;
        let store = Store::open(&cfg.storage)
            .await
            .context("cannot open the authorization server's state")?;
        let keys = Keyring::default();
        keys.sync(&store, store::now(), cfg.key_rotation, &verifier)
            .await
            .context("cannot prepare the signing keys")?;
        let server = Arc::new(AuthServer {
            lockout: ArcSwap::from_pointee(Lockout::new(
                cfg.login_attempts,
                cfg.lockout,
                cfg.registrations_per_hour,
            )),
            upstream: upstream::Discovery::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .context("HTTP client")?,
            cfg: ArcSwap::new(cfg),
            store,
            keys,
            hub,
            audit,
        });
        tokio::spawn(maintain(Arc::downgrade(&server)));
        Ok(server)
    }

    /// SIGHUP: the new `[oauth_server]` settings (users, upstream, lifetimes, registration,
    /// branding) apply to the next request. The issuer and where the state lives need a
    /// restart: a change of either is refused with a warning and the old settings stay.
    /// Returns false when the new settings need a restart: the caller refuses the whole
    /// reload then, so the policy's verifier and this server keep naming one issuer.
    pub(crate) fn reload(&self, new: Option<Arc<OAuthServerConfig>>) -> bool {
        let old = self.cfg.load();
        let Some(n) = new.filter(|n| n.issuer == old.issuer && n.storage == old.storage) else {
            return false;
        };
        let l = self.lockout.load();
        if !l.is(n.login_attempts, n.lockout, n.registrations_per_hour) {
            let fresh = Lockout::new(n.login_attempts, n.lockout, n.registrations_per_hour);
            self.lockout.store(Arc::new(fresh));
        }
        self.cfg.store(n);
        true
    }

    /// The verifier of the policy in force (a reload replaces it).
    fn verifier(&self) -> Option<Arc<IssuedTokens>> {
        self.hub.main().policy().auth.issued().cloned()
    }

    /// The routes, with their state; the hub puts them behind the guard.
    pub(crate) fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata::serve),
            )
            .route("/.well-known/openid-configuration", get(metadata::serve))
            .route("/oauth/jwks", get(metadata::jwks))
            .route("/oauth/logo", get(metadata::logo))
            .route("/oauth/authorize", get(authorize::serve))
            .route("/oauth/login", post(login::submit))
            .route("/oauth/logout", post(login::logout))
            .route("/oauth/consent", get(consent::show).post(consent::submit))
            .route("/oauth/upstream/start", get(upstream::start))
            .route("/oauth/upstream/callback", get(upstream::callback))
            .route("/oauth/token", post(token::serve))
            .route("/oauth/register", post(register::serve))
            .route("/oauth/revoke", post(revoke::serve))
            .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
            .with_state(self.clone())
    }

    /// The settings in force.
    pub(crate) fn cfg(&self) -> Arc<OAuthServerConfig> {
        self.cfg.load_full()
    }

    /// The resources a token may be for: the main path's, and each named server's and
    /// endpoint's (`<origin>/servers/NAME/mcp`), with the name shown on the consent page.
    pub(crate) fn resources(&self) -> Vec<(String, String)> {
        let auth = &self.hub.main().policy().auth;
        let mut out = vec![(auth.resource().to_owned(), "all servers".to_owned())];
        for mount in self.hub.mounts() {
            let name = mount.rsplit('/').next().unwrap_or_default().to_owned();
            out.push((auth.resource_for(Some(&mount)).into_owned(), name));
        }
        out
    }

    /// Whether `resource` is one of [`AuthServer::resources`]; its display name.
    pub(crate) fn resource_name(&self, resource: &str) -> Option<String> {
        self.resources()
            .into_iter()
            .find(|(r, _)| r == resource)
            .map(|(_, n)| n)
    }

    /// The endpoint URL of `path` (`/oauth/token`) under the issuer.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.load().issuer)
    }

    /// Whether cookies get `Secure` (an https issuer).
    pub(crate) fn secure_cookies(&self) -> bool {
        self.cfg.load().issuer.starts_with("https://")
    }
}

/// Every minute (more often with a short `key_rotation`): key rotation and other replicas'
/// keys, then expired rows.
async fn maintain(server: std::sync::Weak<AuthServer>) {
    loop {
        let every = match server.upgrade() {
            Some(s) => {
                (s.cfg().key_rotation / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
            }
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(s) = server.upgrade() else {
            return;
        };
        let now = store::now();
        let Some(verifier) = s.verifier() else {
            continue;
        };
        let rotation = s.cfg().key_rotation;
        if let Err(e) = s.keys.sync(&s.store, now, rotation, &verifier).await {
            tracing::warn!(error = %e, "authorization server: signing keys not refreshed");
        }
        if let Err(e) = s.store.sweep(now).await {
            tracing::warn!(error = %e, "authorization server: expired state not swept");
        }
    }
}

/// `bytes` random bytes, base64url: ids, codes, tokens, CSRF values.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The thread's CSPRNG (ChaCha, seeded and reseeded from the OS).
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A JSON answer that must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(status: axum::http::StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// An OAuth error answer (`{"error": ..., "error_description": ...}`), not cached.
pub(crate) fn oauth_error(
    status: axum::http::StatusCode,
    error: &str,
    description: &str,
) -> Response {
    no_store(
        status,
        serde_json::json!({ "error": error, "error_description": description }),
    )
}
