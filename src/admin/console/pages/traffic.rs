//! The traffic page: requests and errors per second over the last minutes (a chart the
//! script draws), requests, errors and p50/p99 latency per server, tool and principal, the top
//! tools and the refusals by reason, from the traffic view (`Live::traffic`).
//!
//! Owns: the page's markup (the tables are the charts' text equivalent, and what a browser
//! without the script shows). Does not own: the numbers (`telemetry/live.rs`).

use maud::{html, Markup};
use serde_json::Value;

use super::{principal_label, server_label};

/// The per-dimension windows of the traffic view, with their headings and how their keys
/// read (the main path's server is `""`, an anonymous caller `""`).
const DIMENSIONS: [(&str, &str, &str); 3] = [
    ("servers", "Per server", "server"),
    ("tools", "Per tool", "text"),
    ("principals", "Per principal", "principal"),
];

/// The page's body from the traffic view (its JSON; `null` before any traffic).
pub(super) fn render(view: &Value) -> Markup {
    html! {
        p #live-status .status role="status" { "Current as of loading the page." }
        p .note {
            "A call through the aggregate counts once: per second, per tool, per principal "
            "and in refusals under its front's name (such as a__echo); per server both under "
            "the aggregate and under the named server that answered it. Refused unauthenticated "
            "requests count in refusals only."
        }
        div data-root {
            section aria-labelledby="h-rate" {
                h2 #h-rate { "Requests per second" }
                canvas .chart width="720" height="160" data-chart="series" data-of="per_second"
                    role="img" aria-label="Requests and errors per second over the last minutes" {}
                p .legend {
                    span .key-requests { "requests/s" } " "
                    span .key-errors { "errors/s" }
                }
            }
            div .grid {
                @for (key, title, fmt) in DIMENSIONS {
                    (dimension(view, key, title, fmt))
                }
                (top_tools(view))
                (refusals(view))
            }
        }
        @for (key, _, fmt) in DIMENSIONS {
            template id=(format!("tpl-{key}")) { (window_row(&Value::Null, fmt)) }
        }
        template #tpl-top_tools { (count_row(&Value::Null, "name")) }
        template #tpl-refusals { (count_row(&Value::Null, "key")) }
    }
}

/// One dimension's table: requests, errors, p50 and p99 per key over the window.
fn dimension(view: &Value, key: &str, title: &str, fmt: &str) -> Markup {
    let id = format!("h-{key}");
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { (title) }
            canvas .chart .small width="360" height="120" data-chart="latency" data-of=(key)
                data-fmt=(fmt) role="img" aria-label=(format!("{title}: p50 and p99 latency")) {}
            p .legend { span .key-requests { "p50" } " " span .key-errors { "p99" } }
            table {
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Requests" }
                        th scope="col" { "Errors" }
                        th scope="col" { "p50" }
                        th scope="col" { "p99" }
                    }
                }
                tbody data-list=(key) data-key="key" {
                    @for w in items(view, key) {
                        (window_row(w, fmt))
                    }
                }
            }
        }
    }
}

/// One key's numbers in a dimension, its key shown in the format `fmt`.
fn window_row(w: &Value, fmt: &str) -> Markup {
    html! {
        tr data-item data-key=(text(w, "key")) {
            th scope="row" data-f="key" data-fmt=(fmt) { (key_label(&text(w, "key"), fmt)) }
            td data-f="count" { (text(w, "count")) }
            td data-f="errors" { (text(w, "errors")) }
            td data-f="p50_ms" data-fmt="ms" { (ms(w, "p50_ms")) }
            td data-f="p99_ms" data-fmt="ms" { (ms(w, "p99_ms")) }
        }
    }
}

/// The most called tools.
fn top_tools(view: &Value) -> Markup {
    html! {
        section aria-labelledby="h-top" {
            h2 #h-top { "Top tools" }
            canvas .chart .small width="360" height="120" data-chart="bars" data-of="top_tools"
                data-label="name" role="img" aria-label="Top tools by calls" {}
            table {
                thead { tr { th scope="col" { "Tool" } th scope="col" { "Calls" } } }
                tbody data-list="top_tools" data-key="name" {
                    @for t in items(view, "top_tools") {
                        (count_row(t, "name"))
                    }
                }
            }
        }
    }
}

/// The refusals (denied, refused, unauthenticated, rate limited) by reason.
fn refusals(view: &Value) -> Markup {
    html! {
        section aria-labelledby="h-refusals" {
            h2 #h-refusals { "Refusals by reason" }
            table {
                thead { tr { th scope="col" { "Reason" } th scope="col" { "Count" } } }
                tbody data-list="refusals" data-key="key" {
                    @for r in items(view, "refusals") {
                        (count_row(r, "key"))
                    }
                }
            }
        }
    }
}

/// A name and its count.
fn count_row(v: &Value, name: &str) -> Markup {
    html! {
        tr data-item data-key=(text(v, name)) {
            th scope="row" data-f=(name) { (text(v, name)) }
            td data-f="count" { (text(v, "count")) }
        }
    }
}

/// A key as the page shows it in the format `fmt` (the script's formats are the same).
fn key_label<'a>(key: &'a str, fmt: &str) -> &'a str {
    match fmt {
        "server" => server_label(key),
        "principal" => principal_label(key),
        _ => key,
    }
}

/// The entries of one list of the view (none when absent).
fn items<'a>(view: &'a Value, key: &str) -> &'a [Value] {
    view.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A field as text (`""` when absent).
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A latency field as the page shows it (`12.3 ms`; `—` when absent).
fn ms(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_f64) {
        Some(ms) => format!("{ms:.1} ms"),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn windows_render_as_escaped_rows() {
        let view = json!({
            "tools": [{"key": "<img src=x onerror=alert(1)>", "count": 3, "errors": 1,
                "p50_ms": 1.0, "p99_ms": 9.5}],
            "refusals": [{"key": "rate_limited", "count": 2}],
            "servers": [{"key": "", "count": 3}],
        });
        let html = render(&view).into_string();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("9.5 ms") && html.contains("rate_limited"),
            "{html}"
        );
        assert!(render(&Value::Null).into_string().contains("Per server"));
    }
}
