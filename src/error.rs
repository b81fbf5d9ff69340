//! The one error → wire mapping (SECURITY.md §3).
//!
//! Every failure the relay itself reports is an [`Error`]. [`Error::wire`] is the only place that
//! decides its HTTP status, JSON-RPC code, `reason`, `Retry-After` and whose fault it is; it is one
//! exhaustive `match`, so a new variant forces a decision; the same match gives the WebSocket close
//! code (a refusal that ends the connection) and the `Allow` header of a 405. Conversion has no
//! side effects. Relay errors always carry `data: {"source":"mcp-relay","reason":…}` and never
//! internals (stderr, paths, errno).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::jsonrpc::{self, RawId};

/// Whose fault a failure is; also the `outcome` of audit and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Downstream,
    Upstream,
    Internal,
}

/// A failure the relay answers itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    #[error("host not allowed")]
    HostDenied,
    #[error("origin not allowed")]
    OriginDenied,
    /// The client IP is denied by `[network]` (SECURITY.md §3: 403, before anything else).
    #[error("client address not allowed")]
    IpDenied,
    /// A rate limit: try again after this many milliseconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// One authenticated principal has too many requests in flight.
    #[error("too many requests in flight for this principal")]
    PrincipalInflightCap,
    #[error("parse error")]
    Parse,
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("not acceptable")]
    NotAcceptable,
    /// A method the route does not serve; the `Allow` header says which it does.
    #[error("method not allowed")]
    MethodNotAllowed(Allow),
    #[error("stream already open")]
    StreamConflict,
    #[error("missing session id")]
    MissingSession,
    #[error("unknown session")]
    UnknownSession,
    #[error("session ended")]
    SessionEnded,
    #[error("bad protocol version header")]
    BadProtocolVersion,
    #[error("modern request to a legacy server")]
    ModernToLegacy,
    #[error("{}", .0.message())]
    Modern(crate::era::modern::Refusal),
    /// A 2026-07-28 retry whose `requestState` does not open, or opens for another
    /// principal, request or server, or whose request no longer waits.
    #[error("Invalid params: requestState is not valid")]
    RequestState(&'static str),
    /// A task handle that does not open for this caller, or whose child is gone.
    #[error("Unknown task")]
    UnknownTask,
    /// `initialize` to a server offered to 2026-07-28 clients only (`--era modern-only`).
    #[error("Method not found: this server is served to 2026-07-28 clients only")]
    LegacyRefused,
    #[error("body too large (limit {0} bytes)")]
    BodyTooLarge(u64),
    #[error("request body stalled")]
    BodyTimeout,
    #[error("session limit reached")]
    SessionCap,
    #[error("session limit per principal reached")]
    PrincipalSessionCap,
    #[error("too many requests in flight")]
    InflightCap,
    /// Memory use is past the shedding threshold (`policy/overload.rs`).
    #[error("server overloaded")]
    Overloaded,
    /// The fleet's shared store of limits cannot be reached and `on_store_error = "closed"`
    /// (`cluster/store.rs`): no limit can be judged, so the request waits.
    #[error("shared limits unavailable")]
    StoreUnavailable,
    #[error("server unavailable")]
    ChildUnavailable,
    /// `connect` only: the remote link is down, and why, in its user's terms (its host is the
    /// user's own program; a relay's clients get [`Error::ChildUnavailable`]).
    #[error("server unavailable: {0}")]
    LinkDown(Arc<str>),
    /// A fleet peer that owns the session did not connect or start answering in time
    /// (`cluster/forward.rs`): the session may still be there, so try again.
    #[error("session owner unavailable")]
    OwnerUnavailable,
    #[error("server unavailable: restarting too often")]
    CircuitOpen(u64),
    #[error("identity header: {0}")]
    Identity(&'static str),
    #[error("server exited")]
    ChildExited,
    #[error("request timed out")]
    Timeout,
    #[error("relay shutting down")]
    ShuttingDown,
    #[error("response to no pending request")]
    UnexpectedResponse,
    #[error("authentication required")]
    Unauthorized {
        reason: &'static str,
        /// The `WWW-Authenticate` value.
        challenge: Arc<str>,
    },
    #[error("forbidden")]
    Forbidden {
        reason: &'static str,
        challenge: Option<Arc<str>>,
    },
    /// A method the caller may not use: the answer for an unknown method.
    #[error("Method not found")]
    DeniedMethod,
    /// A tool the caller may not use: the answer for an unknown tool.
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    #[error("Unknown prompt: {0}")]
    UnknownPrompt(String),
    /// A resource the caller may not read, legacy era: that era's resource-not-found.
    #[error("Resource not found")]
    ResourceNotFound(String),
    /// A resource the caller may not read, 2026-07-28 era.
    #[error("Unknown resource: {0}")]
    UnknownResource(String),
    #[error("internal error")]
    Internal,
}

/// The methods a route serves: the `Allow` header of its 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allow {
    /// The Streamable HTTP MCP path.
    Mcp,
    /// `GET /sse`.
    Get,
    /// `POST /message`.
    Post,
    /// `GET /` and the RFC 9728 metadata.
    GetHead,
}

