//! The authorization flow end to end: tokens got, stored, refreshed, stepped up; discovery
//! fallbacks, client registration, one refresh for two bridges, the HTTP link authorizing.

use super::*;

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
