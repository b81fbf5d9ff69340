//! mTLS name mapping (SECURITY.md G3): exact matches only, SANs before the common name, bad
//! entries refused. The helpers here also serve the handshake tests in `tls/client/tests.rs`.

use super::*;
use rustls_pki_types::CertificateDer;

use crate::caller::AuthMethod;

pub(crate) fn client(m: &str, principal: &str, roles: &[&str]) -> MtlsClient {
    MtlsClient {
        r#match: m.to_owned(),
        principal: principal.to_owned(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn id(cn: Option<&str>, sans: &[&str]) -> CertIdentity {
    CertIdentity {
        cn: cn.map(str::to_owned),
        sans: sans.iter().map(|s| s.to_string()).collect(),
        not_after: None,
    }
}

pub(crate) fn map() -> MtlsMap {
    MtlsMap::new(&[
        client("dns:client.example.com", "svc-a", &["reader"]),
        client("uri:spiffe://example.org/ns/prod/sa/b", "svc-b", &[]),
        client("email:ops@example.com", "ops", &["admin"]),
        client("ip:2001:db8:0:0:0:0:0:1", "svc-ip", &[]),
        client("cn:Legacy Client", "legacy", &[]),
    ])
    .unwrap()
}

#[test]
fn principal_exact_dns_san_matches_ignoring_case() {
    let p = map()
        .principal(&id(None, &["dns:Client.Example.COM"]))
        .unwrap();
    assert_eq!(p.name, "svc-a");
    assert_eq!(p.method, AuthMethod::Mtls);
    assert_eq!(p.roles, vec!["reader".to_owned()]);
    assert_eq!(p.key_id.as_deref(), Some("dns:client.example.com"));
}

#[test]
fn g3_prefix_suffix_and_substring_sans_are_forbidden() {
    let m = map();
    for san in [
        "dns:client.example.com.evil.org",
        "dns:client.example.co",
        "dns:evil-client.example.com",
        "dns:xclient.example.com",
        "dns:client.example.com.",
        "uri:spiffe://example.org/ns/prod/sa/b/extra",
        "uri:spiffe://example.org/ns/prod/sa/",
        "email:ops@example.com.evil.org",
        "email:OPS@example.com",
        "cn:Legacy Client",
    ] {
        assert_eq!(
            m.principal(&id(None, &[san])),
            Err(AuthFailure::Forbidden("unmapped_certificate")),
            "{san}"
        );
    }
    let cn = id(Some("Legacy Client Evil"), &[]);
    assert_eq!(m.principal(&cn), Err(AuthFailure::Forbidden(UNMAPPED)));
    assert_eq!(
        m.principal(&id(Some("Legacy"), &[])),
        Err(AuthFailure::Forbidden(UNMAPPED))
    );
}

#[test]
fn principal_first_san_wins_then_cn() {
    let m = map();
    let both = id(
        Some("Legacy Client"),
        &[
            "dns:nobody.example.com",
            "email:ops@example.com",
            "dns:client.example.com",
        ],
    );
    assert_eq!(m.principal(&both).unwrap().name, "ops");
    let cn_only = id(Some("Legacy Client"), &["dns:nobody.example.com"]);
    let p = m.principal(&cn_only).unwrap();
    assert_eq!(
        (p.name.as_str(), p.key_id.as_deref()),
        ("legacy", Some("cn:Legacy Client"))
    );
    let ip = id(None, &["ip:2001:db8::1"]);
    assert_eq!(
        m.principal(&ip).unwrap().key_id.as_deref(),
        Some("ip:2001:db8::1")
    );
}

#[test]
fn principal_unmapped_certificate_is_forbidden() {
    let m = map();
    assert_eq!(
        m.principal(&id(Some("Someone"), &["dns:other.example.com"])),
        Err(AuthFailure::Forbidden("unmapped_certificate"))
    );
    assert_eq!(
        m.principal(&id(None, &[])),
        Err(AuthFailure::Forbidden(UNMAPPED))
    );
    assert_eq!(m.authenticate(None), Err(AuthFailure::Missing));
    let junk = [CertificateDer::from(vec![1u8, 2, 3])];
    assert_eq!(
        m.authenticate(Some(&junk)),
        Err(AuthFailure::Invalid("bad_certificate"))
    );
}

#[test]
fn map_new_rejects_bad_entries() {
    for (m, principal) in [
        ("client.example.com", "a"),
        ("host:client.example.com", "a"),
        ("dns:", "a"),
        ("dns: client.example.com", "a"),
        ("ip:1.2.3", "a"),
        ("dns:ok.example.com", " "),
    ] {
        let err = MtlsMap::new(&[client(m, principal, &[])]).unwrap_err();
        assert!(matches!(err, Error::Mapping { .. }), "{m}");
    }
    let dup = [
        client("dns:A.example.com", "a", &[]),
        client("dns:a.example.com", "b", &[]),
    ];
    assert!(matches!(
        MtlsMap::new(&dup),
        Err(Error::Mapping {
            reason: "duplicate match",
            ..
        })
    ));
}
