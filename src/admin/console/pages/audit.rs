//! The audit page: the recent audit records, newest first, filtered by principal, server,
//! tool and outcome; each opens to show every field as text (arguments redacted as in the
//! audit log). The script adds each new record as the live stream brings it.
//!
//! Owns: the page's markup, the record template the script fills. Does not own: the records
//! (`telemetry/live.rs`) or their sanitising (`telemetry/audit.rs`).

use maud::{html, Markup};
use serde_json::Value;

use super::{filter, or_dash, principal_label, Filters};
use crate::telemetry::live::Entry;

/// At most this many records are shown (the script keeps to the same number).
pub(super) const MAX_ROWS: usize = 200;

/// The outcomes a record can have (`telemetry/audit.rs`), for the filter's choices.
const OUTCOMES: [&str; 7] = [
    "ok",
    "error",
    "denied",
    "refused",
    "unauthenticated",
    "cancelled",
    "timeout",
];

/// The page's body: `shown` (the records passing the filters `q`, oldest first), newest
/// first; the script's stream starts after record `last` (or the newest shown).
pub(super) fn render(shown: &[Entry], last: u64, q: &Filters) -> Markup {
    let after = shown.last().map_or(last, |e| e.seq.max(last));
    let shown: Vec<&Entry> = shown.iter().rev().take(MAX_ROWS).collect();
    html! {
        (filters(q))
        p #live-status .status role="status" { "Current as of loading the page." }
        p .empty data-empty="audit" hidden[!shown.is_empty()] { "No records yet." }
        ol .audit data-audit data-after=(after) data-max=(MAX_ROWS) aria-label="Audit records, newest first" {
            @for e in shown {
                (record(Some(e)))
            }
        }
        template #tpl-audit { (record(None)) }
    }
}

/// The filter form (also what the live stream is asked to filter by).
fn filters(q: &Filters) -> Markup {
    let outcome = filter(q, "outcome");
    html! {
        form .filters method="get" action="/ui/audit" role="search" {
            @for (key, label) in [("principal", "Principal"), ("server", "Server"), ("tool", "Tool")] {
                label for=(format!("f-{key}")) { (label) }
                input id=(format!("f-{key}")) type="search" name=(key) value=(filter(q, key));
            }
            label for="f-outcome" { "Outcome" }
            select #f-outcome name="outcome" {
                option value="" selected[outcome.is_empty()] { "any" }
                @for o in OUTCOMES {
                    option value=(o) selected[outcome == o] { (o) }
                }
            }
            button type="submit" { "Filter" }
            a href="/ui/audit" { "Clear" }
        }
    }
}

/// One record: a summary line that opens onto every field (`None`: the script's template).
fn record(entry: Option<&Entry>) -> Markup {
    let null = Value::Null;
    let json = entry.map_or(&null, Entry::json);
    let text = |key: &str| json.get(key).map(as_text);
    let outcome = text("outcome").unwrap_or_default();
    html! {
        li data-item data-seq=[entry.map(|e| e.seq)] {
            details {
                summary {
                    time data-f="time" { (or_dash(text("time"))) }
                    " "
                    span .badge data-f="outcome" data-fmt="state" data-state=(outcome) { (outcome) }
                    " "
                    span .who data-f="principal" data-fmt="principal" {
                        (or_dash(text("principal").as_deref().map(principal_label)))
                    }
                    " → "
                    span data-f="server" data-fmt="server" { (or_dash(text("server"))) }
                    " "
                    code data-f="method" { (or_dash(text("method"))) }
                    " "
                    span data-f="name" { (or_dash(text("name"))) }
                    " "
                    span .muted data-f="latency_ms" data-fmt="ms" { (ms(json.get("latency_ms"))) }
                }
                dl .fields {
                    @if let Value::Object(fields) = json {
                        @for (k, v) in fields {
                            dt { (k) }
                            dd { (as_text(v)) }
                        }
                    }
                }
            }
        }
    }
}

/// A field's value as text: a string as it is, anything else as JSON (the script's
/// `as-text` is the same).
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A latency as the page shows it (`12.3 ms`, `—` when absent); the script's `ms` format is
/// the same.
fn ms(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(ms) => format!("{ms:.1} ms"),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::telemetry::audit::Record;

    fn entry(seq: u64, record: Record) -> Entry {
        Entry::of(seq, record)
    }

    #[test]
    fn newest_first_filtered_and_escaped() {
        let named = |principal: &str, name: &str, outcome: &'static str| Record {
            principal: principal.into(),
            name: Some(name.into()),
            outcome,
            ..Record::default()
        };
        let recent = [
            entry(1, named("alice", "echo", "ok")),
            entry(
                2,
                Record {
                    args: Some(json!({"k": "<b>"})),
                    ..named("bob", "<img src=x onerror=alert(1)>", "denied")
                },
            ),
            entry(
                3,
                Record {
                    latency_ms: 1.25,
                    ..named("alice", "add", "ok")
                },
            ),
        ];
        let html = render(&recent, 3, &Filters::new()).into_string();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("{&quot;k&quot;:&quot;&lt;b&gt;&quot;}"),
            "{html}"
        );
        assert!(html.contains("data-after=\"3\""), "{html}");
        assert!(html.contains("1.2 ms") || html.contains("1.3 ms"), "{html}");
        let (a, b) = (html.find("data-seq=\"3\""), html.find("data-seq=\"1\""));
        assert!(a.unwrap() < b.unwrap(), "{html}");

        let q: Filters = [("outcome".to_owned(), "denied".to_owned())].into();
        let html = render(&recent[1..2], 3, &q).into_string();
        assert!(html.contains("data-seq=\"2\"") && !html.contains("data-seq=\"1\""));
        assert!(
            html.contains("<option value=\"denied\" selected>"),
            "{html}"
        );
    }
}
