//! RBAC decisions, file validation and list filtering, table-driven where it reads well.

use super::*;

mod servers;

const SEED: &str = include_str!("../../../examples/permissions.json");

fn seed() -> Rbac {
    Rbac::parse(SEED).unwrap()
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn decide(rbac: &Rbac, who: &[&str], method: &str, name: Option<&str>) -> Decision {
    rbac.decide(&roles(who), Names::Plain, method, name, None)
}

fn allow(rule: &str) -> Decision {
    Decision::Allow { rule: rule.into() }
}

fn deny_method(rule: &str) -> Decision {
    Decision::DenyMethod { rule: rule.into() }
}

fn parse_err(text: &str) -> String {
    Rbac::parse(text).unwrap_err().to_string()
}

// === the seed file ===

#[test]
fn seed_file_parses_with_roles_in_file_order() {
    let rbac = seed();
    let names: Vec<&str> = rbac.role_names().collect();
    assert_eq!(names, ["admin", "user", "readonly"]);
}

#[test]
fn seed_admin_any_method_is_allowed() {
    let rbac = seed();
    for method in [
        "tools/call",
        "resources/read",
        "completion/complete",
        "foo/bar",
    ] {
        assert_eq!(
            decide(&rbac, &["admin"], method, Some("delete_all")),
            allow("admin.allowedMethods[0]")
        );
    }
}

#[test]
fn seed_user_calls_tools_and_lists_everything() {
    let rbac = seed();
    assert_eq!(
        decide(&rbac, &["user"], "tools/call", Some("echo")),
        allow("user.allowedMethods[0]")
    );
    for method in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        assert_eq!(
            decide(&rbac, &["user"], method, None),
            allow("user.allowedMethods[1]"),
            "{method}"
        );
    }
}

#[test]
fn b1_user_tool_matching_deny_glob_is_deny_tool() {
    let d = decide(&seed(), &["user"], "tools/call", Some("delete_repo"));
    assert_eq!(
        d,
        Decision::DenyTool {
            rule: "user.tools.deny[0]".into()
        }
    );
}

#[test]
fn seed_readonly_tools_call_is_blocked() {
    let d = decide(&seed(), &["readonly"], "tools/call", Some("echo"));
    assert_eq!(d, deny_method("readonly.blockedMethods[0]"));
}

#[test]
fn seed_readonly_lists_and_reads_are_allowed() {
    let rbac = seed();
    assert!(decide(&rbac, &["readonly"], "tools/list", None).is_allowed());
    let read = rbac.decide(
        &roles(&["readonly"]),
        Names::Plain,
        "resources/read",
        None,
        Some("file:///a"),
    );
    assert_eq!(read, allow("readonly.allowedMethods[1]"));
    assert_eq!(
        decide(&rbac, &["readonly"], "prompts/get", Some("p")),
        deny_method("readonly.default_deny")
    );
}

// === roles: union, unknown, none ===

#[test]
fn roles_union_any_allowing_role_allows() {
    let d = decide(&seed(), &["readonly", "user"], "tools/call", Some("echo"));
    assert_eq!(d, allow("user.allowedMethods[0]"));
}

#[test]
fn roles_union_name_denial_wins_over_method_denial() {
    // readonly denies the method, user the tool: the caller hears "unknown tool".
    let d = decide(
        &seed(),
        &["readonly", "user"],
        "tools/call",
        Some("delete_x"),
    );
    assert_eq!(
        d,
        Decision::DenyTool {
            rule: "user.tools.deny[0]".into()
        }
    );
}

#[test]
fn b6_unknown_role_is_denied_no_role() {
    assert_eq!(
        decide(&seed(), &["root"], "tools/list", None),
        deny_method("no_role")
    );
}

#[test]
fn unknown_role_beside_known_is_ignored() {
    assert!(decide(&seed(), &["root", "readonly"], "tools/list", None).is_allowed());
}

#[test]
fn b6_missing_roles_are_denied_no_role() {
    assert_eq!(
        decide(&seed(), &[], "tools/list", None),
        deny_method("no_role")
    );
}

