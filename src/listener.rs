//! Front transports and the HTTP router. Each front translates one framing to and from
//! `jsonrpc` messages and hands them to the relay core (`Relay::post`, `Relay::stateless`);
//! none holds policy or session logic. `streamable_http` is session-per-id over HTTP; the
//! connection-oriented fronts (WebSocket, TCP, stdio, legacy SSE) share `duplex` (one
//! connection, one session). [`fronts`] are one relay's routes; [`guarded`] puts a listener's
//! routes behind the guard (`guard.rs`, which hands each request to
//! `policy::phases::on_request`); `hub.rs` assembles the listener's router from them. TCP calls
//! the phases itself (`tcp.rs`). `http.rs` holds what the HTTP fronts share (header and path names, body
//! reading, SSE responses, the guard's caller).
//!
//! [`ConnInfo`] carries what the connection knows about the peer (address, verified mTLS
//! identity) to the guard, where the request phases authenticate it.

mod guard;
mod http;
mod index;
mod metadata;

pub(crate) mod duplex;
pub(crate) mod http_server;
pub(crate) use index::Endpoints;
pub(crate) mod sse;
pub(crate) mod stdio;
pub(crate) mod streamable_http;
pub(crate) mod tcp;
pub(crate) mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Allow, Error};
use crate::relay::Relay;
use crate::tls::client::{self, CertIdentity};

/// What one accepted connection says about its peer.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The verified client certificate's identity (mTLS), if one was presented.
    pub cert: Option<Arc<CertIdentity>>,
}

/// The plain-TCP HTTP listener: no Nagle delay (SSE events are small writes that must leave
/// at once).
pub(crate) struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        (tcp, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The identity of a TLS peer's verified leaf certificate.
pub(crate) fn peer_identity<IO>(
    tls: &tokio_rustls::server::TlsStream<IO>,
) -> Option<Arc<CertIdentity>> {
    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates()?.first()?;
    client::identity(leaf).map(Arc::new)
}

/// The MCP fronts of one relay, at its configured paths: Streamable HTTP, the WebSocket
/// upgrade and legacy SSE; no probes, no index, no guard (a named server's fronts are reached
/// through the hub's, `hub.rs`).
pub(crate) fn fronts(relay: &Arc<Relay>) -> Router<Arc<Relay>> {
    let mcp = post(streamable_http::handle_post)
        .get(streamable_http::handle_get)
        .delete(streamable_http::handle_delete)
        .fallback(|| async { Error::MethodNotAllowed(Allow::Mcp) });
    Router::new()
        .route(&relay.config().path, mcp)
        .route(&relay.config().ws_path, get(websocket::upgrade))
        .merge(sse::routes(relay.clone()))
}

/// `routes` with `GET /` describing what the listener serves, unless `/` is taken.
pub(crate) fn with_index<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    cfg: &crate::config::ServeConfig,
) -> Router<S> {
    let endpoints = Endpoints::of(cfg);
    if !endpoints.index {
        return routes;
    }
    let index = get(move |headers: HeaderMap| async move { index::page(&endpoints, &headers) })
        .fallback(index::not_allowed);
    routes.route(index::INDEX_PATH, index)
}

/// `routes` behind the guard, which runs the request phases with `relay`'s policy.
pub(crate) fn guarded(routes: Router<Arc<Relay>>, relay: Arc<Relay>) -> Router {
    routes
        .layer(middleware::from_fn_with_state(relay.clone(), guard::guard))
        .with_state(relay)
}
