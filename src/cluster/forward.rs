//! Forwarding a request for another replica's session to that replica (docs/fleet.md):
//! a reverse proxy streamed both ways (the request body as it arrives, the response body,
//! SSE keep-alives included, as the owner writes it), to the address of the owner from the
//! configured peers only, with one pooled HTTP client built at start.
//!
//! Owns: the outbound request (URL, headers, `mcp-relay-forwarded-by`, `X-Forwarded-For`,
//! the client's `Host`), what a failure to reach the owner answers (404 `unknown_session`
//! when the owner is not there, 503 + `Retry-After` when it is slow; never 502), and the one
//! audit record and the metrics of each forward. Does not own: deciding that a request is to be forwarded
//! (`listener/guard.rs` with `policy/phases.rs`), checking it (the owner does, as for any
//! request), nor the header filtering rules (`forward/headers.rs`).

mod headers;

pub(crate) use headers::plain_path;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::Cluster;
use crate::caller::ClientAddr;
use crate::cluster::config::ClusterConfig;
use crate::cluster::id::{owner, Owner};
use crate::error::Error;
use crate::jsonrpc::RawId;
use crate::telemetry::audit::{Audit, Record};
use crate::telemetry::metrics::{self, Forwarded};

/// How long a forwarded request may wait for the owner's response head when neither
/// `forward_timeout` nor the request timeout says (the request timeout's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client to the peers, built once: no proxy, no redirects, HTTP/1.1, pooled per
/// peer.
#[derive(Debug)]
pub(crate) struct Forwarder {
    /// `None` when the client could not be built (no TLS backend): every forward is 503.
    client: Option<reqwest::Client>,
    /// How long the owner may take to start answering.
    timeout: Duration,
    /// Cancelled when the shutdown starts: forwarded GET streams end then, as this relay's
    /// own standalone streams do (`end_streams`).
    streams: tokio_util::sync::CancellationToken,
}

/// What became of one forward.
enum Outcome {
    /// The owner answered (whatever it answered, except 404).
    Answered(Response),
    /// The owner said 404: its answer passes through as is.
    Unknown(Response),
    /// Nobody listens at the owner's address, or its name does not resolve: the owner is
    /// gone, and the session with it.
    Gone,
    /// The owner did not connect or answer in time.
    Slow,
}

