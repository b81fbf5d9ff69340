//! The bridge over TLS: HTTPS, WSS and TLS-TCP trusting `--ca-file`, a self-signed server
//! refused without it, `--insecure` accepted loudly, and client certificates (`[auth.mtls]`).

use super::*;

/// A fixture relay serving HTTPS, WSS and TLS-TCP with a fresh self-signed certificate:
/// the server, its certificate (the CA to trust) and the child's record file.
fn tls_server() -> (Server, PathBuf, PathBuf) {
    let (cert, key) = cert_generate();
    let record = tempdir().join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    (s, cert, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_https_wss_and_tls_with_ca_file() {
    let (s, cert, record) = tls_server();
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let ca = cert.to_str().unwrap();
    let tls = s.tcp_url().await;
    assert!(tls.starts_with("tls://"), "{tls}");
    let sse = format!("{}/sse", s.base);
    for url in [s.url.clone(), s.ws_url(), tls.clone()] {
        scenario(&["--ca-file", ca, &url], &record).await;
    }
    scenario(&["--transport", "sse", "--ca-file", ca, &sse], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_refuses_a_self_signed_server_without_ca_file() {
    let (s, _, record) = tls_server();
    let mut b = Bridge::spawn(&[&s.url]);
    let init = b.initialize_raw().await;
    assert!(init.get("error").is_some(), "{init}");
    assert!(b.alive());
    assert_eq!(host_inits(&record), 0);
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_insecure_accepts_a_self_signed_server_and_warns() {
    let (s, _, _) = tls_server();
    let mut b = Bridge::spawn(&["--insecure", &s.url]);
    let init = b.initialize_raw().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "mcp-relay-fixture",
        "{init}\n{}",
        b.stderr()
    );
    assert!(
        b.stderr().to_lowercase().contains("insecure"),
        "--insecure must be logged loudly: {}",
        b.stderr()
    );
}

/// A server that requires a client certificate (`[auth.mtls]`): `--client-cert/--client-key`
/// authenticate the bridge over HTTPS, WSS and TLS-TCP; without them the host gets an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_authenticates_with_a_client_certificate() {
    use crate::certs::make_client;
    let (cert, key) = cert_generate();
    let dir = cert.parent().unwrap().to_path_buf();
    let (ca, config) = crate::support::mtls_config(&dir, "bridge-it client CA");
    let (client_cert, client_key) =
        make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let (cc, ck) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&cc, client_cert).unwrap();
    std::fs::write(&ck, client_key).unwrap();
    let record = dir.join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--resource",
            "http://relay.test/mcp",
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    let tls = s.tcp_url().await;
    let (ca_file, cc, ck) = (
        cert.to_str().unwrap(),
        cc.to_str().unwrap(),
        ck.to_str().unwrap(),
    );
    for url in [s.url.clone(), s.ws_url(), tls] {
        let mut b = Bridge::spawn(&[
            "--ca-file",
            ca_file,
            "--client-cert",
            cc,
            "--client-key",
            ck,
            &url,
        ]);
        b.initialize().await;
        let r = b.call(json!(1), "echo", json!({"text": "mtls"})).await;
        assert_eq!(text_of(&r), "mtls", "{url}: {r}\n{}", b.stderr());
        let (code, _) = b.eof().await;
        assert_eq!(code, Some(0));
        // Without the client certificate: an error answer, not a hang.
        let mut b = Bridge::spawn(&["--ca-file", ca_file, "--oauth", "off", &url]);
        let started = Instant::now();
        let init = b.initialize_raw().await;
        eprintln!(
            "{url} without a client certificate, {:?}: {init}",
            started.elapsed()
        );
        assert!(init.get("error").is_some(), "{url}: {init}");
        assert!(b.alive());
        b.assert_clean();
    }
    // --client-cert without --client-key is a usage error.
    let out = StdCommand::new(RELAY)
        .args(["connect", "--client-cert", cc, &s.url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty());
}
