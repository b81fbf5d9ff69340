use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// One raw HTTP/1.1 GET with the given Host; the status and the body.
async fn get(port: u16, host: &str, target: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn f4_callback_checks_state_once_and_host() {
    let mut cb = Callback::bind(0).await.unwrap();
    let port = cb.port();
    let host = format!("127.0.0.1:{port}");
    cb.expect("s1");
    // Bad Host: 403, nothing delivered.
    let (st, _) = get(port, "evil.example", "/callback?code=c&state=s1").await;
    assert_eq!(st, 403);
    // Wrong state: 400, the flow keeps waiting.
    let (st, _) = get(port, &host, "/callback?code=c&state=nope").await;
    assert_eq!(st, 400);
    let (st, body) = get(
        port,
        &format!("localhost:{port}"),
        "/callback?code=c1&state=s1",
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
    let a = cb.wait(Duration::from_secs(2)).await.unwrap();
    assert_eq!(a.code, "c1");
    assert!(!format!("{a:?}").contains("c1"));
    // Replay: 409.
    let (st, _) = get(port, &host, "/callback?code=c1&state=s1").await;
    assert_eq!(st, 409);
    let (st, _) = get(port, &host, "/other?code=c1&state=s1").await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn f4_error_description_is_not_echoed() {
    let mut cb = Callback::bind(0).await.unwrap();
    let port = cb.port();
    cb.expect("s");
    let (st, body) = get(
        port,
        &format!("127.0.0.1:{port}"),
        "/callback?state=s&error=access_denied%3Cscript%3E&error_description=%3Cscript%3Ealert(1)%3C/script%3E",
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        !body.contains("<script>") && !body.contains("alert"),
        "{body}"
    );
    let err = cb.wait(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authorization refused by the server: access_deniedscript"
    );
}

#[tokio::test]
async fn f4_port_in_use_is_a_clear_error() {
    let cb = Callback::bind(0).await.unwrap();
    let err = Callback::bind(cb.port()).await.unwrap_err();
    assert!(matches!(err, Error::Bind(_)));
}

#[tokio::test]
async fn headless_delivery_checks_the_redirect_target() {
    let mut cb = Callback::bind(0).await.unwrap();
    cb.expect("st");
    let other = Url::parse("https://evil.example/callback?code=x&state=st").unwrap();
    assert_eq!(cb.deliver(&other), StatusCode::FORBIDDEN);
    let ours = Url::parse(&format!("{}?code=x&state=st", cb.redirect_uri())).unwrap();
    assert_eq!(cb.deliver(&ours), StatusCode::OK);
    assert_eq!(cb.wait(Duration::from_secs(1)).await.unwrap().code, "x");
    assert_eq!(cb.deliver(&ours), StatusCode::CONFLICT);
}

#[tokio::test]
#[cfg(unix)] // The stand-in launcher is a shell script.
async fn launcher_gets_the_url_as_one_argument() {
    let dir = std::env::temp_dir().join(format!(
        "mcp-relay-br-{}",
        crate::bridge::token_store::random_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("argv");
    let stub = dir.join("opener.sh");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$1\" > '{}'\n",
            out.display()
        ),
    )
    .unwrap();
    crate::os::fs::set_mode(&stub, 0o700);
    let url = crate::bridge::url_guard::browser_url("https://as.example/a?x=$(id)&y=;b").unwrap();
    assert!(open(&url, &Launcher::Program(stub)));
    for _ in 0..50 {
        if out.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got, format!("1\n{}\n", url.as_str()));
    let _ = std::fs::remove_dir_all(dir);
}
