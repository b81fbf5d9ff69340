//! `connect`'s TLS options (`TlsOptions`: `--insecure`, client certificates, system roots),
//! exercised at the library against real relays.

use super::*;

use mcp_relay::{Alpn, RemoteSpec, Roots, TlsClient, TlsOptions, Trust};

/// `host:port` of an `https://` relay.
fn tls_addr(relay: &Relay) -> String {
    relay.base.trim_start_matches("https://").to_owned()
}

/// A rustls handshake with `client` against `addr`, verifying the name `127.0.0.1`.
async fn handshake(client: &TlsClient, addr: &str) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client.config())
        .connect(name, tcp)
        .await?;
    tokio::io::AsyncWriteExt::shutdown(&mut tls).await
}

/// reqwest over `client`'s configuration, as `remote/http/link.rs` builds it.
fn http_over(client: &TlsClient) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&client.config()))
        .build()
        .unwrap()
}

fn insecure() -> TlsOptions {
    TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_insecure_accepts_a_self_signed_or_misnamed_server_and_the_defaults_refuse_it() {
    // Self-signed, and for another host: only --insecure gets through.
    let (cert, key) = cert_generate(&["--san", "other.example"]);
    let back = tls_back(&cert, &key).await;
    let addr = tls_addr(&back);
    let open = TlsClient::with_options(&insecure(), Alpn::Http).unwrap();
    assert_eq!(open.trust(), &Trust::Any);
    handshake(&open, &addr).await.unwrap();
    let health: Value = http_over(&open)
        .get(format!("{}/health", back.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    for roots in [Roots::Mozilla, Roots::System] {
        let opts = TlsOptions {
            roots,
            ..TlsOptions::default()
        };
        let strict = TlsClient::with_options(&opts, Alpn::Http).unwrap();
        let err = handshake(&strict, &addr).await.unwrap_err();
        assert!(
            err.to_string().contains("UnknownIssuer"),
            "{roots:?}: {err}"
        );
    }
    // Trusting the CA is not enough for the wrong name.
    let trusted = TlsClient::with_options(&TlsOptions::with_ca(Some(&cert)), Alpn::Http).unwrap();
    let err = handshake(&trusted, &addr).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // --insecure with a CA bundle is a usage error, whatever the URL.
    let both = TlsOptions {
        ca: Some(cert.clone()),
        ..insecure()
    };
    let err = RemoteSpec::parse_with(&back.url, 1 << 20, &both).unwrap_err();
    assert!(err.contains("pick one"), "{err}");
    let err = RemoteSpec::parse_with("http://127.0.0.1:9/mcp", 1 << 20, &insecure()).unwrap_err();
    assert!(err.contains("apply only"), "{err}");
    assert!(RemoteSpec::parse_with(&back.url, 1 << 20, &insecure()).is_ok());
}

/// A TLS relay whose `[auth.mtls]` maps `dns:client.example.com` to `svc`; returns it, its
/// server certificate and the client CA `(cert_pem, key_pem)`.
fn mtls_back() -> (Relay, PathBuf, (String, String)) {
    let (cert, key) = cert_generate(&[]);
    let dir = cert.parent().unwrap().to_path_buf();
    let (ca, config) = crate::support::mtls_config(&dir, "remote-it client CA");
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/permissions.json");
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        "http://relay.test/mcp",
        "--config",
        config.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
        "--",
        crate::support::FIXTURE,
    ]);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    (relay, cert, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_a_client_certificate_from_tls_options_is_accepted_by_an_mtls_relay() {
    use crate::certs::make_client;
    let (back, server_cert, ca) = mtls_back();
    let dir = server_cert.parent().unwrap().to_path_buf();
    let (client_pem, key_pem) =
        make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let (client_cert, client_key) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&client_cert, client_pem).unwrap();
    std::fs::write(&client_key, key_pem).unwrap();
    let with_id = TlsOptions {
        ca: Some(server_cert.clone()),
        client_cert: Some(client_cert.clone()),
        client_key: Some(client_key.clone()),
        ..TlsOptions::default()
    };
    let initialize = |client: &TlsClient| {
        http_over(client)
            .post(&back.url)
            .header("content-type", "application/json")
            .header("accept", crate::support::ACCEPT_BOTH)
            .body(crate::support::init_request(json!(0), "2025-11-25").to_string())
            .send()
    };
    let mutual = TlsClient::with_options(&with_id, Alpn::Http).unwrap();
    handshake(&mutual, &tls_addr(&back)).await.unwrap();
    let res = initialize(&mutual).await.unwrap();
    assert_eq!(res.status(), 200, "{}", back.logs());
    let body = res.text().await.unwrap();
    assert!(body.contains("mcp-relay-fixture"), "{body}");
    // The same trust without the certificate: refused (TLS 1.3 reports it on first use).
    let anonymous =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&server_cert)), Alpn::Http).unwrap();
    let res = initialize(&anonymous).await;
    assert!(res.is_err(), "no client certificate: {res:?}");
    // A key that is not the certificate's is refused before any connection.
    let (_, other_key) = make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let wrong = dir.join("other-key.pem");
    std::fs::write(&wrong, other_key).unwrap();
    let mismatched = TlsOptions {
        client_key: Some(wrong),
        ..with_id
    };
    let err = TlsClient::with_options(&mismatched, Alpn::Http).unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn system_roots_load_on_this_machine() {
    let opts = TlsOptions {
        roots: Roots::System,
        ..TlsOptions::default()
    };
    let client = TlsClient::with_options(&opts, Alpn::Http).unwrap();
    // Debian-style store present: it is used, not the fallback.
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert_eq!(client.trust(), &Trust::System);
    }
    let spec = RemoteSpec::parse_with("https://example.com/mcp", 1 << 20, &opts).unwrap();
    assert!(matches!(spec, RemoteSpec::Http { tls: Some(_), .. }));
    assert!(RemoteSpec::parse_with("http://127.0.0.1:9/mcp", 1 << 20, &opts).is_ok());
}
