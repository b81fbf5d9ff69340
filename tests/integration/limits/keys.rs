//! What a rate limit is keyed on (SECURITY.md §8.D6): a rotating `X-Forwarded-For` from an
//! untrusted peer makes no new buckets, a trusted proxy's forwarded client is limited and
//! denied, and new sessions do not dodge the principal's rate.

use super::*;

#[tokio::test]
async fn d6_rotating_xff_from_an_untrusted_peer_makes_no_new_buckets_and_cannot_lock_out_the_spoofed_address(
) {
    let audit = tempdir().join("audit.log");
    let cfg = config("[limits]\nper_ip = \"3/min\"\nper_ip_burst = 3\nper_principal = \"off\"\n");
    let relay = serve(&cfg, &["--audit-log", audit.to_str().unwrap()]);
    let http = reqwest::Client::new();
    // Three requests, each claiming another client: all one bucket, the socket's.
    for (i, xff) in ["127.0.0.2", "203.0.113.1", "10.0.0.1, 198.51.100.7"]
        .iter()
        .enumerate()
    {
        let res = post(
            &http,
            &relay.url,
            &[("x-forwarded-for", xff)],
            &init_request(json!(i), VERSION),
        )
        .await;
        session_of(res).await;
    }
    for xff in ["203.0.113.2", "127.0.0.2", "::1"] {
        let res = post(&http, &relay.url, &[("x-forwarded-for", xff)], &ping()).await;
        expect_429(res, xff).await;
    }
    let res = post(
        &http,
        &relay.url,
        &[("forwarded", "for=203.0.113.3")],
        &ping(),
    )
    .await;
    expect_429(res, "forwarded").await;
    // The address the attacker named is not locked out: its own bucket is untouched.
    let res = post(
        &http_from(OTHER),
        &relay.url,
        &[],
        &init_request(json!(9), VERSION),
    )
    .await;
    session_of(res).await;
    // The audit log names the socket's address, never a spoofed one.
    eventually("audit lines", || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .count()
            >= 4
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let client = v["client"].as_str().unwrap_or_default();
        assert!(
            client.starts_with("127.0.0.1:") || client.starts_with("127.0.0.2:"),
            "{line}"
        );
        assert!(
            !line.contains("203.0.113") && !line.contains("198.51.100"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn d6_with_a_trusted_proxy_the_forwarded_client_is_limited_and_denied() {
    let cfg = config(
        "[limits]\nper_ip = \"2/min\"\nper_ip_burst = 2\nper_principal = \"off\"\n\n\
         [network]\ntrusted_proxies = [\"127.0.0.1/32\"]\ndeny = [\"203.0.113.66\"]\n",
    );
    let relay = serve(&cfg, &[]);
    let http = reqwest::Client::new();
    let from = |xff: &'static str| [("x-forwarded-for", xff)];
    for _ in 0..2 {
        let res = post(&http, &relay.url, &from("203.0.113.7"), &ping()).await;
        assert_eq!(
            res.status(),
            400,
            "passes the limits, then misses a session"
        );
    }
    expect_429(
        post(&http, &relay.url, &from("203.0.113.7"), &ping()).await,
        "third",
    )
    .await;
    // A hop the client wrote itself, left of the proxy's entry, changes nothing.
    let spoofed = post(
        &http,
        &relay.url,
        &from("198.51.100.1, 203.0.113.7"),
        &ping(),
    )
    .await;
    expect_429(spoofed, "spoofed left hop").await;
    // Another forwarded client has its own bucket; so does the proxy itself.
    let res = post(&http, &relay.url, &from("203.0.113.8"), &ping()).await;
    assert_eq!(res.status(), 400);
    let res = post(
        &http,
        &relay.url,
        &[("forwarded", "for=\"203.0.113.9:80\"")],
        &ping(),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post(&http, &relay.url, &[], &ping()).await;
    assert_eq!(res.status(), 400);
    // Deny applies to the forwarded client, before anything else.
    expect_403_ip(
        post(&http, &relay.url, &from("203.0.113.66"), &ping()).await,
        "deny",
    )
    .await;
    let mapped = post(&http, &relay.url, &from("::ffff:203.0.113.66"), &ping()).await;
    expect_403_ip(mapped, "mapped deny").await;
}

#[tokio::test]
async fn d6_new_sessions_do_not_dodge_the_principal_rate() {
    let (alice, a_block) = api_key("a", "alice");
    let (bob, b_block) = api_key("b", "bob");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n\n\
         [limits]\nper_principal = \"4/min\"\nper_principal_burst = 4\n"
    ));
    let relay = serve(&cfg, &["--resource", RESOURCE]);
    let http = reqwest::Client::new();
    let a = [("x-api-key", alice.as_str())];
    let mut sessions = Vec::new();
    for i in 0..4 {
        let res = post(&http, &relay.url, &a, &init_request(json!(i), VERSION)).await;
        sessions.push(session_of(res).await);
    }
    sessions.dedup();
    assert_eq!(sessions.len(), 4, "each initialize opened its own session");
    let res = post(&http, &relay.url, &a, &init_request(json!(5), VERSION)).await;
    let ms = expect_429(res, "fifth initialize").await;
    assert!(ms > 1000, "{ms}");
    // The bucket is alice's, not a session's: her existing session is limited too.
    let mut in_session = a.to_vec();
    in_session.push(("mcp-session-id", sessions[0].as_str()));
    in_session.push(("mcp-protocol-version", VERSION));
    expect_429(
        post(&http, &relay.url, &in_session, &ping()).await,
        "old session",
    )
    .await;
    // Bob is not affected.
    let res = post(
        &http,
        &relay.url,
        &[("x-api-key", bob.as_str())],
        &init_request(json!(0), VERSION),
    )
    .await;
    session_of(res).await;
}
