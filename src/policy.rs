//! Request policy: what every connection, request and message must pass, in ONE order for every
//! front (STYLE.md §7). The order runs in `phases.rs`, one function per scope, each a method on
//! one snapshot of this policy (a SIGHUP replaces the policy for the next scope, never midway):
//!
//! - **connection** (`on_connection`; TCP, whose client is its socket peer): 1 network
//!   allow/deny → 4 overload → 5 per-IP rate;
//! - **request** (`on_request`; an HTTP request or WebSocket upgrade, a TCP connection's first
//!   line): 1 client address (proxy headers only from trusted proxies) and allow/deny → 2 Host
//!   → Origin → 3 CORS preflight and RFC 9728 metadata, answered without a caller → 4 overload
//!   shedding of new work → 5 per-IP rate → 6 authentication (mTLS | API key | JWT) → 7 global
//!   and per-principal rate → 8 the principal's concurrency slot (probes skip 6-8 when no
//!   authentication is configured). HTTP runs 1, 4 and 5 per request (behind a proxy each
//!   request names its own client); TCP ran them on connection; 2 and 3 exist only on HTTP.
//!   Header and body limits, routes, sessions and frames follow in the fronts and the relay;
//! - **message** (`on_message`; each JSON-RPC request): RBAC → message rates (global and
//!   principal on WebSocket/TCP, principal × tool) → overload → the concurrency slot where the
//!   transport takes one per message.
//!
//! Why each position is where it is: at each step in `phases.rs`. Which transport pays what
//! (slot per request or per message, principal rate per upgrade or per message) is data on
//! `Transport` (`caller.rs`). Each check lives in its own file below.

pub(crate) mod api_key;
pub(crate) mod authn;
pub(crate) mod cors;
pub(crate) mod ip;
pub(crate) mod issued;
pub(crate) mod jwt;
pub(crate) mod mtls;
pub(crate) mod origin;
pub(crate) mod overload;
pub(crate) mod phases;
pub(crate) mod rate_limit;
pub(crate) mod rbac;
pub(crate) mod token_cache;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::caller::{AuthFailure, Caller, Principal};
use crate::error::Error;
use crate::jsonrpc::Frame;
use authn::Authenticator;
pub(crate) use origin::OriginGuard;
pub(crate) use phases::{Admitted, Head, Incoming, Route, Source, Stop};
use rbac::{Decision, ListFilter, Names, Rbac};

/// Everything checked before a request's route and body are looked at, and per message.
#[derive(Debug, Clone)]
pub(crate) struct RequestPolicy {
    pub origin: OriginGuard,
    pub auth: Arc<Authenticator>,
    pub rbac: Option<Arc<Rbac>>,
    /// Client IP resolution and allow/deny (`[network]`).
    pub ip: Arc<ip::IpRules>,
    /// CORS origins (`--cors-origin`, `[network] cors_origins`).
    pub cors: Arc<cors::Cors>,
    /// Rate limits and the per-principal concurrency cap (`[limits]`).
    pub limits: Arc<rate_limit::Limits>,
}

/// What RBAC allowed: the rule (for audit) and the `*/list` filter for this caller.
pub(crate) type Allowed = (Option<String>, Option<ListFilter>);

impl RequestPolicy {
    /// Position 1 (`phases.rs`): the client's address (the socket peer, or what a trusted
    /// proxy says it forwarded), refused when denied. `None` (no socket, in-process tests)
    /// passes only without rules.
    pub(crate) fn client(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<crate::caller::ClientAddr>, Error> {
        match peer {
            Some(peer) => {
                let client = self.ip.client(peer, headers);
                if self.ip.allows(client.ip) {
                    Ok(Some(client))
                } else {
                    Err(Error::IpDenied)
                }
            }
            None if self.ip.is_empty() => Ok(None),
            None => Err(Error::IpDenied),
        }
    }

    /// Position 2: Host, then Origin.
    pub(crate) fn check(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), Error> {
        match self.origin.check(headers, authority) {
            // `--cors-origin '*'` says in words that any Origin may call (Host still checked).
            Err(Error::OriginDenied) if self.cors.allows_any() => Ok(()),
            r => r,
        }
    }

    /// Position 6, authentication: who is calling (before the session, because a session is
    /// not authentication). `cert` is the verified mTLS identity.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        cert: Option<&crate::tls::client::CertIdentity>,
        mount: Option<&str>,
    ) -> Result<Principal, Error> {
        let result = self.auth.authenticate(headers, query, cert, mount).await;
        if !self.auth.is_enabled() {
            // `--identity-header` without authentication: a malformed or missing name is a
            // bad request, not a credential problem.
            return result.map_err(|f| match f {
                AuthFailure::Missing => Error::Identity("missing_identity"),
                _ => Error::Identity("bad_identity"),
            });
        }
        result.map_err(|f| self.refusal_at(f, mount))
    }

