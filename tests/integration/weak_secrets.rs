//! Issue 14, bug 3: placeholder and guessable secrets are refused before any port is bound
//! (`serve` exits 64), by `check-config`, and on SIGHUP (the old policy stays). The errors
//! name the key and the reference, never the secret.

use std::process::Command;

use serde_json::json;

use crate::support::{hangup, mint_jwt, tempdir, Relay, FIXTURE, RELAY};

/// The value `deploy/k8s/secret.yaml` shipped before issue 14.
const K8S_PLACEHOLDER: &str = "REPLACE-ME-with-the-output-of-mcp-relay-token-secret";

fn token_secret() -> String {
    let out = Command::new(RELAY)
        .args(["token", "secret"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn assert_refused(out: &std::process::Output, key: &str, why: &str, secret: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(key), "names {key}: {err}");
    assert!(err.contains(why), "says {why}: {err}");
    assert!(!err.contains(secret), "prints the secret: {err}");
}

#[test]
fn issue14_placeholder_and_short_jwt_secrets_stop_serve_before_binding() {
    let dir = tempdir();
    let placeholder = dir.join("jwt-secret");
    std::fs::write(&placeholder, format!("{K8S_PLACEHOLDER}\n")).unwrap();
    // The port is taken by us: a relay that bound first would report that instead.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let reference = format!("file:{}", placeholder.display());
    let out = Command::new(RELAY)
        .args(["serve", "--listen", &addr, "--jwt-secret", &reference])
        .args(["--", FIXTURE])
        .output()
        .unwrap();
    assert_refused(&out, "--jwt-secret", "placeholder", K8S_PLACEHOLDER);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&reference));

    let short = "Qz8f-2mK_x7Lp";
    let out = Command::new(RELAY)
        .args([
            "serve",
            "--listen",
            &addr,
            "--jwt-secret",
            "env:WEAK_IT_SECRET",
        ])
        .args(["--", FIXTURE])
        .env("WEAK_IT_SECRET", short)
        .output()
        .unwrap();
    assert_refused(&out, "--jwt-secret", "at least 32 bytes", short);
}

#[test]
fn issue14_check_config_reports_weak_jwt_secrets_and_placeholder_key_hashes() {
    let dir = tempdir();
    std::fs::write(dir.join("jwt-secret"), K8S_PLACEHOLDER).unwrap();
    let low = "3f9a0c7e1b5d8f2a6c4e0b9d7f1a3c5e";
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[serve]\ncommand = [\"{FIXTURE}\"]\n\n[[auth.jwt]]\nissuer = \"one\"\nalgorithms = [\"HS256\"]\nsecret = \"file:{}\"\n\n\
             [[auth.api_keys]]\nid = \"probe\"\nprincipal = \"probe\"\nroles = []\nsha256 = \"{}\"\n",
            dir.join("jwt-secret").display(),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_refused(&out, "auth.jwt.secret", "placeholder", K8S_PLACEHOLDER);
    assert_refused(
        &out,
        "api key probe: sha256",
        "one character repeated",
        &"0".repeat(64),
    );

    // The deploy/k8s ConfigMap's form with `env:`: a low-entropy value, named by its variable.
    std::fs::write(
        &cfg,
        format!(
            "[serve]\ncommand = [\"{FIXTURE}\"]\n\n\
             [[auth.jwt]]\nissuer = \"two\"\nalgorithms = [\"HS256\"]\nsecret = \"env:WEAK_IT_LOW\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&cfg)
        .env("WEAK_IT_LOW", low)
        .output()
        .unwrap();
    assert_refused(&out, "env:WEAK_IT_LOW", "too little entropy", low);

    // A generated secret passes.
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&cfg)
        .env("WEAK_IT_LOW", token_secret())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn issue14_sighup_with_a_placeholder_secret_keeps_the_old_policy() {
    let dir = tempdir();
    let file = dir.join("jwt-secret");
    let good = token_secret();
    std::fs::write(&file, &good).unwrap();
    let reference = format!("file:{}", file.display());
    let audience = "https://mcp.example.com/mcp";
    let relay = Relay::start(&["--jwt-secret", &reference, "--resource", audience], &[]);
    let token = mint_jwt("WEAK_IT_GOOD", &good, "alice", "", audience);
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let post = |t: String| {
        reqwest::Client::new()
            .post(&relay.url)
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
    };
    assert_eq!(post(token.clone()).await.unwrap().status(), 200);

    std::fs::write(&file, K8S_PLACEHOLDER).unwrap();
    hangup(&relay);
    crate::support::eventually("the reload is refused", || {
        relay.logs().contains("configuration refused")
    })
    .await;
    let logs = relay.logs();
    assert!(logs.contains("placeholder"), "{logs}");
    assert!(!logs.contains(K8S_PLACEHOLDER), "{logs}");
    // The old secret still verifies; a token signed with the placeholder does not.
    assert_eq!(post(token).await.unwrap().status(), 200);
    let forged = mint_jwt("WEAK_IT_FORGED", K8S_PLACEHOLDER, "mallory", "", audience);
    assert_eq!(post(forged).await.unwrap().status(), 401);
}
