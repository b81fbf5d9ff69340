//! TLS upstreams (`https://`, `wss://`, `tls://`): working with `--upstream-ca`, refused with
//! the default roots, for another host, or expired; `--upstream-ca` usage errors.

use super::*;

fn wss_url(relay: &Relay) -> String {
    relay.base.replacen("https://", "wss://", 1) + "/ws"
}

fn tls_url(relay: &Relay) -> String {
    let logs = relay.logs();
    let at = logs.find("url=tls://").expect("no tls listener logged") + 4;
    logs[at..].split_whitespace().next().unwrap().to_owned()
}

/// A client of `front` initializes and calls `echo`.
async fn echo_through(front: &Relay) {
    let mut c = HttpClient::new(&front.url);
    let init = c.initialize("2025-11-25").await;
    assert_eq!(
        init.messages()[0]["result"]["serverInfo"]["name"],
        "mcp-relay-fixture",
        "{}",
        front.logs()
    );
    let r = c
        .call(json!(1), "echo", json!({"text": "through tls"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "through tls");
    assert_eq!(c.delete().await, 200);
}

/// The front's client is refused (the upstream is unavailable) and the front logs `cause`
/// on its `upstream connection failed` line.
async fn refused(front: &Relay, cause: &str) {
    let r = HttpClient::new(&front.url)
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    let m = r.messages();
    let code = m[0]["error"]["code"].as_i64();
    assert!(matches!(code, Some(-31006 | -31007)), "{r:?}");
    eventually("the certificate error is logged", || {
        front
            .logs()
            .lines()
            .any(|l| l.contains("upstream connection failed") && l.contains(cause))
    })
    .await;
    assert_eq!(front.health().await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_wss_and_tls_upstreams_work_with_their_ca_configured() {
    let (cert, key) = cert_generate(&[]);
    let back = tls_back(&cert, &key).await;
    let ca = cert.to_str().unwrap();
    // Streamable HTTP over TLS, the whole scenario.
    let front_https = front(&back.url, &["--upstream-ca", ca]).await;
    echo_through(&front_https).await;
    http_scenario(&front_https).await;
    // Legacy SSE over TLS, through the fallback.
    let sse = format!("{}/sse", back.base);
    let front_sse = front(&sse, &["--upstream-ca", ca]).await;
    echo_through(&front_sse).await;
    assert!(linked_over_sse(&front_sse.logs()));
    // WebSocket and TCP over TLS.
    let front_wss = front(&wss_url(&back), &["--upstream-ca", ca]).await;
    echo_through(&front_wss).await;
    let front_tls = front(&tls_url(&back), &["--upstream-ca", ca]).await;
    echo_through(&front_tls).await;
    let mut tcp = Lines::tcp(&tcp_addr(&front_tls)).await;
    scenario(&mut tcp).await;
    for f in [&front_https, &front_sse, &front_wss, &front_tls] {
        assert!(
            !f.logs().contains("upstream connection failed"),
            "{}",
            f.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_upstream_is_refused_with_the_default_roots() {
    let (cert, key) = cert_generate(&[]);
    let back = tls_back(&cert, &key).await;
    for upstream in [back.url.clone(), wss_url(&back), tls_url(&back)] {
        let front = front(&upstream, &[]).await;
        refused(&front, "UnknownIssuer").await;
        // The line says what to do, once: the cause is not repeated.
        let logs = front.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("upstream connection failed"))
            .unwrap();
        assert!(line.contains("--upstream-ca"), "{line}");
        assert_eq!(line.matches("UnknownIssuer").count(), 1, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused_even_when_trusted() {
    let (cert, key) = cert_generate(&["--san", "other.example"]);
    let back = tls_back(&cert, &key).await;
    let ca = cert.to_str().unwrap();
    for upstream in [back.url.clone(), wss_url(&back), tls_url(&back)] {
        let front = front(&upstream, &["--upstream-ca", ca]).await;
        refused(&front, "certificate not valid for name").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_even_when_trusted() {
    let dir = crate::support::tempdir();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let issued = params.self_signed(&key_pair).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.pem()).unwrap();
    std::fs::write(&key, key_pair.serialize_pem()).unwrap();
    let back = tls_back(&cert, &key).await;
    let front = front(&back.url, &["--upstream-ca", cert.to_str().unwrap()]).await;
    refused(&front, "certificate expired").await;
}

#[tokio::test]
async fn upstream_ca_is_for_tls_upstreams_and_must_be_readable() {
    let (cert, _) = cert_generate(&[]);
    let cases = [
        (
            "http://127.0.0.1:9/mcp",
            cert.to_str().unwrap(),
            "applies only",
        ),
        ("https://127.0.0.1:9/mcp", "/nonexistent/ca.pem", "ca.pem"),
    ];
    for (upstream, ca, says) in cases {
        let out = std::process::Command::new(crate::support::RELAY)
            .args(["serve", "--upstream", upstream, "--upstream-ca", ca])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}
