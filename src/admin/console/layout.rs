//! The frame every console page shares: the document head (the stylesheet and script from
//! `/ui/static/`, never inline, so the CSP can forbid inline code), the navigation, who is
//! logged in with the logout button, and the hidden CSRF field the forms carry. Built with
//! `maud`, which escapes every interpolated value.
//!
//! Owns: the page frame and the HTML response. Does not own: the pages' content (`pages.rs`,
//! `connect.rs`, `auth.rs`, `actions.rs`) or the security headers (`auth.rs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::Operator;

/// The navigation's entries, and which one a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Servers,
    Sessions,
    Traffic,
    Audit,
    Connect,
    /// A page outside the navigation (login, a confirmation).
    Other,
}

const TABS: [(Tab, &str, &str); 5] = [
    (Tab::Servers, "/ui/servers", "Servers"),
    (Tab::Sessions, "/ui/sessions", "Sessions"),
    (Tab::Traffic, "/ui/traffic", "Traffic"),
    (Tab::Audit, "/ui/audit", "Audit"),
    (Tab::Connect, "/ui/connect", "Connect"),
];

/// A whole page: `title`, the navigation with `tab` current, the operator (with a logout
/// button when they hold a console session), then `body` in `main`. `view` names the live
/// view the page's script subscribes to (`data-view` on `body`), if any.
pub(crate) fn page(
    title: &str,
    tab: Tab,
    operator: Option<&Operator>,
    view: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mcp-relay" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
            }
            body data-view=[view] {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "mcp-relay" }
                    @if tab != Tab::Other {
                        nav aria-label="Console" {
                            ul {
                                @for (t, href, label) in TABS {
                                    li {
                                        @if t == tab {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(op) = operator {
                        div.operator {
                            span { "Signed in as " strong { (op.name) } }
                            @if op.csrf.is_some() {
                                form method="post" action="/ui/logout" {
                                    (csrf_field(op))
                                    button type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field of a form posted by `operator` (nothing for a bearer-token caller).
pub(crate) fn csrf_field(operator: &Operator) -> Markup {
    html! {
        @if let Some(token) = &operator.csrf {
            input type="hidden" name="csrf" value=(token);
        }
    }
}

/// An HTML answer with `status`.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        markup.into_string(),
    )
        .into_response()
}
