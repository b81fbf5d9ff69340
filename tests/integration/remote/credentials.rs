//! Issue 14, bug 2: `serve --upstream` authenticates to a remote relay that requires it, with
//! `--upstream-bearer-env`, `--upstream-header` (as `[serve]` keys too), an `--mcp-servers`
//! entry's `headers`, and the OAuth client credentials grant against a stand-in token
//! endpoint. On main the flags did not exist and an entry's headers were dropped (401).

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Form;
use axum::routing::post as post_route;

use super::*;
use crate::support::{init_request, mint_api_key, mint_jwt, tempdir, RELAY};

const VAR: &str = "MCP_RELAY_IT_UPSTREAM_KEY";

/// The front's client: initialize and one echo call; the echoed text, or the error.
async fn echo_through(front: &Relay) -> Result<String, String> {
    let c = HttpClient::new(&front.url);
    let init = c.post(init_request(json!(0), "2025-11-25")).await;
    let first = init.messages().first().cloned().unwrap_or(Value::Null);
    if init.status != 200 || first.get("result").is_none() {
        return Err(format!("{} {first}", init.status));
    }
    let c = HttpClient {
        session: init.header("mcp-session-id"),
        version: Some("2025-11-25".into()),
        ..c
    };
    let ack = c
        .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    assert_eq!(ack.status, 202);
    let r = c
        .call(json!(1), "echo", json!({"text": "upstream-auth"}))
        .await;
    let m = r.messages().first().cloned().unwrap_or(Value::Null);
    if m.get("result").is_none() {
        return Err(format!("{m}"));
    }
    Ok(text_of(&m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_authenticates_to_a_keyed_upstream_by_flag_config_key_and_mcp_servers_headers() {
    let (key, block) = mint_api_key(&["--id", "front"]);
    let dir = tempdir();
    let b_cfg = dir.join("b.toml");
    std::fs::write(&b_cfg, &block).unwrap();
    let b = Relay::start(&["--config", b_cfg.to_str().unwrap()], &[]);
    let listen = ["serve", "--listen", "127.0.0.1:0"];

    // Without credentials the upstream refuses: the test can fail.
    let bare = Relay::start_raw(&[&listen[..], &["--upstream", &b.url]].concat());
    assert!(echo_through(&bare).await.is_err());

    // --upstream-bearer-env.
    let a = Relay::start_env(
        &[
            &listen[..],
            &["--upstream", &b.url, "--upstream-bearer-env", VAR],
        ]
        .concat(),
        &[(VAR, &key)],
    );
    assert_eq!(echo_through(&a).await.as_deref(), Ok("upstream-auth"));
    assert!(!a.logs().contains(&key), "key in the logs");

    // `[serve]` keys: the header value is a reference.
    let a_cfg = dir.join("a.toml");
    std::fs::write(
        &a_cfg,
        format!(
            "[serve]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nupstream_header = [\"X-API-Key: env:{VAR}\", \"X-Tenant: acme\"]\n",
            b.url
        ),
    )
    .unwrap();
    let a = Relay::start_env(
        &["serve", "--config", a_cfg.to_str().unwrap()],
        &[(VAR, &key)],
    );
    assert_eq!(echo_through(&a).await.as_deref(), Ok("upstream-auth"));

    // An --mcp-servers `url` entry with `headers` (VS Code's `servers`, `${env:…}`).
    let mcp = dir.join("mcp.json");
    std::fs::write(
        &mcp,
        json!({"servers": {"b": {"type": "http", "url": b.url,
            "headers": {"Authorization": format!("Bearer ${{env:{VAR}}}")}}}})
        .to_string(),
    )
    .unwrap();
    let a = Relay::start_env(
        &[&listen[..], &["--mcp-servers", mcp.to_str().unwrap()]].concat(),
        &[(VAR, &key)],
    );
    assert_eq!(echo_through(&a).await.as_deref(), Ok("upstream-auth"));
    assert!(!a.logs().contains(&key), "key in the logs");

    // A literal credential in the config is refused by check-config, with its key.
    let lit = dir.join("literal.toml");
    std::fs::write(
        &lit,
        format!(
            "[serve]\nupstream = \"{}\"\nupstream_header = [\"Authorization: Bearer abc\"]\n",
            b.url
        ),
    )
    .unwrap();
    let out = std::process::Command::new(RELAY)
        .arg("check-config")
        .arg(&lit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be a reference"), "{err}");
}

/// A stand-in token endpoint: the client credentials grant with Basic `front:s3cret`
/// answers `token`; it counts the grants.
async fn token_endpoint(token: String) -> (String, Arc<AtomicUsize>) {
    let grants = Arc::new(AtomicUsize::new(0));
    let count = grants.clone();
    let app = axum::Router::new().route(
        "/token",
        post_route(
            move |headers: HeaderMap, Form(f): Form<std::collections::HashMap<String, String>>| {
                let (token, count) = (token.clone(), count.clone());
                async move {
                    use base64::Engine;
                    let basic = base64::engine::general_purpose::STANDARD.encode("front:s3cret");
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some(&format!("Basic {basic}"));
                    let grant =
                        f.get("grant_type").map(String::as_str) == Some("client_credentials");
                    if !authorized || !grant || f.get("scope").map(String::as_str) != Some("mcp") {
                        return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}")
                            .into_response();
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"access_token": token, "token_type": "Bearer",
                        "expires_in": 3600}))
                    .into_response()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/token"), grants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_gets_a_client_credentials_token_for_a_jwt_upstream_and_caches_it() {
    const SECRET_VAR: &str = "MCP_RELAY_IT_B_JWT";
    const SECRET: &str = "q7Vd2-XkM9pLr4Zt_Ws8NbHc1Yf6JgUa3OeKi0Tn5Rm";
    const RESOURCE: &str = "https://b.example/mcp";
    let jwt = mint_jwt(SECRET_VAR, SECRET, "front", "reader", RESOURCE);
    let (token_url, grants) = token_endpoint(jwt).await;
    let b = Relay::start_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--resource",
            RESOURCE,
            "--jwt-secret",
            &format!("env:{SECRET_VAR}"),
            "--",
            crate::support::FIXTURE,
        ],
        &[(SECRET_VAR, SECRET)],
    );
    let secret_var = "MCP_RELAY_IT_CLIENT_SECRET";
    // The front relay, holding `client_secret` for the token endpoint.
    let front = |client_secret: &str| {
        Relay::start_env(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &b.url,
                "--upstream-oauth-token-url",
                &token_url,
                "--upstream-oauth-client-id",
                "front",
                "--upstream-oauth-client-secret-env",
                secret_var,
                "--upstream-oauth-scope",
                "mcp",
            ],
            &[(secret_var, client_secret)],
        )
    };
    let a = front("s3cret");
    assert_eq!(
        echo_through(&a).await.as_deref(),
        Ok("upstream-auth"),
        "{}",
        a.logs()
    );
    // A second session reuses the cached token.
    assert_eq!(echo_through(&a).await.as_deref(), Ok("upstream-auth"));
    assert_eq!(grants.load(Ordering::SeqCst), 1);
    assert!(!a.logs().contains("s3cret"));

    // A wrong client secret: no token, the upstream refuses, the client gets an error.
    let a = front("wrong");
    assert!(echo_through(&a).await.is_err());
    // The log line comes from the link's task and the relay's stderr reader: wait for it.
    let logged = crate::support::settles(|| a.logs().contains("upstream token request failed"));
    assert!(logged.await, "{}", a.logs());
}
