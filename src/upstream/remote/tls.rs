//! TLS to remote upstreams (`https://`, `wss://`, `tls://`): one rustls client configuration
//! per remote (`serve --upstream`, `connect URL`), built when the command line is read and
//! shared by every connection. The links that use it are `remote.rs` and `remote/http/`; the
//! relay's own listeners are `crate::tls`.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3, WebPKI verification with the hostname
//! always checked (IP addresses against IP SANs). Trust ([`TlsOptions`]) is the Mozilla roots
//! (webpki-roots, `serve`'s default), the system store (`connect`'s default; an empty or
//! unreadable store falls back to the Mozilla roots with a warning), or, with a CA bundle
//! (`--upstream-ca FILE`), only the certificates of that PEM bundle: a private CA is trusted
//! only when it is configured. A client certificate and key (PEM) answer a server that asks
//! for mutual TLS. `insecure` (the bridge's `--insecure`) accepts any server certificate:
//! handshake signatures are still verified, the chain and the name are not, resumption is
//! off so that every connection passes the verifier, and each one logs a warning.
//! ALPN is `h2, http/1.1` for HTTPS (reqwest takes the configuration as it is), `http/1.1`
//! for WebSocket, none for TLS over TCP. A certificate that is self-signed (not in the
//! trust), for another host or expired fails the handshake; `remote.rs` logs it as
//! `upstream connection failed` with its cause in words (`remote/cause.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tracing::warn;

/// What the TLS session is for: decides the ALPN protocols offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// Streamable HTTP: `h2`, `http/1.1`.
    Http,
    /// WebSocket: `http/1.1` (the upgrade needs HTTP/1.1).
    WebSocket,
    /// Newline-delimited JSON-RPC over TLS: none.
    None,
}

/// The trust anchors when no CA bundle is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Roots {
    /// The Mozilla roots compiled in (webpki-roots): `serve`'s default.
    #[default]
    Mozilla,
    /// The operating system's store (rustls-native-certs): `connect`'s default; the Mozilla
    /// roots, with a warning, when it is empty or unreadable.
    System,
}

/// How to verify the remote server and what to show it. The default is `serve`'s: the
/// Mozilla roots, no client certificate, verification on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM bundle whose certificates are the only trust anchors (replaces `roots`).
    pub ca: Option<PathBuf>,
    /// The trust anchors without `ca`.
    pub roots: Roots,
    /// Mutual TLS: the client certificate chain (PEM), leaf first; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Mutual TLS: the private key of `client_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (signatures still checked); excludes `ca`.
    pub insecure: bool,
}

/// Where a client's trust actually came from (`System` can have fallen back to `Mozilla`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The compiled-in Mozilla roots.
    Mozilla,
    /// The operating system's store.
    System,
    /// Only the certificates of this PEM bundle.
    Bundle(PathBuf),
    /// Nothing is verified but handshake signatures (`insecure`).
    Any,
}

/// A client configuration and the options it was built from (compared by those alone).
#[derive(Clone)]
pub struct TlsClient {
    options: TlsOptions,
    trust: Trust,
    config: Arc<ClientConfig>,
}

// === impl TlsOptions ===

impl TlsOptions {
    /// `serve --upstream-ca`: the Mozilla roots, or only `ca`.
    pub fn with_ca(ca: Option<&Path>) -> TlsOptions {
        TlsOptions {
            ca: ca.map(Path::to_path_buf),
            ..TlsOptions::default()
        }
    }

    /// Refuses contradictory options; the error is a usage message.
    pub fn check(&self) -> Result<(), String> {
        let refuse = |what: &str| Err(what.to_owned());
        if self.insecure && self.ca.is_some() {
            return refuse(
                "--insecure turns certificate verification off and a CA bundle trusts only \
                 that CA: pick one",
            );
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => refuse(
                "a client certificate needs its private key (client key): give both or neither",
            ),
            (None, Some(_)) => refuse(
                "a client key needs its certificate (client certificate): give both or neither",
            ),
            _ => Ok(()),
        }
    }

