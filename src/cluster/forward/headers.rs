//! What a forwarded request and its answer carry across the hop: the end-to-end headers
//! (hop-by-hop ones are dropped, RFC 9110 §7.6.1; the client's `Host` is kept), the
//! forwarding node's name, the client address as `X-Forwarded-For` (replacing the incoming
//! forwarded headers), and the owner's URL (its base URL from the configured peers, then the
//! original path and query, mounts included).
//!
//! Owns: header filtering and the target URL. Does not own: sending (`forward.rs`).

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use url::Url;

use crate::caller::ClientAddr;
use crate::cluster::FORWARDED_BY;

/// The session id the request names: the `Mcp-Session-Id` header, else the legacy
/// `sessionId` query parameter.
pub(super) fn session_of(req: &Request) -> Option<String> {
    let from_header = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    from_header.or_else(|| {
        let q = req.uri().query()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    })
}

/// The front a path belongs to, for the audit record: `/message` (mounted or not) is the
/// legacy SSE front's.
pub(super) fn transport_of(path: &str) -> &'static str {
    if path == "/message" || path.ends_with("/message") {
        "sse"
    } else {
        "streamable_http"
    }
}

/// The owner's URL for `uri`: `base` (whose path is a prefix) + the path and query; `None`
/// when the path is not plain (`plain_path`: `Url` would resolve its dot segments) or the
/// URL built does not stay under the base path.
pub(super) fn target(base: &Url, uri: &Uri) -> Option<Url> {
    if !plain_path(uri.path()) || !uri.path().starts_with('/') {
        return None;
    }
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{}", uri.path()));
    url.set_query(uri.query());
    let under = url.path().strip_prefix(prefix)?;
    (under.starts_with('/') && plain_path(url.path())).then_some(url)
}

/// A path whose segments are all plain: none is `.` or `..` (raw or percent-encoded, in any
/// case), none holds a backslash (raw or `%5C`) or an encoded slash. Such a path reaches the
/// owner exactly as it is, under the peer's base path.
pub(crate) fn plain_path(path: &str) -> bool {
    path.split('/').all(|seg| {
        let lower = seg.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        !(dots == "."
            || dots == ".."
            || lower.contains('\\')
            || lower.contains("%5c")
            || lower.contains("%2f"))
    })
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never carried across a hop.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether `name` is hop-by-hop, by the list above or because `Connection` names it.
fn hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    let n = name.as_str();
    if HOP_BY_HOP.contains(&n) || n.starts_with("proxy-") {
        return true;
    }
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(n))
}

/// The end-to-end headers of `headers`.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !hop_by_hop(name, headers) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The headers of the request to the owner: end to end ones, `mcp-relay-forwarded-by:
/// <node>`, and `X-Forwarded-For: <the client address this node resolved>` in place of the
/// incoming `X-Forwarded-For` and `Forwarded` (the owner believes it when the peer is a
/// trusted proxy: peers configured by IP address are, others are listed in
/// `trusted_proxies`).
///
/// `Host` is the one the client sent (`authority` for HTTP/2, which has no `Host` header),
/// not the peer's address: the owner checks it against the same `allowed_hosts` as every
/// replica, so peer addresses need not be allowed hosts.
pub(super) fn outbound(
    headers: &HeaderMap,
    authority: Option<&str>,
    node: &str,
    client: Option<ClientAddr>,
) -> HeaderMap {
    let mut out = end_to_end(headers);
    if !out.contains_key(header::HOST) {
        if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            out.insert(header::HOST, v);
        }
    }
    out.remove(FORWARDED_BY);
    if let Ok(v) = HeaderValue::from_str(node) {
        out.insert(FORWARDED_BY, v);
    }
    // The client as this node resolved it (through its trusted proxies, if any), in place of
    // whatever forwarded headers came in: a peer the owner trusts is believed for exactly
    // this address.
    out.remove("forwarded");
    out.remove("x-forwarded-for");
    if let Some(ip) = client.map(|c| c.ip.to_canonical()) {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            out.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    out
}

