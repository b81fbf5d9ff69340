//! The HTTP connection loop of a listener (plain or TLS): hyper with the limits SECURITY.md §2
//! asks for, which `axum::serve` does not set.
//!
//! - at most `--max-connections` open connections per listener (one more is closed at once);
//! - the request head must arrive within 10 s (slowloris), at most 100 header fields in a
//!   32 KiB head (431 beyond);
//! - HTTP/2: 100 concurrent streams per connection, header list ≤ 32 KiB, CONNECT for
//!   WebSocket;
//! - graceful shutdown: on `stop` no new connections; open ones finish their requests.
//!
//! Routing is `listener.rs`, the checks `guard.rs` → `policy/phases.rs`; the peer's address
//! and mTLS identity reach the router root as [`ConnInfo`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, warn};

use super::ConnInfo;
use crate::telemetry::metrics;

/// Time for a client to send a request's head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Fields in one request head.
pub(crate) const MAX_HEADERS: usize = 100;
/// Bytes of one request head (HTTP/1 read buffer; HTTP/2 header list).
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Concurrent HTTP/2 streams per connection.
pub(crate) const MAX_STREAMS: u32 = 100;

/// Serves `router` on `listener` until `stop`; then open connections finish their requests
/// and it returns when the last one is gone.
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    max_connections: usize,
    stop: CancellationToken,
) where
    L: Listener + PeerInfo,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let (closing, closed) = watch::channel(());
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(
                max_connections,
                "connection cap reached: connection refused"
            );
            metrics::connection_refused("http");
            drop(io);
            continue;
        };
        let info = L::conn_info(&io, peer);
        let service = TowerToHyperService::new(WithInfo {
            router: router.clone(),
            info,
        });
        let mut closing = closing.subscribe();
        let watcher = closed.clone();
        let open = metrics::connection_opened("http");
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let _watcher = watcher;
            let builder = builder();
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    // Tell every connection to finish, then wait until the last one is gone.
    let _ = closing.send(());
    drop(closed);
    closing.closed().await;
}

/// hyper's connection settings (see the module header).
fn builder() -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
        .enable_connect_protocol();
    b
}

/// The router with one connection's [`ConnInfo`] put into every request.
#[derive(Clone)]
struct WithInfo {
    router: Router,
    info: ConnInfo,
}

impl Service<hyper::Request<hyper::body::Incoming>> for WithInfo {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <Router as Service<axum::extract::Request>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        <Router as Service<axum::extract::Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.info.clone()));
        self.router.call(req)
    }
}

/// What a listener's connections tell about their peer.
pub(crate) trait PeerInfo: Listener {
    fn conn_info(io: &Self::Io, peer: Self::Addr) -> ConnInfo;
}

impl PeerInfo for super::PlainListener {
    fn conn_info(_io: &Self::Io, peer: Self::Addr) -> ConnInfo {
        ConnInfo { peer, cert: None }
    }
}

impl PeerInfo for crate::tls::TlsListener {
    fn conn_info(io: &Self::Io, peer: Self::Addr) -> ConnInfo {
        ConnInfo {
            peer,
            cert: super::peer_identity(io),
        }
    }
}