    /// The wire error for an authentication failure of a request under `mount`: its
    /// challenge names that resource's metadata.
    pub(crate) fn refusal_at(&self, failure: AuthFailure, mount: Option<&str>) -> Error {
        let challenge = self.auth.challenge(failure, mount);
        match failure {
            AuthFailure::InsufficientScope => Error::Forbidden {
                reason: failure.reason(),
                challenge: Some(challenge.into()),
            },
            AuthFailure::Forbidden(reason) => Error::Forbidden {
                reason,
                challenge: None,
            },
            _ => Error::Unauthorized {
                reason: failure.reason(),
                challenge: challenge.into(),
            },
        }
    }

    /// The message scope's first position, RBAC on one request: method, then tool/prompt/resource
    /// name, on a relay deciding `names`. A denial is the answer for an unknown name (`modern`
    /// picks the era's resource error).
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        names: Names<'_>,
        frame: &Frame,
        modern: bool,
    ) -> Result<Allowed, (Error, String)> {
        let Some(rbac) = &self.rbac else {
            return Ok((None, None));
        };
        let method = frame.method().unwrap_or_default();
        let roles = &caller.principal.roles;
        let name = || frame.name().unwrap_or_default().to_owned();
        let uri = || frame.uri().unwrap_or_default().to_owned();
        let decision = match rbac.decide(roles, names, method, frame.name(), frame.uri()) {
            // A completion names a prompt or resource in `params.ref`: it must be one the
            // caller may use, or completions would reveal what the lists hide. (The
            // aggregate's refs are prefixed: the named server's relay decides them.)
            Decision::Allow { .. }
                if method == "completion/complete" && names != Names::Delegated =>
            {
                match completion_ref(frame) {
                    Some(Ref::Prompt(name)) => {
                        return self.decided(
                            rbac.decide(roles, names, "prompts/get", Some(&name), None),
                            &name,
                            "",
                            modern,
                        );
                    }
                    Some(Ref::Resource(uri)) => {
                        return self.decided(
                            rbac.decide(roles, names, "resources/read", None, Some(&uri)),
                            "",
                            &uri,
                            modern,
                        );
                    }
                    None => rbac.decide(roles, names, method, None, None),
                }
            }
            d => d,
        };
        match decision {
            Decision::Allow { rule } => Ok((Some(rule), rbac.list_filter(roles, names, method))),
            Decision::DenyMethod { rule } => Err((Error::DeniedMethod, rule)),
            Decision::DenyTool { rule } => Err((Error::UnknownTool(name()), rule)),
            Decision::DenyPrompt { rule } => Err((Error::UnknownPrompt(name()), rule)),
            Decision::DenyResource { rule } if modern => Err((Error::UnknownResource(uri()), rule)),
            Decision::DenyResource { rule } => Err((Error::ResourceNotFound(uri()), rule)),
        }
    }

    /// The answer for a decision about a name the request refers to (a completion's `ref`).
    fn decided(
        &self,
        d: Decision,
        name: &str,
        uri: &str,
        modern: bool,
    ) -> Result<Allowed, (Error, String)> {
        match d {
            Decision::Allow { rule } => Ok((Some(rule), None)),
            Decision::DenyMethod { rule } | Decision::DenyTool { rule } => {
                Err((Error::DeniedMethod, rule))
            }
            Decision::DenyPrompt { rule } => Err((Error::UnknownPrompt(name.to_owned()), rule)),
            Decision::DenyResource { rule } if modern => {
                Err((Error::UnknownResource(uri.to_owned()), rule))
            }
            Decision::DenyResource { rule } => Err((Error::ResourceNotFound(uri.to_owned()), rule)),
        }
    }
}

/// What `completion/complete` completes.
enum Ref {
    Prompt(String),
    Resource(String),
}

/// `params.ref` of a completion request (read only when roles are configured).
fn completion_ref(frame: &Frame) -> Option<Ref> {
    #[derive(serde::Deserialize)]
    struct Params {
        r#ref: RefJson,
    }
    #[derive(serde::Deserialize)]
    struct RefJson {
        r#type: String,
        name: Option<String>,
        uri: Option<String>,
    }
    let r = frame.params::<Params>()?.r#ref;
    match (r.r#type.as_str(), r.name, r.uri) {
        ("ref/prompt", Some(name), _) => Some(Ref::Prompt(name)),
        ("ref/resource", _, Some(uri)) => Some(Ref::Resource(uri)),
        // A malformed ref names nothing the caller may use.
        _ => Some(Ref::Prompt(String::new())),
    }
}
