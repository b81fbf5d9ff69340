//! The OAuth client against a local mock PRM + AS (plain http on 127.0.0.1, `allow_private`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;

use super::*;
use crate::bridge::token_store::{random_suffix, StoredClient, StoredTokens};
use std::time::Duration;

mod mock;
use mock::{start, Mock, MockCfg};

fn temp_dir() -> PathBuf {
    std::env::temp_dir()
        .join(format!("mcp-relay-oauth-{}", random_suffix()))
        .join("oauth")
}

fn config(m: &Mock, dir: &std::path::Path) -> OAuthConfig {
    let mut cfg = OAuthConfig::new(Url::parse(&m.server()).unwrap());
    cfg.dir = dir.to_owned();
    cfg.headless = true;
    cfg.allow_private = true;
    cfg
}

fn client(cfg: OAuthConfig) -> Arc<OAuthClient> {
    OAuthClient::with_launcher(cfg, Launcher::None).unwrap()
}

async fn refused(c: &OAuthClient, status: u16, ch: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(20), c.refused(status, Some(ch)))
        .await
        .unwrap()
}

#[tokio::test]
async fn full_headless_flow_gets_and_stores_tokens() {
    let m = start(MockCfg::default()).await;
    let dir = temp_dir();
    let c = client(config(&m, &dir));
    assert_eq!(c.authorization(), None);
    assert!(refused(&c, 401, &m.challenge()).await);
    assert_eq!(c.authorization().as_deref(), Some("Bearer at-1"));
    let q = m.last_authorize.lock().unwrap().clone();
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert_eq!(q.get("resource"), Some(&m.server()));
    assert_eq!(q.get("scope").map(String::as_str), Some("read"));
    assert_eq!(q.get("client_id").map(String::as_str), Some("dcr-client"));
    let t = m.last_token.lock().unwrap().clone();
    assert_eq!(t.get("resource"), Some(&m.server()));
    assert!(t.contains_key("code_verifier"));
    assert_eq!(m.registrations.load(Ordering::SeqCst), 1);
    // Stored 0600 in a 0700 dir; a new client starts with the token.
    // (Where there are no permission bits, the profile directory's ACL protects them.)
    let native = !crate::os::PORTABLE;
    let mode = crate::os::fs::mode;
    assert_eq!(mode(&dir), native.then_some(0o700));
    for e in std::fs::read_dir(&dir).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), native.then_some(0o600));
    }
    let again = client(config(&m, &dir));
    assert_eq!(again.authorization().as_deref(), Some("Bearer at-1"));
    assert!(!format!("{again:?}").contains("at-1"));
}

#[tokio::test]
async fn refused_token_with_refresh_token_is_refreshed() {
    let m = start(MockCfg::default()).await;
    let c = client(config(&m, &temp_dir()));
    assert!(refused(&c, 401, &m.challenge()).await);
    let ch = format!("{}, error=\"invalid_token\"", m.challenge());
    // A token the flow has just produced, refused at once, is not worth a refresh.
    assert!(!refused(&c, 401, &ch).await);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
    // Later (it expired): refreshed.
    c.current().full = None;
    assert!(refused(&c, 401, &ch).await);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 1);
    assert_eq!(c.authorization().as_deref(), Some("Bearer at-2"));
    assert_eq!(
        m.last_token.lock().unwrap().get("resource"),
        Some(&m.server())
    );
    // The refreshed token refused again: the whole flow, not another refresh.
    let r = tokio::time::timeout(Duration::from_secs(20), c.renew(401, Some(&ch)))
        .await
        .unwrap();
    assert!(r.as_ref().is_ok_and(|r| *r), "{r:?}");
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 2);
    // The token the flow just produced refused at once: no loop.
    assert!(!refused(&c, 401, &ch).await);
}

