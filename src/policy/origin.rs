//! Host and Origin checks against DNS rebinding and cross-site requests (PROTOCOL.md §2.1).
//!
//! On by default. On a loopback bind the allowed hosts are the loopback names (any port);
//! any other bind must name its hosts. A missing `Origin` passes (CLI clients); a present one
//! must be allowed exactly (scheme, host, port), or, on a loopback bind, be a loopback origin.
//! An empty allow-list is never "allow all".

use axum::http::HeaderMap;

use crate::error::Error;

/// The checks' configuration, built once at startup.
#[derive(Debug, Clone)]
pub(crate) struct OriginGuard {
    /// Loopback names are accepted (loopback bind).
    pub loopback: bool,
    /// Extra allowed hosts (`name` matches any port, `name:port` only that port).
    pub hosts: Vec<String>,
    /// Allowed origins, exact `scheme://host[:port]`, lowercase.
    pub origins: Vec<String>,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl OriginGuard {
    /// Host first (rebinding), then Origin.
    pub(crate) fn check(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), Error> {
        let hosts: Vec<_> = headers.get_all(axum::http::header::HOST).iter().collect();
        let host = match (hosts.as_slice(), authority) {
            ([one], _) => one.to_str().map_err(|_| Error::HostDenied)?,
            ([], Some(a)) => a,
            _ => return Err(Error::HostDenied),
        };
        if !self.host_allowed(&host.to_ascii_lowercase()) {
            return Err(Error::HostDenied);
        }
        let origins: Vec<_> = headers.get_all(axum::http::header::ORIGIN).iter().collect();
        match origins.as_slice() {
            [] => Ok(()),
            [one] => {
                let origin = one.to_str().map_err(|_| Error::OriginDenied)?;
                if self.origin_allowed(&origin.to_ascii_lowercase()) {
                    Ok(())
                } else {
                    Err(Error::OriginDenied)
                }
            }
            _ => Err(Error::OriginDenied),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = split_port(host).0;
        if self.loopback && LOOPBACK_NAMES.contains(&name) {
            return true;
        }
        self.hosts.iter().any(|h| h == host || h == name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        self.loopback && !rest.contains('/') && LOOPBACK_NAMES.contains(&split_port(rest).0)
    }
}

/// Splits `host[:port]`, keeping IPv6 brackets.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => (&host[..=i], host[i + 1..].strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn check(guard: &OriginGuard, host: Option<&str>, origin: Option<&str>) -> Result<(), Error> {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert("host", HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = origin {
            h.insert("origin", HeaderValue::from_str(v).unwrap());
        }
        guard.check(&h, None)
    }

    #[test]
    fn c1_c2_loopback_guard() {
        let g = OriginGuard {
            loopback: true,
            hosts: vec![],
            origins: vec!["https://app.example.com".into()],
        };
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert!(check(&g, Some(ok), None).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "localhost.evil.com",
            "127.0.0.1.nip.io:80",
            "[::2]",
        ] {
            assert_eq!(check(&g, Some(bad), None), Err(Error::HostDenied), "{bad}");
        }
        assert_eq!(check(&g, None, None), Err(Error::HostDenied));
        for ok in [
            "http://localhost:3000",
            "https://app.example.com",
            "http://[::1]",
        ] {
            assert!(check(&g, Some("localhost"), Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "null",
            "http://evil.example.com",
            "https://app.example.com.evil.com",
            "http://app.example.com",
            "http://localhost.evil.com",
            "file://localhost",
        ] {
            assert_eq!(
                check(&g, Some("localhost"), Some(bad)),
                Err(Error::OriginDenied),
                "{bad}"
            );
        }
    }

    #[test]
    fn explicit_hosts_with_and_without_port() {
        let g = OriginGuard {
            loopback: false,
            hosts: vec!["mcp.example.com".into(), "10.0.0.5:8080".into()],
            origins: vec![],
        };
        assert!(check(&g, Some("mcp.example.com:443"), None).is_ok());
        assert!(check(&g, Some("10.0.0.5:8080"), None).is_ok());
        assert!(check(&g, Some("10.0.0.5:9090"), None).is_err());
        assert!(check(&g, Some("localhost"), None).is_err());
        assert!(check(&g, Some("mcp.example.com"), Some("http://localhost")).is_err());
    }
}
