//! The servers page: a card per server (state, kind, era, session mode, sessions, calls in
//! flight) with its children (state, pid, uptime, restarts, last exit, the last stderr lines),
//! a button restarting its children (named servers and the single server only, not the
//! aggregate or endpoints), one running the deep health check and one reloading the
//! configuration.
//!
//! Owns: the page's markup and the templates the script fills for servers and children that
//! appear later. Does not own: the data (`Console::servers`), the restart and the reload
//! (`actions.rs`), the
//! deep health check (`Console::deep_health`, served at `/ui/api/health`).

use maud::{html, Markup};

use super::{dur, or_dash, server_label};
use crate::admin::console::layout::csrf_field;
use crate::admin::console::{ChildView, Operator, ServerView};

/// The page's body.
pub(super) fn render(servers: &[ServerView], op: &Operator) -> Markup {
    html! {
        p #live-status .status role="status" { "Current as of loading the page." }
        section .toolbar aria-labelledby="deep-health-title" {
            h2 #deep-health-title .sr-only { "Deep health" }
            form #deep-health-form method="get" action="/ui/api/health" {
                button type="submit" { "Run deep health check" }
            }
            div #deep-health aria-live="polite" {}
            // Confirmed on its own page first, like every action (`actions.rs`).
            form .action method="post" action="/ui/actions/reload" {
                (csrf_field(op))
                button type="submit" { "Reload configuration" }
            }
        }
        p .empty data-empty="servers" hidden[!servers.is_empty()] { "No servers." }
        div .cards data-root data-list="servers" data-key="name" {
            @for s in servers {
                (card(s, op))
            }
        }
        template #tpl-servers { (card(&blank(), op)) }
        template #tpl-children { (child_row(&blank_child())) }
        template #tpl-stderr { (stderr(&blank_child())) }
    }
}

/// Which cards offer a restart (`data-when`: the script shows it when the field matches).
const RESTARTABLE: &str = "kind=command,remote";

/// One server's card; the script updates its `data-f` fields and its children's rows.
fn card(s: &ServerView, op: &Operator) -> Markup {
    html! {
        article .card data-item data-key=(s.name) {
            header .card-head {
                h2 data-f="name" data-fmt="server" { (server_label(&s.name)) }
                span .badge data-f="ready" data-fmt="ready" data-state=(ready(s.ready)) {
                    (ready(s.ready))
                }
            }
            dl .facts {
                dt { "Kind" } dd data-f="kind" { (s.kind) }
                dt { "Era" } dd data-f="era" { (or_dash(s.era.as_ref())) }
                dt { "Session mode" } dd data-f="session_mode" { (s.session_mode) }
                dt { "Sessions" } dd data-f="sessions" { (s.sessions) }
                dt { "In flight" } dd data-f="in_flight" { (s.in_flight) }
                dt { "Problem" } dd data-f="problem" { (or_dash(s.problem.as_ref())) }
                dt { "Children not listed" } dd data-f="children_more" { (s.children_more) }
            }
            table .children {
                caption { "Children" }
                thead {
                    tr {
                        th scope="col" { "Slot" }
                        th scope="col" { "State" }
                        th scope="col" { "PID" }
                        th scope="col" { "Uptime" }
                        th scope="col" { "Restarts" }
                        th scope="col" { "Last exit" }
                        th scope="col" { "Retry in" }
                    }
                }
                tbody data-list="children" data-key="pool,slot" {
                    @for c in &s.children {
                        (child_row(c))
                    }
                }
            }
            div .stderr-list data-list="children" data-key="pool,slot" data-template="tpl-stderr" {
                @for c in &s.children {
                    (stderr(c))
                }
            }
            // Restart applies to the named servers and the single server (the action names
            // its target as a named server, or "" for the main path): never an aggregate's or
            // an endpoint's card. The template's card carries it hidden for the script.
            @if matches!(s.kind, "command" | "remote" | "") {
                form .action method="post" action="/ui/actions/restart"
                    data-when=(RESTARTABLE) hidden[s.kind.is_empty()] {
                    (csrf_field(op))
                    input type="hidden" name="server" data-v="name" value=(s.name);
                    button type="submit" { "Restart children" }
                }
            }
        }
    }
}

/// One child's row.
fn child_row(c: &ChildView) -> Markup {
    html! {
        tr data-item data-key=(format!("{}/{}", c.pool, c.slot)) {
            th scope="row" { span data-f="pool" { (c.pool) } " #" span data-f="slot" { (c.slot) } }
            td { span .badge data-f="state" data-fmt="state" data-state=(c.state) { (c.state) } }
            td data-f="pid" { (or_dash(c.pid)) }
            td data-f="uptime_seconds" data-fmt="dur" { (or_dash(c.uptime_seconds.map(dur))) }
            td data-f="restarts" { (c.restarts) }
            td data-f="last_exit" { (or_dash(c.last_exit.as_ref())) }
            td data-f="retry_after_seconds" data-fmt="dur" {
                (or_dash(c.retry_after_seconds.map(dur)))
            }
        }
    }
}

/// One child's last stderr lines, closed until opened (kept open across updates).
fn stderr(c: &ChildView) -> Markup {
    html! {
        details .stderr data-item data-key=(format!("{}/{}", c.pool, c.slot)) {
            summary {
                "Stderr of " span data-f="pool" { (c.pool) } " #" span data-f="slot" { (c.slot) }
                " (" span data-f="stderr" data-fmt="lines-count" { (lines(c.stderr.len())) } ")"
            }
            pre data-f="stderr" data-fmt="lines" { (c.stderr.join("\n")) }
        }
    }
}

/// How a server's readiness reads; the script's `ready` format is the same.
fn ready(ready: bool) -> &'static str {
    if ready {
        "ready"
    } else {
        "down"
    }
}

/// How many stderr lines are kept; the script's `lines-count` format is the same.
fn lines(n: usize) -> String {
    match n {
        1 => "1 line".to_owned(),
        n => format!("{n} lines"),
    }
}

/// The template's server: every field blank, filled by the script.
fn blank() -> ServerView {
    ServerView {
        name: String::new(),
        kind: "",
        era: None,
        session_mode: "",
        ready: false,
        problem: None,
        sessions: 0,
        in_flight: 0,
        children: Vec::new(),
        children_more: 0,
    }
}

/// The template's child: every field blank, filled by the script.
fn blank_child() -> ChildView {
    ChildView {
        pool: String::new(),
        slot: 0,
        state: "",
        pid: None,
        uptime_seconds: None,
        restarts: 0,
        last_exit: None,
        stderr: Vec::new(),
        retry_after_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_command_and_remote_cards_offer_a_restart() {
        let op = Operator {
            name: "loopback".into(),
            csrf: Some("k".into()),
        };
        for (kind, offered) in [
            ("command", true),
            ("remote", true),
            ("aggregate", false),
            ("endpoint", false),
        ] {
            let mut s = blank();
            s.name = "github".into();
            s.kind = kind;
            let html = card(&s, &op).into_string();
            assert_eq!(
                html.contains("/ui/actions/restart"),
                offered,
                "{kind}: {html}"
            );
        }
    }

    #[test]
    fn hostile_names_and_stderr_render_as_text() {
        let mut s = blank();
        s.name = "<img src=x onerror=alert(1)>".into();
        let mut c = blank_child();
        c.stderr = vec!["<script>alert(2)</script>".into()];
        s.children.push(c);
        let op = Operator {
            name: "loopback".into(),
            csrf: Some("k\"><b>".into()),
        };
        let html = render(&[s], &op).into_string();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("value=\"k&quot;&gt;&lt;b&gt;\""), "{html}");
    }
}
