//! The guard in front of every HTTP route (Streamable HTTP, legacy SSE, the WebSocket upgrade,
//! probes): describes the request to `policy::phases::on_request`, which runs the request
//! phases in their order and audits what it refuses. Here: the caller goes into the request's
//! extensions (`caller_of`), its concurrency slot is held until the response body ends, a
//! refusal becomes its response (`error.rs`), answers to allowed CORS origins carry the CORS
//! headers, and from the soft memory threshold HTTP/1.1 answers carry `Connection: close`.
//! In a fleet, a request for another node's session goes to `cluster/forward.rs`, and every
//! answer carries `mcp-relay-node` (the node that executed it; a forwarded one keeps the
//! owner's).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::http::{LAST_EVENT_ID, MESSAGE_PATH, SESSION_HEADER};
use super::ConnInfo;
use crate::caller::{Caller, Principal, Transport};
use crate::cluster::id::{owner, Owner};
use crate::cluster::{Cluster, FORWARDED_BY, NODE_HEADER};
use crate::config::ServeConfig;
use crate::policy::overload::Level;
use crate::policy::rate_limit::InFlight;
use crate::policy::{authn, Admitted, Head, Incoming, RequestPolicy, Route, Source, Stop};
use crate::relay::Relay;

/// The request phases for every route, before routing, against one policy snapshot.
pub(super) async fn guard(State(relay): State<Arc<Relay>>, req: Request, next: Next) -> Response {
    let policy = relay.policy();
    // The head alone is read across the phases' await (a body is not `Sync`).
    let (mut parts, body) = req.into_parts();
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.clone());
    let incoming = Incoming {
        source: Source::Http {
            peer: conn.as_ref().map(|c| c.peer),
            head: head(&parts, &policy, relay.config()),
        },
        credential: Some(&parts.headers),
        query: parts.uri.query(),
        cert: conn.as_ref().and_then(|c| c.cert.as_deref()),
        // The route is not known yet: handlers re-label the caller (`Caller::on`).
        transport: Transport::StreamableHttp,
    };
    let admitted = policy.on_request(relay.audit(), incoming).await;
    let http1 = parts.version <= axum::http::Version::HTTP_11;
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let mut res = match admitted {
        Ok(Admitted { caller, slot }) => {
            parts.extensions.insert(caller);
            let slot = slot.map(|s| Slot(Arc::new(Mutex::new(Some(s)))));
            if let Some(s) = &slot {
                parts.extensions.insert(s.clone());
            }
            held(next.run(Request::from_parts(parts, body)).await, slot)
        }
        Err(Stop::Preflight(res)) => return *res,
        Err(Stop::Metadata) => super::metadata::serve(&policy, &parts.method, parts.uri.path()),
        Err(Stop::AuthServer(client)) => {
            let caller = Caller::new(Principal::anonymous(), client, Transport::StreamableHttp);
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(Stop::Forward(client)) => match &relay.config().cluster {
            Some(cluster) => {
                let req = Request::from_parts(parts, body);
                let audit = relay.audit();
                cluster
                    .forwarder()
                    .forward(cluster, audit, req, client)
                    .await
            }
            None => crate::error::Error::UnknownSession.into_response(),
        },
        Err(Stop::Refused(e)) => e.into_response(),
    };
    // Which node executed the request (informational): a forwarded answer keeps the owner's.
    if let Some(c) = &relay.config().cluster {
        if let Ok(node) = HeaderValue::from_str(c.node()) {
            res.headers_mut().entry(NODE_HEADER).or_insert(node);
        }
    }
    if let Some(o) = origin {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, o);
        policy.cors.decorate(&h, &mut res);
    }
    // From the soft threshold, and while a fleet replica drains (so that a load balancer
    // holds no idle connection to it when it stops, where a request it sends as the
    // connection closes would be lost), connections are not kept alive (HTTP/2 has no such
    // header; a 101 must keep `Connection: upgrade`).
    let overload = policy.limits.overload().level();
    let draining = relay
        .config()
        .cluster
        .as_ref()
        .is_some_and(|c| c.is_draining());
    let close = overload >= Level::NoKeepAlive || draining;
    if close && http1 && res.status() != StatusCode::SWITCHING_PROTOCOLS {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The concurrency slot of an admitted request, held until its answer is done unless the
/// handler gives it back sooner ([`release_slot`]).
#[derive(Clone)]
pub(super) struct Slot(Arc<Mutex<Option<InFlight>>>);

/// `res`, holding `slot` until its body (an SSE stream until its answer) is done.
fn held(res: Response, slot: Option<Slot>) -> Response {
    match slot {
        Some(slot) => res.map(|body| {
            Body::new(body.map_frame(move |f| {
                let _held = &slot;
                f
            }))
        }),
        None => res,
    }
}

/// Gives back the slot of the request whose extensions these are: a modern continuation
/// carried to its owner, which takes its own (only the owner counts).
pub(super) fn release_slot(extensions: &axum::http::Extensions) {
    if let Some(Slot(cell)) = extensions.get::<Slot>() {
        let taken = cell.lock().map(|mut s| s.take());
        drop(taken);
    }
}

/// What the phases read of an HTTP request: its route and whether it names a session or
/// resumes a stream (this front's framing; what that costs is the policy's decision).
fn head<'a>(parts: &'a Parts, policy: &RequestPolicy, cfg: &ServeConfig) -> Head<'a> {
    let cluster = cfg.cluster.as_deref();
    let full = parts.uri.path();
    let path = unmounted(full);
    let mount = (path.len() < full.len()).then(|| &full[..full.len() - path.len()]);
    let route = if path.starts_with(authn::WELL_KNOWN) {
        Route::Metadata
    } else if policy.auth.issued().is_some() && authn::is_authz_path(full) {
        Route::AuthServer
    } else if matches!(path, "/health" | "/ready") {
        Route::Probe
    } else if path == MESSAGE_PATH {
        Route::Front(Transport::Sse)
    } else {
        Route::Front(Transport::StreamableHttp)
    };
    let in_session = parts.headers.contains_key(&SESSION_HEADER)
        || parts
            .uri
            .query()
            .is_some_and(|q| authn::query_names(q).any(|name| name == "sessionId"));
    Head {
        method: &parts.method,
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        route,
        mount,
        in_session,
        resumes: parts.headers.contains_key(&LAST_EVENT_ID),
        elsewhere: cluster.is_some_and(|c| forwardable(parts, cfg) && owned_elsewhere(parts, c)),
    }
}

