//! Issue 14, bug 6: `token jwt` mints for the audience the relay really expects (from its
//! config, on any port), and the relay says in its own log why a token was refused.

use super::*;

const VAR: &str = "MCP_RELAY_AUDIENCE_IT_SECRET";

/// `mcp-relay token jwt` with `args`, the secret in its environment only: (exit, out, err).
fn token_jwt(secret: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(RELAY)
        .args(["token", "jwt", "--secret", &format!("env:{VAR}")])
        .args(["--user", "ada", "--roles", "admin", "--expires-in", "1h"])
        .args(args)
        .env(VAR, secret)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap().trim().to_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

fn aud_of(token: &str) -> Value {
    let claims = token.split('.').nth(1).unwrap();
    serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()["aud"]
        .clone()
}

#[tokio::test]
async fn token_jwt_with_the_relays_config_is_accepted_on_a_port_other_than_8080() {
    let secret = String::from_utf8(
        Command::new(RELAY)
            .args(["token", "secret"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    // A free port that is not 8080, named in the config as operators do.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_ne!(port, 8080);
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\njwt_secret = \"env:{VAR}\"\ncommand = [{FIXTURE:?}]\n"
        ),
    )
    .unwrap();
    let (code, token, err) = token_jwt(&secret, &["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(aud_of(&token), format!("http://127.0.0.1:{port}/mcp"));
    // No audience and no config, and nobody at a terminal to ask: a clear error, no token.
    let (code, out, err) = token_jwt(&secret, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.is_empty());
    assert!(
        err.contains("--audience") && err.contains("--config"),
        "{err}"
    );
    let relay = Relay::start_env(
        &["serve", "--config", config.to_str().unwrap()],
        &[(VAR, &secret)],
    );
    assert!(relay.url.contains(&format!(":{port}/")), "{}", relay.url);
    assert_eq!(post_init(&relay.url, &[auth(&token)]).await.status(), 200);

    // A token for the old default audience: refused, and the relay says why, once a minute.
    let (_, stale, _) = token_jwt(&secret, &["--audience", "http://127.0.0.1:8080/mcp"]);
    for _ in 0..3 {
        let res = post_init(&relay.url, &[auth(&stale)]).await;
        assert_eq!(res.status(), 401);
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.contains("invalid_token"), "{www}");
    }
    // A refusal for another reason, logged after the three: once it is read, so are they.
    assert_eq!(post_init(&relay.url, &[]).await.status(), 401);
    crate::support::eventually("the missing_credential line", || {
        relay.logs().contains("missing_credential")
    })
    .await;
    let logs = relay.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("credential refused") && l.contains("bad_audience"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("INFO"), "{}", lines[0]);
    assert!(
        lines[0].contains("ada"),
        "the subject helps find the minter: {}",
        lines[0]
    );
    let expected = format!("expected=\"http://127.0.0.1:{port}/mcp\"");
    assert!(lines[0].contains(&expected), "{}", lines[0]);
    assert!(!logs.contains(&stale) && !logs.contains(&token) && !logs.contains(&secret));
}