#[test]
fn initialize_and_ping_without_roles_are_allowed() {
    for method in ["initialize", "ping"] {
        assert_eq!(decide(&seed(), &[], method, None), allow("always_allowed"));
    }
}

#[test]
fn server_discover_is_plumbing_no_role_denies() {
    // Issue 14, bug 5: the seed's `user` and `readonly` denied it (default_deny).
    let blocking = Rbac::parse(r#"{"locked": {"blockedMethods": ["*"]}}"#).unwrap();
    for who in [&["user"][..], &["readonly"], &["admin"], &[]] {
        assert_eq!(
            decide(&seed(), who, "server/discover", None),
            allow("always_allowed"),
            "{who:?}"
        );
    }
    assert_eq!(
        decide(&blocking, &["locked"], "server/discover", None),
        allow("always_allowed")
    );
    // Only the exact name: a look-alike is an ordinary method.
    assert!(!decide(&seed(), &["user"], "server/Discover", None).is_allowed());
}

// === method matching (B6) ===

#[test]
fn b6_lookalike_methods_are_denied() {
    let rbac = seed();
    let cases = [
        "TOOLS/CALL",
        "Tools/Call",
        "tools/call ",
        " tools/call",
        "tools/call\u{0}",
        "tools/call\n",
        "tools\u{ff0f}call",
        "tools/caII",
        "foo/bar",
        "",
    ];
    for method in cases {
        let d = decide(&rbac, &["user"], method, Some("echo"));
        assert_eq!(d, deny_method("user.default_deny"), "{method:?}");
    }
}

#[test]
fn b6_uppercase_method_is_denied() {
    assert_eq!(
        decide(&seed(), &["readonly"], "TOOLS/LIST", None),
        deny_method("readonly.default_deny")
    );
}

#[test]
fn b6_blocked_method_lookalike_is_not_blocked_but_still_unlisted() {
    // readonly blocks tools/call exactly; `tools/call ` is not it, and not allowed either.
    assert_eq!(
        decide(&seed(), &["readonly"], "tools/call ", None),
        deny_method("readonly.default_deny")
    );
}

#[test]
fn glob_star_matches_separator_and_is_case_sensitive() {
    let rbac = Rbac::parse(r#"{"r": {"allowedMethods": ["tools/*", "*/get"]}}"#).unwrap();
    let cases = [
        ("tools/call", true),
        ("tools/a/b", true),
        ("resources/templates/get", true),
        ("Tools/call", false),
        ("tools", false),
        ("prompts/GET", false),
    ];
    for (method, allowed) in cases {
        assert_eq!(
            decide(&rbac, &["r"], method, None).is_allowed(),
            allowed,
            "{method}"
        );
    }
}

#[test]
fn blocked_methods_win_over_allowed_methods() {
    let rbac =
        Rbac::parse(r#"{"r": {"allowedMethods": ["*"], "blockedMethods": ["x", "tools/*"]}}"#)
            .unwrap();
    assert_eq!(
        decide(&rbac, &["r"], "tools/call", None),
        deny_method("r.blockedMethods[1]")
    );
}

#[test]
fn role_without_allowed_methods_allows_unlisted() {
    let rbac = Rbac::parse(r#"{"r": {"blockedMethods": ["tools/call"]}}"#).unwrap();
    assert_eq!(
        decide(&rbac, &["r"], "prompts/get", None),
        allow("r.default_allow")
    );
}

#[test]
fn unknown_methods_deny_denies_unlisted() {
    let rbac = Rbac::parse(r#"{"r": {"blockedMethods": [], "unknownMethods": "deny"}}"#).unwrap();
    assert_eq!(
        decide(&rbac, &["r"], "prompts/get", None),
        deny_method("r.default_deny")
    );
}

#[test]
fn allowed_methods_empty_denies_everything_but_session_open() {
    let rbac = Rbac::parse(r#"{"r": {"allowedMethods": [], "unknownMethods": "allow"}}"#).unwrap();
    let d = decide(&rbac, &["r"], "tools/list", None);
    assert_eq!((d.is_allowed(), d.rule()), (false, "r.default_deny"));
    assert!(decide(&rbac, &["r"], "initialize", None).is_allowed());
}

// === tool, prompt and resource rules ===

const NAMED: &str = r#"{"roles": {
    "t": {"allowedMethods": ["*"], "tools": {"allow": ["read_*", "echo"], "deny": ["read_secret*"]}},
    "p": {"allowedMethods": ["*"], "prompts": {"deny": ["admin_*"]}},
    "r": {"allowedMethods": ["*"], "resources": {"allow": ["file:///public/*"]}}
}}"#;

#[test]
#[rustfmt::skip]
fn tool_rules_deny_wins_and_unlisted_is_denied() {
    let rbac = Rbac::parse(NAMED).unwrap();
    let tool = |rule: &str| Decision::DenyTool { rule: rule.into() };
    let cases = [
        (Some("read_file"), allow("t.tools.allow[0]")),
        (Some("echo"), allow("t.tools.allow[1]")),
        (Some("read_secrets"), tool("t.tools.deny[0]")),
        (Some("write_file"), tool("t.tools.default_deny")),
        (Some("ECHO"), tool("t.tools.default_deny")),
        (Some("echo "), tool("t.tools.default_deny")),
        (None, tool("t.tools.missing_name")),
    ];
    for (name, want) in cases {
        assert_eq!(decide(&rbac, &["t"], "tools/call", name), want, "{name:?}");
    }
}

#[test]
fn prompt_rules_apply_to_prompts_get_only() {
    let rbac = Rbac::parse(NAMED).unwrap();
    let d = decide(&rbac, &["p"], "prompts/get", Some("admin_reset"));
    assert_eq!(
        d,
        Decision::DenyPrompt {
            rule: "p.prompts.deny[0]".into()
        }
    );
    assert!(decide(&rbac, &["p"], "tools/call", Some("admin_reset")).is_allowed());
    assert!(decide(&rbac, &["p"], "prompts/get", Some("greet")).is_allowed());
}

#[test]
fn resource_rules_apply_to_read_subscribe_unsubscribe() {
    let rbac = Rbac::parse(NAMED).unwrap();
    for method in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let ok = rbac.decide(
            &roles(&["r"]),
            Names::Plain,
            method,
            None,
            Some("file:///public/a/b"),
        );
        assert_eq!(ok, allow("r.resources.allow[0]"), "{method}");
        let no = rbac.decide(
            &roles(&["r"]),
            Names::Plain,
            method,
            None,
            Some("file:///etc/passwd"),
        );
        assert_eq!(
            no,
            Decision::DenyResource {
                rule: "r.resources.default_deny".into()
            }
        );
    }
}

// === file validation ===

#[test]
fn parse_wrapped_roles_form_is_accepted() {
    let wrapped = format!(r#"{{"roles": {SEED}}}"#);
    let names: Vec<String> = Rbac::parse(&wrapped)
        .unwrap()
        .role_names()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, ["admin", "user", "readonly"]);
}

#[test]
#[rustfmt::skip]
fn parse_bad_files_are_rejected_naming_role_and_key() {
    let not_roles = "permissions file must be an object mapping role names to rules";
    let cases = [
        (r#"{"user": {"allowedMethod": ["*"]}}"#, "role `user`: unknown key `allowedMethod`"),
        (r#"{"user": {"tools": {"alow": ["x"]}}}"#, "role `user`: unknown key `tools.alow`"),
        (r#"{"user": {"tool": {"deny": ["x"]}}}"#, "role `user`: unknown key `tool`"),
        (r#"{"user": {"tools": {"deny": ["[x"]}}}"#, "role `user`: `tools.deny[0]` is not a valid glob"),
        (r#"{"user": {"allowedMethods": ["a", "{b"]}}"#, "role `user`: `allowedMethods[1]` is not a valid glob"),
        (r#"{"user": {"allowedMethods": [""]}}"#, "role `user`: `allowedMethods[0]` must be a non-empty glob"),
        (r#"{"user": {"allowedMethods": "*"}}"#, "role `user`: `allowedMethods` must be an array of strings"),
        (r#"{"user": {"unknownMethods": "Deny"}}"#, "role `user`: `unknownMethods` must be \"allow\" or \"deny\""),
        (r#"{"user": {"tools": ["x"]}}"#, "role `user`: `tools` must be an object with `allow` and/or `deny`"),
        (r#"{"user": {"blockedMethods": [], "blockedMethods": ["*"]}}"#, "role `user`: key `blockedMethods` is given twice"),
        (r#"{"user": {"blockedMethods": [], "blocked\u004dethods": []}}"#, "role `user`: key `blockedMethods` is given twice"),
        (r#"{"user": {"tools": {"deny": ["x"], "deny": []}}}"#, "role `user`: key `tools.deny` is given twice"),
        (r#"{"user": {}, "user": {"allowedMethods": ["*"]}}"#, "role `user` is defined twice"),
        (r#"{"user": ["*"]}"#, "role `user` must be an object"),
        (r#"{}"#, "permissions file defines no roles"),
        (r#"{"roles": {}}"#, "permissions file defines no roles"),
        (r#"["admin"]"#, not_roles),
        (r#"{"roles": []}"#, not_roles),
        (r#"{"user": {"#, "permissions file is not valid json"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text), want, "{text}");
    }
}

#[test]
fn load_missing_file_is_read_error() {
    let err = Rbac::load(Path::new("/nonexistent/permissions.json")).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
}

// === list filtering ===

#[test]
fn list_filter_without_restriction_is_none() {
    let rbac = seed();
    assert!(rbac
        .list_filter(&roles(&["admin"]), Names::Plain, "tools/list")
        .is_none());
    assert!(rbac
        .list_filter(&roles(&["readonly"]), Names::Plain, "tools/list")
        .is_none());
    assert!(rbac
        .list_filter(&roles(&["user"]), Names::Plain, "prompts/list")
        .is_none());
    assert!(rbac
        .list_filter(&roles(&["user"]), Names::Plain, "tools/call")
        .is_none());
    // Union: a list shows what the caller can use, so user's deny glob still hides
    // `delete_*` although readonly alone would see the whole catalogue.
    let filter = rbac
        .list_filter(&roles(&["user", "readonly"]), Names::Plain, "tools/list")
        .unwrap();
    let out = filter
        .apply(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"delete_x"}]}}"#)
        .unwrap();
    assert_eq!(
        &out[..],
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#
    );
}

#[test]
fn list_filter_without_listing_role_removes_everything() {
    let filter = seed().list_filter(&[], Names::Plain, "tools/list").unwrap();
    let out = filter.apply(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#);
    assert_eq!(
        out.unwrap(),
        &br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#[..]
    );
}

#[test]
fn b1_tools_list_is_filtered_keeping_other_bytes() {
    let filter = seed()
        .list_filter(&roles(&["user"]), Names::Plain, "tools/list")
        .unwrap();
    let response = br#"{"jsonrpc":"2.0","id":"x-1","result":{"tools":[{"name":"echo", "inputSchema":{"type":"object"}},{"name":"delete_repo"},{"name":"add","extra":[1, 2]}],"nextCursor":"c2","_meta":{"k": 1},"vendor":true}}"#;
    let out = filter.apply(response).unwrap();
    let want = br#"{"jsonrpc":"2.0","id":"x-1","result":{"tools":[{"name":"echo", "inputSchema":{"type":"object"}},{"name":"add","extra":[1, 2]}],"nextCursor":"c2","_meta":{"k": 1},"vendor":true}}"#;
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        std::str::from_utf8(want).unwrap()
    );
}

#[test]
#[rustfmt::skip]
fn every_list_kind_is_filtered_on_its_field() {
    let rbac = Rbac::parse(NAMED).unwrap();
    let cases = [
        ("p", "prompts/list",
         r#"{"prompts":[{"name":"admin_x"},{"name":"greet"}],"nextCursor":"n"}"#,
         r#"{"prompts":[{"name":"greet"}],"nextCursor":"n"}"#),
        ("r", "resources/list",
         r#"{"resources":[{"uri":"file:///etc/x","name":"file:///public/x"},{"uri":"file:///public/y"}]}"#,
         r#"{"resources":[{"uri":"file:///public/y"}]}"#),
        ("r", "resources/templates/list",
         r#"{"resourceTemplates":[{"uriTemplate":"file:///public/{p}"},{"uriTemplate":"file:///{p}"}],"x":null}"#,
         r#"{"resourceTemplates":[{"uriTemplate":"file:///public/{p}"}],"x":null}"#),
        ("t", "tools/list",
         r#"{"tools":[{"name":"echo"},{"name":"read_secret"}]}"#,
         r#"{"tools":[{"name":"echo"}]}"#),
    ];
    for (role, method, result, want) in cases {
        let filter = rbac.list_filter(&roles(&[role]), Names::Plain, method).unwrap();
        let response = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{result}}}"#);
        let want = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{want}}}"#);
        assert_eq!(filter.apply(response.as_bytes()).unwrap(), want.as_bytes(), "{method}");
    }
}

#[test]
fn pagination_each_page_is_filtered() {
    let filter = seed()
        .list_filter(&roles(&["user"]), Names::Plain, "tools/list")
        .unwrap();
    let page1 = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_a"},{"name":"a"}],"nextCursor":"p2"}}"#;
    let page2 =
        br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"b"},{"name":"delete_b"}]}}"#;
    let page3 = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"c"}]}}"#;
    assert_eq!(
        filter.apply(page1).unwrap(),
        &br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"p2"}}"#[..]
    );
    assert_eq!(
        filter.apply(page2).unwrap(),
        &br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"b"}]}}"#[..]
    );
    assert_eq!(filter.apply(page3), None);
}

#[test]
fn apply_error_unparsable_or_unchanged_response_returns_none() {
    let filter = seed()
        .list_filter(&roles(&["user"]), Names::Plain, "tools/list")
        .unwrap();
    let cases: [&[u8]; 5] = [
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"delete_x"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}]}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"delete_x"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_x"}]"#,
        b"\xff",
    ];
    for response in cases {
        assert_eq!(
            filter.apply(response),
            None,
            "{}",
            String::from_utf8_lossy(response)
        );
    }
}

#[test]
fn b2_apply_malformed_or_ambiguous_elements_are_removed() {
    let filter = seed()
        .list_filter(&roles(&["user"]), Names::Plain, "tools/list")
        .unwrap();
    let response = br#"{"id":1,"result":{"tools":[{"name":"ok","name":"delete_x"},{"Name":"x"},{"name":3},"echo",{"n\u0061me":"delete_y"},{"name":"ok2"}]}}"#;
    let out = filter.apply(response).unwrap();
    assert_eq!(out, &br#"{"id":1,"result":{"tools":[{"name":"ok2"}]}}"#[..]);
}

#[test]
fn b2_apply_repeated_array_key_is_filtered_in_every_occurrence() {
    let filter = seed()
        .list_filter(&roles(&["user"]), Names::Plain, "tools/list")
        .unwrap();
    let response = br#"{"id":1,"result":{"tools":[{"name":"delete_a"}],"tools":[{"name":"delete_b"},{"name":"b"}]}}"#;
    let out = filter.apply(response).unwrap();
    assert_eq!(
        out,
        &br#"{"id":1,"result":{"tools":[],"tools":[{"name":"b"}]}}"#[..]
    );
}

#[test]
fn list_filter_union_of_restricted_roles_shows_either() {
    let rbac = Rbac::parse(r#"{"a": {"tools": {"allow": ["x"]}}, "b": {"tools": {"allow": ["y"]}}, "c": {"allowedMethods": ["prompts/*"]}}"#).unwrap();
    // c may not list tools, so it does not widen the list.
    let filter = rbac
        .list_filter(&roles(&["a", "b", "c"]), Names::Plain, "tools/list")
        .unwrap();
    let out = filter.apply(br#"{"result":{"tools":[{"name":"x"},{"name":"y"},{"name":"z"}]}}"#);
    assert_eq!(
        out.unwrap(),
        &br#"{"result":{"tools":[{"name":"x"},{"name":"y"}]}}"#[..]
    );
}

#[test]
fn list_filter_is_clone_send_sync_debug() {
    fn check<T: Clone + Send + Sync + std::fmt::Debug>() {}
    check::<ListFilter>();
    check::<Decision>();
    fn check_rbac<T: Send + Sync>() {}
    check_rbac::<Rbac>();
}
