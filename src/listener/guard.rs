//! The guard in front of every HTTP route (Streamable HTTP, legacy SSE, the WebSocket upgrade,
//! probes): the request-level policy phases of `policy.rs`, in their order (STYLE.md §7).
//!
//! Client IP allow/deny → Host → Origin → CORS preflight → overload shedding of new work →
//! per-IP rate → authentication → global and per-principal rate → the principal's
//! concurrency slot (held until the response body ends). The caller it establishes goes into
//! the request's extensions for the handlers (`caller_of`). From the soft memory threshold
//! HTTP/1.1 answers carry `Connection: close`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::http::{MESSAGE_PATH, SESSION_HEADER};
use super::ConnInfo;
use crate::caller::{Caller, Principal, Transport};
use crate::error::Error;
use crate::policy::authn;
use crate::policy::overload::Level;
use crate::relay::Relay;

/// Request-level policy for every route, before routing (STYLE.md §7 phases 1-2): client
/// IP allow/deny, Host, Origin, CORS preflight, per-IP rate, authentication, per-principal
/// rate and concurrency. Only the protected-resource metadata is public (clients read it to
/// learn how to authenticate). The caller goes into the request's extensions; answers to
/// allowed CORS origins carry the CORS headers.
pub(super) async fn guard(State(relay): State<Arc<Relay>>, req: Request, next: Next) -> Response {
    let policy = &relay.policy();
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.clone());
    // Phase 1: the client address (forwarded headers only from trusted proxies).
    let peer = match policy.client(conn.as_ref().map(|c| c.peer), req.headers()) {
        Ok(p) => p,
        Err(e) => {
            let socket = conn.as_ref().map(|c| c.peer);
            let anonymous = Caller::new(Principal::anonymous(), socket, Transport::StreamableHttp);
            relay.record_refusal(&anonymous, None, None, &e);
            return e.into_response();
        }
    };
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    if let Err(e) = policy.check(req.headers(), authority.as_deref()) {
        return e.into_response();
    }
    // Preflights carry no credentials: answered before authentication.
    if let Some(res) = policy.cors.preflight(req.method(), req.headers()) {
        return res;
    }
    // Overload shedding: cheap, and before authentication spends any CPU.
    let overload = policy.limits.overload().level();
    if overload == Level::Shed && starts_work(&req) {
        let anonymous = Caller::new(Principal::anonymous(), peer, Transport::StreamableHttp);
        let e = Error::Overloaded;
        crate::telemetry::metrics::rate_limited("overload");
        relay.record_refusal(&anonymous, None, None, &e);
        return e.into_response();
    }
    let http1 = req.version() <= axum::http::Version::HTTP_11;
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = guarded(&relay, req, next, peer, conn).await;
    if let Some(o) = origin {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, o);
        policy.cors.decorate(&h, &mut res);
    }
    // From the soft threshold, connections are not kept alive (HTTP/2 has no such header; a
    // 101 must keep `Connection: upgrade`).
    if overload >= Level::NoKeepAlive && http1 && res.status() != StatusCode::SWITCHING_PROTOCOLS {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Whether an HTTP request starts new work that shedding refuses: a new session or
/// stateless request (POST without a session), a stream or WebSocket upgrade (GET, but not
/// the probes, nor a resumption with `Last-Event-ID`, which hands buffered answers over and
/// so frees memory). Requests inside a session are shed per message (`Relay::admit`), so their
/// notifications and responses, and DELETE, still pass.
fn starts_work(req: &Request) -> bool {
    let in_session = req.headers().contains_key(SESSION_HEADER)
        || req
            .uri()
            .query()
            .is_some_and(|q| authn::query_names(q).any(|name| name == "sessionId"));
    match *req.method() {
        Method::GET => {
            !matches!(req.uri().path(), "/health" | "/ready")
                && !req.headers().contains_key("last-event-id")
        }
        Method::POST => !in_session,
        _ => false,
    }
}

/// The guard after Host/Origin and CORS: limits, authentication, the route.
async fn guarded(
    relay: &Arc<Relay>,
    mut req: Request,
    next: Next,
    peer: Option<crate::caller::ClientAddr>,
    conn: Option<ConnInfo>,
) -> Response {
    let policy = &relay.policy();
    if req.uri().path().starts_with(authn::WELL_KNOWN) {
        return super::metadata::serve(policy, req.method(), req.uri().path());
    }
    // Before authentication, so credential guessing is throttled per client address.
    if let Some(Err(e)) = peer.map(|p| policy.limits.check_ip(p.ip)) {
        let anonymous = Caller::new(Principal::anonymous(), peer, Transport::StreamableHttp);
        relay.record_refusal(&anonymous, None, None, &e);
        return e.into_response();
    }
    // Without authentication, probes need no `--identity-header` name.
    let probe = matches!(req.uri().path(), "/health" | "/ready");
    if probe && !policy.auth.is_enabled() {
        let caller = Caller::new(Principal::anonymous(), peer, Transport::StreamableHttp);
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    }
    let cert = conn.as_ref().and_then(|c| c.cert.clone());
    let principal = policy
        .authenticate(req.headers(), req.uri().query(), cert.as_deref())
        .await;
    let caller = match principal {
        Ok(p) => Caller::new(p, peer, Transport::StreamableHttp),
        Err(e) => {
            let anonymous = Caller::new(Principal::anonymous(), peer, Transport::StreamableHttp);
            relay.record_refusal(&anonymous, None, None, &e);
            return e.into_response();
        }
    };
    // Keyed on the principal, never the session: a new session dodges nothing. GET streams
    // are long-lived and not counted among the concurrent requests; a legacy `/message` POST
    // is answered at once, its requests each hold a place until answered (`Relay::admit`).
    let counted =
        matches!(*req.method(), Method::POST | Method::DELETE) && req.uri().path() != MESSAGE_PATH;
    let slot = match policy.limit_request(&caller, counted) {
        Ok(slot) => slot,
        Err(e) => {
            relay.record_refusal(&caller, None, None, &e);
            return e.into_response();
        }
    };
    req.extensions_mut().insert(caller);
    let res = next.run(req).await;
    match slot {
        // Held until the response body (an SSE stream until its answer) is done.
        Some(slot) => res.map(|body| {
            Body::new(body.map_frame(move |f| {
                let _held = &slot;
                f
            }))
        }),
        None => res,
    }
}
