//! Tests of `--mcp-servers` reading (issue 14, bug 9): the hosts' formats, strict keys with
//! their paths, variables.

use super::*;

fn write(name: &str, doc: &Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-relay-mcps-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("mcp.json");
    std::fs::write(&f, doc.to_string()).unwrap();
    f
}

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "t0k".to_owned())
}

#[test]
fn vscode_servers_with_type_headers_and_env_variables_are_read() {
    let f = write(
        "vscode",
        &serde_json::json!({"inputs": [], "servers": {
            "remote": {"type": "sse", "url": "https://h/sse",
                "headers": {"Authorization": "Bearer ${env:TOKEN}"}},
            "local": {"type": "stdio", "command": "srv", "args": ["--a", "${env:TOKEN}"],
                "env": {"K": "v"}, "disabled": false}
        }}),
    );
    assert_eq!(
        read(&f, Some("remote"), &env),
        Ok(McpServer::Url {
            url: "https://h/sse".into(),
            headers: vec![("Authorization".into(), "Bearer t0k".into())],
            legacy_sse: true,
        })
    );
    let Ok(McpServer::Command {
        argv,
        env: vars,
        cwd,
    }) = read(&f, Some("local"), &env)
    else {
        panic!("not a command");
    };
    assert_eq!(argv, ["srv", "--a", "t0k"]);
    assert_eq!(vars, [("K".to_owned(), "v".to_owned())]);
    assert_eq!(cwd, None);
}

#[test]
fn unknown_keys_and_inputs_are_errors_with_their_paths() {
    let f = write(
        "strict",
        &serde_json::json!({"mcpServers": {
            "a": {"command": "srv", "argz": ["x"], "enviroment": {}},
            "b": {"url": "https://h/mcp", "headers": {"X-Key": "${input:key}"}},
            "c": {"type": "ws", "url": "wss://h"}
        }}),
    );
    let errs = read(&f, Some("a"), &env).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("mcpServers.a.argz: unknown key"),
        "{errs:?}"
    );
    assert!(errs[1].contains("mcpServers.a.enviroment"), "{errs:?}");
    let errs = read(&f, Some("b"), &env).unwrap_err();
    assert!(
        errs[0].contains("mcpServers.b.headers.X-Key") && errs[0].contains("VS Code input"),
        "{errs:?}"
    );
    let errs = read(&f, Some("c"), &env).unwrap_err();
    assert!(errs[0].contains("mcpServers.c.type"), "{errs:?}");
}

#[test]
fn a_missing_or_wrong_name_lists_the_servers_once() {
    let f = write(
        "names",
        &serde_json::json!({"mcpServers": {"x": {"command": "a"}, "y": {"url": "http://h/mcp"}}}),
    );
    let errs = read(&f, None, &env).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("(x, y)") && errs[0].contains("--server"),
        "{errs:?}"
    );
    let errs = read(&f, Some("z"), &env).unwrap_err();
    assert!(
        errs[0].contains("no server named `z`") && errs[0].contains("x, y"),
        "{errs:?}"
    );
}

#[test]
fn variables_expand_or_say_why_not() {
    assert_eq!(expand("a${env:TOKEN}b", &env), Ok("at0kb".into()));
    assert!(expand("${env:NOPE}", &env)
        .unwrap_err()
        .contains("NOPE is not set"));
    assert!(expand("${workspaceFolder}/x", &env).is_err());
    assert!(expand("${env:TOKEN", &env).is_err());
    assert_eq!(expand("plain", &env), Ok("plain".into()));
}

#[test]
fn names_are_listed_in_the_files_order_in_both_forms() {
    let dir = std::env::temp_dir().join(format!("mcp-relay-mcps-{}-order", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("claude.json");
    std::fs::write(
        &f,
        r#"{"globalShortcut": "", "mcpServers": {"zeta": {"command": "a"}, "alpha": {"url": "http://h/mcp"}, "mid": {}}}"#,
    )
    .unwrap();
    assert_eq!(
        names(&f),
        Some(vec!["zeta".into(), "alpha".into(), "mid".into()])
    );
    let f = dir.join("vscode.json");
    std::fs::write(&f, r#"{"inputs": [], "servers": {"b": {}, "a": {}}}"#).unwrap();
    assert_eq!(names(&f), Some(vec!["b".into(), "a".into()]));
    std::fs::write(&f, "not json").unwrap();
    assert_eq!(names(&f), None);
    assert_eq!(names(&dir.join("absent.json")), None);
}
