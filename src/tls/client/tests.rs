//! mTLS: the file form, reading a certificate's names, and real in-memory rustls handshakes
//! against the server configuration from `acceptor_with_clients` (the name mapping's own tests
//! are `policy/mtls/tests.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, Connection, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::testing::{make_ca, make_client};
use super::*;
use crate::caller::{AuthFailure, Principal};
use crate::policy::mtls::tests::{client, map};
use crate::policy::mtls::MtlsMap;
use crate::tls::{acceptor_with_clients, Reloadable, TlsFiles};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[test]
fn config_defaults_and_unknown_fields() {
    let cfg: MtlsConfig = toml::from_str(
        "ca = \"ca.pem\"\n[[clients]]\nmatch = \"dns:a.example.com\"\nprincipal = \"a\"\n",
    )
    .unwrap();
    assert!(cfg.required);
    assert_eq!(cfg.clients[0], client("dns:a.example.com", "a", &[]));
    assert!(toml::from_str::<MtlsConfig>("ca = \"ca.pem\"\nrequire = false\n").is_err());
}

#[test]
fn identity_reads_normalized_sans_cn_and_not_after() {
    let (ca, ca_key) = make_ca("Test CA").unwrap();
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    let sans = [
        "dns:Client.Example.COM",
        "email:Ops@Example.com",
        "uri:spiffe://example.org/a",
        "ip:2001:db8:0::1",
        "ip:10.0.0.1",
        "cn:Alice Smith",
    ];
    let (cert, _) = make_client(&ca, &ca_key, &sans, Some(expiry)).unwrap();
    let got = identity(&der(&cert)).unwrap();
    assert_eq!(got.cn.as_deref(), Some("Alice Smith"));
    assert_eq!(
        got.sans,
        [
            "dns:client.example.com",
            "email:Ops@Example.com",
            "uri:spiffe://example.org/a",
            "ip:2001:db8::1",
            "ip:10.0.0.1"
        ]
    );
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(got.not_after.unwrap()), expiry.unix_timestamp() as u64);
    let p = map().authenticate(Some(&[der(&cert)])).unwrap();
    assert_eq!((p.name.as_str(), p.expires_at), ("svc-a", got.not_after));
}

// === in-memory handshakes ===

struct Pki {
    dir: PathBuf,
    ca: (String, String),
    server_cert: CertificateDer<'static>,
    reloadable: Arc<Reloadable>,
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("mcp-relay-mtls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = crate::cert::generate(&dir.join("server"), &[], 1).unwrap();
    let server_cert = der(&std::fs::read_to_string(&w.cert).unwrap());
    let reloadable = Reloadable::new(TlsFiles {
        cert: w.cert,
        key: w.key,
    })
    .unwrap();
    let ca = make_ca("Client CA").unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.0).unwrap();
    Pki {
        dir,
        ca,
        server_cert,
        reloadable,
    }
}

fn mtls_config(dir: &Path, required: bool) -> MtlsConfig {
    MtlsConfig {
        ca: dir.join("ca.pem"),
        required,
        clients: vec![client("dns:client.example.com", "svc-a", &[])],
    }
}

fn client_config(
    server_cert: &CertificateDer<'static>,
    cert: Option<(String, String)>,
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(server_cert.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    match cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(&cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// Moves records between the two ends until both finish; the server's error comes first.
fn handshake(
    p: &Pki,
    required: bool,
    cert: Option<(String, String)>,
) -> Result<Connection, rustls::Error> {
    let verifier = verifier(&mtls_config(&p.dir, required)).unwrap();
    let acceptor = acceptor_with_clients(p.reloadable.clone(), true, Some(verifier)).unwrap();
    let mut server =
        Connection::from(rustls::ServerConnection::new(acceptor.config().clone()).unwrap());
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = Connection::from(
        rustls::ClientConnection::new(Arc::new(client_config(&p.server_cert, cert)), name).unwrap(),
    );
    for _ in 0..16 {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            // TLS 1.3: the client's certificate is checked once the server reads its flight.
            transfer(&mut client, &mut server)?;
            return Ok(server);
        }
    }
    panic!("handshake did not finish");
}

fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

fn peer_principal(server: &Connection) -> Principal {
    let map = MtlsMap::new(&mtls_config(Path::new("."), true).clients).unwrap();
    map.authenticate(server.peer_certificates()).unwrap()
}

#[test]
fn verifier_accepts_a_good_certificate_and_the_server_reads_it() {
    let p = pki("good");
    let good = make_client(&p.ca.0, &p.ca.1, &["dns:client.example.com"], None).unwrap();
    let server = handshake(&p, true, Some(good.clone())).unwrap();
    let peer = server.peer_certificates().unwrap();
    assert_eq!(peer[0], der(&good.0));
    assert_eq!(peer_principal(&server).name, "svc-a");
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn g3_verifier_rejects_a_foreign_ca_certificate() {
    let p = pki("foreign");
    let (other, other_key) = make_ca("Foreign CA").unwrap();
    let cert = make_client(&other, &other_key, &["dns:client.example.com"], None).unwrap();
    let err = handshake(&p, true, Some(cert.clone())).err().unwrap();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    // Optional client auth still verifies a presented certificate.
    assert!(handshake(&p, false, Some(cert)).is_err());
    // Same CA name, different key.
    let (twin, twin_key) = make_ca("Client CA").unwrap();
    let cert = make_client(&twin, &twin_key, &["dns:client.example.com"], None).unwrap();
    let err = handshake(&p, true, Some(cert)).err().unwrap();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn g3_verifier_rejects_an_expired_certificate() {
    let p = pki("expired");
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let cert = make_client(&p.ca.0, &p.ca.1, &["dns:client.example.com"], Some(past)).unwrap();
    let err = handshake(&p, true, Some(cert)).err().unwrap();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn g3_verifier_required_rejects_a_client_without_certificate() {
    let p = pki("nocert");
    let err = handshake(&p, true, None).err().unwrap();
    assert!(
        matches!(err, rustls::Error::NoCertificatesPresented),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn verifier_optional_accepts_a_client_without_certificate() {
    let p = pki("optional");
    let server = handshake(&p, false, None).unwrap();
    assert!(server.peer_certificates().is_none());
    let map = MtlsMap::new(&[]).unwrap();
    assert_eq!(
        map.authenticate(server.peer_certificates()),
        Err(AuthFailure::Missing)
    );
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[test]
fn verifier_reports_a_missing_or_empty_ca_bundle() {
    let dir = std::env::temp_dir().join(format!("mcp-relay-mtls-{}-ca", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(
        verifier(&mtls_config(&dir, true)),
        Err(Error::Ca { .. })
    ));
    std::fs::write(dir.join("ca.pem"), "not a pem\n").unwrap();
    assert!(matches!(
        verifier(&mtls_config(&dir, true)),
        Err(Error::NoCa(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
