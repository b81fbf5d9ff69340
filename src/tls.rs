//! TLS for the HTTP and TCP listeners (`serve --tls-cert/--tls-key`).
//!
//! rustls with the ring provider (installed once, on first use), TLS 1.2 and 1.3 only, ALPN
//! `h2` and `http/1.1`. The certificate is served through [`Reloadable`], so it can be
//! replaced (SIGHUP, or the files changing) for new handshakes while open connections keep
//! theirs; a failed reload keeps the old certificate. Handshakes run off the accept loop and
//! are given [`HANDSHAKE_TIMEOUT`].

pub(crate) mod client;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a client may take to finish its handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for changes.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// The certificate chain and key files, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read the certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate {0} contains no certificate")]
    NoCert(PathBuf),
    #[error("the private key does not match the certificate: {0}")]
    Mismatch(String),
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

/// Installs the ring provider as the process default, once.
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only if another provider was installed first; that one is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads and checks the certificate chain and key.
pub(crate) fn load(files: &TlsFiles) -> Result<CertifiedKey, Error> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Cert {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::NoCert(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| Error::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| Error::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| Error::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// The certificate in use; swapped on reload, read on every handshake.
#[derive(Debug)]
pub(crate) struct Reloadable {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    pub(crate) fn new(files: TlsFiles) -> Result<Arc<Self>, Error> {
        let current = RwLock::new(Arc::new(load(&files)?));
        Ok(Arc::new(Self { files, current }))
    }

    /// Re-reads the files; on failure the old certificate stays and a warning is logged.
    pub(crate) fn reload(&self) -> bool {
        match load(&self.files) {
            Ok(new) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                warn!(error = %e, "TLS reload failed; keeping the previous certificate");
                false
            }
        }
    }

    /// Reloads on SIGHUP (where there are signals) and when either file's modification time
    /// changes, until `stop`.
    pub(crate) async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut hup = crate::os::signals::Hangup::new();
        let mut seen = self.stamp();
        let mut tick = tokio::time::interval(POLL_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = hup.recv() => {
                    info!(signal = "SIGHUP", "reloading the TLS certificate");
                    seen = self.stamp();
                    self.reload();
                }
                _ = tick.tick() => {
                    let now = self.stamp();
                    if now != seen {
                        seen = now;
                        self.reload();
                    }
                }
            }
        }
    }

    fn stamp(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(&self.files.cert), m(&self.files.key))
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The server configuration: TLS 1.2+, ALPN `h2` then `http/1.1` (`alpn` false: none, for
/// the line-based TCP front), and client certificates: `clients` (from [`client::verifier`])
/// checks them during the handshake; `None` asks for none.
pub(crate) fn acceptor_with_clients(
    cert: Arc<Reloadable>,
    http: bool,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<TlsAcceptor, Error> {
    install_provider();
    let builder = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ]);
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(cert);
    if http {
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Runs the handshake with [`HANDSHAKE_TIMEOUT`]; failures are logged at debug level.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Option<TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(?peer, "TLS handshake timed out");
            None
        }
    }
}

/// An axum listener that hands out connections once their handshake is done; handshakes run
/// in their own tasks so a slow client never holds up the accept loop.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    addr: std::net::SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        stop: CancellationToken,
    ) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = stop.cancelled() => return,
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // No Nagle delay: SSE events are small writes that must leave at once.
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Some(tls) = handshake(&acceptor, tcp).await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Self { rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task has stopped (shutdown): never hand out another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_reload_keeps_the_old_certificate() {
        let dir = std::env::temp_dir().join(format!("mcp-relay-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = crate::cert::generate(&dir, &[], 1).unwrap();
        let files = TlsFiles {
            cert: w.cert.clone(),
            key: w.key.clone(),
        };
        let r = Reloadable::new(files).unwrap();
        let before = r.current.read().unwrap().clone();
        std::fs::write(&w.key, "junk").unwrap();
        assert!(!r.reload());
        assert!(Arc::ptr_eq(&before, &r.current.read().unwrap()));
        assert!(matches!(load(&r.files), Err(Error::Key { .. })));
        let other = crate::cert::generate(&dir.join("b"), &[], 1).unwrap();
        std::fs::copy(&other.key, &w.key).unwrap();
        assert!(matches!(load(&r.files), Err(Error::Mismatch(_))));
        std::fs::copy(&other.cert, &w.cert).unwrap();
        assert!(r.reload());
        assert!(!Arc::ptr_eq(&before, &r.current.read().unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
