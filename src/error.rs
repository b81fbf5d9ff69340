//! The one error → wire mapping (SECURITY.md §3).
//!
//! Every failure the relay itself reports is an [`Error`]. [`Error::wire`] is the only place
//! that decides its HTTP status, JSON-RPC code, `reason`, `Retry-After` and whose fault it is;
//! it is one exhaustive `match`, so a new variant forces a decision. Conversion has no side
//! effects. Relay errors always carry `data: {"source":"mcp-relay","reason":…}` and never
//! internals (stderr, paths, errno).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::jsonrpc::{self, RawId};

/// Whose fault a failure is; also the `outcome` of audit and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Downstream,
    Upstream,
    Internal,
}

/// A failure the relay answers itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
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
    #[error("method not allowed")]
    MethodNotAllowed,
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
    #[error("server unavailable")]
    ChildUnavailable,
    /// `connect` only: the remote link is down, and why, in its user's terms (its host is the
    /// user's own program; a relay's clients get [`Error::ChildUnavailable`]).
    #[error("server unavailable: {0}")]
    LinkDown(Arc<str>),
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

/// How an [`Error`] looks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub status: StatusCode,
    pub code: i64,
    pub reason: &'static str,
    pub retry_after: Option<Duration>,
    pub fault: Fault,
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
    }
}

const RETRY: Option<Duration> = Some(Duration::from_secs(1));

