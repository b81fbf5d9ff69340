use super::*;

#[test]
fn f1_browser_url_refuses_hostile_values() {
    for bad in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "$(touch pwned)",
        "--upload-pack=x",
        "ms-settings:",
        "\\\\host\\share",
        "https://as.example/a\r\nb",
        "https://as.example/a b",
        "https://as.example/\u{7f}",
        "http://as.example/authorize",
        "https://user:pw@as.example/authorize",
        "data:text/html,x",
        "",
    ] {
        assert!(browser_url(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn browser_url_keeps_https_and_loopback_http() {
    let u = browser_url("https://as.example/authorize?state=a%20b&x=y").unwrap();
    assert_eq!(u.as_str(), "https://as.example/authorize?state=a%20b&x=y");
    assert!(browser_url("http://127.0.0.1:8080/authorize").is_ok());
    assert!(browser_url("http://localhost:8080/authorize").is_ok());
    assert!(browser_url("http://[::1]:8080/authorize").is_ok());
}

#[test]
fn blocked_ranges_are_recognized() {
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "ff02::1",
    ] {
        assert!(is_blocked(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80ad:1c3e:5f16",
        "100.128.0.1",
    ] {
        assert!(!is_blocked(ip.parse().unwrap()), "{ip}");
    }
}

/// A listener that must never see a connection.
async fn trap() -> (tokio::net::TcpListener, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

async fn fetch(url: &str, allow_private: bool) -> Result<Response, Error> {
    let url = Url::parse(url).unwrap();
    checked_fetch(&url, allow_private, None, |h, u| h.get(u)).await
}

#[tokio::test]
async fn f2_ssrf_targets_are_refused_without_connecting() {
    let (l, port) = trap().await;
    let cases = [
        (format!("https://127.0.0.1:{port}/"), Error::Blocked),
        (format!("http://127.0.0.1:{port}/"), Error::Scheme),
        (format!("https://localhost:{port}/"), Error::Blocked),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/"),
            Error::Blocked,
        ),
        ("https://[::ffff:a9fe:a9fe]/".to_owned(), Error::Blocked),
        (
            "https://169.254.169.254/latest/meta-data".to_owned(),
            Error::Blocked,
        ),
        ("https://10.0.0.1/".to_owned(), Error::Blocked),
        ("ftp://example.com/".to_owned(), Error::Scheme),
        ("https://u:p@example.com/".to_owned(), Error::Credentials),
    ];
    for (url, want) in cases {
        let got = fetch(&url, false).await.err();
        assert_eq!(
            got.as_ref().map(std::mem::discriminant),
            Some(std::mem::discriminant(&want)),
            "{url}: {got:?}"
        );
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
    assert!(accepted.is_err(), "a blocked target was connected to");
}

#[tokio::test]
async fn allow_private_reaches_loopback_but_follows_no_redirect() {
    let (l, port) = trap().await;
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let res = fetch(&url, true).await.unwrap();
    assert_eq!(res.status().as_u16(), 302);
}
