//! The pure parts of console authentication: the same-origin rule, CSRF tokens, cookies.

use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn same_origin_is_the_host_the_request_names() {
    let ok = headers(&[
        ("host", "Admin.example:9090"),
        ("origin", "http://admin.example:9090"),
    ]);
    assert!(same_origin(&ok));
    let tls = headers(&[
        ("host", "admin.example"),
        ("origin", "https://admin.example"),
    ]);
    assert!(same_origin(&tls));
    for bad in [
        headers(&[
            ("host", "admin.example:9090"),
            ("origin", "http://evil.example:9090"),
        ]),
        headers(&[
            ("host", "admin.example:9090"),
            ("origin", "http://admin.example:9091"),
        ]),
        headers(&[
            ("host", "admin.example"),
            ("origin", "http://admin.example.evil.example"),
        ]),
        headers(&[("host", "admin.example"), ("origin", "null")]),
        headers(&[("host", "admin.example")]),
        headers(&[
            ("host", "admin.example"),
            ("origin", "http://admin.example"),
            ("origin", "http://evil.example"),
        ]),
    ] {
        assert!(!same_origin(&bad), "{bad:?}");
    }
}

#[test]
fn csrf_needs_the_sessions_token_unless_the_bearer_token_was_sent() {
    let browser = operator("user:alice", Some("Qm9hdHMtYW5kLWNhbmFscw".into()));
    assert!(csrf_ok(&browser, "Qm9hdHMtYW5kLWNhbmFscw"));
    assert!(!csrf_ok(&browser, "Qm9hdHMtYW5kLWNhbmFscX"));
    assert!(!csrf_ok(&browser, ""));
    assert!(csrf_ok(&operator(BEARER, None), ""));
    assert!(!csrf_ok(&operator(LOOPBACK, None), ""));
    assert!(!csrf_ok(&operator(ANONYMOUS, None), ""));
}

#[test]
fn the_session_cookie_is_http_only_strict_and_scoped_to_the_console() {
    let v = set_cookie("abc", false);
    let v = v.to_str().unwrap();
    assert!(v.starts_with("mcp-relay-console=abc;"), "{v}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(v.contains(part), "{v}");
    }
    assert!(!v.contains("Secure"));
    assert!(set_cookie("abc", true)
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
    let h = headers(&[("cookie", "a=1; mcp-relay-console=xyz"), ("cookie", "b=2")]);
    assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
    assert_eq!(cookie(&h, "c"), None);
}
