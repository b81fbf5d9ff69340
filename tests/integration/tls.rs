//! TLS: `cert generate`, HTTPS and TLS over TCP, plaintext refused, certificate reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use serde_json::json;

use crate::support::conn::scenario;
use crate::support::lines::Lines;
use crate::support::{
    eventually, patience, tempdir, text_of, wait_recorded, Client, Relay, FIXTURE, RELAY,
};

/// `mcp-relay cert generate --out-dir DIR`; returns (cert, key).
fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let out = std::process::Command::new(RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn start(cert: &Path, key: &Path, extra: &[&str]) -> Relay {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", FIXTURE]);
    Relay::start_raw(&args)
}

/// A Streamable HTTP client trusting only `cert`, with fresh connections.
fn https_client(relay: &Relay, cert: &Path) -> Client {
    let pem = std::fs::read(cert).unwrap();
    let mut c = Client::new(&relay.url);
    c.http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    c
}

#[tokio::test]
async fn cert_generate_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = std::process::Command::new(RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[tokio::test]
async fn bad_tls_files_are_a_usage_error_before_binding() {
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a pem").unwrap();
    let cases: [Vec<&str>; 3] = [
        vec!["--tls-cert", cert.to_str().unwrap()],
        vec![
            "--tls-cert",
            junk.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            "/nonexistent/key.pem",
        ],
    ];
    for flags in cases {
        let out = std::process::Command::new(RELAY)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&flags)
            .args(["--", FIXTURE])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{flags:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("tls"),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn https_runs_initialize_and_a_tool_call_and_plaintext_is_refused() {
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let relay = start(&cert, &key, &[]);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    eventually("wss logged", || relay.logs().contains("url=wss://")).await;
    let mut c = https_client(&relay, &cert);
    c.initialize("2025-06-18").await;
    let reply = c.call(json!(1), "echo", json!({"text": "over tls"})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(text_of(&reply.messages()[0]), "over tls");
    let plain = relay.url.replacen("https://", "http://", 1);
    let res = reqwest::Client::new().post(&plain).body("{}").send().await;
    assert!(res.is_err(), "plaintext got an answer: {res:?}");
    // The server keeps accepting after the failed handshake; ALPN picks HTTP/2.
    let mut again = https_client(&relay, &cert);
    again.initialize("2025-06-18").await;
    let health = again
        .http
        .get(format!("{}/health", relay.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    // TLS 1.2 is accepted too (1.1 and below are not offered by rustls at all).
    let mut tls12 = https_client(&relay, &cert);
    tls12.http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .http1_only()
        .build()
        .unwrap();
    tls12.initialize("2025-06-18").await;
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_open_streams() {
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (relay, record) = Relay::start_recorded(&tls, &[]);
    let mut old = https_client(&relay, &cert);
    old.initialize("2025-06-18").await;
    let open = {
        let c = old.clone();
        tokio::spawn(async move { c.call(json!("s"), "slow", json!({"ms": 2500})).await })
    };
    // The call is in the child (its stream open) before the certificate changes.
    wait_recorded(&record, "\"slow\"", 1).await;
    let old_cert = dir.join("old.pem");
    std::fs::copy(&cert, &old_cert).unwrap();
    let fresh = tempdir();
    let (new_cert, new_key) = generate(&fresh);
    for (from, to) in [(&new_key, &key), (&new_cert, &cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(relay.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    eventually("reloaded", || {
        relay.logs().contains("TLS certificate reloaded")
    })
    .await;
    assert!(relay.logs().contains("SIGHUP"));
    let mut new = https_client(&relay, &new_cert);
    new.initialize("2025-06-18").await;
    // A new connection trusting only the old certificate is refused.
    let stale = https_client(&relay, &old_cert);
    let res = stale.post_builder().body("{}").send().await;
    assert!(res.is_err(), "old certificate still served: {res:?}");
    let reply = tokio::time::timeout(patience(), open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(text_of(reply.messages().last().unwrap()), "slept 2500");
}

#[tokio::test]
async fn tcp_over_tls_runs_the_scenario() {
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let relay = start(&cert, &key, &["--tcp-listen", "127.0.0.1:0"]);
    eventually("tls listening", || relay.logs().contains("url=tls://")).await;
    let logs = relay.logs();
    let at = logs.find("url=tls://").unwrap() + 10;
    let addr = logs[at..].split_whitespace().next().unwrap().to_owned();
    mcp_relay::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&cert).unwrap();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (r, w) = tokio::io::split(tls);
    let mut c = Lines::new(r, w);
    scenario(&mut c).await;
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_others_and_is_closed_after_10s() {
    use tokio::io::AsyncReadExt;
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let relay = start(&cert, &key, &[]);
    let addr = relay.base.trim_start_matches("https://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut c = https_client(&relay, &cert);
    c.initialize("2025-06-18").await;
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buf))
        .await
        .expect("stalled handshake still open after 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal() {
    let dir = tempdir();
    let (cert, key) = generate(&dir);
    let relay = start(&cert, &key, &[]);
    let fresh = tempdir();
    let (new_cert, new_key) = generate(&fresh);
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    eventually("reloaded", || {
        relay.logs().contains("TLS certificate reloaded")
    })
    .await;
    assert!(!relay.logs().contains("SIGHUP"));
    let mut c = https_client(&relay, &new_cert);
    c.initialize("2025-06-18").await;
}
