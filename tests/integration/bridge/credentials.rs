//! Credentials passed through to the server: `--header-file`, `--bearer-env` and `--header`
//! over every transport, never logged; without them the host gets an error, not a hang.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_passes_api_keys_from_header_file_and_bearer_env_and_never_logs_them() {
    let dir = tempdir();
    let (key, s) = keyed_server(&dir);
    let record = dir.join("rec.log");
    let tcp = s.tcp_url().await;

    // --header-file with `X-API-Key: …` (and a comment line).
    let headers = dir.join("headers");
    std::fs::write(&headers, format!("# the relay's key\nX-API-Key: {key}\n")).unwrap();
    for url in [
        s.url.clone(),
        s.ws_url(),
        format!("{}/sse", s.base),
        tcp.clone(),
    ] {
        let mut b = Bridge::spawn_env(
            &["--header-file", headers.to_str().unwrap(), &url],
            &[],
            "debug",
        );
        b.initialize().await;
        let r = b.call(json!(1), "echo", json!({"text": "keyed"})).await;
        assert_eq!(text_of(&r), "keyed", "{url}: {r}");
        let (code, _) = b.eof().await;
        assert_eq!(code, Some(0));
        assert!(!b.stderr().contains(&key), "{url}: key on stderr");
    }

    // --bearer-env: the variable is set on the bridge's Command only.
    let env = "MCP_RELAY_BRIDGE_IT_TOKEN";
    assert!(std::env::var_os(env).is_none());
    let mut b = Bridge::spawn_env(&["--bearer-env", env, &s.url], &[(env, &key)], "debug");
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "bearer"})).await;
    assert_eq!(text_of(&r), "bearer", "{r}");
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(!b.stderr().contains(&key), "key on stderr");

    // --header on argv, debug logging: the value is still never logged (§8.F5).
    let mut b = Bridge::spawn_env(
        &["--header", &format!("Authorization: Bearer {key}"), &s.url],
        &[],
        "debug,mcp_relay=trace",
    );
    b.initialize().await;
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(!b.stderr().contains(&key), "key on stderr");

    // Without credentials: the host's initialize gets an error answer, no hang, nothing
    // reached the server beyond what the keyed bridges sent.
    let before = host_inits(&record);
    for extra in [&["--oauth", "off"][..], &[][..]] {
        let mut args = extra.to_vec();
        args.push(&s.url);
        let mut b = Bridge::spawn(&args);
        let init = b.initialize_raw().await;
        assert!(init.get("error").is_some(), "{init}\n{}", b.stderr());
        assert!(init.get("result").is_none());
        assert!(b.alive(), "the bridge stays up for the host");
        let (code, took) = b.eof().await;
        assert_eq!(code, Some(0));
        assert!(took < Duration::from_secs(2), "{took:?}");
        b.assert_clean();
    }
    assert_eq!(host_inits(&record), before);
    // A --bearer-env naming an unset variable is a usage error before anything runs.
    let out = StdCommand::new(RELAY)
        .args([
            "connect",
            "--bearer-env",
            "MCP_RELAY_BRIDGE_IT_UNSET",
            &s.url,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCP_RELAY_BRIDGE_IT_UNSET"));
}
