//! TLS to remote upstreams (`https://`, `wss://`, `tls://`): one rustls client configuration
//! per `--upstream`, built when the command line is read and shared by every connection.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3, WebPKI verification with the hostname
//! always checked (IP addresses against IP SANs). Trust is the Mozilla roots (webpki-roots),
//! or, with `--upstream-ca FILE`, only the certificates of that PEM bundle: a private CA is
//! trusted only when it is configured, and there is no way to turn verification off. ALPN is
//! `h2, http/1.1` for HTTPS (reqwest takes the configuration as it is), `http/1.1` for
//! WebSocket, none for TLS over TCP. A certificate that is self-signed (not in the trust),
//! for another host or expired fails the handshake; `remote.rs` logs it as `upstream
//! connection failed` with the cause chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// What the TLS session is for: decides the ALPN protocols offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// Streamable HTTP: `h2`, `http/1.1`.
    Http,
    /// WebSocket: `http/1.1` (the upgrade needs HTTP/1.1).
    WebSocket,
    /// Newline-delimited JSON-RPC over TLS: none.
    None,
}

/// A client configuration and where its trust came from (compared by that alone).
#[derive(Clone)]
pub struct TlsClient {
    /// `--upstream-ca`; `None`: the Mozilla roots.
    ca: Option<PathBuf>,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca && self.config.alpn_protocols == other.config.alpn_protocols
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    /// Reads the trust (`ca`, or the Mozilla roots) and builds the configuration; the error
    /// is a usage message.
    pub(crate) fn new(ca: Option<&Path>, alpn: Alpn) -> Result<TlsClient, String> {
        let roots = match ca {
            Some(path) => roots_from(path)?,
            None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("--upstream: TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = match alpn {
            Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::WebSocket => vec![b"http/1.1".to_vec()],
            Alpn::None => Vec::new(),
        };
        Ok(TlsClient {
            ca: ca.map(Path::to_path_buf),
            config: Arc::new(config),
        })
    }

    /// The shared configuration.
    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

/// The name a `tls://` server's certificate must carry: its host (an IPv6 address without
/// brackets).
pub(crate) fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Whether a connection failed because the server's certificate chains to no trusted root
/// (self-signed, or a private CA that `--upstream-ca` does not name): worth a hint in the log.
pub(crate) fn untrusted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let rustls = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // reqwest's connector boxes the handshake error where it cannot be downcast: its text.
        if rustls == Some(&unknown) || c.to_string() == unknown.to_string() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The certificates of a PEM bundle as the only trust anchors.
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--upstream-ca {shown}: cannot read the CA bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!("--upstream-ca {shown}: contains no certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--upstream-ca {shown}: unusable certificate: {e}"))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_trust_is_the_mozilla_roots_and_a_bundle_replaces_it() {
        let default = TlsClient::new(None, Alpn::Http).unwrap();
        assert_eq!(default.config.alpn_protocols.len(), 2);
        let dir = std::env::temp_dir().join(format!("mcp-relay-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = crate::cert::generate(&dir, &[], 1).unwrap();
        let private = TlsClient::new(Some(&written.cert), Alpn::WebSocket).unwrap();
        assert_eq!(private.config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert_ne!(default, private);
        assert!(format!("{private:?}").contains("cert.pem"));
        // A key is not a certificate; a missing file is named.
        let err = TlsClient::new(Some(&written.key), Alpn::None).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = TlsClient::new(Some(&dir.join("missing.pem")), Alpn::None).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
