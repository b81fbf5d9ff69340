//! Why a remote link failed, in its user's terms: "the server refused the credential (HTTP
//! 401 from URL)", "cannot reach HOST:PORT: connection refused", "TLS: the certificate of
//! HOST is not valid: …", "the server answered 404 for URL: wrong path?".
//!
//! A link writes its latest cause into the `Cause` its child handle shares
//! (`upstream/stdio.rs`); the supervisor logs it when a start fails and, for `connect` only,
//! puts it in the `message` of the error the host gets (`error.rs`, `Error::LinkDown`): the
//! host is the user's own program. A relay's network clients never see it. URLs here are
//! log names (no query), and nothing of a credential is ever included.

use super::{Access, Error, RemoteSpec};

/// What the server's HTTP refusal means. `challenge` is its `WWW-Authenticate`; `oauth_tried`
/// says the credential source ran (and could not help).
pub(crate) fn refused(
    status: u16,
    url: &str,
    access: &Access,
    challenge: Option<&str>,
    oauth_tried: bool,
) -> String {
    let has_static = access.headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key")
    });
    match status {
        401 | 403 if has_static => format!(
            "the server refused the credential (HTTP {status} from {url}): check the API key or token given for it"
        ),
        401 | 403 if oauth_tried && challenge.is_some_and(|c| c.contains("resource_metadata")) => {
            format!(
                "the server requires authorization (HTTP {status} from {url}) and OAuth sign-in did not succeed (see the log above)"
            )
        }
        401 if oauth_tried => format!(
            "the server requires a credential (HTTP 401 from {url}) and offers no OAuth metadata: give an API key or token (a header or a bearer token)"
        ),
        401 => {
            let oauth = challenge.is_some_and(|c| c.contains("resource_metadata"));
            let how = if oauth {
                "it offers OAuth, which is switched off here; or give a token"
            } else {
                "give an API key or token (a header or a bearer token)"
            };
            format!("the server requires a credential (HTTP 401 from {url}): {how}")
        }
        403 => format!("the server refused access (HTTP 403 from {url})"),
        404 => format!(
            "the server answered 404 for {url}: wrong path? (Streamable HTTP servers usually serve /mcp, legacy SSE ones /sse)"
        ),
        405 => format!("the server does not accept MCP at {url} (HTTP 405): wrong path?"),
        s if s >= 500 => format!("the server failed (HTTP {s} from {url})"),
        s => format!("the server answered HTTP {s} for {url}"),
    }
}

/// A transport failure: TLS, connection refused, name not resolved, timeout. `host` is
/// `host:port` as the user wrote it.
pub(crate) fn transport(host: &str, e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(tls) = tls_error(e) {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        return format!("TLS: {}", tls_text(name, &tls));
    }
    let mut cause = Some(e);
    let mut last = e.to_string();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let why = match io.kind() {
                ConnectionRefused => "connection refused (is the server running on that port?)",
                TimedOut => "timed out",
                ConnectionReset | ConnectionAborted => "the connection was reset",
                HostUnreachable | NetworkUnreachable => "no route to the host",
                _ => "",
            };
            if !why.is_empty() {
                return format!("cannot reach {host}: {why}");
            }
        }
        let text = c.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return format!("cannot reach {host}: the name does not resolve");
        }
        last = text;
        cause = c.source();
    }
    format!("cannot reach {host}: {last}")
}

/// The rustls error somewhere in the chain (reqwest boxes some where only the text is left).
fn tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let rustls = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls {
            return Some(r.to_string());
        }
        let text = c.to_string();
        if text.starts_with("invalid peer certificate") || text.contains("InvalidCertificate") {
            return Some(text);
        }
        cause = c.source();
    }
    None
}

fn tls_text(name: &str, rustls: &str) -> String {
    let reason = if rustls.contains("UnknownIssuer") {
        "issued by an authority that is not trusted (a private CA or a self-signed certificate: name it with --ca-file / --upstream-ca)"
    } else if rustls.contains("NotValidForName") {
        "it does not name this host"
    } else if rustls.contains("Expired") {
        "it has expired"
    } else if rustls.contains("NotValidYet") {
        "it is not valid yet"
    } else if rustls.contains("certificate") {
        "it does not verify"
    } else {
        return format!("handshake with {name} failed: {rustls}");
    };
    format!("the certificate of {name} is not valid: {reason}")
}

/// Why the link to `spec` ended with `e`.
pub(crate) fn of_link(spec: &RemoteSpec, e: &Error) -> String {
    let name = spec.url();
    let (host, access) = match spec {
        RemoteSpec::Tcp { addr, access, .. } => (addr.clone(), access),
        RemoteSpec::WebSocket { url, access, .. } | RemoteSpec::Http { url, access, .. } => (
            reqwest::Url::parse(url).map_or_else(|_| name.clone(), |u| host_port(&u)),
            access,
        ),
    };
    match e {
        Error::ConnectTimeout => format!("cannot reach {host}: timed out"),
        Error::Http(super::http::error::Error::Status(s)) => {
            refused(s.as_u16(), &name, access, None, false)
        }
        Error::Http(super::http::error::Error::SessionGone) => {
            format!("the server at {name} ended the session")
        }
        Error::Http(
            e @ (super::http::error::Error::NotSse
            | super::http::error::Error::NoEndpoint
            | super::http::error::Error::BadEndpoint),
        ) => format!("{name} is not an MCP server (Streamable HTTP or legacy SSE): {e}"),
        Error::WsConnect(b) => match b.as_ref() {
            tokio_tungstenite::tungstenite::Error::Http(res) => {
                refused(res.status().as_u16(), &name, access, None, false)
            }
            other => transport(&host, other),
        },
        e => transport(&host, e),
    }
}

/// `host:port` of a URL for messages (the default port named).
pub(crate) fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_blame_oauth_only_when_it_ran() {
        let keyed = Access {
            headers: vec![("X-API-Key".into(), "k".into())],
            ..Access::default()
        };
        let bare = Access::default();
        let u = "http://h:1/mcp";
        assert!(refused(401, u, &keyed, None, true).contains("refused the credential"));
        let oauth = Some(r#"Bearer resource_metadata="http://h:1/.well-known/x""#);
        assert!(refused(401, u, &bare, oauth, true).contains("OAuth sign-in"));
        assert!(refused(401, u, &bare, None, true).contains("no OAuth metadata"));
        assert!(!refused(401, u, &bare, None, false).contains("OAuth sign-in"));
        assert!(refused(404, u, &bare, None, false).contains("wrong path"));
    }

    #[test]
    fn transport_errors_name_the_host_and_the_reason() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            transport("127.0.0.1:9", &refused),
            "cannot reach 127.0.0.1:9: connection refused (is the server running on that port?)"
        );
        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let t = transport("h.example:443", &tls);
        assert!(
            t.starts_with("TLS: the certificate of h.example is not valid: issued by an authority"),
            "{t}"
        );
    }
}
