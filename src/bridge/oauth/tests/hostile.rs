//! Hostile or broken servers (SECURITY.md §8.F): refused before any browser launch or
//! request, and no secret in any log line.

use super::*;

#[tokio::test]
async fn f3_no_s256_issuer_or_resource_mismatch_abort_before_authorization() {
    for cfg in [
        MockCfg {
            no_s256: true,
            ..MockCfg::default()
        },
        MockCfg {
            issuer: Some("https://other.example".into()),
            ..MockCfg::default()
        },
        MockCfg {
            resource: Some("https://other.example/mcp".into()),
            ..MockCfg::default()
        },
    ] {
        let m = start(cfg).await;
        let c = client(config(&m, &temp_dir()));
        assert!(!refused(&c, 401, &m.challenge()).await);
        assert_eq!(m.authorizations.load(Ordering::SeqCst), 0);
        assert_eq!(m.registrations.load(Ordering::SeqCst), 0);
        assert_eq!(c.authorization(), None);
    }
}

#[tokio::test]
async fn f1_hostile_authorization_endpoints_are_refused_before_any_launch() {
    let dir = temp_dir();
    let base = dir.parent().unwrap().to_owned();
    std::fs::create_dir_all(&base).unwrap();
    let marker = base.join("pwned");
    let stub = base.join("opener.sh");
    std::fs::write(&stub, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    // Runnable, so that a launch would show (the test needs a Unix shell to mean anything).
    #[cfg(unix)]
    crate::os::fs::set_mode(&stub, 0o700);
    for hostile in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "$(touch pwned)",
        "--upload-pack=x",
        "ms-settings:",
        "\\\\host\\share",
        "https://as.example/authorize\r\nX: y",
        "http://as.example/authorize",
    ] {
        let m = start(MockCfg {
            authorize: Some(hostile.into()),
            ..MockCfg::default()
        })
        .await;
        let mut cfg = config(&m, &dir);
        cfg.headless = false;
        let c = OAuthClient::with_launcher(cfg, Launcher::Program(stub.clone())).unwrap();
        assert!(!refused(&c, 401, &m.challenge()).await, "{hostile}");
        assert_eq!(m.registrations.load(Ordering::SeqCst), 0, "{hostile}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists());
}

#[tokio::test]
async fn f2_discovery_at_blocked_addresses_is_refused() {
    let m = start(MockCfg::default()).await;
    for rm in [
        "https://169.254.169.254/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "https://[::ffff:a9fe:a9fe]/x",
        "https://10.0.0.1/x",
    ] {
        let mut cfg = config(&m, &temp_dir());
        cfg.allow_private = false;
        let c = client(cfg);
        let ch = format!("Bearer resource_metadata=\"{rm}\"");
        assert!(!refused(&c, 401, &ch).await, "{rm}");
    }
    // A name resolving to loopback, and another port on the server's host: not the
    // server's origin, so neither is fetched without allow_private.
    let port = m.base.rsplit(':').next().unwrap_or_default().to_owned();
    for rm in [
        format!("https://localhost:{port}/.well-known/oauth-protected-resource/mcp"),
        format!("http://localhost:{port}/.well-known/oauth-protected-resource/mcp"),
        "https://127.0.0.1:6379/".to_owned(),
    ] {
        let mut cfg = config(&m, &temp_dir());
        cfg.allow_private = false;
        let ch = format!("Bearer resource_metadata=\"{rm}\"");
        assert!(!refused(&client(cfg), 401, &ch).await, "{rm}");
    }
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 0);
}

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn f5_no_token_code_or_verifier_in_any_log_line() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let m = start(MockCfg::default()).await;
    let c = client(config(&m, &temp_dir()));
    assert!(refused(&c, 401, &m.challenge()).await);
    let verifier = m
        .last_token
        .lock()
        .unwrap()
        .get("code_verifier")
        .cloned()
        .unwrap();
    assert!(!refused(&c, 401, &m.challenge()).await);
    c.current().full = None;
    assert!(refused(&c, 401, &m.challenge()).await);
    tracing::debug!(client = ?c, "client state");
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("client state"), "the subscriber saw nothing");
    for secret in ["at-1", "rt-1", "at-2", "rt-2", "code-1", verifier.as_str()] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
}
