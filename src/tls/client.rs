//! Mutual TLS: client certificates as an identity (`[auth.mtls]`).
//!
//! Owns the file form ([`MtlsConfig`], [`MtlsClient`]), the handshake-time check
//! ([`verifier`]: rustls' WebPKI verifier over the configured CA bundle, ring provider), reading
//! a verified certificate's names ([`identity`]) and mapping them to a [`Principal`]
//! ([`MtlsMap`], exact matches only). The server configuration that uses the verifier is
//! [`super::acceptor_with_clients`]; running the mapping per request, at the router root, and
//! combining it with the other credentials lives in `policy.rs`. Development helpers that mint
//! a CA and client certificates are in [`testing`].

use std::collections::HashMap;
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

use crate::policy::authn::{AuthFailure, AuthMethod, Principal};

/// The reason given when a verified certificate maps to no configured client.
pub const UNMAPPED: &str = "unmapped_certificate";

/// `[auth.mtls]` as written in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsConfig {
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
pub struct MtlsClient {
    /// `dns:host`, `email:a@b`, `uri:spiffe://…`, `ip:1.2.3.4` or `cn:Name`.
    #[serde(rename = "match")]
    pub r#match: String,
    pub principal: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The runtime form of [`MtlsConfig`].
#[derive(Debug, Clone)]
pub struct Mtls {
    pub verifier: Arc<dyn ClientCertVerifier>,
    pub map: MtlsMap,
    pub required: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
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

// === impl MtlsConfig ===

impl MtlsConfig {
    /// Reads the CA bundle and checks the client mappings.
    pub fn build(&self) -> Result<Mtls, Error> {
        Ok(Mtls {
            verifier: verifier(self)?,
            map: MtlsMap::new(&self.clients)?,
            required: self.required,
        })
    }
}

/// The handshake-time check: chains to one of `cfg.ca`, within its validity period, usable
/// for client authentication. Foreign-CA and expired certificates fail the handshake; with
/// `required = false` a client may present none.
pub fn verifier(cfg: &MtlsConfig) -> Result<Arc<dyn ClientCertVerifier>, Error> {
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
pub struct CertIdentity {
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
pub fn identity(cert: &CertificateDer<'_>) -> Option<CertIdentity> {
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

/// Normalizes a `kind:value` name; `Err` says why it is not one.
fn normalize(name: &str) -> Result<String, &'static str> {
    let (kind, value) = name.split_once(':').ok_or("missing kind: prefix")?;
    if value.is_empty() {
        return Err("empty value");
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err("surrounding whitespace or control character in value");
    }
    match kind {
        "dns" => Ok(format!("dns:{}", value.to_ascii_lowercase())),
        "email" | "uri" | "cn" => Ok(name.to_owned()),
        "ip" => value
            .parse::<IpAddr>()
            .map(|ip| format!("ip:{ip}"))
            .map_err(|_| "not an IP address"),
        _ => Err("unknown kind (dns, email, uri, ip, cn)"),
    }
}

/// Who a certificate name stands for.
#[derive(Debug, Clone)]
struct Mapped {
    principal: String,
    roles: Vec<String>,
}

/// The configured clients, keyed by normalized `kind:value`; lookups are exact (DNS names
/// ignore ASCII case), never prefix, suffix or substring matches.
#[derive(Debug, Clone, Default)]
pub struct MtlsMap {
    by_name: HashMap<String, Mapped>,
}

// === impl MtlsMap ===

impl MtlsMap {
    /// Checks every entry (known `kind:` prefix, parseable IP, non-empty principal, no
    /// duplicates after normalization).
    pub fn new(clients: &[MtlsClient]) -> Result<MtlsMap, Error> {
        let mut by_name = HashMap::with_capacity(clients.len());
        for c in clients {
            let bad = |reason| Error::Mapping {
                entry: c.r#match.clone(),
                reason,
            };
            let key = normalize(&c.r#match).map_err(bad)?;
            if c.principal.trim().is_empty() {
                return Err(bad("empty principal"));
            }
            let mapped = Mapped {
                principal: c.principal.clone(),
                roles: c.roles.clone(),
            };
            if by_name.insert(key, mapped).is_some() {
                return Err(bad("duplicate match"));
            }
        }
        Ok(MtlsMap { by_name })
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The principal for a verified certificate: the first SAN (in certificate order) that is
    /// configured, else the `cn:`; otherwise 403 `unmapped_certificate`.
    pub fn principal(&self, id: &CertIdentity) -> Result<Principal, AuthFailure> {
        // Only SAN kinds count as SANs: a `cn:` among them matches nothing.
        let sans = id
            .sans
            .iter()
            .filter(|s| !s.starts_with("cn:"))
            .filter_map(|s| normalize(s).ok());
        let cn = id.cn.as_ref().map(|cn| format!("cn:{cn}"));
        for key in sans.chain(cn) {
            if let Some(m) = self.by_name.get(&key) {
                return Ok(Principal {
                    name: m.principal.clone(),
                    method: AuthMethod::Mtls,
                    roles: m.roles.clone(),
                    scopes: Vec::new(),
                    key_id: Some(key),
                    expires_at: id.not_after,
                });
            }
        }
        Err(AuthFailure::Forbidden(UNMAPPED))
    }

    /// [`Self::principal`] for a connection's peer chain (leaf first, as rustls gives it):
    /// no certificate → `Missing`; one that does not parse → `Invalid("bad_certificate")`.
    pub fn authenticate(
        &self,
        peer: Option<&[CertificateDer<'_>]>,
    ) -> Result<Principal, AuthFailure> {
        let leaf = peer.and_then(<[_]>::first).ok_or(AuthFailure::Missing)?;
        let id = identity(leaf).ok_or(AuthFailure::Invalid("bad_certificate"))?;
        self.principal(&id)
    }
}

/// Development helpers: a throwaway CA and client certificates signed by it (PEM), for tests
/// (unit and integration) and a future `cert client` command. Not for production PKI.
pub mod testing {
    use rcgen::string::Ia5String;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    use time::{Duration, OffsetDateTime};

    #[derive(Debug, thiserror::Error)]
    pub enum Error {
        #[error("certificate generation failed")]
        Generate(#[from] rcgen::Error),
        #[error("bad subject alternative name {0:?} (dns:, email:, uri:, ip: or cn:)")]
        San(String),
        #[error("the CA certificate does not parse or has no single common name")]
        CaCert,
    }

    const CA_USAGES: [KeyUsagePurpose; 3] = [
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];

    fn ca_params(cn: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = CA_USAGES.to_vec();
        params
    }

    /// A self-signed CA valid for a year: `(cert_pem, key_pem)`.
    pub fn make_ca(cn: &str) -> Result<(String, String), Error> {
        let mut params = ca_params(cn);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(365);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A client certificate signed by a CA from [`make_ca`]: `(cert_pem, key_pem)`. `sans`
    /// are `dns:`, `email:`, `uri:`, `ip:` names, and `cn:` sets the subject common name.
    /// `not_after` defaults to a day from now; one in the past makes an expired certificate.
    pub fn make_client(
        ca_cert_pem: &str,
        ca_key_pem: &str,
        sans: &[&str],
        not_after: Option<OffsetDateTime>,
    ) -> Result<(String, String), Error> {
        let ca_der =
            CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(|_| Error::CaCert)?;
        let ca_cn = super::identity(&ca_der)
            .and_then(|id| id.cn)
            .ok_or(Error::CaCert)?;
        let issuer = Issuer::new(ca_params(&ca_cn), KeyPair::from_pem(ca_key_pem)?);

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for san in sans {
            let bad = || Error::San((*san).to_owned());
            let (kind, value) = san.split_once(':').ok_or_else(bad)?;
            let ia5 = || Ia5String::try_from(value).map_err(|_| bad());
            let name = match kind {
                "dns" => SanType::DnsName(ia5()?),
                "email" => SanType::Rfc822Name(ia5()?),
                "uri" => SanType::URI(ia5()?),
                "ip" => SanType::IpAddress(value.parse().map_err(|_| bad())?),
                "cn" => {
                    params.distinguished_name.push(DnType::CommonName, value);
                    continue;
                }
                _ => return Err(bad()),
            };
            params.subject_alt_names.push(name);
        }
        let now = OffsetDateTime::now_utc();
        let not_after = not_after.unwrap_or(now + Duration::days(1));
        params.not_after = not_after;
        params.not_before = (now - Duration::minutes(5)).min(not_after - Duration::days(1));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

#[cfg(test)]
mod tests;