/// Whether a request may be carried to another node at all: a POST, GET or DELETE to one of
/// the relay's own front paths that carry a session (the MCP path, legacy `/message`, and
/// those of a mount), with no dot segment or backslash, raw or percent-encoded. Anything else
/// naming a peer's session is judged here, before any hop (404 or 405, as for any client):
/// the guard runs before routing, and a forwarded request is not authenticated here.
/// Not `/ws` (a WebSocket carries its session on its connection) nor `/sse` (a GET there
/// opens a new session).
fn forwardable(parts: &Parts, cfg: &ServeConfig) -> bool {
    use crate::config::servers::{ENDPOINTS_MOUNT, SERVERS_MOUNT};
    use axum::http::Method;
    if ![Method::POST, Method::GET, Method::DELETE].contains(&parts.method) {
        return false;
    }
    let path = parts.uri.path();
    if !crate::cluster::forward::plain_path(path) {
        return false;
    }
    let message = super::sse::served(cfg)[1].is_some();
    if path == cfg.path || (message && path == MESSAGE_PATH) {
        return true;
    }
    // `/servers/NAME/mcp`, `/servers/NAME/message` (a mounted relay's paths, `hub.rs`).
    let inner = [SERVERS_MOUNT, ENDPOINTS_MOUNT]
        .iter()
        .find_map(|m| path.strip_prefix(m)?.strip_prefix('/'))
        .and_then(|r| r.split_once('/'));
    matches!(inner, Some((name, "mcp" | "message")) if !name.is_empty())
}

/// Whether the session the request names belongs to a configured peer, and the request was
/// not forwarded here already (a forwarded request is never forwarded again: if the session
/// is not here, it is nowhere). An id naming a node no configuration knows is looked up here,
/// and not found.
fn owned_elsewhere(parts: &Parts, cluster: &Cluster) -> bool {
    if parts.headers.contains_key(FORWARDED_BY) {
        return false;
    }
    let from_header = parts
        .headers
        .get(&SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(std::borrow::Cow::Borrowed);
    let id = from_header.or_else(|| {
        let q = parts.uri.query()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v)
    });
    match id.as_deref().map(owner) {
        Some(Owner::Node(node)) => cluster.peer(node).is_some(),
        _ => false,
    }
}

/// The path a named server's or an endpoint's relay sees: `/servers/NAME/message` is its
/// `/message` (the hub strips the mount before handing the request over).
fn unmounted(path: &str) -> &str {
    use crate::config::servers::{ENDPOINTS_MOUNT, SERVERS_MOUNT};
    let rest = [SERVERS_MOUNT, ENDPOINTS_MOUNT]
        .iter()
        .find_map(|m| path.strip_prefix(m)?.strip_prefix('/'));
    match rest.and_then(|r| r.find('/').map(|i| &r[i..])) {
        Some(inner) => inner,
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::unmounted;

    #[test]
    fn mounted_paths_are_judged_as_the_inner_relay_sees_them() {
        assert_eq!(unmounted("/servers/github/message"), "/message");
        assert_eq!(unmounted("/endpoints/support/mcp"), "/mcp");
        assert_eq!(unmounted("/servers/github"), "/servers/github");
        assert_eq!(unmounted("/message"), "/message");
        assert_eq!(unmounted("/serversx/a/message"), "/serversx/a/message");
    }
}