impl Error {
    /// The exhaustive mapping; values pinned by `tests::table_matches_security_md`.
    pub fn wire(&self) -> Wire {
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
            Error::PrincipalInflightCap => Wire {
                retry_after: RETRY,
                ..wire(429, -31005, "principal_inflight_cap", Downstream)
            },
            Error::Parse => wire(400, -32700, "parse_error", Downstream),
            Error::InvalidRequest(reason) => wire(400, -32600, reason, Downstream),
            Error::UnsupportedMediaType => wire(415, -31011, "unsupported_media_type", Downstream),
            Error::NotAcceptable => wire(406, -31011, "not_acceptable", Downstream),
            Error::MethodNotAllowed => wire(405, -31011, "method_not_allowed", Downstream),
            Error::StreamConflict => wire(409, -31011, "stream_conflict", Downstream),
            Error::MissingSession => wire(400, -31011, "missing_session_id", Downstream),
            Error::UnknownSession => wire(404, -31003, "unknown_session", Downstream),
            Error::SessionEnded => wire(404, -31003, "session_ended", Downstream),
            Error::BadProtocolVersion => wire(400, -31011, "bad_protocol_version", Downstream),
            Error::ModernToLegacy => wire(400, -31011, "modern_request_to_legacy", Downstream),
            Error::Modern(r) => wire(400, r.code(), r.reason(), Downstream),
            Error::BodyTooLarge(_) => wire(413, -31009, "body_too_large", Downstream),
            Error::BodyTimeout => wire(408, -31011, "body_timeout", Downstream),
            Error::SessionCap => Wire {
                retry_after: RETRY,
                ..wire(503, -31005, "session_cap", Downstream)
            },
            Error::PrincipalSessionCap => Wire {
                retry_after: RETRY,
                ..wire(429, -31005, "principal_session_cap", Downstream)
            },
            Error::InflightCap => Wire {
                retry_after: RETRY,
                ..wire(503, -31005, "inflight_cap", Downstream)
            },
            Error::Overloaded => Wire {
                retry_after: RETRY,
                ..wire(503, -31005, "overloaded", Downstream)
            },
            Error::ChildUnavailable | Error::LinkDown(_) => Wire {
                retry_after: RETRY,
                ..wire(503, -31006, "child_unavailable", Upstream)
            },
            Error::CircuitOpen(secs) => Wire {
                retry_after: Some(Duration::from_secs(*secs)),
                ..wire(503, -31006, "circuit_open", Upstream)
            },
            Error::Identity(reason) => wire(400, -31011, reason, Downstream),
            Error::ChildExited => wire(200, -31007, "child_exited", Upstream),
            Error::Timeout => wire(200, -31008, "request_timeout", Upstream),
            Error::ShuttingDown => Wire {
                retry_after: RETRY,
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
    pub fn to_jsonrpc(&self, id: &RawId) -> Bytes {
        self.message(Some(id))
    }

    /// The JSON-RPC error message, echoing `id` when known (omitted otherwise).
    pub fn message(&self, id: Option<&RawId>) -> Bytes {
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
            Error::Overloaded | Error::PrincipalInflightCap | Error::InflightCap => {
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
    pub fn is_capacity(&self) -> bool {
        matches!(
            self,
            Error::RateLimited(_)
                | Error::PrincipalInflightCap
                | Error::InflightCap
                | Error::Overloaded
        )
    }

    /// Whether this is a policy denial that answers like the server would.
    pub fn is_denial(&self) -> bool {
        self.disguise().is_some()
    }

    /// The HTTP answer, echoing the request's id when it was read.
    pub fn into_response_for(self, id: Option<&RawId>) -> Response {
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
        if self == Error::MethodNotAllowed {
            res.headers_mut().insert(
                axum::http::header::ALLOW,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
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
pub fn modern_status(code: Option<i64>) -> StatusCode {
    match code {
        Some(-32601) => StatusCode::NOT_FOUND,
        Some(-32022..=-32020) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// An error with its causes on one line (`a: b: c`), for start-up problems and log lines; a
/// cause its parent already printed is not repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn modern_answers_get_the_status_of_their_code() {
        assert_eq!(modern_status(Some(-32601)), StatusCode::NOT_FOUND);
        for code in [-32020, -32021, -32022] {
            assert_eq!(modern_status(Some(code)), StatusCode::BAD_REQUEST);
        }
        for code in [None, Some(-32602), Some(-32603), Some(-31004), Some(-32019)] {
            assert_eq!(modern_status(code), StatusCode::OK);
        }
    }

    /// Pins SECURITY.md §3: (error, HTTP status, JSON-RPC code).
    #[test]
    fn table_matches_security_md() {
        let table: &[(Error, u16, i64)] = &[
            (Error::HostDenied, 403, -31002),
            (Error::OriginDenied, 403, -31002),
            (Error::IpDenied, 403, -31002),
            (Error::RateLimited(1500), 429, -31004),
            (Error::PrincipalInflightCap, 429, -31005),
            (Error::Parse, 400, -32700),
            (Error::InvalidRequest("duplicate_key"), 400, -32600),
            (Error::UnsupportedMediaType, 415, -31011),
            (Error::NotAcceptable, 406, -31011),
            (Error::MethodNotAllowed, 405, -31011),
            (Error::StreamConflict, 409, -31011),
            (Error::MissingSession, 400, -31011),
            (Error::UnknownSession, 404, -31003),
            (Error::BadProtocolVersion, 400, -31011),
            (Error::ModernToLegacy, 400, -31011),
            (
                Error::Modern(crate::era::modern::Refusal::HeaderMismatch("x")),
                400,
                -32020,
            ),
            (Error::BodyTooLarge(1), 413, -31009),
            (Error::BodyTimeout, 408, -31011),
            (Error::SessionCap, 503, -31005),
            (Error::Overloaded, 503, -31005),
            (Error::PrincipalSessionCap, 429, -31005),
            (Error::ChildUnavailable, 503, -31006),
            (Error::LinkDown("cannot reach h:1".into()), 503, -31006),
            (Error::CircuitOpen(30), 503, -31006),
            (Error::Identity("missing_identity"), 400, -31011),
            (Error::ChildExited, 200, -31007),
            (Error::Timeout, 200, -31008),
            (Error::ShuttingDown, 503, -31010),
            (Error::Internal, 500, -32603),
            (
                Error::Unauthorized {
                    reason: "missing_credential",
                    challenge: "Bearer".into(),
                },
                401,
                -31001,
            ),
            (
                Error::Forbidden {
                    reason: "insufficient_scope",
                    challenge: None,
                },
                403,
                -31002,
            ),
            (Error::DeniedMethod, 200, -32601),
            (Error::UnknownTool("x".into()), 200, -32602),
            (Error::UnknownPrompt("x".into()), 200, -32602),
            (Error::ResourceNotFound("x".into()), 200, -32002),
            (Error::UnknownResource("x".into()), 200, -32602),
        ];
        for (err, status, code) in table {
            let w = err.wire();
            assert_eq!((w.status.as_u16(), w.code), (*status, *code), "{err:?}");
            assert!(
                w.code < -32768
                    || w.code > -32000
                    || [-32700, -32600, -32601, -32602, -32603, -32020, -32002].contains(&w.code)
            );
        }
    }

    #[test]
    fn errors_carry_source_and_reason() {
        let body = Error::ChildExited.to_jsonrpc(&RawId::from_u64(3));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["code"], -31007);
        assert_eq!(v["error"]["data"]["source"], "mcp-relay");
        assert_eq!(v["error"]["data"]["reason"], "child_exited");
    }

    #[test]
    fn rate_limited_carries_retry_after_in_seconds_and_ms() {
        let res = Error::RateLimited(1001).into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "2");
        assert_eq!(
            Error::RateLimited(1).wire().retry_after,
            Some(Duration::from_secs(1))
        );
        let v: serde_json::Value =
            serde_json::from_slice(&Error::RateLimited(1001).message(None)).unwrap();
        assert_eq!(v["error"]["code"], -31004);
        assert_eq!(v["error"]["data"]["retry_after_ms"], 1001);
        assert_eq!(v["error"]["data"]["reason"], "rate_limited");
    }

    #[test]
    fn errors_without_a_known_id_omit_it() {
        let res = Error::Parse.into_response();
        assert_eq!(res.status(), 400);
        let body = Error::Parse.message(None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("id").is_none(), "{v}");
    }
}
