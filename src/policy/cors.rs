//! CORS for browser clients (`--cors-origin`, `[network] cors_origins`).
//!
//! Which origins may call at all is `origin.rs`'s decision (the CORS origins are added to its
//! allowed list, so there is one list); this file only answers preflights and adds the
//! response headers. A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`)
//! is answered after Host/Origin and before authentication, since browsers send it without
//! credentials. An allowed origin is echoed exactly with `Vary: Origin` and
//! `Access-Control-Allow-Credentials: true`; `*` is sent only when configured, and then
//! without credentials.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The configured CORS origins.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cors {
    /// Exact origins, lowercase.
    origins: Vec<String>,
    /// `*` was configured: any origin, never with credentials.
    any: bool,
}

const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, \
    Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID, X-API-Key";
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate";
const MAX_AGE: &str = "600";

/// Validates `--cors-origin` / `cors_origins` values: `*` or `scheme://host[:port]`.
pub(crate) fn build(origins: &[String], errors: &mut Vec<String>) -> Cors {
    let mut cors = Cors::default();
    for o in origins {
        if o == "*" {
            cors.any = true;
        } else if (o.starts_with("http://") || o.starts_with("https://"))
            && !o[o.find("//").unwrap_or(0) + 2..].contains('/')
            && o.len() > "https://".len()
        {
            cors.origins.push(o.to_ascii_lowercase());
        } else {
            errors.push(format!(
                "cors origin `{o}` must be `*` or scheme://host[:port] without a path"
            ));
        }
    }
    cors
}

impl Cors {
    /// Whether any origin is configured (nothing to add otherwise).
    pub(crate) fn is_enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// `*` was configured: every Origin passes the origin check.
    pub(crate) fn allows_any(&self) -> bool {
        self.any
    }

    /// The exact origins, to extend the origin guard's allowed list.
    pub(crate) fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The answer to a preflight, or `None` when the request is not one. Runs after the
    /// origin check, so the Origin here is allowed (or absent).
    pub(crate) fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS
            || !headers.contains_key(header::ORIGIN)
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut res = StatusCode::NO_CONTENT.into_response();
        if self.decorate(headers, &mut res) {
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers(headers));
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        Some(res)
    }

    /// Adds the CORS headers for the request's Origin to `res`; false when the Origin gets
    /// none (absent, or allowed by the origin check without being a CORS origin).
    pub(crate) fn decorate(&self, headers: &HeaderMap, res: &mut Response) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
        else {
            return false;
        };
        if self.origins.contains(&origin) {
            if let Ok(v) = HeaderValue::from_str(&origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        } else if self.any {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            return false;
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        true
    }
}

/// The fixed list, plus the `Mcp-Param-*` headers the preflight asks for (2026-07-28
/// requests name their parameters in headers; their names cannot be listed in advance).
fn allow_headers(headers: &HeaderMap) -> HeaderValue {
    let mut list = ALLOW_HEADERS.to_owned();
    let asked = headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| n.len() <= 128 && n.to_ascii_lowercase().starts_with("mcp-param-"))
        .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .take(32);
    for name in asked {
        list.push_str(", ");
        list.push_str(name);
    }
    HeaderValue::from_str(&list).unwrap_or_else(|_| HeaderValue::from_static(ALLOW_HEADERS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: &str, preflight: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_static("authorization, mcp-param-region, x-evil"),
            );
        }
        h
    }

    fn get(res: &Response, name: header::HeaderName) -> Option<&str> {
        res.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn preflight_echoes_the_exact_origin_with_credentials() {
        let cors = build(&["https://app.example.com".into()], &mut Vec::new());
        let res = cors
            .preflight(&Method::OPTIONS, &req("https://app.example.com", true))
            .unwrap();
        assert_eq!(res.status(), 204);
        assert_eq!(
            get(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://app.example.com")
        );
        assert_eq!(
            get(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
            Some("true")
        );
        assert_eq!(get(&res, header::VARY), Some("Origin"));
        let allowed = get(&res, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
        assert!(allowed.contains("Mcp-Session-Id") && allowed.contains("mcp-param-region"));
        assert!(!allowed.contains("x-evil"), "{allowed}");
        assert!(get(&res, header::ACCESS_CONTROL_MAX_AGE).is_some());
    }

    #[test]
    fn wildcard_never_carries_credentials_and_other_origins_get_nothing() {
        let cors = build(&["*".into()], &mut Vec::new());
        let res = cors
            .preflight(&Method::OPTIONS, &req("https://x.example", true))
            .unwrap();
        assert_eq!(get(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(get(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None);
        let exact = build(&["https://a.example".into()], &mut Vec::new());
        let res = exact
            .preflight(&Method::OPTIONS, &req("http://localhost:3000", true))
            .unwrap();
        assert_eq!(get(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
        assert!(exact
            .preflight(&Method::POST, &req("https://a.example", true))
            .is_none());
        assert!(exact
            .preflight(&Method::OPTIONS, &req("https://a.example", false))
            .is_none());
    }

    #[test]
    fn bad_origins_are_config_errors() {
        let mut errors = Vec::new();
        build(
            &[
                "https://a.example/".into(),
                "a.example".into(),
                "null".into(),
            ],
            &mut errors,
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
