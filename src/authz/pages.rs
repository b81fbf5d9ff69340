//! The HTML the authorization server shows a person: the login page, the consent page and
//! error pages. Plain forms that work without JavaScript (there is none), labelled fields,
//! one `h1` per page, an `alert` region for errors, the operator's `name` and logo. Built with
//! `maud`, which escapes every interpolated value, so nothing from a request or a client's
//! registration is ever reflected unescaped.
//!
//! Every page is sent with `Content-Security-Policy` (no scripts; `frame-ancestors 'none'`;
//! forms may post only to the relay and, on the consent page, redirect to the client's
//! origin), `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` and `Cache-Control:
//! no-store`. Not `no-referrer`: under it a browser sends `Origin: null` with the form posts,
//! and the relay refuses those; `same-origin` still sends nothing to the client's site. The
//! pages name an empty icon, so a browser does not ask for `/favicon.ico` (not public).
//! Not here: what the forms do (`login.rs`, `consent.rs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// What the login page shows.
pub(super) struct LoginPage<'a> {
    pub brand: &'a str,
    pub has_logo: bool,
    pub request: &'a str,
    pub csrf: &'a str,
    pub client: &'a str,
    /// Whether local users can log in here (else only the identity provider's button).
    pub passwords: bool,
    /// The identity provider's button label, when one is configured.
    pub upstream: Option<&'a str>,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

/// What the consent page shows.
pub(super) struct ConsentPage<'a> {
    pub brand: &'a str,
    pub has_logo: bool,
    pub request: &'a str,
    pub csrf: &'a str,
    pub user: &'a str,
    pub client: &'a str,
    pub client_id: &'a str,
    /// Whether the client's name is its own claim (dynamic registration), not verified.
    pub self_named: bool,
    pub redirect_host: &'a str,
    pub resource: &'a str,
    pub resource_name: &'a str,
    pub scopes: &'a [&'a str],
    pub roles: &'a [String],
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.5}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box;border:1px solid #666;border-radius:4px}\
button,.button{display:inline-block;margin-top:1.2rem;margin-right:.5rem;padding:.55rem 1.1rem;font-size:1rem;border-radius:4px;border:1px solid #1a4d8f;background:#1a4d8f;color:#fff;text-decoration:none;cursor:pointer}\
button.secondary,.button.secondary{background:#fff;color:#1a4d8f}\
:focus-visible{outline:3px solid #e07000;outline-offset:2px}\
.alert{border:1px solid #a00;background:#fff0f0;padding:.6rem;border-radius:4px}\
dt{font-weight:600;margin-top:.6rem}dd{margin:0}code{word-break:break-all}.note{color:#555;font-size:.9rem}\
img.logo{max-height:3rem;max-width:12rem}";

fn layout(brand: &str, has_logo: bool, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                // No icon to fetch: a browser would ask for /favicon.ico, which is not public.
                link rel="icon" href="data:,";
                title { (title) " · " (brand) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    @if has_logo {
                        img.logo src="/oauth/logo" alt=(format!("{brand} logo"));
                    } @else {
                        p.note { (brand) }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login page.
pub(super) fn login(p: &LoginPage<'_>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p { "Sign in to let " strong { (p.client) } " use " (p.brand) "." }
        @if let Some(e) = p.error {
            p.alert role="alert" { (e) }
        }
        @if p.passwords {
            form method="post" action="/oauth/login" {
                input type="hidden" name="request" value=(p.request);
                input type="hidden" name="csrf" value=(p.csrf);
                label for="username" { "User name" }
                input type="text" id="username" name="username" value=(p.username)
                    autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus;
                label for="password" { "Password" }
                input type="password" id="password" name="password"
                    autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
        @if let Some(label) = p.upstream {
            p {
                a.button.secondary href=(format!("/oauth/upstream/start?request={}", p.request)) {
                    "Sign in with " (label)
                }
            }
        }
    };
    layout(p.brand, p.has_logo, "Sign in", body)
}

/// The consent page.
pub(super) fn consent(p: &ConsentPage<'_>) -> Markup {
    let body = html! {
        h1 { "Allow access?" }
        p { strong { (p.client) } " wants to use " (p.brand) " as " strong { (p.user) } "." }
        dl {
            dt { "Application" }
            dd {
                (p.client)
                @if p.self_named { " " span.note { "(name given by the application itself)" } }
                br;
                span.note { "Client ID: " code { (p.client_id) } }
            }
            dt { "Will be sent back to" }
            dd { code { (p.redirect_host) } }
            dt { "Servers" }
            dd { (p.resource_name) br; span.note { code { (p.resource) } } }
            @if !p.scopes.is_empty() {
                dt { "Scopes" }
                dd { @for s in p.scopes { code { (s) } " " } }
            }
            @if !p.roles.is_empty() {
                dt { "Your roles" }
                dd { @for r in p.roles { code { (r) } " " } }
            }
        }
        form method="post" action="/oauth/consent" {
            input type="hidden" name="request" value=(p.request);
            input type="hidden" name="csrf" value=(p.csrf);
            p {
                input type="checkbox" id="remember" name="remember" value="yes" checked;
                " "
                label for="remember" style="display:inline;font-weight:normal" {
                    "Remember this decision for this application"
                }
            }
            button type="submit" name="decision" value="approve" { "Allow" }
            button.secondary type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    layout(p.brand, p.has_logo, "Allow access", body)
}

/// An error page: what went wrong, in words for a person, and what to do.
pub(super) fn error(brand: &str, has_logo: bool, message: &str) -> Markup {
    let body = html! {
        h1 { "Sign-in problem" }
        p.alert role="alert" { (message) }
        p { "Go back to your application and start again. If this keeps happening, tell the person who runs " (brand) "." }
    };
    layout(brand, has_logo, "Sign-in problem", body)
}

/// A page for a person: the status, the markup and the security headers. `form_target` is an
/// origin (or a scheme, `cursor:`) the page's form may end up redirecting to.
pub(super) fn respond(status: StatusCode, page: Markup, form_target: Option<&str>) -> Response {
    let forms = match form_target {
        Some(t) => format!("'self' {t}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (status, page.into_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_requests_and_registrations_are_escaped() {
        let page = consent(&ConsentPage {
            brand: "Acme",
            has_logo: false,
            request: "r\"><script>",
            csrf: "c",
            user: "<b>alice</b>",
            client: "<script>alert(1)</script>",
            client_id: "id",
            self_named: true,
            redirect_host: "evil.example\"onmouseover=\"x",
            resource: "https://relay/mcp",
            resource_name: "all servers",
            scopes: &["mcp"],
            roles: &[],
        })
        .into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("\"onmouseover"));
        assert!(page.contains("&lt;b&gt;alice&lt;/b&gt;"));
    }

    #[test]
    fn pages_forbid_framing_and_scripts() {
        let res = respond(
            StatusCode::OK,
            error("Acme", false, "x"),
            Some("https://claude.ai"),
        );
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("form-action 'self' https://claude.ai"));
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
