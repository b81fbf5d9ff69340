//! The bridge's URL rules (SECURITY.md §6): which URLs may be opened in a browser
//! ([`browser_url`], the CVE-2025-6514 lesson) and which may be fetched during OAuth discovery
//! and token requests ([`checked_fetch`], the SSRF guard: https only, the host resolved once
//! and checked against loopback, private, link-local, CGNAT, ULA and mapped forms, then the
//! connection made to that checked address; no redirects; bounded time). Errors never carry
//! fetched content. The OAuth flow is in `oauth.rs`, the launcher in `browser.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::{RequestBuilder, Response, Url};

/// Per-request time limit for every discovery, registration and token request.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a URL was refused or a guarded fetch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("not a valid url")]
    Parse,
    #[error("url contains control characters or whitespace")]
    Characters,
    #[error("url scheme not allowed")]
    Scheme,
    #[error("url carries credentials")]
    Credentials,
    #[error("url has no host")]
    NoHost,
    #[error("host did not resolve")]
    Resolve,
    #[error("host resolves to a blocked address")]
    Blocked,
    #[error("request failed")]
    Network(#[source] reqwest::Error),
    #[error("request timed out")]
    Timeout,
    #[error("redirect refused")]
    Redirect,
    #[error("response larger than the cap")]
    TooLarge,
}

/// A URL that may be handed to a browser: parsed, `https` (or `http` to a loopback host),
/// no control characters, whitespace or credentials, re-serialized (so it starts with its
/// scheme and can never read as a command-line flag).
pub(crate) fn browser_url(s: &str) -> Result<Url, Error> {
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Characters);
    }
    let url = Url::parse(s).map_err(|_| Error::Parse)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Credentials);
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        _ => return Err(Error::Scheme),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::NoHost);
    }
    // Re-serialize and re-check: what goes to the launcher is what the parser understood.
    let out = url.as_str();
    if out.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::Characters);
    }
    Url::parse(out).map_err(|_| Error::Parse)
}

/// True for `localhost`, 127.0.0.0/8 and `[::1]` (for loopback-only exceptions).
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match (host_ip(url), url.host_str()) {
        (Some(ip), _) => ip.is_loopback(),
        (None, Some(d)) => d.eq_ignore_ascii_case("localhost"),
        (None, None) => false,
    }
}

/// The URL's host as an address when it is an IP literal (`[v6]` unbracketed).
fn host_ip(url: &Url) -> Option<IpAddr> {
    let h = url.host_str()?;
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.parse().ok()
}

/// True for addresses a discovery fetch must never reach: loopback, RFC 1918, link-local
/// (incl. 169.254.169.254), CGNAT 100.64/10, unspecified, broadcast, multicast, documentation,
/// ULA fc00::/7, fe80::/10, and the IPv4-mapped / -compatible / NAT64 forms of blocked v4.
pub(crate) fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => blocked_v4(a),
        IpAddr::V6(a) => blocked_v6(a),
    }
}

fn blocked_v4(a: Ipv4Addr) -> bool {
    // A failed constant prefix would be 0.0.0.0/0: fail closed.
    let cgnat = Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).unwrap_or_default();
    let this_net = Ipv4Net::new(Ipv4Addr::new(0, 0, 0, 0), 8).unwrap_or_default();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || cgnat.contains(&a)
        || this_net.contains(&a)
}

fn blocked_v6(a: Ipv6Addr) -> bool {
    let ula: Ipv6Net =
        Ipv6Net::new(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7).unwrap_or_default();
    let link: Ipv6Net =
        Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10).unwrap_or_default();
    let nat64: Ipv6Net =
        Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96).unwrap_or_default();
    if let Some(v4) = a.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    if nat64.contains(&a) {
        let o = a.octets();
        return blocked_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // Deprecated IPv4-compatible form (::a.b.c.d); `::` and `::1` are caught below as well.
    let seg = a.segments();
    if seg[..6].iter().all(|s| *s == 0) && !a.is_unspecified() && !a.is_loopback() {
        return true;
    }
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || ula.contains(&a)
        || link.contains(&a)
}

/// Fetches `url` under the SSRF rules and returns the response head (the body is the
/// caller's to read with [`read_capped`]). `build` makes the request from the client.
/// `allow_private` (local development) permits loopback and private addresses and plain
/// `http` to a loopback host; `trusted_origin` (the configured MCP server's own origin) may
/// be fetched whatever its address, as the server itself may be the relay on localhost.
pub(crate) async fn checked_fetch<F>(
    url: &Url,
    allow_private: bool,
    trusted_origin: Option<&Url>,
    build: F,
) -> Result<Response, Error>
where
    F: FnOnce(&reqwest::Client, Url) -> RequestBuilder,
{
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Credentials);
    }
    let trusted = trusted_origin.is_some_and(|t| t.origin() == url.origin());
    match url.scheme() {
        "https" => {}
        "http" if trusted || (allow_private && is_loopback_host(url)) => {}
        _ => return Err(Error::Scheme),
    }
    let host = url.host_str().ok_or(Error::NoHost)?.to_owned();
    let port = url.port_or_known_default().ok_or(Error::NoHost)?;
    let addr = resolve(url, port).await?;
    if is_blocked(addr.ip()) && !(allow_private || trusted) {
        return Err(Error::Blocked);
    }
    let domain = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .resolve(&domain, addr)
        .user_agent(concat!("mcp-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Network(e.without_url()))?;
    let req = build(&client, url.clone());
    let res = match tokio::time::timeout(FETCH_TIMEOUT, req.send()).await {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => return Err(Error::Network(e.without_url())),
        Err(_) => return Err(Error::Timeout),
    };
    Ok(res)
}

/// Resolves the host once: an IP literal as it is, a name through the system resolver (the
/// first address; all must pass, so a name with one blocked address is refused).
async fn resolve(url: &Url, port: u16) -> Result<SocketAddr, Error> {
    if let Some(ip) = host_ip(url) {
        return Ok(SocketAddr::new(ip, port));
    }
    match url.host_str() {
        Some(d) => {
            let addrs: Vec<SocketAddr> =
                tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((d.to_owned(), port)))
                    .await
                    .map_err(|_| Error::Timeout)?
                    .map_err(|_| Error::Resolve)?
                    .collect();
            let first = *addrs.first().ok_or(Error::Resolve)?;
            // A name whose answers mix public and blocked addresses is reported as blocked.
            match addrs.iter().find(|a| is_blocked(a.ip())) {
                Some(blocked) => Ok(*blocked),
                None => Ok(first),
            }
        }
        None => Err(Error::NoHost),
    }
}

/// Reads a body of at most `max` bytes; errors say nothing about the content.
pub(crate) async fn read_capped(res: Response, max: usize) -> Result<Vec<u8>, Error> {
    use futures_util::StreamExt;
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(Error::TooLarge);
    }
    let mut buf = Vec::new();
    let mut chunks = res.bytes_stream();
    loop {
        let next = tokio::time::timeout(FETCH_TIMEOUT, chunks.next())
            .await
            .map_err(|_| Error::Timeout)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| Error::Network(e.without_url()))?;
        if buf.len() + chunk.len() > max {
            return Err(Error::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;
