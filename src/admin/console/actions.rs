//! The operator's actions (`POST /ui/actions/ACTION`): restart a server's children, end a
//! session, revoke a principal's sessions, reload the configuration. Each is confirmed on a
//! page of its own first, checked against the console session's CSRF token, and audited with
//! the operator's identity.
//!
//! Owns: the confirmation step, the result page, the actions' audit records (`method`
//! `console/ACTION`, the operator as principal, auth `admin`, the target as name). Does not
//! own: what an action does to the relays (`Console`, `hub/console.rs`) or to the
//! configuration (`app.rs`), the CSRF tokens (`auth.rs`).

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};

use super::auth::{self, field};
use super::layout::{self, Tab};
use super::{Deps, Operator};

/// How long the console waits for a reload's answer.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// What an action is, and what it is done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Restart,
    EndSession,
    Revoke,
    Reload,
}

// === impl Action ===

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "restart" => Action::Restart,
            "end-session" => Action::EndSession,
            "revoke" => Action::Revoke,
            "reload" => Action::Reload,
            _ => return None,
        })
    }

    fn slug(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::EndSession => "end-session",
            Action::Revoke => "revoke",
            Action::Reload => "reload",
        }
    }

    /// The form field naming the target (`None`: the action has none).
    fn field(self) -> Option<&'static str> {
        match self {
            Action::Restart => Some("server"),
            Action::EndSession => Some("session"),
            Action::Revoke => Some("principal"),
            Action::Reload => None,
        }
    }

    /// The page the operator came from (the Cancel link and the way back).
    fn back(self) -> &'static str {
        match self {
            Action::Restart | Action::Reload => "/ui/servers",
            Action::EndSession | Action::Revoke => "/ui/sessions",
        }
    }

    /// The question of the confirmation page.
    fn question(self, target: &str) -> String {
        match self {
            Action::Restart if target.is_empty() => {
                "Restart the children of the main server?".to_owned()
            }
            Action::Restart => format!("Restart the children of the server “{target}”?"),
            Action::EndSession => format!("End the session {target}?"),
            Action::Revoke => format!("End every session of “{target}”?"),
            Action::Reload => "Reload the configuration from its file?".to_owned(),
        }
    }
}

/// `POST /ui/actions/ACTION`: without `confirm=yes`, the confirmation page; with it, the
/// action. A form that is not the operator's console session's (CSRF) is refused (403).
pub(crate) async fn act(
    State(deps): State<Deps>,
    Path(action): Path<String>,
    Extension(op): Extension<Operator>,
    req: Request,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return message(&op, StatusCode::NOT_FOUND, "No such action", "/ui/servers");
    };
    let addr = auth::peer(&req);
    let form = match auth::read_form(req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !auth::csrf_ok(&op, field(&form, "csrf")) {
        let why = "This form is not from this console session (it may have expired). Open the page again.";
        return message(&op, StatusCode::FORBIDDEN, why, action.back());
    }
    let target = action.field().map_or("", |f| field(&form, f));
    if action.field().is_some_and(|f| f != "server") && target.is_empty() {
        return message(
            &op,
            StatusCode::BAD_REQUEST,
            "Nothing to act on was named.",
            action.back(),
        );
    }
    if field(&form, "confirm") != "yes" {
        return layout::respond(StatusCode::OK, confirm(&op, action, target));
    }
    let (status, text) = run(&deps, action, target).await;
    let failed = match status {
        StatusCode::OK => None,
        StatusCode::NOT_FOUND => Some("not_found"),
        _ => Some("failed"),
    };
    let method = format!("console/{}", action.slug());
    let named = action.field().map(|_| target);
    auth::audit(&deps, &op.name, &method, named, failed, addr);
    message(&op, status, &text, action.back())
}

/// Does `action` to `target`: the result page's status and text.
async fn run(deps: &Deps, action: Action, target: &str) -> (StatusCode, String) {
    match action {
        Action::Restart => match deps.console.restart(target) {
            Ok(n) => (StatusCode::OK, format!("Restarted {n} child process(es).")),
            Err(why) => (StatusCode::CONFLICT, format!("Not restarted: {why}")),
        },
        Action::EndSession => match deps.console.end_session(target) {
            true => (StatusCode::OK, "The session was ended.".to_owned()),
            false => (
                StatusCode::NOT_FOUND,
                "There is no such session.".to_owned(),
            ),
        },
        Action::Revoke => {
            let n = deps.console.revoke(target);
            (StatusCode::OK, format!("Ended {n} session(s)."))
        }
        Action::Reload => reload(deps).await,
    }
}

/// Asks the program to reload its configuration, as SIGHUP does, and waits for the answer.
async fn reload(deps: &Deps) -> (StatusCode, String) {
    let unavailable = || {
        let why = "Reloading is not available in this process.".to_owned();
        (StatusCode::SERVICE_UNAVAILABLE, why)
    };
    let Some(reloader) = &deps.reload else {
        return unavailable();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if reloader.send(tx).await.is_err() {
        return unavailable();
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(()))) => (StatusCode::OK, "The configuration was reloaded.".to_owned()),
        Ok(Ok(Err(problems))) => {
            let text = format!(
                "The configuration was refused; the old one stays: {}",
                problems.join("; ")
            );
            (StatusCode::CONFLICT, text)
        }
        _ => unavailable(),
    }
}

/// The confirmation page: the question, a form that repeats the request with
/// `confirm=yes`, and a way back.
fn confirm(op: &Operator, action: Action, target: &str) -> Markup {
    let body = html! {
        p { (action.question(target)) }
        form method="post" action={ "/ui/actions/" (action.slug()) } {
            (layout::csrf_field(op))
            @if let Some(f) = action.field() {
                input type="hidden" name=(f) value=(target);
            }
            input type="hidden" name="confirm" value="yes";
            button type="submit" { "Confirm" }
            " "
            a href=(action.back()) { "Cancel" }
        }
    };
    layout::page("Confirm", Tab::Other, Some(op), None, body)
}

/// A page with one message and a link back.
fn message(op: &Operator, status: StatusCode, text: &str, back: &str) -> Response {
    let title = if status.is_success() {
        "Done"
    } else {
        "Not done"
    };
    let body = html! {
        p role="status" { (text) }
        p { a href=(back) { "Back" } }
    };
    layout::respond(
        status,
        layout::page(title, Tab::Other, Some(op), None, body),
    )
}

#[cfg(test)]
mod tests;
