//! The command line: usage errors exit 64 before any port is bound; SIGTERM drains and exits 0.
// (The SIGTERM tests, and so some imports, are not built on the portable path.)
#![cfg_attr(feature = "portable", allow(unused_imports))]

use serde_json::json;
use std::process::Command;

use crate::support::{alive, eventually, text_of, wait_recorded, Relay, FIXTURE, RELAY};

#[test]
fn help_documents_every_serve_flag() {
    let out = Command::new(RELAY)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--path",
        "--allowed-host",
        "--allowed-origin",
        "--max-sessions",
        "--session-ttl",
        "--max-body",
        "--max-line",
        "--request-timeout",
        "--sse-close-after",
        "--response-mode",
        "--shutdown-grace",
        "--env",
        "--pass-env",
        "--session-mode",
        "--children",
        "--identity-header",
        "--max-inflight-per-child",
        "--child-era",
        "--tcp-listen",
        "--tcp-max-line",
        "--tcp-idle",
        "--ws-path",
        "--ws-max-message",
        "--upstream",
        "--session-idle-timeout",
        "--upstream-bearer-env",
    ] {
        assert!(help.contains(flag), "missing {flag} in help");
    }
}

/// Issue 14, bug 10: `serve --help` was one ungrouped list of every flag. Each flag now sits
/// under its topic, and the topics come in the order a reader sets a relay up.
#[test]
fn serve_help_groups_flags_by_topic() {
    let out = Command::new(RELAY)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Listeners:",
            "TLS:",
            "Network:",
            "Limits:",
            "Sessions:",
            "Child process:",
            "Configuration:",
            "Authentication:",
            "Fleet:",
            "Roles:",
            "Audit and observability:",
            "Remote upstream:",
        ]
    );
    // Under "Options:" only the global flags and --help are left.
    let options = help.split("\nListeners:").next().unwrap_or_default();
    let listed: Vec<&str> = options
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .collect();
    assert!(
        listed
            .iter()
            .all(|l| ["log-format", "log-level"].iter().any(|g| l.starts_with(g))),
        "ungrouped flags: {listed:?}"
    );
    // A flag sits under its topic: the section that holds it starts with the right heading.
    for (heading, flag) in [
        ("Listeners:", "--tcp-listen"),
        ("Sessions:", "--session-idle-timeout"),
        ("Authentication:", "--jwt-secret"),
        ("Remote upstream:", "--upstream-bearer-env"),
        ("Child process:", "--pass-env"),
    ] {
        let at = help
            .find(&format!("      {flag} "))
            .unwrap_or_else(|| panic!("{flag}"));
        let section = help[..at]
            .lines()
            .rev()
            .find(|l| !l.starts_with(' ') && l.ends_with(':'))
            .unwrap_or_default();
        assert_eq!(section, heading, "{flag}");
    }
}

/// Issue 14, bug 10: `serve --help` sent readers to a PROTOCOL.md the repository does not
/// have. Every `*.md` any help text names must exist.
#[test]
fn help_names_only_documents_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let commands: [&[&str]; 8] = [
        &[],
        &["serve"],
        &["stdio"],
        &["connect"],
        &["token", "key"],
        &["token", "jwt"],
        &["check-config"],
        &["cert", "generate"],
    ];
    let mut named = 0;
    for args in commands {
        let out = Command::new(RELAY)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let words = help.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)));
        for doc in words.filter(|w| w.ends_with(".md")) {
            named += 1;
            assert!(
                root.join(doc).is_file(),
                "{args:?} --help names {doc}, not in the repository"
            );
        }
    }
    assert!(named > 0, "no help text names a document");
}

#[test]
fn unspawnable_command_is_a_one_line_usage_error_before_binding() {
    // The port is taken by us: if the relay tried to bind first it would report that instead.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(RELAY)
        .args(["serve", "--listen", &addr, "--", "/no/such/mcp-server"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/mcp-server"), "{err}");
}

#[test]
fn bad_usage_exits_64() {
    for args in [
        vec!["serve"],
        vec!["serve", "--listen", "nonsense", "--", "cat"],
        vec!["serve", "--session-ttl", "forever", "--", "cat"],
        vec!["serve", "--listen", "0.0.0.0:0", "--", "cat"],
        vec!["serve", "--path", "/health", "--", "cat"],
        vec!["serve", "--ws-path", "/mcp", "--", "cat"],
        vec!["serve", "--children", "0", "--", "cat"],
        vec!["serve", "--session-mode", "per-identity", "--", "cat"],
        vec!["bogus"],
    ] {
        let out = Command::new(RELAY).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
}

// SIGTERM: Unix only (docs/platforms.md).
#[cfg(all(unix, not(feature = "portable")))]
#[tokio::test]
async fn h2_sigterm_lets_in_flight_calls_finish_then_stops_children_and_exits_0() {
    let (mut relay, record) = Relay::start_recorded(&["--shutdown-grace", "10s"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid_reply = c.call(json!(1), "pid", json!({})).await;
    let child_pid: u32 = text_of(&pid_reply.messages()[0]).parse().unwrap();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!(2), "slow", json!({"ms": 700})).await })
    };
    wait_recorded(&record, "\"slow\"", 1).await;
    let code = tokio::task::spawn_blocking(move || {
        let code = relay.terminate();
        (code, relay)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "logs: {}", code.1.logs());
    let reply = slow.await.unwrap();
    assert_eq!(text_of(&reply.messages()[0]), "slept 700");
    eventually("child reaped", || !alive(child_pid)).await;
}

// SIGTERM: Unix only (docs/platforms.md).
#[cfg(all(unix, not(feature = "portable")))]
#[tokio::test]
async fn h2_sigterm_fails_calls_still_running_at_the_drain_deadline() {
    let (relay, record) = Relay::start_recorded(&["--shutdown-grace", "300ms"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!("s"), "slow", json!({"ms": 30000})).await })
    };
    wait_recorded(&record, "\"slow\"", 1).await;
    let mut relay = relay;
    let (code, _relay) = tokio::task::spawn_blocking(move || (relay.terminate(), relay))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let msgs = slow.await.unwrap().messages();
    assert_eq!(msgs[0]["id"], "s");
    assert_eq!(msgs[0]["error"]["code"], -31010);
}

#[test]
fn fixture_binary_is_built() {
    assert!(std::path::Path::new(FIXTURE).exists());
}
