//! The error map pinned to SECURITY.md §3: statuses, codes, close codes, headers.

use super::*;

/// Pins SECURITY.md §3: (error, HTTP status, JSON-RPC code, WebSocket close code).
#[test]
fn table_matches_security_md() {
    let table: &[(Error, u16, i64, Option<u16>)] = &[
        (Error::HostDenied, 403, -31002, None),
        (Error::OriginDenied, 403, -31002, None),
        (Error::IpDenied, 403, -31002, None),
        (Error::RateLimited(1500), 429, -31004, None),
        (Error::PrincipalInflightCap, 429, -31005, Some(1013)),
        (Error::Parse, 400, -32700, None),
        (Error::InvalidRequest("duplicate_key"), 400, -32600, None),
        (Error::UnsupportedMediaType, 415, -31011, None),
        (Error::NotAcceptable, 406, -31011, None),
        (Error::MethodNotAllowed(Allow::Mcp), 405, -31011, None),
        (Error::StreamConflict, 409, -31011, None),
        (Error::MissingSession, 400, -31011, None),
        (Error::UnknownSession, 404, -31003, None),
        (Error::BadProtocolVersion, 400, -31011, None),
        (Error::ModernToLegacy, 400, -31011, None),
        (
            Error::Modern(crate::era::modern::Refusal::HeaderMismatch("x")),
            400,
            -32020,
            None,
        ),
        (Error::BodyTooLarge(1), 413, -31009, Some(1009)),
        (Error::BodyTimeout, 408, -31011, None),
        (Error::SessionCap, 503, -31005, Some(1013)),
        (Error::Overloaded, 503, -31005, Some(1013)),
        (Error::StoreUnavailable, 503, -31005, Some(1013)),
        (Error::PrincipalSessionCap, 429, -31005, None),
        (Error::ChildUnavailable, 503, -31006, Some(1013)),
        (
            Error::LinkDown("cannot reach h:1".into()),
            503,
            -31006,
            Some(1013),
        ),
        (Error::CircuitOpen(30), 503, -31006, Some(1013)),
        (Error::OwnerUnavailable, 503, -31006, Some(1013)),
        (Error::Identity("missing_identity"), 400, -31011, None),
        (Error::ChildExited, 200, -31007, None),
        (Error::Timeout, 200, -31008, None),
        (Error::ShuttingDown, 503, -31010, Some(1001)),
        (Error::SessionEnded, 404, -31003, Some(1001)),
        (Error::InflightCap, 503, -31005, Some(1013)),
        (Error::UnexpectedResponse, 400, -32600, None),
        (Error::Internal, 500, -32603, None),
        (
            Error::Unauthorized {
                reason: "missing_credential",
                challenge: "Bearer".into(),
            },
            401,
            -31001,
            None,
        ),
        (
            Error::Forbidden {
                reason: "insufficient_scope",
                challenge: None,
            },
            403,
            -31002,
            None,
        ),
        (Error::DeniedMethod, 200, -32601, None),
        (Error::UnknownTool("x".into()), 200, -32602, None),
        (Error::UnknownPrompt("x".into()), 200, -32602, None),
        (Error::ResourceNotFound("x".into()), 200, -32002, None),
        (Error::UnknownResource("x".into()), 200, -32602, None),
    ];
    for (err, status, code, close) in table {
        let w = err.wire();
        assert_eq!((w.status.as_u16(), w.code), (*status, *code), "{err:?}");
        assert_eq!(w.ws_close.map(|c| c.code), *close, "{err:?}");
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

/// A 405 says what the route serves; nothing else carries `Allow`.
#[test]
fn method_not_allowed_names_the_routes_methods() {
    for (allow, methods) in [
        (Allow::Mcp, "GET, POST, DELETE"),
        (Allow::Get, "GET"),
        (Allow::Post, "POST"),
        (Allow::GetHead, "GET, HEAD"),
    ] {
        let res = Error::MethodNotAllowed(allow).into_response();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], methods);
    }
    assert!(Error::NotAcceptable
        .into_response()
        .headers()
        .get("allow")
        .is_none());
}

/// The closes that are not refusals: a binary frame (policy) and a connection refused for
/// capacity for too long (SECURITY.md §3: "WS close 1013 if sustained").
#[test]
fn websocket_closes_that_are_not_errors() {
    assert_eq!(WsClose::TEXT_ONLY.code, 1008);
    assert_eq!(WsClose::THROTTLED.code, 1013);
    assert_eq!(Error::RateLimited(1).wire().ws_close, None);
}

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
