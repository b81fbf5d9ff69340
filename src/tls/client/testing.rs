//! Development helpers: a throwaway CA and client certificates signed by it (PEM), for the unit
//! tests here and the integration tests (which include this file with `#[path]`, so it names
//! no `crate::` item). Built only for tests; not for production PKI.

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
pub(crate) fn make_ca(cn: &str) -> Result<(String, String), Error> {
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
pub(crate) fn make_client(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    sans: &[&str],
    not_after: Option<OffsetDateTime>,
) -> Result<(String, String), Error> {
    let ca_der =
        CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(|_| Error::CaCert)?;
    let ca_cn = common_name(&ca_der).ok_or(Error::CaCert)?;
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
/// The one subject common name of a certificate.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = cert.subject().iter_common_name();
    let cn = names.next()?.as_str().ok()?.to_owned();
    names.next().is_none().then_some(cn)
}
