//! Who is calling: the [`Caller`] every request and connection carries — its [`Principal`],
//! its network address and the front it came in on — and why authentication failed.
//!
//! These are leaf types: the checks that produce them live in `policy/` (`authn.rs`,
//! `api_key.rs`, `jwt.rs`, `mtls.rs`, `ip.rs`); the audit log, metrics, spans, sessions and
//! fronts only read them. `error.rs` maps an [`AuthFailure`] to 401 or 403.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// No authentication is configured: everyone is the anonymous principal.
    None,
    /// The `--identity-header` value (trusted front proxy; no authentication configured).
    IdentityHeader,
    ApiKey,
    Jwt,
    Mtls,
}

impl AuthMethod {
    /// The audit and metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::IdentityHeader => "identity_header",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Mtls => "mtls",
        }
    }
}

/// An authenticated caller, re-established on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// Stable name: JWT `sub` (prefixed by nothing), API key principal, mTLS mapped name.
    pub name: String,
    pub method: AuthMethod,
    /// Roles as the credential states them (RBAC input).
    pub roles: Vec<String>,
    /// OAuth scopes (JWT `scope`/`scp`); empty for other methods.
    pub scopes: Vec<String>,
    /// The API key id or JWT `kid`/`jti`, for audit; never the secret itself.
    pub key_id: Option<String>,
    /// When the credential stops being valid (JWT `exp`, API key expiry).
    pub expires_at: Option<SystemTime>,
}

impl Principal {
    /// The caller when no authentication is configured.
    pub(crate) fn anonymous() -> Principal {
        Principal {
            name: String::new(),
            method: AuthMethod::None,
            roles: Vec::new(),
            scopes: Vec::new(),
            key_id: None,
            expires_at: None,
        }
    }

    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Why a credential was refused. The `reason` is a fixed snake_case word (audit, metrics,
/// the `error_description`-free challenge); token text never appears in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthFailure {
    /// No credential at all (401 without `error=`).
    #[error("no credential")]
    Missing,
    /// A credential that does not verify (bad signature, unknown key, wrong alg, wrong
    /// issuer/audience, malformed) — 401 `invalid_token`; the word says which.
    #[error("invalid credential: {0}")]
    Invalid(&'static str),
    /// A valid-looking credential past `exp` (or before `nbf`) — 401 `invalid_token`.
    #[error("expired credential")]
    Expired,
    /// Credential in the query string, or two credentials that disagree — 401.
    #[error("credential refused: {0}")]
    Refused(&'static str),
    /// Authenticated but without a required scope — 403 `insufficient_scope`.
    #[error("insufficient scope")]
    InsufficientScope,
    /// Authenticated but not mapped to anyone (mTLS certificate without a mapping) — 403.
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
}

impl AuthFailure {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credential",
            AuthFailure::Invalid(w) | AuthFailure::Refused(w) | AuthFailure::Forbidden(w) => w,
            AuthFailure::Expired => "expired_credential",
            AuthFailure::InsufficientScope => "insufficient_scope",
        }
    }
}

// === Callers ===

/// The front a request came in on (audit label; STYLE.md §4 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    StreamableHttp,
    Sse,
    Websocket,
    Tcp,
    Stdio,
    /// A named server's session opened by the aggregate of several servers (`aggregate.rs`)
    /// for one of its own sessions: the aggregate's front already counted, limited and
    /// admitted the request; the server's relay still decides its roles and records it.
    Aggregate,
}

impl Transport {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable_http",
            Transport::Sse => "sse",
            Transport::Websocket => "websocket",
            Transport::Tcp => "tcp",
            Transport::Stdio => "stdio",
            Transport::Aggregate => "aggregate",
        }
    }

    /// Whether each request message holds a place among its principal's concurrent requests
    /// until answered (`policy::phases::on_message`): where one connection or stream carries
    /// many requests. A Streamable HTTP POST holds one for the whole request instead
    /// (`on_request`), so its messages do not.
    pub(crate) fn holds_slot_per_message(self) -> bool {
        !matches!(self, Transport::StreamableHttp | Transport::Aggregate)
    }

    /// Whether the front's own limits already applied to the message (rates, overload,
    /// slots): a message the aggregate forwards to one of its servers.
    pub(crate) fn is_forwarded(self) -> bool {
        self == Transport::Aggregate
    }

    /// Whether each request message counts against its principal's rate: where one upgrade
    /// or connection carries many requests (WebSocket, TCP). HTTP fronts count each HTTP
    /// request instead (legacy SSE: each `POST /message`); the stdio front is the operator's
    /// own pipe.
    pub(crate) fn counts_principal_rate_per_message(self) -> bool {
        matches!(self, Transport::Websocket | Transport::Tcp)
    }
}

/// Who sent one request (or opened one connection), from where, over which front.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Arc<Principal>,
    /// The client's address (forwarded by a trusted proxy, or the socket peer).
    pub peer: Option<ClientAddr>,
    pub transport: Transport,
}

impl Caller {
    pub(crate) fn new(
        principal: Principal,
        peer: Option<impl Into<ClientAddr>>,
        transport: Transport,
    ) -> Caller {
        Caller {
            principal: Arc::new(principal),
            peer: peer.map(Into::into),
            transport,
        }
    }

    /// The same caller seen on another front (the HTTP guard does not know the route).
    pub(crate) fn on(&self, transport: Transport) -> Caller {
        Caller {
            transport,
            ..self.clone()
        }
    }

    /// What a session is bound to: the principal's name, `None` when anonymous.
    pub(crate) fn owner(&self) -> Option<&str> {
        match self.principal.method {
            AuthMethod::None => None,
            _ => Some(self.principal.name.as_str()),
        }
    }

    /// Whether the credential this caller presented has run out.
    pub(crate) fn is_expired(&self) -> bool {
        self.principal.is_expired(SystemTime::now())
    }
}

/// Who the client is on the network, as the audit log and the per-IP limiter see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    pub ip: IpAddr,
    /// The client's own port: the socket's, or the one a trusted proxy forwarded
    /// (`X-Forwarded-For: 203.0.113.7:4711`, `Forwarded: for="[2001:db8::1]:4711"`); `None`
    /// when the proxy did not say (a proxy's own port is never the client's).
    pub port: Option<u16>,
    /// The socket peer, a trusted proxy, when the address came from its forwarded headers.
    pub via: Option<SocketAddr>,
}

impl From<SocketAddr> for ClientAddr {
    /// A client connected directly: the socket peer.
    fn from(peer: SocketAddr) -> ClientAddr {
        ClientAddr {
            ip: peer.ip().to_canonical(),
            port: Some(peer.port()),
            via: None,
        }
    }
}

impl std::fmt::Display for ClientAddr {
    /// `ip:port` (`[v6]:port`) when the port is known, else the address alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

/// Whether an identity value may be used (it names a child and reaches its environment):
/// 1 to 128 characters of `A-Z a-z 0-9 . _ @ + -`.
pub(crate) fn identity_is_valid(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}
