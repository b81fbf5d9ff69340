//! CORS (SECURITY.md §8.C2): preflights allowed, denied and with the exposed headers, and a
//! wildcard origin never allowed credentials.

use super::*;

async fn preflight(relay: &Relay, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &relay.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-param-region",
        )
        .send()
        .await
        .unwrap()
}

fn h(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn c2_cors_preflight_allowed_denied_and_exposed_headers() {
    const APP: &str = "https://app.example.com";
    let (key, block) = api_key("a", "alice");
    let secret = String::from_utf8(
        Command::new(RELAY)
            .args(["token", "secret"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cfg = config(&format!("[auth]\nresource = \"{RESOURCE}\"\n{block}\n"));
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(&[
        "--resource",
        RESOURCE,
        "--jwt-secret",
        "env:LIMITS_IT_SECRET",
    ]);
    args.extend_from_slice(&["--cors-origin", APP, "--", crate::support::FIXTURE]);
    let relay = Relay::start_env(&args, &[("LIMITS_IT_SECRET", secret.trim())]);

    // Allowed: 204 without credentials, exact origin, credentials, never `*`.
    let res = preflight(&relay, APP).await;
    assert_eq!(res.status(), 204);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        h(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(h(&res, "vary").unwrap().contains("Origin"));
    let methods = h(&res, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h(&res, "access-control-allow-headers").unwrap();
    for name in [
        "Authorization",
        "Content-Type",
        "Mcp-Session-Id",
        "Mcp-Protocol-Version",
        "Last-Event-ID",
        "X-API-Key",
        "mcp-param-region",
    ] {
        assert!(headers.contains(name), "{name}: {headers}");
    }
    assert!(h(&res, "access-control-max-age").is_some());
    // Denied origin: 403, no CORS headers.
    let res = preflight(&relay, "https://app.example.com.evil.com").await;
    assert_eq!(res.status(), 403);
    assert!(h(&res, "access-control-allow-origin").is_none());
    // A loopback origin passes the origin check but is not a CORS origin: no ACAO.
    let res = preflight(&relay, "http://localhost:3000").await;
    assert!(h(&res, "access-control-allow-origin").is_none());

    // Actual requests: allowed origin echoed with the exposed headers, on success and 401.
    let http = reqwest::Client::new();
    let res = post(
        &http,
        &relay.url,
        &[("origin", APP), ("x-api-key", &key)],
        &init_request(json!(0), VERSION),
    )
    .await;
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    let exposed = h(&res, "access-control-expose-headers").unwrap();
    for name in ["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    session_of(res).await;
    let res = post(&http, &relay.url, &[("origin", APP)], &ping()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    // The protected-resource metadata is readable cross-origin too.
    let res = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            relay.base
        ))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
}

#[tokio::test]
async fn c2_wildcard_cors_never_allows_credentials() {
    let relay = Relay::start(&["--cors-origin", "*"], &[]);
    let res = preflight(&relay, "https://anywhere.example").await;
    assert_eq!(res.status(), 204);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some("*"));
    assert!(h(&res, "access-control-allow-credentials").is_none());
    let res = post(
        &reqwest::Client::new(),
        &relay.url,
        &[("origin", "https://anywhere.example")],
        &init_request(json!(0), VERSION),
    )
    .await;
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some("*"));
    session_of(res).await;
    // The Host check still holds.
    let res = reqwest::Client::new()
        .post(&relay.url)
        .header("host", "evil.example.com")
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