    /// Whether any option applies to TLS only (the default roots do not count).
    pub fn is_tls_only(&self) -> bool {
        self.ca.is_some()
            || self.client_cert.is_some()
            || self.client_key.is_some()
            || self.insecure
    }
}

// === impl TlsClient ===

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("options", &self.options)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options && self.config.alpn_protocols == other.config.alpn_protocols
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    /// Checks the options, reads the trust and the client identity, and builds the
    /// configuration; the error is a usage message naming the file at fault.
    pub fn with_options(opts: &TlsOptions, alpn: Alpn) -> Result<TlsClient, String> {
        opts.check()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let (trust, builder) = if opts.insecure {
            let verifier = AnyServerCert {
                algorithms: provider.signature_verification_algorithms,
            };
            let builder = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier));
            (Trust::Any, builder)
        } else {
            let (trust, roots) = match (&opts.ca, opts.roots) {
                (Some(path), _) => (Trust::Bundle(path.clone()), roots_from(path)?),
                (None, Roots::Mozilla) => (Trust::Mozilla, mozilla_roots()),
                (None, Roots::System) => system_roots(),
            };
            (trust, builder.with_root_certificates(roots))
        };
        let mut config = match (&opts.client_cert, &opts.client_key) {
            (Some(cert), Some(key)) => {
                let (chain, private) = identity_from(cert, key)?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| identity_error(cert, key, &e))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = match alpn {
            Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::WebSocket => vec![b"http/1.1".to_vec()],
            Alpn::None => Vec::new(),
        };
        if opts.insecure {
            // A resumed session skips the verifier, and with it the warning.
            config.resumption = Resumption::disabled();
        }
        Ok(TlsClient {
            options: opts.clone(),
            trust,
            config: Arc::new(config),
        })
    }

    /// The options it was built from.
    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// Where the trust came from (for a startup log line).
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The shared configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
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

fn mozilla_roots() -> RootCertStore {
    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
}

/// The operating system's trust store, or the Mozilla roots with a warning when it yields
/// no usable certificate.
fn system_roots() -> (Trust, RootCertStore) {
    let loaded = rustls_native_certs::load_native_certs();
    let errors = loaded
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        warn!(
            errors = %errors,
            "no usable certificate in the system trust store: using the Mozilla roots"
        );
        return (Trust::Mozilla, mozilla_roots());
    }
    if ignored > 0 || !errors.is_empty() {
        tracing::debug!(added, ignored, errors = %errors, "system trust store read with errors");
    }
    (Trust::System, roots)
}

/// The certificates of a PEM bundle as the only trust anchors.
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("CA bundle {shown}: cannot read it: {e}"))?;
    if certs.is_empty() {
        return Err(format!("CA bundle {shown}: contains no certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("CA bundle {shown}: unusable certificate: {e}"))?;
    }
    Ok(roots)
}

/// A client certificate chain and its private key, read from PEM files.
fn identity_from(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let shown = cert.display();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("client certificate {shown}: cannot read it: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "client certificate {shown}: contains no certificate"
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            format!("client key {}: contains no private key", key.display())
        }
        e => format!("client key {}: cannot read it: {e}", key.display()),
    })?;
    Ok((chain, private))
}

/// Why rustls refused a client certificate and key.
fn identity_error(cert: &Path, key: &Path, e: &rustls::Error) -> String {
    let (cert, key) = (cert.display(), key.display());
    match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("client key {key} does not match the client certificate {cert}")
        }
        e => format!("client key {key}: unusable with the certificate {cert}: {e}"),
    }
}

// === impl AnyServerCert ===

/// `insecure`: any chain for any name, but a handshake signed by the certificate's key (so
/// the connection is at least with whoever holds it). Logs every verification.
#[derive(Debug)]
struct AnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        warn!(
            server = %server_name.to_str(),
            "TLS verification disabled (--insecure): the server's certificate is not checked, \
             anyone on the network path can impersonate it and read this connection"
        );
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
