//! Redirect URIs: which may be registered ([`is_allowed_redirect`], RFC 7591 and RFC 8252
//! §7.1), and whether a presented one is a registered one ([`matches`]: exact string match,
//! with the RFC 8252 §7.3 rule that a loopback redirect may use any port). Pure text rules,
//! used by registration, client ID metadata documents, `/oauth/authorize` and
//! `/oauth/token`; the allow-list patterns of `allow-list` registration are in `register.rs`.

use url::Url;

/// The most redirect URIs one client may have.
pub(crate) const MAX_REDIRECT_URIS: usize = 10;

/// The longest redirect URI accepted.
const MAX_LEN: usize = 2000;

/// Schemes that are never a redirect target, whatever their spelling.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "intent",
];

/// Whether `presented` (at `/oauth/authorize` or `/oauth/token`) is `registered`: the same
/// string, or for an `http` loopback redirect (`127.0.0.1`, `[::1]`, `localhost`) the same
/// string but for the port, which native apps pick at run time (RFC 8252 §7.3).
pub(crate) fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some((rh, rr)), Some((ph, pr))) => rh == ph && rr == pr,
        _ => false,
    }
}

/// `http://HOST[:PORT]REST` with a loopback HOST, split into (HOST, REST); `None` for
/// anything else. The port must be digits; REST must be empty or start a path or a query,
/// and carry no fragment, so `http://127.0.0.1:80@evil.example/` is no loopback URI.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]", "localhost"]
        .into_iter()
        .find(|h| rest.starts_with(h))?;
    let after = &rest[host.len()..];
    let (port, tail) = match after.strip_prefix(':') {
        Some(p) => {
            let end = p.find(['/', '?']).unwrap_or(p.len());
            (&p[..end], &p[end..])
        }
        None => ("", after),
    };
    let port_ok = port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()));
    let tail_ok = tail.is_empty() || tail.starts_with('/') || tail.starts_with('?');
    (port_ok && tail_ok && !tail.contains('#') && !tail.contains('\\')).then_some((host, tail))
}

/// Whether `uri` may be registered: `https`; `http` on a loopback host; or a private-use
/// scheme (RFC 8252 §7.1) with a dot in it (`com.example.app:/cb`) or an authority
/// (`cursor://anysphere.cursor-mcp/oauth/callback`). Never a fragment,
/// credentials, whitespace, control characters or backslashes; the reason when not.
pub(crate) fn is_allowed_redirect(uri: &str) -> Result<(), &'static str> {
    if uri.is_empty() || uri.len() > MAX_LEN {
        return Err("redirect_uri_length");
    }
    if uri
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err("redirect_uri_characters");
    }
    if uri.contains('#') {
        return Err("redirect_uri_fragment");
    }
    let url = Url::parse(uri).map_err(|_| "redirect_uri_unparsable")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect_uri_credentials");
    }
    match url.scheme() {
        "https" => web_authority(uri, &url),
        "http" if loopback_parts(uri).is_some() => Ok(()),
        "http" => Err("redirect_uri_http_not_loopback"),
        s if FORBIDDEN_SCHEMES.contains(&s) => Err("redirect_uri_scheme"),
        // Reverse-domain (`com.example.app:/cb`), or an app's own scheme with an authority
        // (`cursor://anysphere.cursor-mcp/oauth/callback`, `vscode://…`).
        s if s.contains('.') || url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err("redirect_uri_scheme"),
    }
}