impl Allow {
    /// The header value.
    pub(crate) const fn methods(self) -> &'static str {
        match self {
            Allow::Mcp => "GET, POST, DELETE",
            Allow::Get => "GET",
            Allow::Post => "POST",
            Allow::GetHead => "GET, HEAD",
        }
    }
}

/// A WebSocket close frame (RFC 6455 §7.4): the code and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WsClose {
    pub code: u16,
    pub reason: &'static str,
}

impl WsClose {
    /// A binary frame: the front speaks text frames only (policy violation).
    pub(crate) const TEXT_ONLY: WsClose = WsClose {
        code: 1008,
        reason: "text frames only",
    };
    /// Every request of the connection has been refused for capacity for a while
    /// (SECURITY.md §3: "WS close 1013 if sustained").
    pub(crate) const THROTTLED: WsClose = WsClose {
        code: 1013,
        reason: "limited: try again later",
    };
    const TOO_BIG: WsClose = WsClose {
        code: 1009,
        reason: "message too big",
    };
    const TRY_LATER: WsClose = WsClose {
        code: 1013,
        reason: "try again later",
    };
    const SHUTTING_DOWN: WsClose = WsClose {
        code: 1001,
        reason: "shutting down",
    };
    const SESSION_ENDED: WsClose = WsClose {
        code: 1001,
        reason: "session ended",
    };
}

/// How an [`Error`] looks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire {
    pub status: StatusCode,
    pub code: i64,
    pub reason: &'static str,
    pub retry_after: Option<Duration>,
    pub fault: Fault,
    /// The close frame when this error ends a WebSocket connection, or refuses the
    /// `initialize` that would have opened its session; `None`: the error is sent as a
    /// JSON-RPC message and the connection stays open (a rate-limited or per-principal
    /// refusal may be retried on it).
    pub ws_close: Option<WsClose>,
    /// The `Allow` header (405 only).
    pub allow: Option<&'static str>,
}

