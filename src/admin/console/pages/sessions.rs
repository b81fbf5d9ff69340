//! The sessions page: every open session (principal, server, transport, client, protocol, age,
//! calls, last activity) with a filter by principal or server, and per row the buttons ending
//! the session or every session of its principal.
//!
//! Owns: the page's markup, its filter (also applied by the script as the operator types) and
//! the row template the script fills for sessions that open later. Does not own: the data
//! (`Console::sessions`), the actions (`actions.rs`).

use maud::{html, Markup};

use super::{dur, filter, principal_label, server_label, Filters};
use crate::admin::console::layout::csrf_field;
use crate::admin::console::{Operator, SessionView};

/// At most this many rows are shown (the script keeps to the same number).
const MAX_ROWS: usize = 500;

/// The page's body: the sessions passing the filters `principal` and `server`.
pub(super) fn render(sessions: &[SessionView], q: &Filters, op: &Operator) -> Markup {
    let (principal, server) = (filter(q, "principal"), filter(q, "server"));
    let shown: Vec<&SessionView> = sessions
        .iter()
        .filter(|s| passes(s, principal, server))
        .take(MAX_ROWS)
        .collect();
    html! {
        form .filters method="get" action="/ui/sessions" role="search" data-filter-for="sessions" {
            label for="f-principal" { "Principal" }
            input #f-principal type="search" name="principal" value=(principal)
                data-filter="principal" data-fmt="principal";
            label for="f-server" { "Server" }
            input #f-server type="search" name="server" value=(server) data-filter="server"
                data-fmt="server";
            button type="submit" { "Filter" }
            a href="/ui/sessions" { "Clear" }
        }
        p #live-status .status role="status" { "Current as of loading the page." }
        p .count {
            span data-count="sessions" { (shown.len()) } " of "
            span data-total="sessions" { (sessions.len()) } " sessions shown"
            @if shown.len() == MAX_ROWS { " (the first " (MAX_ROWS) ")" }
        }
        p .empty data-empty="sessions" hidden[!shown.is_empty()] { "No sessions." }
        table .sessions {
            caption .sr-only { "Open sessions" }
            thead {
                tr {
                    th scope="col" { "Principal" }
                    th scope="col" { "Server" }
                    th scope="col" { "Transport" }
                    th scope="col" { "Client" }
                    th scope="col" { "Protocol" }
                    th scope="col" { "Age" }
                    th scope="col" { "Calls" }
                    th scope="col" { "In flight" }
                    th scope="col" { "Idle" }
                    th scope="col" { "Actions" }
                }
            }
            tbody data-root data-list="sessions" data-key="id" data-max=(MAX_ROWS) {
                @for s in &shown {
                    (row(s, op))
                }
            }
        }
        template #tpl-sessions { (row(&blank(), op)) }
    }
}

/// Whether a session passes the filters: each given one is a case-insensitive part of the
/// principal or of the server's name as shown (the script's filter is the same).
fn passes(s: &SessionView, principal: &str, server: &str) -> bool {
    let has = |value: &str, part: &str| value.to_lowercase().contains(&part.to_lowercase());
    has(principal_label(&s.principal), principal) && has(server_label(&s.server), server)
}

/// One session's row, with its actions.
fn row(s: &SessionView, op: &Operator) -> Markup {
    html! {
        tr data-item data-key=(s.id) {
            td data-f="principal" data-fmt="principal" { (principal_label(&s.principal)) }
            td data-f="server" data-fmt="server" { (server_label(&s.server)) }
            td data-f="transport" { (s.transport) }
            td {
                span data-f="client_name" { (s.client_name) } " "
                span .muted data-f="client_version" { (s.client_version) }
            }
            td data-f="protocol_version" { (s.protocol_version) }
            td data-f="age_seconds" data-fmt="dur" { (dur(s.age_seconds)) }
            td data-f="calls" { (s.calls) }
            td data-f="in_flight" { (s.in_flight) }
            td data-f="idle_seconds" data-fmt="dur" { (dur(s.idle_seconds)) }
            td {
                div .actions {
                    form method="post" action="/ui/actions/end-session" {
                        (csrf_field(op))
                        input type="hidden" name="session" data-v="id" value=(s.id);
                        button type="submit" { "End session" }
                    }
                    form method="post" action="/ui/actions/revoke" {
                        (csrf_field(op))
                        input type="hidden" name="principal" data-v="principal"
                            value=(s.principal);
                        button type="submit" { "Revoke principal" }
                    }
                }
            }
        }
    }
}

/// The template's session: every field blank, filled by the script.
fn blank() -> SessionView {
    SessionView {
        id: String::new(),
        server: String::new(),
        principal: String::new(),
        transport: String::new(),
        client_name: String::new(),
        client_version: String::new(),
        protocol_version: String::new(),
        age_seconds: 0,
        calls: 0,
        in_flight: 0,
        idle_seconds: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(principal: &str, server: &str, client: &str) -> SessionView {
        SessionView {
            id: format!("{principal}-{server}"),
            principal: principal.into(),
            server: server.into(),
            client_name: client.into(),
            ..blank()
        }
    }

    #[test]
    fn filters_keep_matching_sessions_only() {
        let all = [
            session("alice", "", "a"),
            session("bob", "git", "b"),
            session("Alicia", "git", "c"),
        ];
        let pick = |p: &str, s: &str| -> Vec<String> {
            all.iter()
                .filter(|x| passes(x, p, s))
                .map(|x| x.id.clone())
                .collect()
        };
        assert_eq!(pick("", ""), ["alice-", "bob-git", "Alicia-git"]);
        assert_eq!(pick("ali", ""), ["alice-", "Alicia-git"]);
        assert_eq!(pick("", "main"), ["alice-"]);
        assert_eq!(pick("ali", "git"), ["Alicia-git"]);
    }

    #[test]
    fn a_hostile_client_name_renders_as_text() {
        let s = session("eve", "", "<img src=x onerror=alert(1)>");
        let op = Operator {
            name: "loopback".into(),
            csrf: None,
        };
        let html = render(&[s], &Filters::new(), &op).into_string();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }
}