/// An https URI names a host, and its authority ends at a path (`https://a.example?x` and
/// `%` in the authority are refused, so no glob or reader can take the query for the host).
fn web_authority(uri: &str, url: &Url) -> Result<(), &'static str> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err("redirect_uri_no_host");
    }
    let rest = uri.split_once("://").map_or("", |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if authority.contains('%') || rest[authority.len()..].starts_with('?') {
        return Err("redirect_uri_authority");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exact_string_only_for_web_uris() {
        let reg = "https://claude.ai/api/mcp/auth_callback";
        assert!(matches(reg, reg));
        for presented in [
            "https://claude.ai/api/mcp/auth_callback/",
            "https://claude.ai/api/mcp/auth_callback?x=1",
            "https://claude.ai/api/mcp/auth_callback#frag",
            "https://CLAUDE.ai/api/mcp/auth_callback",
            "https://claude.ai:443/api/mcp/auth_callback",
            "https://claude.ai.evil.com/api/mcp/auth_callback",
            "https://claude.ai@evil.com/api/mcp/auth_callback",
            "http://claude.ai/api/mcp/auth_callback",
            "https://claude.ai/api/mcp/../mcp/auth_callback",
        ] {
            assert!(!matches(reg, presented), "{presented}");
        }
    }

    #[test]
    fn matches_loopback_any_port_same_host_and_path() {
        for (reg, presented) in [
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:53121/callback",
            ),
            (
                "http://127.0.0.1:3000/callback",
                "http://127.0.0.1:53121/callback",
            ),
            ("http://[::1]:80/cb?a=1", "http://[::1]:1/cb?a=1"),
            ("http://localhost:8080/cb", "http://localhost:9/cb"),
        ] {
            assert!(matches(reg, presented), "{reg} {presented}");
        }
        for (reg, presented) in [
            (
                "http://127.0.0.1:3000/callback",
                "http://127.0.0.1:3000/other",
            ),
            (
                "http://127.0.0.1:3000/callback",
                "http://[::1]:3000/callback",
            ),
            (
                "http://127.0.0.1:3000/callback",
                "http://localhost:3000/callback",
            ),
            (
                "http://127.0.0.1:3000/cb",
                "http://127.0.0.1:80@evil.example/cb",
            ),
            (
                "http://127.0.0.1:3000/cb",
                "http://127.0.0.1.evil.example:3000/cb",
            ),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb#x"),
            ("http://127.0.0.1:3000/cb", "https://127.0.0.1:3000/cb"),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:x/cb"),
            (
                "http://127.0.0.1:3000/cb",
                "http://127.0.0.1:3000\\@evil/cb",
            ),
            ("https://127.0.0.1:3000/cb", "https://127.0.0.1:4000/cb"),
        ] {
            assert!(!matches(reg, presented), "{reg} {presented}");
        }
    }

    #[test]
    fn is_allowed_redirect_accepts_web_loopback_and_private_use() {
        for uri in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://[::1]/cb",
            "http://localhost:6274/oauth/callback",
            "cursor.app://anysphere.cursor-retrieval/oauth/callback",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "com.example.app:/cb",
            "https://app.example.com/cb?client=1",
        ] {
            assert_eq!(is_allowed_redirect(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn is_allowed_redirect_refuses_tricks() {
        for (uri, why) in [
            ("http://claude.ai/cb", "redirect_uri_http_not_loopback"),
            (
                "http://127.0.0.1.evil.com/cb",
                "redirect_uri_http_not_loopback",
            ),
            ("https://claude.ai/cb#x", "redirect_uri_fragment"),
            ("https://claude.ai@evil.com/cb", "redirect_uri_credentials"),
            ("https://user:pw@evil.com/cb", "redirect_uri_credentials"),
            ("javascript:alert(1)", "redirect_uri_scheme"),
            ("data:text/html,x", "redirect_uri_scheme"),
            ("myapp:/cb", "redirect_uri_scheme"),
            ("https://evil.com?.example.com/cb", "redirect_uri_authority"),
            ("https://a b.com/cb", "redirect_uri_characters"),
            ("https://evil.com\\@good.com/cb", "redirect_uri_characters"),
            ("not a uri", "redirect_uri_characters"),
            ("/relative/cb", "redirect_uri_unparsable"),
            ("", "redirect_uri_length"),
        ] {
            assert_eq!(is_allowed_redirect(uri), Err(why), "{uri}");
        }
        assert!(is_allowed_redirect(&format!("https://a.com/{}", "x".repeat(2000))).is_err());
    }
}
