//! Tests of `config/file/servers.rs`: the multi-server tables read key by key, in file order,
//! every problem with its path.

use super::*;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-relay-srvfile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("relay.toml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn server_tables_become_flags_in_file_order() {
    let f = write(
        "ok",
        r#"
[serve]
listen = "127.0.0.1:9000"

[servers.zeta]
command = ["srv", "--x"]
env = { K = "v" }
cwd = "work"
session_mode = "shared"
children = 2
request_timeout = "5s"
tcp_listen = "127.0.0.1:7001"

[servers.alpha]
upstream = "https://mcp.example.com/mcp"
upstream_bearer_file = "token.txt"

[servers.mid]
mcp_servers = "claude.json"
server = "one"

[endpoints.support]
servers = ["alpha"]
tools = ["zeta:get_*"]

[aggregate]
separator = "."
prefix = "never"
failure_mode = "closed"
"#,
    );
    let (t, errors) = read(&f);
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = t.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
    let base = f.parent().unwrap();
    let zeta = &t.servers[0];
    assert_eq!(zeta.command, Some(vec!["srv".into(), "--x".into()]));
    let flags = zeta.flags.join(" ");
    for want in [
        "--env K=v".to_owned(),
        format!("--cwd {}", base.join("work").display()),
        "--session-mode shared".into(),
        "--children 2".into(),
        "--request-timeout 5s".into(),
    ] {
        assert!(flags.contains(&want), "{flags} lacks {want}");
    }
    assert_eq!(zeta.tcp_listen, Some("127.0.0.1:7001".parse().unwrap()));
    let argv: Vec<String> = zeta
        .argv()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert!(argv.join(" ").ends_with("-- srv --x"), "{argv:?}");
    let alpha = t.servers[1].flags.join(" ");
    assert!(alpha.contains(&format!(
        "--upstream-bearer-file {}",
        base.join("token.txt").display()
    )));
    assert!(t.servers[2].flags.join(" ").contains(&format!(
        "--mcp-servers {} --server one",
        base.join("claude.json").display()
    )));
    assert_eq!(
        t.endpoints,
        vec![EndpointSpec {
            name: "support".into(),
            servers: vec!["alpha".into()],
            tools: vec!["zeta:get_*".into()],
            ..EndpointSpec::default()
        }]
    );
    let agg = t.aggregate.unwrap();
    assert_eq!(
        (agg.separator.as_str(), agg.prefix, agg.failure_mode),
        (".", Prefix::Never, FailureMode::Closed)
    );
}

#[test]
fn every_key_level_problem_is_reported_with_its_path() {
    let f = write(
        "bad",
        r#"
[servers.GitHub]
command = ["a"]

[servers.a]
command = ["a"]
listen = "0.0.0.0:1"
tls_cert = "c.pem"
colour = "red"
request_timeout = "soon"

[servers.b]
env = { K = "v" }
upstream_ca = "ca.pem"

[servers.c]
command = ["a"]
upstream = "http://h/mcp"
server = "x"

[endpoints.e]
tool = ["a:x"]
servers = "a"

[aggregate]
separator = "::"
prefix = "sometimes"
failure_mode = 1
mode = "x"
"#,
    );
    let (t, errors) = read(&f);
    // Only the tables without problems are kept; every named table counts as configured.
    assert_eq!(t.names, ["a", "b", "c"]);
    assert!(t.servers.is_empty() && t.endpoints.is_empty() && t.aggregate.is_none());
    let all = errors.join("\n");
    for want in [
        "servers.GitHub: `GitHub` is not a valid name",
        "servers.a.listen: `listen` is set for the whole relay, not per server: it belongs in [serve]",
        "servers.a.tls_cert: `tls_cert` is set for the whole relay",
        "servers.a.colour: unknown key",
        "servers.a.request_timeout: ",
        "servers.b: no server: give `command`, `upstream` or `mcp_servers`",
        "servers.b.upstream_ca: applies to a remote server",
        "servers.c: command and upstream: keep one",
        "servers.c.server: names an entry of `mcp_servers`",
        "endpoints.e.tool: unknown key",
        "endpoints.e.servers: expected an array of strings",
        "aggregate.separator: `::`",
        "aggregate.prefix: expected \"always\" or \"never\"",
        "aggregate.failure_mode: expected \"open\" or \"closed\"",
        "aggregate.mode: unknown key",
    ] {
        assert!(all.contains(want), "lacks {want:?} in:\n{all}");
    }
    assert_eq!(errors.len(), 15, "{all}");
    // Alone, they are reported with the servers' other problems, not by the key-level pass.
    assert!(crate::config::file::key_errors(&f).is_empty());
}

#[test]
fn an_empty_servers_table_and_a_file_without_tables() {
    let (_, errors) = read(&write("empty", "[servers]\n"));
    assert!(errors[0].contains("servers: empty"), "{errors:?}");
    let (t, errors) = read(&write("none", "[serve]\nlisten = \"127.0.0.1:1\"\n"));
    assert!(errors.is_empty());
    assert!(t.servers.is_empty() && t.endpoints.is_empty() && t.aggregate.is_none());
}

#[test]
fn the_schema_lists_only_per_server_keys_for_servers() {
    let schema = crate::config::file::schema();
    let server = &schema["properties"]["servers"]["additionalProperties"]["properties"];
    for key in [
        "command",
        "upstream",
        "session_mode",
        "tcp_listen",
        "mcp_servers",
        "env",
    ] {
        assert!(server.get(key).is_some(), "servers.NAME lacks {key}");
    }
    for key in ["listen", "tls_cert", "audit_log", "path"] {
        assert!(server.get(key).is_none(), "servers.NAME has {key}");
    }
    assert_eq!(
        schema["properties"]["aggregate"]["properties"]["prefix"]["enum"],
        serde_json::json!(["always", "never"])
    );
    assert!(schema["properties"]["endpoints"].is_object());
}
