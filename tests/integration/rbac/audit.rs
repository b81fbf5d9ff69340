//! H1: hostile names and secret arguments make one redacted audit line.

use super::*;

// === H1 ===

#[tokio::test]
async fn h1_hostile_name_and_secret_arguments_make_one_redacted_audit_line() {
    let rig = rig(Opts {
        config: Some(
            "[audit]\nfile = \"AUDIT_FILE\"\nallow_fields = [\"path\", \"password\"]\n".into(),
        ),
        ..Opts::default()
    });
    let c = rig.session("alice", "admin", "2025-11-25").await;
    let hostile = "evil\nname\u{1b}[31mred";
    let r = c
        .post(req(
            json!(70),
            "tools/call",
            json!({"name": hostile, "arguments": {"password":"hunter2","token":"abc","path":"/x"}}),
        ))
        .await;
    assert_eq!(r.status, 200);
    let rec = rig
        .audited(json!({"principal":"alice","method":"tools/call","id":"70"}))
        .await;
    let text = rig.audit_text();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("\"abc\""), "{text}");
    assert!(!text.contains('\u{1b}'), "raw ESC in the audit file");
    // Every line parses on its own: the hostile name did not split the record.
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines
        .iter()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    assert_eq!(
        lines.iter().filter(|l| l.contains("\"id\":\"70\"")).count(),
        1
    );
    assert_eq!(rec["name"], hostile);
    let args = &rec["args"];
    let sha = args["sha256"].as_str().unwrap_or_else(|| panic!("{rec}"));
    assert_eq!(sha.len(), 64);
    assert!(sha.chars().all(|ch| ch.is_ascii_hexdigit()));
    assert_eq!(args["fields"]["path"], "/x");
    assert_eq!(args["fields"]["password"], "[redacted]");
    assert!(args["fields"].get("token").is_none(), "{rec}");
    assert_eq!(rec["decision"], "allow");
}

#[tokio::test]
async fn h1_hostile_principal_and_10kb_values_are_one_capped_line_each() {
    let rig = rig(Opts {
        config: Some("[audit]\nfile = \"AUDIT_FILE\"\nallow_fields = [\"path\"]\n".into()),
        ..Opts::default()
    });
    let sub = "mallory\n{\"principal\":\"alice\"}\u{1b}[2J";
    let c = rig.session(sub, "user", "2025-11-25").await;
    let long_name = format!("delete_{}", "A".repeat(10_000));
    let r = c
        .post(req(
            json!(80),
            "tools/call",
            json!({"name": long_name, "arguments": {"path": "B".repeat(10_000)}}),
        ))
        .await;
    assert_unknown(
        &one(&r),
        json!(80),
        -32602,
        &format!("Unknown tool: {long_name}"),
    );
    let ok = c
        .post(req(
            json!(81),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x", "path": "C".repeat(10_000)}}),
        ))
        .await;
    assert_eq!(text_of(&one(&ok)), "x");
    let deny = rig.audited(json!({"id":"80"})).await;
    let allow = rig.audited(json!({"id":"81"})).await;
    let text = rig.audit_text();
    assert!(!text.contains('\u{1b}'), "raw ESC in the audit file");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_ne!(
            v["principal"], "alice",
            "principal forged by a hostile sub: {line}"
        );
        assert!(
            line.len() < 4096,
            "uncapped audit line: {} bytes",
            line.len()
        );
    }
    for rec in [&deny, &allow] {
        assert_eq!(rec["principal"], sub, "{rec}");
    }
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["rule"], "user.tools.deny[0]");
    assert!(
        deny["name"].as_str().unwrap().chars().count() <= 256,
        "{deny}"
    );
    assert!(deny["name"].as_str().unwrap().starts_with("delete_AAA"));
    assert_eq!(allow["decision"], "allow");
    let path = allow["args"]["fields"]["path"].as_str().unwrap();
    assert!(
        path.chars().count() <= 256 && path.starts_with("CCC"),
        "{allow}"
    );
    assert_eq!(allow["args"]["sha256"].as_str().unwrap().len(), 64);
}
