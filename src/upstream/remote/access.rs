//! How the relay (or `connect`) proves itself to a remote server: static headers from the
//! operator's configuration and, optionally, a credential source that can obtain new tokens
//! (the bridge's OAuth client, `bridge/oauth.rs`). Never anything from a client's request.
//!
//! HTTP sends both on every request, WebSocket on the upgrade request, TCP as mcp-relay's
//! credential line (`{"authorization": …}`) before the first message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A source of `Authorization` values that can renew them when the server refuses one.
pub trait Credentials: Send + Sync + std::fmt::Debug {
    /// The `Authorization` header value for the next request (a cached token), if any.
    fn authorization(&self) -> Option<String>;

    /// The server refused a request: `status` 401, or 403 with `insufficient_scope`;
    /// `challenge` is its `WWW-Authenticate` value. Obtain new credentials (refresh, scope
    /// step-up, or the whole authorization flow) and say whether a retry may succeed. Called
    /// for one refused request at a time; bounded retries are the implementation's duty.
    fn refused<'a>(
        &'a self,
        status: u16,
        challenge: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// A shared credential source; equal when it is the same source.
#[derive(Clone, Debug)]
pub struct CredentialSource(pub Arc<dyn Credentials>);

impl PartialEq for CredentialSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CredentialSource {}

/// What a link sends to authenticate itself (its `Debug` shows header names, not values).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Static headers (names as given; values are secrets and never logged).
    pub headers: Vec<(String, String)>,
    pub credentials: Option<CredentialSource>,
    /// Honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (the bridge); the relay itself never does.
    pub proxy_from_env: bool,
    /// HTTP only: speak legacy HTTP+SSE (2024-11-05) at once, without trying Streamable HTTP.
    pub legacy_sse: bool,
    /// HTTP only: when the server refuses `initialize` as a removed method, speak 2026-07-28
    /// to it on the relay's behalf (`connect --protocol auto`, `remote/http/era.rs`).
    pub era_bridge: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Access")
            .field("headers", &names)
            .field("credentials", &self.credentials.is_some())
            .field("proxy_from_env", &self.proxy_from_env)
            .field("legacy_sse", &self.legacy_sse)
            .field("era_bridge", &self.era_bridge)
            .finish()
    }
}

impl Access {
    /// The `Authorization` value to send now: the credential source's, else a static one.
    pub fn authorization(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .and_then(|c| c.0.authorization())
            .or_else(|| {
                self.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.clone())
            })
    }

    /// Static headers other than `Authorization` (sent as they are).
    pub fn other_headers(&self) -> impl Iterator<Item = &(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
    }

    /// mcp-relay's TCP credential line, when there is something to send.
    pub fn tcp_line(&self) -> Option<String> {
        let mut fields = serde_json::Map::new();
        if let Some(a) = self.authorization() {
            fields.insert("authorization".into(), a.into());
        }
        for (k, v) in self.other_headers() {
            if k.eq_ignore_ascii_case("x-api-key") {
                fields.insert("x-api-key".into(), v.clone().into());
            }
        }
        (!fields.is_empty()).then(|| serde_json::Value::Object(fields).to_string())
    }
}