#[tokio::test]
async fn insufficient_scope_steps_up_with_the_challenge_scope() {
    let m = start(MockCfg::default()).await;
    let c = client(config(&m, &temp_dir()));
    assert!(refused(&c, 401, &m.challenge()).await);
    let ch = "Bearer error=\"insufficient_scope\", scope=\"write\"";
    assert!(refused(&c, 403, ch).await);
    let q = m.last_authorize.lock().unwrap().clone();
    assert_eq!(q.get("scope").map(String::as_str), Some("read write"));
    assert!(refused(&c, 403, ch).await);
    assert!(!refused(&c, 403, ch).await, "step-up limit");
    assert!(!refused(&c, 403, "Bearer error=\"invalid_token\"").await);
}

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
async fn iss_is_checked_when_the_as_advertises_it() {
    let m = start(MockCfg {
        iss_param: true,
        ..MockCfg::default()
    })
    .await;
    let c = client(config(&m, &temp_dir()));
    assert!(refused(&c, 401, &m.challenge()).await);
    let m = start(MockCfg {
        iss_param: true,
        wrong_iss: true,
        ..MockCfg::default()
    })
    .await;
    let c = client(config(&m, &temp_dir()));
    assert!(!refused(&c, 401, &m.challenge()).await);
    assert_eq!(m.code_grants.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_without_metadata_uses_its_origin_as_the_as() {
    for cfg in [
        MockCfg {
            no_prm: true,
            ..MockCfg::default()
        },
        MockCfg {
            no_prm: true,
            no_as_meta: true,
            ..MockCfg::default()
        },
    ] {
        let m = start(cfg).await;
        let c = client(config(&m, &temp_dir()));
        assert!(refused(&c, 401, "Bearer").await);
        assert_eq!(c.authorization().as_deref(), Some("Bearer at-1"));
        let q = m.last_authorize.lock().unwrap().clone();
        assert_eq!(q.get("resource"), Some(&m.server()));
        assert_eq!(q.get("scope"), None);
    }
    // A challenge naming PRM that is not there is not a 2025-03-26 server.
    let m = start(MockCfg {
        no_prm: true,
        ..MockCfg::default()
    })
    .await;
    assert!(!refused(&client(config(&m, &temp_dir())), 401, &m.challenge()).await);
}

#[tokio::test]
async fn pre_registered_client_skips_registration() {
    let m = start(MockCfg::default()).await;
    let mut cfg = config(&m, &temp_dir());
    cfg.client_id = Some("pre".into());
    let c = client(cfg);
    assert!(refused(&c, 401, &m.challenge()).await);
    assert_eq!(m.registrations.load(Ordering::SeqCst), 0);
    let q = m.last_authorize.lock().unwrap().clone();
    assert_eq!(q.get("client_id").map(String::as_str), Some("pre"));
}

#[tokio::test]
async fn cimd_when_supported_else_dcr_fallback() {
    let doc = "https://client.example/mcp-relay.json";
    let m = start(MockCfg {
        cimd: true,
        ..MockCfg::default()
    })
    .await;
    let mut cfg = config(&m, &temp_dir());
    cfg.client_metadata_url = Some(doc.into());
    assert!(refused(&client(cfg), 401, &m.challenge()).await);
    assert_eq!(m.registrations.load(Ordering::SeqCst), 0);
    assert_eq!(
        m.last_authorize
            .lock()
            .unwrap()
            .get("client_id")
            .map(String::as_str),
        Some(doc)
    );

    let m = start(MockCfg::default()).await;
    let mut cfg = config(&m, &temp_dir());
    cfg.client_metadata_url = Some(doc.into());
    assert!(refused(&client(cfg), 401, &m.challenge()).await);
    assert_eq!(m.registrations.load(Ordering::SeqCst), 1);

    let m = start(MockCfg {
        no_registration: true,
        ..MockCfg::default()
    })
    .await;
    assert!(!refused(&client(config(&m, &temp_dir())), 401, &m.challenge()).await);
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 0);
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

#[tokio::test]
async fn two_bridges_refreshing_at_once_make_one_refresh_request() {
    let m = start(MockCfg::default()).await;
    let dir = temp_dir();
    let store = TokenStore::open(&dir, &m.server()).unwrap();
    store
        .save(&Record {
            server: m.server(),
            issuer: m.base.clone(),
            token_endpoint: format!("{}/token", m.base),
            resource: Some(m.server()),
            client: Some(StoredClient {
                client_id: "c".into(),
                ..StoredClient::default()
            }),
            tokens: Some(StoredTokens {
                access_token: "old".into(),
                refresh_token: Some("rt-0".into()),
                ..StoredTokens::default()
            }),
        })
        .unwrap();
    let a = client(config(&m, &dir));
    let b = client(config(&m, &dir));
    assert_eq!(a.authorization().as_deref(), Some("Bearer old"));
    let ch = m.challenge();
    let (ra, rb) = tokio::join!(refused(&a, 401, &ch), refused(&b, 401, &ch));
    assert!(ra && rb);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(a.authorization(), b.authorization());
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 0);
}

#[test]
fn challenge_params_parse() {
    let c = Challenge::parse(Some(
        "Basic realm=\"x\", Bearer error=\"insufficient_scope\", scope=\"a b\", resource_metadata=\"https://r/x\"",
    ));
    assert_eq!(c.scope.as_deref(), Some("a b"));
    assert_eq!(c.resource_metadata.as_deref(), Some("https://r/x"));
    assert!(c.insufficient_scope());
    let c = Challenge::parse(Some("Bearer error=invalid_token,scope=\"a\\\"b\""));
    assert_eq!(c.error.as_deref(), Some("invalid_token"));
    assert_eq!(c.scope.as_deref(), Some("a\"b"));
    assert_eq!(
        Challenge::parse(Some("Basic realm=\"scope\"")),
        Challenge::default()
    );
}

#[test]
fn discovery_urls_follow_the_spec_order() {
    let s = Url::parse("https://mcp.example.com/api/mcp").unwrap();
    let prm: Vec<String> = discovery::prm_candidates(&s, &Challenge::default())
        .unwrap()
        .iter()
        .map(Url::to_string)
        .collect();
    assert_eq!(
        prm,
        [
            "https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        ]
    );
    let i = Url::parse("https://as.example.com/tenant1").unwrap();
    let asm: Vec<String> = discovery::as_candidates(&i)
        .unwrap()
        .iter()
        .map(Url::to_string)
        .collect();
    assert_eq!(
        asm,
        [
            "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
            "https://as.example.com/.well-known/openid-configuration/tenant1",
            "https://as.example.com/tenant1/.well-known/openid-configuration"
        ]
    );
    assert!(discovery::resource_matches(
        "https://mcp.example.com/api",
        &s
    ));
    assert!(!discovery::resource_matches(
        "https://mcp.example.com/ap",
        &s
    ));
    assert!(!discovery::resource_matches(
        "https://evil.example.com/api/mcp",
        &s
    ));
}

#[test]
fn pkce_s256_matches_rfc7636_appendix_b() {
    assert_eq!(
        pkce::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(
        union_scope(Some("a b"), Some("b c")).as_deref(),
        Some("a b c")
    );
}

#[tokio::test]
async fn http_link_authorizes_on_401_and_steps_up_on_403() {
    use crate::upstream::remote::{connect, Access, CredentialSource, RemoteSpec};
    use crate::upstream::stdio::ChildEvent;
    let m = start(MockCfg::default()).await;
    let c = client(config(&m, &temp_dir()));
    let spec = RemoteSpec::Http {
        url: m.server(),
        max_message: 1 << 20,
        tls: None,
        access: Access {
            credentials: Some(CredentialSource(c.clone())),
            ..Access::default()
        },
    };
    let (handle, mut output) = connect(&spec);
    let mut ask = async |line: &str| {
        handle
            .send(bytes::Bytes::copy_from_slice(line.as_bytes()))
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(20), output.next())
            .await
            .unwrap();
        match next {
            Some(ChildEvent::Line(l)) => String::from_utf8_lossy(&l).into_owned(),
            other => panic!("{other:?}"),
        }
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    assert!(ask(init).await.contains("\"result\""));
    assert_eq!(c.authorization().as_deref(), Some("Bearer at-1"));
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#;
    let answer = ask(call).await;
    assert!(
        answer.contains("\"id\":2") && answer.contains("\"result\""),
        "{answer}"
    );
    assert_eq!(m.mcp_refusals.load(Ordering::SeqCst), 2);
    assert_eq!(m.authorizations.load(Ordering::SeqCst), 2);
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
