//! Mutual TLS: client certificates as an identity (`[auth.mtls]`).
//!
//! Owns the file form ([`MtlsConfig`], [`MtlsClient`]), the handshake-time check
//! ([`verifier`]: rustls' WebPKI verifier over the configured CA bundle, ring provider), reading
//! a verified certificate's names ([`identity`]). The server configuration that uses the
//! verifier is [`super::acceptor_with_clients`]; mapping names to a principal is
//! `policy/mtls.rs`, run per request beside the other credentials by `policy/authn.rs`.
//! Development helpers that mint a CA and client certificates (tests only) are in `testing.rs`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// `[auth.mtls]` as written in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MtlsConfig {
    /// PEM bundle of the CAs whose client certificates are trusted.
    pub ca: PathBuf,
    /// `false`: clients without a certificate are let through the handshake (and must then
    /// authenticate another way); a certificate that is presented is still verified.
    #[serde(default = "default_required")]
    pub required: bool,
    #[serde(default)]
    pub clients: Vec<MtlsClient>,
}

fn default_required() -> bool {
    true
}

/// One `[[auth.mtls.clients]]` entry: a certificate name and who it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MtlsClient {
    /// `dns:host`, `email:a@b`, `uri:spiffe://…`, `ip:1.2.3.4` or `cn:Name`.
    #[serde(rename = "match")]
    pub r#match: String,
    pub principal: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read the client CA bundle {path}")]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the client CA bundle {0} contains no certificate")]
    NoCa(PathBuf),
    #[error("the client CA bundle {path} holds an unusable certificate")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("mtls client {entry:?}: {reason}")]
    Mapping { entry: String, reason: &'static str },
}

/// The handshake-time check: chains to one of `cfg.ca`, within its validity period, usable
/// for client authentication. Foreign-CA and expired certificates fail the handshake; with
/// `required = false` a client may present none.
pub(crate) fn verifier(cfg: &MtlsConfig) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let certs = CertificateDer::pem_file_iter(&cfg.ca)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Ca {
            path: cfg.ca.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCa(cfg.ca.clone()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| Error::BadCa {
            path: cfg.ca.clone(),
            source,
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if !cfg.required {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(Error::Verifier)
}

/// The names in a client certificate, normalized for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertIdentity {
    /// The subject common name; `None` when absent, not a string, or given more than once.
    pub cn: Option<String>,
    /// Subject alternative names in certificate order: `dns:<lowercase>`, `email:<as is>`,
    /// `uri:<as is>`, `ip:<canonical>`. Other name types are left out.
    pub sans: Vec<String>,
    /// The certificate's notAfter (the principal's `expires_at`).
    pub not_after: Option<SystemTime>,
}

/// Reads the names of a (verified) certificate; `None` if it does not parse, or its SAN
/// extension is malformed or repeated.
pub(crate) fn identity(cert: &CertificateDer<'_>) -> Option<CertIdentity> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let mut cns = x509.subject().iter_common_name();
    let cn = match (cns.next(), cns.next()) {
        (Some(only), None) => only.as_str().ok().map(str::to_owned),
        _ => None,
    };
    let mut sans = Vec::new();
    if let Some(ext) = x509.subject_alternative_name().ok()? {
        for name in &ext.value.general_names {
            let san = match name {
                GeneralName::DNSName(d) => format!("dns:{}", d.to_ascii_lowercase()),
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                GeneralName::URI(u) => format!("uri:{u}"),
                GeneralName::IPAddress(b) => match ip_from_bytes(b) {
                    Some(ip) => format!("ip:{ip}"),
                    None => continue,
                },
                _ => continue,
            };
            sans.push(san);
        }
    }
    let secs = x509.validity().not_after.timestamp();
    let not_after = u64::try_from(secs)
        .ok()
        .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)));
    Some(CertIdentity {
        cn,
        sans,
        not_after,
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
