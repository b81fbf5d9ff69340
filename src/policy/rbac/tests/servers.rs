//! Roles that know servers: qualified globs, `servers`/`blockedServers`, the aggregate's
//! delegated scope, and files without any of it behaving as before on every relay.

use super::*;

const GITHUB: Names<'static> = Names::Server("github");
const FS: Names<'static> = Names::Server("fs");

fn call(rbac: &Rbac, who: &[&str], names: Names<'_>, tool: &str) -> Decision {
    rbac.decide(&roles(who), names, "tools/call", Some(tool), None)
}

fn read(rbac: &Rbac, who: &[&str], names: Names<'_>, uri: &str) -> Decision {
    rbac.decide(&roles(who), names, "resources/read", None, Some(uri))
}

fn deny_tool(rule: &str) -> Decision {
    Decision::DenyTool { rule: rule.into() }
}

/// The tools of a `tools/list` answer `who` sees on a relay deciding `names`.
fn listed(rbac: &Rbac, who: &[&str], names: Names<'_>, tools: &[&str]) -> Vec<String> {
    let elements: Vec<String> = tools
        .iter()
        .map(|t| format!(r#"{{"name":"{t}"}}"#))
        .collect();
    let response = format!(
        r#"{{"id":1,"result":{{"tools":[{}]}}}}"#,
        elements.join(",")
    );
    let Some(filter) = rbac.list_filter(&roles(who), names, "tools/list") else {
        return tools.iter().map(|t| t.to_string()).collect();
    };
    let out = filter
        .apply(response.as_bytes())
        .map_or(response, |b| String::from_utf8(b.to_vec()).unwrap());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

const QUALIFIED: &str = r#"{
    "dev": {"allowedMethods": ["*"], "tools": {"allow": ["github:create_*", "echo"], "deny": ["fs:delete_*", "github:create_secret"]}},
    "res": {"allowedMethods": ["*"], "resources": {"allow": ["fs:file:///public/*", "https://*"], "deny": ["github:*"]}}
}"#;

#[test]
#[rustfmt::skip]
fn qualified_tool_globs_match_server_colon_name_on_that_server_only() {
    let rbac = Rbac::parse(QUALIFIED).unwrap();
    let cases = [
        (GITHUB, "create_issue", allow("dev.tools.allow[0]")),
        (FS, "create_issue", deny_tool("dev.tools.default_deny")),
        (GITHUB, "echo", allow("dev.tools.allow[1]")),
        (FS, "echo", allow("dev.tools.allow[1]")),
        (GITHUB, "create_secret", deny_tool("dev.tools.deny[1]")),
        (FS, "delete_all", deny_tool("dev.tools.deny[0]")),
        (GITHUB, "delete_all", deny_tool("dev.tools.default_deny")),
        // A single-server relay tests names bare: `github:create_*` matches no MCP tool name.
        (Names::Plain, "create_issue", deny_tool("dev.tools.default_deny")),
        (Names::Plain, "echo", allow("dev.tools.allow[1]")),
    ];
    for (names, tool, want) in cases {
        assert_eq!(call(&rbac, &["dev"], names, tool), want, "{names:?} {tool}");
    }
}

#[test]
fn a_qualified_deny_glob_also_tests_the_bare_name() {
    // A deny never matches less on a named server than on a single-server relay: a name
    // that contains `:` itself is still denied by the same glob.
    let rbac = Rbac::parse(r#"{"r": {"tools": {"deny": ["ns:danger"]}, "allowedMethods": ["*"]}}"#)
        .unwrap();
    for names in [Names::Plain, GITHUB] {
        assert_eq!(
            call(&rbac, &["r"], names, "ns:danger"),
            deny_tool("r.tools.deny[0]"),
            "{names:?}"
        );
    }
    assert!(call(&rbac, &["r"], Names::Server("ns"), "danger") == deny_tool("r.tools.deny[0]"));
    assert!(call(&rbac, &["r"], GITHUB, "danger").is_allowed());
}

#[test]
#[rustfmt::skip]
fn resource_globs_test_the_uri_and_server_colon_uri() {
    let rbac = Rbac::parse(QUALIFIED).unwrap();
    let resource = |rule: &str| Decision::DenyResource { rule: rule.into() };
    let cases = [
        (FS, "file:///public/a", allow("res.resources.allow[0]")),
        (GITHUB, "file:///public/a", resource("res.resources.deny[0]")),
        (Names::Server("db"), "file:///public/a", resource("res.resources.default_deny")),
        (FS, "https://example.com/x", allow("res.resources.allow[1]")),
        (GITHUB, "https://example.com/x", resource("res.resources.deny[0]")),
        (Names::Plain, "https://example.com/x", allow("res.resources.allow[1]")),
        (Names::Plain, "file:///public/a", resource("res.resources.default_deny")),
    ];
    for (names, uri, want) in cases {
        assert_eq!(read(&rbac, &["res"], names, uri), want, "{names:?} {uri}");
    }
}

const SCOPED: &str = r#"{
    "gh": {"allowedMethods": ["*"], "servers": ["github", "git*"]},
    "notfs": {"allowedMethods": ["*"], "blockedServers": ["fs"]},
    "both": {"allowedMethods": ["*"], "servers": ["*"], "blockedServers": ["fs"]},
    "lister": {"allowedMethods": ["*/list"], "servers": ["fs"], "tools": {"allow": ["read_*"]}}
}"#;

#[test]
#[rustfmt::skip]
fn servers_and_blocked_servers_say_which_servers_a_role_covers() {
    let rbac = Rbac::parse(SCOPED).unwrap();
    let cases = [
        ("gh", GITHUB, allow("gh.allowedMethods[0]")),
        ("gh", Names::Server("gitlab"), allow("gh.allowedMethods[0]")),
        ("gh", FS, deny_tool("gh.servers.default_deny")),
        ("notfs", GITHUB, allow("notfs.allowedMethods[0]")),
        ("notfs", FS, deny_tool("notfs.blockedServers[0]")),
        ("both", FS, deny_tool("both.blockedServers[0]")),
        ("both", GITHUB, allow("both.allowedMethods[0]")),
        // The aggregate leaves servers to the servers' own relays.
        ("gh", Names::Delegated, allow("gh.allowedMethods[0]")),
        // A single-server relay has no name for `servers` to match; nothing to block.
        ("gh", Names::Plain, deny_tool("gh.servers.default_deny")),
        ("notfs", Names::Plain, allow("notfs.allowedMethods[0]")),
    ];
    for (role, names, want) in cases {
        assert_eq!(call(&rbac, &[role], names, "echo"), want, "{role} {names:?}");
    }
}

#[test]
fn an_uncovered_server_refuses_all_but_plumbing_and_lists_nothing() {
    let rbac = Rbac::parse(SCOPED).unwrap();
    let who = roles(&["gh"]);
    for method in ["initialize", "ping", "server/discover"] {
        assert_eq!(
            rbac.decide(&who, FS, method, None, None),
            allow("always_allowed")
        );
    }
    let refused = [
        ("prompts/get", Some("p"), None),
        ("resources/read", None, Some("file:///a")),
        ("completion/complete", None, None),
        ("logging/setLevel", None, None),
    ];
    for (method, name, uri) in refused {
        let d = rbac.decide(&who, FS, method, name, uri);
        assert!(!d.is_allowed(), "{method}");
        assert_eq!(d.rule(), "gh.servers.default_deny", "{method}");
    }
    assert_eq!(
        rbac.decide(&who, FS, "logging/setLevel", None, None),
        deny_method("gh.servers.default_deny")
    );
    // Lists are answered, empty: through the aggregate the server simply has no tools.
    assert!(rbac.decide(&who, FS, "tools/list", None, None).is_allowed());
    assert!(listed(&rbac, &["gh"], FS, &["a", "b"]).is_empty());
    assert_eq!(listed(&rbac, &["gh"], GITHUB, &["a", "b"]), ["a", "b"]);
}

#[test]
fn a_role_covering_the_server_widens_a_union_that_another_does_not() {
    let rbac = Rbac::parse(SCOPED).unwrap();
    assert!(call(&rbac, &["gh", "notfs"], GITHUB, "echo").is_allowed());
    // gh does not cover fs (its tools do not exist for it), lister may not call: as with
    // any union, the caller hears "unknown tool".
    assert_eq!(
        call(&rbac, &["gh", "lister"], FS, "echo"),
        deny_tool("gh.servers.default_deny")
    );
    // Only `lister` covers fs: its tool rules decide the list there, not gh's (none).
    assert_eq!(
        listed(&rbac, &["gh", "lister"], FS, &["read_a", "write_b"]),
        ["read_a"]
    );
    assert_eq!(
        listed(&rbac, &["gh", "lister"], GITHUB, &["read_a", "write_b"]),
        ["read_a", "write_b"]
    );
}

#[test]
fn qualified_list_filter_tests_each_name_on_its_server() {
    let rbac = Rbac::parse(QUALIFIED).unwrap();
    let tools = ["create_issue", "echo", "delete_x", "create_secret"];
    assert_eq!(
        listed(&rbac, &["dev"], GITHUB, &tools),
        ["create_issue", "echo"]
    );
    assert_eq!(listed(&rbac, &["dev"], FS, &tools), ["echo"]);
    assert_eq!(listed(&rbac, &["dev"], Names::Plain, &tools), ["echo"]);
}

#[test]
fn the_delegated_scope_decides_methods_only_and_filters_nothing() {
    let rbac = Rbac::parse(QUALIFIED).unwrap();
    // `github__create_issue` is the aggregate's name for github's tool: not the role's
    // business here (github's relay decides `create_issue`).
    for tool in ["github__create_issue", "anything", "fs__delete_all"] {
        assert_eq!(
            call(&rbac, &["dev"], Names::Delegated, tool),
            allow("dev.allowedMethods[0]")
        );
    }
    assert!(rbac
        .decide(&roles(&["dev"]), Names::Delegated, "tools/call", None, None)
        .is_allowed());
    assert!(rbac
        .list_filter(&roles(&["dev"]), Names::Delegated, "tools/list")
        .is_none());
    // Method rules still apply, and so does "no role".
    let seed = seed();
    assert_eq!(
        seed.decide(
            &roles(&["readonly"]),
            Names::Delegated,
            "tools/call",
            Some("x"),
            None
        ),
        deny_method("readonly.blockedMethods[0]")
    );
    assert_eq!(
        seed.decide(&[], Names::Delegated, "tools/list", None, None),
        deny_method("no_role")
    );
}

#[test]
fn files_without_server_rules_decide_alike_on_every_relay() {
    let rbac = seed();
    let cases = [
        (&["user"][..], "tools/call", Some("echo")),
        (&["user"], "tools/call", Some("delete_repo")),
        (&["readonly"], "tools/call", Some("echo")),
        (&["readonly"], "prompts/get", Some("p")),
        (&["admin"], "foo/bar", None),
        (&[], "tools/list", None),
    ];
    for (who, method, name) in cases {
        let plain = rbac.decide(&roles(who), Names::Plain, method, name, None);
        for names in [GITHUB, FS] {
            assert_eq!(
                rbac.decide(&roles(who), names, method, name, None),
                plain,
                "{who:?} {method} {name:?}"
            );
        }
    }
    assert!(rbac.server_rules().is_none());
    let filter = |names| rbac.list_filter(&roles(&["user"]), names, "tools/list");
    let page = br#"{"id":1,"result":{"tools":[{"name":"a"},{"name":"delete_b"}]}}"#;
    assert_eq!(
        filter(Names::Plain).unwrap().apply(page),
        filter(GITHUB).unwrap().apply(page)
    );
}

#[test]
#[rustfmt::skip]
fn server_keys_are_validated_like_the_others() {
    let cases = [
        (r#"{"r": {"servers": "github"}}"#, "role `r`: `servers` must be an array of strings"),
        (r#"{"r": {"servers": [""]}}"#, "role `r`: `servers[0]` must be a non-empty glob"),
        (r#"{"r": {"blockedServers": ["[x"]}}"#, "role `r`: `blockedServers[0]` is not a valid glob"),
        (r#"{"r": {"servers": [], "servers": ["*"]}}"#, "role `r`: key `servers` is given twice"),
        (r#"{"r": {"server": ["github"]}}"#, "role `r`: unknown key `server`"),
        (r#"{"r": {"blockedserver": ["github"]}}"#, "role `r`: unknown key `blockedserver`"),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(text), want, "{text}");
    }
}

#[test]
fn server_rules_are_found_for_the_single_server_warning() {
    let found = |text: &str| Rbac::parse(text).unwrap().server_rules();
    assert_eq!(found(SCOPED).as_deref(), Some("gh.servers"));
    assert_eq!(found(QUALIFIED).as_deref(), Some("dev.tools"));
    assert_eq!(
        found(r#"{"r": {"blockedServers": ["fs"]}}"#).as_deref(),
        Some("r.servers")
    );
    // Resource globs always contain `:`: they say nothing about servers.
    assert_eq!(
        found(r#"{"r": {"resources": {"allow": ["file:///*"]}}}"#),
        None
    );
}