const fn wire(status: u16, code: i64, reason: &'static str, fault: Fault) -> Wire {
    let status = match StatusCode::from_u16(status) {
        Ok(s) => s,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Wire {
        status,
        code,
        reason,
        retry_after: None,
        fault,
        ws_close: None,
        allow: None,
    }
}

const RETRY: Option<Duration> = Some(Duration::from_secs(1));

/// No session can be opened now: a 503 (or 429) with `Retry-After`, and WebSocket 1013.
const fn try_later(status: u16, code: i64, reason: &'static str, fault: Fault) -> Wire {
    Wire {
        retry_after: RETRY,
        ws_close: Some(WsClose::TRY_LATER),
        ..wire(status, code, reason, fault)
    }
}

impl Error {
    /// The exhaustive mapping; values pinned by `tests::table_matches_security_md`.
    pub(crate) fn wire(&self) -> Wire {
        use Fault::*;
        match self {
            Error::HostDenied => wire(403, -31002, "host_not_allowed", Downstream),
            Error::OriginDenied => wire(403, -31002, "origin_not_allowed", Downstream),
            Error::IpDenied => wire(403, -31002, "ip_not_allowed", Downstream),
            Error::RateLimited(ms) => Wire {
                // `Retry-After` is whole seconds, rounded up (never 0 for a wait).
                retry_after: Some(Duration::from_secs(ms.div_ceil(1000).max(1))),
                ..wire(429, -31004, "rate_limited", Downstream)
            },
            Error::PrincipalInflightCap => {
                try_later(429, -31005, "principal_inflight_cap", Downstream)
            }
            Error::Parse => wire(400, -32700, "parse_error", Downstream),
            Error::InvalidRequest(reason) => wire(400, -32600, reason, Downstream),
            Error::UnsupportedMediaType => wire(415, -31011, "unsupported_media_type", Downstream),
            Error::NotAcceptable => wire(406, -31011, "not_acceptable", Downstream),
            Error::MethodNotAllowed(allow) => Wire {
                allow: Some(allow.methods()),
                ..wire(405, -31011, "method_not_allowed", Downstream)
            },
            Error::StreamConflict => wire(409, -31011, "stream_conflict", Downstream),
            Error::MissingSession => wire(400, -31011, "missing_session_id", Downstream),
            Error::UnknownSession => wire(404, -31003, "unknown_session", Downstream),
            Error::SessionEnded => Wire {
                ws_close: Some(WsClose::SESSION_ENDED),
                ..wire(404, -31003, "session_ended", Downstream)
            },
            Error::BadProtocolVersion => wire(400, -31011, "bad_protocol_version", Downstream),
            Error::ModernToLegacy => wire(400, -31011, "modern_request_to_legacy", Downstream),
            Error::Modern(r) => wire(400, r.code(), r.reason(), Downstream),
            Error::RequestState(reason) => wire(400, -32602, reason, Downstream),
            Error::LegacyRefused => wire(404, -32601, "legacy_client_refused", Downstream),
            Error::UnknownTask => wire(200, -32602, "unknown_task", Downstream),
            Error::BodyTooLarge(_) => Wire {
                ws_close: Some(WsClose::TOO_BIG),
                ..wire(413, -31009, "body_too_large", Downstream)
            },
            Error::BodyTimeout => wire(408, -31011, "body_timeout", Downstream),
            Error::SessionCap => try_later(503, -31005, "session_cap", Downstream),
            // Per principal: the connection stays open, like a rate limit.
            Error::PrincipalSessionCap => Wire {
                retry_after: RETRY,
                ..wire(429, -31005, "principal_session_cap", Downstream)
            },
            Error::InflightCap => try_later(503, -31005, "inflight_cap", Downstream),
            Error::Overloaded => try_later(503, -31005, "overloaded", Downstream),
            Error::StoreUnavailable => try_later(503, -31005, "store_unavailable", Upstream),
            Error::ChildUnavailable | Error::LinkDown(_) => {
                try_later(503, -31006, "child_unavailable", Upstream)
            }
            Error::OwnerUnavailable => try_later(503, -31006, "owner_unavailable", Upstream),
            Error::CircuitOpen(secs) => Wire {
                retry_after: Some(Duration::from_secs(*secs)),
                ..try_later(503, -31006, "circuit_open", Upstream)
            },
            Error::Identity(reason) => wire(400, -31011, reason, Downstream),
            Error::ChildExited => wire(200, -31007, "child_exited", Upstream),
            Error::Timeout => wire(200, -31008, "request_timeout", Upstream),
            Error::ShuttingDown => Wire {
                retry_after: RETRY,
                ws_close: Some(WsClose::SHUTTING_DOWN),
                ..wire(503, -31010, "shutting_down", Internal)
            },
            Error::UnexpectedResponse => wire(400, -32600, "unexpected_response", Downstream),
            Error::Unauthorized { reason, .. } => wire(401, -31001, reason, Downstream),
            Error::Forbidden { reason, .. } => wire(403, -31002, reason, Downstream),
            Error::DeniedMethod => wire(200, -32601, "denied_method", Downstream),
            Error::UnknownTool(_) => wire(200, -32602, "denied_tool", Downstream),
            Error::UnknownPrompt(_) => wire(200, -32602, "denied_prompt", Downstream),
            Error::ResourceNotFound(_) => wire(200, -32002, "denied_resource", Downstream),
            Error::UnknownResource(_) => wire(200, -32602, "denied_resource", Downstream),
            Error::Internal => wire(500, -32603, "internal_error", Internal),
        }
    }

    /// The JSON-RPC error message for the request `id` (raw JSON text).
    pub(crate) fn to_jsonrpc(&self, id: &RawId) -> Bytes {
        self.message(Some(id))
    }

    /// The JSON-RPC error message, echoing `id` when known (omitted otherwise).
    pub(crate) fn message(&self, id: Option<&RawId>) -> Bytes {
        let w = self.wire();
        if let Some(data) = self.disguise() {
            return jsonrpc::error_response(
                id.map(RawId::as_str),
                w.code,
                &self.to_string(),
                &data,
            );
        }
        let mut data = match self {
            Error::Modern(r) => r.data(),
            Error::RateLimited(ms) => {
                let mut m = serde_json::Map::new();
                m.insert("retry_after_ms".into(), (*ms).into());
                m
            }
            // Inside a session there is no `Retry-After` header: the hint travels in `data`.
            Error::Overloaded
            | Error::PrincipalInflightCap
            | Error::InflightCap
            | Error::StoreUnavailable => {
                let mut m = serde_json::Map::new();
                let ms = w.retry_after.map_or(0, |d| d.as_millis() as u64);
                m.insert("retry_after_ms".into(), ms.into());
                m
            }
            _ => serde_json::Map::new(),
        };
        data.insert("source".into(), "mcp-relay".into());
        data.insert("reason".into(), w.reason.into());
        let data = serde_json::Value::Object(data);
        jsonrpc::error_response(id.map(RawId::as_str), w.code, &self.to_string(), &data)
    }

    /// Denials answer exactly like the server for an unknown name (SECURITY.md §3: "a denied
    /// tool gets the answer for an unknown one"), so they carry no relay `data`.
    fn disguise(&self) -> Option<serde_json::Value> {
        match self {
            Error::DeniedMethod | Error::UnknownTool(_) | Error::UnknownPrompt(_) => {
                Some(serde_json::Value::Null)
            }
            Error::UnknownResource(_) => Some(serde_json::Value::Null),
            Error::ResourceNotFound(uri) => Some(serde_json::json!({ "uri": uri })),
            _ => None,
        }
    }

    /// Whether this refusal means "not now" for capacity: a rate limit, a concurrency cap or
    /// overload (a client should slow down, not change what it asks).
    pub(crate) fn is_capacity(&self) -> bool {
        matches!(
            self,
            Error::RateLimited(_)
                | Error::PrincipalInflightCap
                | Error::InflightCap
                | Error::Overloaded
                | Error::StoreUnavailable
        )
    }

    /// Whether this is a policy denial that answers like the server would.
    pub(crate) fn is_denial(&self) -> bool {
        self.disguise().is_some()
    }

    /// The HTTP answer, echoing the request's id when it was read.
    pub(crate) fn into_response_for(self, id: Option<&RawId>) -> Response {
        let w = self.wire();
        let mut res = (
            w.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.message(id),
        )
            .into_response();
        if let Some(after) = w.retry_after {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(after.as_secs()),
            );
        }
        let challenge = match &self {
            Error::Unauthorized { challenge, .. } => Some(challenge.clone()),
            Error::Forbidden { challenge, .. } => challenge.clone(),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        if let Some(allow) = w.allow {
            res.headers_mut()
                .insert(axum::http::header::ALLOW, HeaderValue::from_static(allow));
        }
        res
    }
}

impl From<jsonrpc::Error> for Error {
    fn from(e: jsonrpc::Error) -> Self {
        match e {
            jsonrpc::Error::Parse => Error::Parse,
            jsonrpc::Error::Invalid(reason) => Error::InvalidRequest(reason),
        }
    }
}

impl IntoResponse for Error {
    /// Without a request id (the body was not read, or held none).
    fn into_response(self) -> Response {
        self.into_response_for(None)
    }
}

/// The HTTP status of a 2026-07-28 answer sent whole as JSON, from its JSON-RPC error code
/// (SECURITY.md §3): 404 for -32601 (unknown or denied method), 400 for the modern request
/// errors (-32020..-32022), 200 for anything else, results and the child's errors included.
pub(crate) fn modern_status(code: Option<i64>) -> StatusCode {
    match code {
        Some(-32601) => StatusCode::NOT_FOUND,
        Some(-32022..=-32020) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// An error with its causes on one line (`a: b: c`), for start-up problems and log lines; a
/// cause its parent already printed is not repeated.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests;