/// The headers of the owner's answer to pass back: end to end ones.
pub(super) fn inbound(headers: &HeaderMap) -> HeaderMap {
    end_to_end(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind_and_the_clients_host_travels() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("lb.example.com"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic eA=="),
        );
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("mcp-session-id", HeaderValue::from_static("r1.0000000a.ff"));
        h.insert("last-event-id", HeaderValue::from_static("3"));
        h.insert(FORWARDED_BY, HeaderValue::from_static("forged"));
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.insert("forwarded", HeaderValue::from_static("for=192.0.2.9"));
        let client = ClientAddr::from("198.51.100.2:4000".parse::<std::net::SocketAddr>().unwrap());
        let out = outbound(&h, Some("ignored.example.com"), "r0", Some(client));
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "transfer-encoding",
            "proxy-authorization",
        ] {
            assert!(!names.contains(&gone), "{gone} in {names:?}");
        }
        assert_eq!(out["host"], "lb.example.com");
        assert_eq!(out["authorization"], "Bearer t");
        assert_eq!(out["mcp-session-id"], "r1.0000000a.ff");
        assert_eq!(out["last-event-id"], "3");
        assert_eq!(out[FORWARDED_BY], "r0");
        assert_eq!(out["x-forwarded-for"], "198.51.100.2");
        assert!(out.get("forwarded").is_none());
    }

    #[test]
    fn the_client_resolved_behind_a_trusted_proxy_is_sent_alone() {
        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=198.51.100.4"));
        let client = ClientAddr {
            ip: "198.51.100.4".parse().unwrap(),
            port: None,
            via: Some("10.0.0.5:443".parse().unwrap()),
        };
        let out = outbound(&h, None, "r0", Some(client));
        assert_eq!(out["x-forwarded-for"], "198.51.100.4");
        assert!(out.get("forwarded").is_none());
    }

    #[test]
    fn an_http2_authority_becomes_the_host() {
        let out = outbound(&HeaderMap::new(), Some("mcp.example.com"), "r0", None);
        assert_eq!(out["host"], "mcp.example.com");
        assert!(out.get("x-forwarded-for").is_none());
    }

    #[test]
    fn target_keeps_the_base_path_then_the_path_and_query() {
        let base = Url::parse("http://10.0.0.11:8080").unwrap();
        let uri: Uri = "/servers/github/message?sessionId=r1.0000000a.ff"
            .parse()
            .unwrap();
        assert_eq!(
            target(&base, &uri).unwrap().as_str(),
            "http://10.0.0.11:8080/servers/github/message?sessionId=r1.0000000a.ff"
        );
        let base = Url::parse("https://relays.example.com/r1/").unwrap();
        let uri: Uri = "/mcp".parse().unwrap();
        assert_eq!(
            target(&base, &uri).unwrap().as_str(),
            "https://relays.example.com/r1/mcp"
        );
    }

    #[test]
    fn target_never_leaves_the_base_path() {
        let base = Url::parse("http://127.0.0.1:9/r1/").unwrap();
        for p in [
            "/../x",
            "/%2e%2e/admin/secret",
            "/.%2E/x",
            "/a/%2E%2E/%2e%2e/b",
            "/x/..",
        ] {
            let uri: Uri = p.parse().unwrap();
            assert!(target(&base, &uri).is_none(), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_backslashes_are_not_plain() {
        for p in ["/mcp", "/servers/github/message", "/a.b/c..d/.e"] {
            assert!(plain_path(p), "{p}");
        }
        for p in [
            "/../x",
            "/./x",
            "/%2e%2e/admin",
            "/.%2E/x",
            "/%2E/x",
            "/a\\..\\..\\b",
            "/a%5c..%5Cb",
            "/servers/a%2F..%2F/mcp",
            "/mcp/..",
        ] {
            assert!(!plain_path(p), "{p}");
        }
    }

    #[test]
    fn message_paths_are_the_sse_front() {
        assert_eq!(transport_of("/message"), "sse");
        assert_eq!(transport_of("/servers/a/message"), "sse");
        assert_eq!(transport_of("/mcp"), "streamable_http");
    }
}
