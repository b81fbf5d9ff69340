//! Phase 1 (STYLE.md §7): who the client is on the network, and whether it may connect.
//!
//! The client IP is the socket peer, unless that peer is a configured trusted proxy: then
//! `X-Forwarded-For` is walked right to left, skipping trusted hops (or, without it,
//! `Forwarded: for=`). Forwarded headers from anyone else are ignored (SECURITY.md §1,
//! CVE-2026-40575: trusted proxies default to none). IPv4-mapped IPv6 addresses count as
//! IPv4. Then `deny` (wins) and `allow` (absent = everyone; empty in the file = config
//! error). The resolved [`ClientAddr`] is what the audit `client` field (and `peer`, the proxy,
//! when forwarded) and the per-IP limiter see.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;

use crate::caller::ClientAddr;

/// `[network]` of the `--config` file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkConfig {
    /// Client networks allowed to connect (CIDRs or addresses). Absent: everyone; an empty
    /// list is a config error (it would lock everyone out, or worse, read as "all").
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Client networks refused (403 -31002 on HTTP and WebSocket, connection closed on TCP).
    /// Wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed. Default
    /// none: the socket peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Browser origins answered with CORS headers (exact `scheme://host[:port]`, or `"*"`
    /// for any origin without credentials); they are also allowed origins. Joins
    /// `--cors-origin`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// The validated IP rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpRules {
    allow: Option<Vec<IpNet>>,
    deny: Vec<IpNet>,
    trusted: Vec<IpNet>,
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (one host); IPv4-mapped IPv6
/// networks become IPv4.
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{s}` is not an IP network (examples: 10.0.0.0/8, ::1)"))?,
    };
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        n => n,
    }
    .trunc())
}

impl NetworkConfig {
    /// Validates the IP parts (`cors_origins` are checked by `cors.rs`).
    pub(crate) fn build(&self, errors: &mut Vec<String>) -> IpRules {
        let mut list = |key: &str, items: &[String]| -> Vec<IpNet> {
            items
                .iter()
                .filter_map(|s| {
                    parse_net(s)
                        .map_err(|e| errors.push(format!("network.{key}: {e}")))
                        .ok()
                })
                .collect()
        };
        let allow = self.allow.as_deref().map(|a| list("allow", a));
        let deny = list("deny", &self.deny);
        let trusted = list("trusted_proxies", &self.trusted_proxies);
        if self.allow.as_ref().is_some_and(Vec::is_empty) {
            errors.push(
                "network.allow is empty: it would refuse everyone (remove it to allow all)".into(),
            );
        }
        IpRules {
            allow,
            deny,
            trusted,
        }
    }
}

impl IpRules {
    /// Whether any rule or proxy is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty() && self.trusted.is_empty()
    }

    /// Whether `ip` may connect: deny wins, then the allow list (absent = all).
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow
            .as_ref()
            .is_none_or(|a| a.iter().any(|n| n.contains(&ip)))
    }

    /// Whether any trusted proxy is configured.
    pub(crate) fn has_trusted(&self) -> bool {
        !self.trusted.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the socket peer (canonical), or, when that peer is a trusted
    /// proxy, the first untrusted hop of the forwarded chain, with the port that hop carried
    /// (if any) and the proxy as `via`.
    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let direct = ClientAddr::from(peer);
        if !self.trusts(direct.ip) {
            return direct;
        }
        let xff = header_items(headers, "x-forwarded-for");
        let hops: Vec<Option<Hop>> = if !xff.is_empty() {
            xff.iter().map(|h| parse_hop(h)).collect()
        } else {
            header_items(headers, "forwarded")
                .iter()
                .map(|el| forwarded_for(el).and_then(parse_hop))
                .collect()
        };
        match self.walk(direct.ip, &hops) {
            Some((ip, port)) => ClientAddr {
                ip,
                port,
                via: Some(peer),
            },
            None => direct,
        }
    }

    /// Right to left: while the current address is a trusted proxy, believe the hop it
    /// reported; an unreadable hop stops the walk at the last address known. `None` when no
    /// hop was believed (the peer itself is the client).
    fn walk(&self, peer: IpAddr, hops: &[Option<Hop>]) -> Option<Hop> {
        let mut addr = peer;
        let mut believed = None;
        for hop in hops.iter().rev() {
            if !self.trusts(addr) {
                break;
            }
            match hop {
                Some((ip, port)) => {
                    addr = ip.to_canonical();
                    believed = Some((addr, *port));
                }
                None => break,
            }
        }
        believed
    }
}

/// One forwarded hop: the address and, when the header carried one, its port.
type Hop = (IpAddr, Option<u16>);

/// Every comma-separated item of every field of `name`, in order.
fn header_items(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .collect()
}

/// The `for=` value of one `Forwarded` element (RFC 7239), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`; anything else
/// (`unknown`, obfuscated names, junk) is unreadable.
fn parse_hop(s: &str) -> Option<Hop> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
        .map(|ip| (ip, None))
}

#[cfg(test)]
mod tests;
