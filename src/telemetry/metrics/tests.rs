use super::render::esc;
use super::*;

/// The value of one series in an exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn methods_outside_the_list_are_other() {
    assert_eq!(METHODS[method_index(Some("tools/call"))], "tools/call");
    assert_eq!(METHODS[method_index(Some("x/evil\"\n"))], "other");
    assert_eq!(METHODS[method_index(None)], "other");
    assert_eq!(METHODS[method_index(Some("other"))], "other");
    assert_eq!(TRANSPORTS[transport_index("websocket")], "websocket");
    assert_eq!(TRANSPORTS[transport_index("carrier-pigeon")], "other");
}

#[test]
fn a_measure_counts_once_with_outcome_latency_and_bytes() {
    // Unit tests share the static table: use a transport/method pair no other test uses.
    let snap = Snapshot::default();
    let before = render(&snap);
    let series =
        "mcp_relay_requests_total{transport=\"tcp\",method=\"prompts/get\",outcome=\"timeout\"}";
    let base = value(&before, series).unwrap_or(0.0);
    {
        let mut m = Measure::start(ServerLabel::default(), "tcp", Some("prompts/get"), 10);
        m.answered(Outcome::Timeout, 7);
    }
    {
        let mut m = Measure::start(ServerLabel::default(), "tcp", Some("prompts/get"), 10);
        m.disarm();
    }
    let text = render(&snap);
    assert_eq!(value(&text, series), Some(base + 1.0));
    let count =
        "mcp_relay_request_duration_seconds_count{transport=\"tcp\",method=\"prompts/get\"}";
    assert!(value(&text, count).unwrap_or(0.0) >= 1.0, "{text}");
    let inf = "mcp_relay_request_duration_seconds_bucket{transport=\"tcp\",method=\"prompts/get\",le=\"+Inf\"}";
    assert_eq!(value(&text, inf), value(&text, count));
}

#[test]
fn unanswered_measures_are_cancelled() {
    let series = "mcp_relay_requests_total{transport=\"stdio\",method=\"tasks/cancel\",outcome=\"cancelled\"}";
    let base = value(&render(&Snapshot::default()), series).unwrap_or(0.0);
    drop(Measure::start(
        ServerLabel::default(),
        "stdio",
        Some("tasks/cancel"),
        1,
    ));
    assert_eq!(
        value(&render(&Snapshot::default()), series),
        Some(base + 1.0)
    );
}

#[test]
fn dynamic_labels_are_capped() {
    let d = Dynamic::new();
    const NAMES: [&str; 40] = [
        "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3", "b4",
        "b5", "b6", "b7", "b8", "b9", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9",
        "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9",
    ];
    for n in NAMES {
        d.inc(n);
    }
    d.inc("a0");
    let v = d.values();
    assert_eq!(v.len(), MAX_DYNAMIC + 1);
    assert_eq!(v[0], ("a0", 2));
    assert_eq!(v.last(), Some(&("other", 8)));
}

#[test]
fn every_metric_has_help_and_type_and_snapshot_values_show() {
    rate_limited("unit_test_scope");
    let snap = Snapshot {
        sessions_active: 3,
        children_running: 2,
        spare_children: 1,
        dropped_lines: 5,
        uptime: Duration::from_secs(7),
        memory: Some((10, 100)),
        overload_level: 0,
    };
    let text = render(&snap);
    for name in [
        "mcp_relay_requests_total",
        "mcp_relay_request_duration_seconds",
        "mcp_relay_request_bytes_total",
        "mcp_relay_sessions_active",
        "mcp_relay_sessions_opened_total",
        "mcp_relay_children_running",
        "mcp_relay_spare_children",
        "mcp_relay_child_restarts_total",
        "mcp_relay_child_exits_total",
        "mcp_relay_child_dropped_lines_total",
        "mcp_relay_auth_failures_total",
        "mcp_relay_policy_denials_total",
        "mcp_relay_rate_limited_total",
        "mcp_relay_uptime_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    assert_eq!(value(&text, "mcp_relay_sessions_active"), Some(3.0));
    assert_eq!(value(&text, "mcp_relay_children_running"), Some(2.0));
    assert_eq!(value(&text, "mcp_relay_spare_children"), Some(1.0));
    assert_eq!(
        value(&text, "mcp_relay_child_dropped_lines_total"),
        Some(5.0)
    );
    assert_eq!(value(&text, "mcp_relay_uptime_seconds"), Some(7.0));
    assert_eq!(value(&text, "mcp_relay_memory_budget_bytes"), Some(100.0));
    assert_eq!(value(&text, "mcp_relay_overload_level"), Some(0.0));
    assert!(value(
        &text,
        "mcp_relay_rate_limited_total{scope=\"unit_test_scope\"}"
    )
    .is_some_and(|v| v >= 1.0));
    assert!(text.ends_with('\n'));
    assert!(text
        .lines()
        .all(|l| l.starts_with('#') || l.starts_with("mcp_relay_")));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn named_servers_get_a_server_label_and_the_unnamed_one_none() {
    // A name no other test registers.
    let github = server_label(Some("metrics-unit-github"));
    assert_eq!(github, server_label(Some("metrics-unit-github")));
    assert_ne!(github, server_label(None));
    let series = "mcp_relay_requests_total{server=\"metrics-unit-github\",transport=\"aggregate\",method=\"tools/call\",outcome=\"ok\"}";
    let unnamed =
        "mcp_relay_requests_total{transport=\"aggregate\",method=\"tools/call\",outcome=\"ok\"}";
    let base = value(&render(&Snapshot::default()), unnamed).unwrap_or(0.0);
    {
        let mut m = Measure::start(github, "aggregate", Some("tools/call"), 10);
        m.answered(Outcome::Ok, 7);
    }
    policy_denial(github, DenialKind::Tool);
    let text = render(&Snapshot::default());
    assert_eq!(value(&text, series), Some(1.0), "{text}");
    assert_eq!(value(&text, unnamed).unwrap_or(0.0), base);
    let count = "mcp_relay_request_duration_seconds_count{server=\"metrics-unit-github\",transport=\"aggregate\",method=\"tools/call\"}";
    assert_eq!(value(&text, count), Some(1.0));
    let denied = "mcp_relay_policy_denials_total{server=\"metrics-unit-github\",kind=\"tool\"}";
    assert_eq!(value(&text, denied), Some(1.0));
    // The unnamed server's denial series are all there, as before.
    assert!(value(&text, "mcp_relay_policy_denials_total{kind=\"prompt\"}").is_some());
}

#[test]
fn server_labels_past_the_cap_fold_into_other() {
    // A table of its own: the static one is shared by every test.
    let slots: [OnceLock<Box<Named>>; 3] = [const { OnceLock::new() }; 3];
    assert_eq!(register(&slots, "a"), Some(0));
    assert_eq!(register(&slots, "b"), Some(1));
    assert_eq!(register(&slots, "a"), Some(0));
    assert_eq!(register(&slots, "c"), Some(2));
    assert_eq!(register(&slots, "d"), None);
    refused(
        ServerLabel(OVERFLOW),
        "tcp",
        Some("ping"),
        Outcome::Refused,
        1,
    );
    let text = render(&Snapshot::default());
    let other = "mcp_relay_requests_total{server=\"other\",transport=\"tcp\",method=\"ping\",outcome=\"refused\"}";
    assert!(value(&text, other).is_some_and(|v| v >= 1.0), "{text}");
}
