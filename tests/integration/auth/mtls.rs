//! G3: mutual TLS: mapped, missing, foreign, expired, prefix-only and unmapped certificates.

use super::*;
use crate::certs::{make_ca, make_client};

struct Tls {
    relay: Relay,
    server_cert: Vec<u8>,
    ca: (String, String),
}

fn start() -> Tls {
    start_with(None, &[])
}

/// A TLS relay with `[auth.mtls]` (one mapped client, `svc`), optionally the HS256 issuer
/// of `jwt` too, and `extra` flags.
fn start_with(jwt: Option<&Setup>, extra: &[&str]) -> Tls {
    let dir = tempdir();
    let out = Command::new(RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ca = make_ca("auth-it client CA").unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &ca.0).unwrap();
    let jwt_table = match jwt {
        Some(setup) => {
            let secret = dir.join("jwt.secret");
            std::fs::write(&secret, &setup.secret).unwrap();
            format!(
                "[[auth.jwt]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\n\
                 secret = \"file:{}\"\n",
                secret.display()
            )
        }
        None => String::new(),
    };
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nresource = \"{RESOURCE}\"\n\n[auth.mtls]\nca = \"clients-ca.pem\"\n\n\
             [[auth.mtls.clients]]\nmatch = \"dns:client.example.com\"\nprincipal = \"svc\"\n\
             roles = [\"user\"]\n\n{jwt_table}"
        ),
    )
    .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let roles = permissions();
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--roles",
        roles.as_str(),
    ];
    args.extend_from_slice(extra);
    let relay = serve(&config, &args, None);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    Tls {
        relay,
        server_cert: std::fs::read(&cert).unwrap(),
        ca,
    }
}

impl Tls {
    fn http(&self, identity: Option<(String, String)>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.server_cert).unwrap());
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}\n{key}");
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    fn client_cert(&self, sans: &[&str]) -> (String, String) {
        make_client(&self.ca.0, &self.ca.1, sans, None).unwrap()
    }

    async fn init(&self, identity: Option<(String, String)>) -> reqwest::Result<reqwest::Response> {
        self.http(identity)
            .post(&self.relay.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .body(init_request(json!(0), VERSION).to_string())
            .send()
            .await
    }
}

#[tokio::test]
async fn g3_mapped_client_certificate_is_200() {
    let tls = start();
    let id = tls.client_cert(&["dns:client.example.com"]);
    let mut c = crate::support::Client::new(&tls.relay.url);
    c.http = tls.http(Some(id));
    c.initialize(VERSION).await;
    let reply = c.call(json!(1), "echo", json!({"text": "mtls"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "mtls");
    // DNS names match case-insensitively.
    let upper = tls.client_cert(&["dns:CLIENT.Example.COM"]);
    assert_eq!(tls.init(Some(upper)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn g3_no_foreign_or_expired_certificate_fails_the_handshake() {
    let tls = start();
    let res = tls.init(None).await;
    assert!(res.is_err(), "no certificate: {res:?}");
    let foreign_ca = make_ca("auth-it client CA").unwrap();
    let foreign = make_client(
        &foreign_ca.0,
        &foreign_ca.1,
        &["dns:client.example.com"],
        None,
    )
    .unwrap();
    let res = tls.init(Some(foreign)).await;
    assert!(res.is_err(), "foreign CA: {res:?}");
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let expired = make_client(
        &tls.ca.0,
        &tls.ca.1,
        &["dns:client.example.com"],
        Some(past),
    )
    .unwrap();
    let res = tls.init(Some(expired)).await;
    assert!(res.is_err(), "expired: {res:?}");
    // The listener still serves good clients.
    let good = tls.client_cert(&["dns:client.example.com"]);
    assert_eq!(tls.init(Some(good)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn g3_prefix_suffix_or_unmapped_san_is_403() {
    let tls = start();
    for sans in [
        &["dns:client.example.com.evil.org"][..],
        &["dns:evilclient.example.com"][..],
        &["dns:x.client.example.com"][..],
        &["dns:other.example.com"][..],
        &["email:client.example.com@evil.org"][..],
        &["uri:dns:client.example.com"][..],
    ] {
        let id = tls.client_cert(sans);
        let res = tls.init(Some(id)).await.unwrap();
        assert_eq!(res.status(), 403, "{sans:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], -31002, "{sans:?}: {body}");
    }
}

#[tokio::test]
async fn g3_certificate_and_token_naming_different_principals_are_401() {
    let setup = Setup::new("", "");
    let tls = start_with(Some(&setup), &[]);
    let id = || Some(tls.client_cert(&["dns:client.example.com"]));
    let send = |identity, token: Option<String>| {
        let mut b = tls
            .http(identity)
            .post(&tls.relay.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .body(init_request(json!(0), VERSION).to_string());
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.send()
    };
    let alice = setup.mint("alice", "user", &[]);
    let svc = setup.mint("svc", "user", &[]);
    expect_401(
        send(id(), Some(alice.clone())).await.unwrap(),
        true,
        "cert svc + token alice",
    )
    .await;
    expect_401(
        send(id(), Some("x.y.z".into())).await.unwrap(),
        true,
        "cert + bad token",
    )
    .await;
    assert_eq!(send(id(), Some(svc)).await.unwrap().status(), 200);
    assert_eq!(send(id(), None).await.unwrap().status(), 200);
}

fn tls_connector(tls: &Tls, identity: Option<(String, String)>) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    mcp_relay::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&tls.server_cert) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn g3_tls_tcp_mapped_certificate_needs_no_credential_line_and_unmapped_is_refused() {
    let tls = start_with(None, &["--tcp-listen", "127.0.0.1:0"]);
    crate::support::eventually("tls listening", || tls.relay.logs().contains("url=tls://")).await;
    let logs = tls.relay.logs();
    let at = logs.find("url=tls://").unwrap() + 10;
    let addr = logs[at..].split_whitespace().next().unwrap().to_owned();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

    let good = tls_connector(&tls, Some(tls.client_cert(&["dns:client.example.com"])));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let stream = good.connect(name.clone(), tcp).await.unwrap();
    let (r, w) = tokio::io::split(stream);
    let mut c = Lines::new(r, w);
    scenario(&mut c).await;

    // An unmapped certificate: one -31002 error line, then the connection closes.
    let bad = tls_connector(
        &tls,
        Some(tls.client_cert(&["dns:client.example.com.evil.org"])),
    );
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let stream = bad.connect(name.clone(), tcp).await.unwrap();
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let _ = w
        .write_all(format!("{}\n", init_request(json!(0), VERSION)).as_bytes())
        .await;
    let mut line = String::new();
    tokio::time::timeout(patience(), r.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let err: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(err["error"]["code"], -31002, "{err}");
    line.clear();
    let n = tokio::time::timeout(patience(), r.read_line(&mut line))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "not closed: {line}");

    // No certificate: the handshake (or the first read) fails.
    let none = tls_connector(&tls, None);
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    if let Ok(stream) = none.connect(name, tcp).await {
        let (r, mut w) = tokio::io::split(stream);
        let _ = w
            .write_all(format!("{}\n", init_request(json!(0), VERSION)).as_bytes())
            .await;
        let mut r = BufReader::new(r);
        let mut line = String::new();
        let read = tokio::time::timeout(patience(), r.read_line(&mut line))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "answered without a cert: {line}"
        );
    }
}