impl Forwarder {
    pub(crate) fn new(cfg: &ClusterConfig) -> Forwarder {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(cfg.forward_connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build();
        let client = match client {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %crate::error::with_causes(&e), "cannot build the client to the fleet's peers");
                None
            }
        };
        Forwarder {
            client,
            timeout: cfg.forward_timeout.unwrap_or(DEFAULT_TIMEOUT),
            streams: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The shutdown starts: forwarded GET streams end (the client resumes elsewhere), so
    /// they do not hold the shutdown for its whole grace.
    pub(crate) fn end_streams(&self) {
        self.streams.cancel();
    }

    /// Carries `req` to the owner of the session it names and streams its answer back; a
    /// failure to reach the owner is answered here. Audited and counted once, here.
    pub(crate) async fn forward(
        &self,
        cluster: &Cluster,
        audit: &Audit,
        req: Request,
        client: Option<ClientAddr>,
    ) -> Response {
        let session = headers::session_of(&req);
        let node = match session.as_deref().map(owner) {
            Some(Owner::Node(n)) => n.to_owned(),
            // The guard forwards only ids naming a configured peer; anything else is nobody's.
            _ => String::new(),
        };
        self.forward_to(cluster, audit, &node, req, client, None)
            .await
    }

    /// Carries `req` to `node` (a configured peer; anything else is answered 404 with no
    /// connection made) and streams its answer back; a refusal here answers the JSON-RPC
    /// request `id` (a modern continuation's). Audited and counted once, here.
    pub(crate) async fn forward_to(
        &self,
        cluster: &Cluster,
        audit: &Audit,
        node: &str,
        req: Request,
        client: Option<ClientAddr>,
        id: Option<&RawId>,
    ) -> Response {
        let started = Instant::now();
        let session = headers::session_of(&req);
        let transport = headers::transport_of(req.uri().path());
        let outcome = match cluster.peer(node) {
            Some(base) => self.send(cluster, base, req, client).await,
            None => Outcome::Gone,
        };
        let (res, counted) = match outcome {
            Outcome::Answered(res) => (res, Forwarded::Ok),
            Outcome::Unknown(res) => (res, Forwarded::Unknown),
            Outcome::Gone => (
                Error::UnknownSession.into_response_for(id),
                Forwarded::Unknown,
            ),
            Outcome::Slow => (
                Error::OwnerUnavailable.into_response_for(id),
                Forwarded::Unavailable,
            ),
        };
        metrics::forwarded(counted, started.elapsed());
        let who = Who {
            client,
            session,
            node: node.to_owned(),
            transport,
        };
        record(audit, counted, who, started);
        res
    }

    /// The request to `base` (the owner's base URL) and its response head.
    async fn send(
        &self,
        cluster: &Cluster,
        base: url::Url,
        req: Request,
        client: Option<ClientAddr>,
    ) -> Outcome {
        let Some(http) = &self.client else {
            return Outcome::Slow;
        };
        let (parts, body) = req.into_parts();
        // The guard forwards only plain front paths; a URL that would leave the peer's base
        // path is nobody's session.
        let Some(url) = headers::target(&base, &parts.uri) else {
            return Outcome::Gone;
        };
        let mut out = http.request(parts.method.clone(), url.as_str());
        let authority = parts.uri.authority().map(|a| a.as_str());
        let outbound = headers::outbound(&parts.headers, authority, cluster.node(), client);
        out = out.headers(outbound);
        if !body_is_empty(&body) {
            out = out.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        let sent = tokio::time::timeout(self.timeout, out.send()).await;
        let res = match sent {
            Err(_) => return Outcome::Slow,
            Ok(Err(e)) if e.is_connect() && !e.is_timeout() => {
                tracing::debug!(error = %crate::error::with_causes(&e), "session owner unreachable");
                return Outcome::Gone;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %crate::error::with_causes(&e), "forward failed");
                return Outcome::Slow;
            }
            Ok(Ok(res)) => res,
        };
        let status = res.status();
        let mut back = Response::builder().status(status);
        if let Some(h) = back.headers_mut() {
            *h = headers::inbound(res.headers());
        }
        let stream = futures_util::TryStreamExt::map_ok(res.bytes_stream(), Bytes::from);
        let body = if parts.method == axum::http::Method::GET {
            let end = self.streams.clone().cancelled_owned();
            Body::from_stream(futures_util::StreamExt::take_until(stream, end))
        } else {
            Body::from_stream(stream)
        };
        let res = back
            .body(body)
            .unwrap_or_else(|_| Error::Internal.into_response());
        if status == StatusCode::NOT_FOUND {
            Outcome::Unknown(res)
        } else {
            Outcome::Answered(res)
        }
    }
}

/// Whom a forward was for and where it went, for its audit record.
struct Who {
    client: Option<ClientAddr>,
    session: Option<String>,
    node: String,
    transport: &'static str,
}

/// Whether a request has no body at all (a GET or DELETE): then none is sent either.
fn body_is_empty(body: &Body) -> bool {
    axum::body::HttpBody::size_hint(body).exact() == Some(0)
}

/// The forward's audit record: who asked (the owner audits who it was), for which session,
/// sent to which node (`name`), and how it went (`reason`: `forwarded`, or the refusal's).
fn record(audit: &Audit, counted: Forwarded, who: Who, started: Instant) {
    let Who {
        client,
        session,
        node,
        transport,
    } = who;
    if !audit.is_enabled() {
        return;
    }
    let (outcome, reason, code) = match counted {
        Forwarded::Ok => ("ok", "forwarded", None),
        Forwarded::Unknown => ("refused", "unknown_session", Some(-31003)),
        Forwarded::Unavailable => ("refused", "owner_unavailable", Some(-31006)),
    };
    audit.emit(Record {
        principal: String::new(),
        auth: "none",
        client: client.map(|a| a.to_string()),
        peer: client.and_then(|a| a.via).map(|a| a.to_string()),
        session,
        transport,
        server: audit.server().map(str::to_owned),
        name: (!node.is_empty()).then_some(node),
        decision: "allow",
        outcome,
        error_code: code,
        reason: Some(reason),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        ..Record::default()
    });
}
