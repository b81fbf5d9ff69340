//! Tests of `config/validate/servers.rs`: config files with `[servers]`, `[endpoints]` and
//! `[aggregate]`, and `--mcp-servers` files with several entries, through `config::load` with
//! an environment map (the process environment is never read here).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::servers::{FailureMode, Prefix};
use crate::config::SessionMode;
use crate::upstream::ServerSpec;

/// A command that exists on every machine: this test binary, with its directory as `PATH`.
fn program() -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_str().unwrap().to_owned();
    let name = exe.file_name().unwrap().to_str().unwrap().to_owned();
    (dir, name)
}

/// A directory for one test's files.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcp-relay-srv-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `text` with `PROGRAM` replaced by the test binary's name, written to `dir/file`.
fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let f = dir.join(file);
    std::fs::write(&f, text.replace("PROGRAM", &program().1)).unwrap();
    f
}

/// `mcp-relay serve ARGS` loaded with `PATH` set to the test binary's directory.
fn load_with(args: &[&str]) -> Result<ServeConfig, Vec<String>> {
    let vars: HashMap<String, String> = [("PATH".to_owned(), program().0)].into();
    let argv = ["mcp-relay", "serve"]
        .iter()
        .chain(args)
        .map(OsString::from)
        .collect();
    load(argv, &|k: &str| vars.get(k).cloned())
}

fn load_file(f: &Path, extra: &[&str]) -> Result<ServeConfig, Vec<String>> {
    let mut args = vec!["--config", f.to_str().unwrap()];
    args.extend(extra);
    load_with(&args)
}

const TWO: &str = r#"
[serve]
request_timeout = "30s"
max_inflight = 7
tcp_listen = "127.0.0.1:0"
env = { G = "g" }

[servers.github]
command = ["PROGRAM", "--github"]
session_mode = "shared"
children = 3
request_timeout = "5s"
env = { A = "1" }

[servers.fs]
command = ["PROGRAM"]
tcp_listen = "127.0.0.1:0"

[endpoints.support]
servers = ["fs"]
tools = ["github:get_*", "*:search"]

[aggregate]
separator = "."
failure_mode = "closed"
"#;

#[test]
fn named_servers_are_whole_configs_in_file_order() {
    let d = dir("two");
    let cfg = load_file(&write(&d, "relay.toml", TWO), &[]).unwrap();
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["github", "fs"]);
    let (gh, fs) = (&cfg.servers[0].cfg, &cfg.servers[1].cfg);
    assert_eq!(gh.server_name.as_deref(), Some("github"));
    assert_eq!(fs.server_name.as_deref(), Some("fs"));
    // A server's keys win over [serve]'s; [serve]'s are every server's defaults.
    assert_eq!(gh.session_mode, SessionMode::Shared);
    assert_eq!(gh.children, 3);
    assert_eq!(gh.upstream.request_timeout, Duration::from_secs(5));
    assert_eq!(fs.upstream.request_timeout, Duration::from_secs(30));
    assert_eq!(fs.upstream.inflight_per_session, 7);
    assert_eq!(fs.session_mode, SessionMode::PerSession);
    let ServerSpec::Command(child) = &gh.child else {
        panic!("{:?}", gh.child)
    };
    assert_eq!(child.args, ["--github"]);
    // Lists add up: [serve]'s `env` and the server's.
    assert!(child.env.contains(&("A".into(), "1".into())));
    assert!(child.env.contains(&("G".into(), "g".into())));
    // Only a server's own tcp_listen is its TCP front; [serve]'s is the relay's.
    assert_eq!(gh.tcp_listen, None);
    assert_eq!(fs.tcp_listen, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(cfg.tcp_listen, Some("127.0.0.1:0".parse().unwrap()));
    // One policy for the whole relay; the relay's child is the first server's.
    assert!(Arc::ptr_eq(&gh.policy.auth, &cfg.policy.auth));
    assert!(Arc::ptr_eq(&fs.policy.limits, &cfg.policy.limits));
    assert!(matches!(&cfg.child, ServerSpec::Command(c) if c.args == ["--github"]));
    assert_eq!(cfg.server_name, None);
    assert_eq!(cfg.endpoints.len(), 1);
    assert_eq!(cfg.endpoints[0].tools, ["github:get_*", "*:search"]);
    assert_eq!(cfg.aggregate.separator, ".");
    assert_eq!(cfg.aggregate.prefix, Prefix::Always);
    assert_eq!(cfg.aggregate.failure_mode, FailureMode::Closed);
}

#[test]
fn server_picks_one_table_served_alone() {
    let d = dir("one");
    let f = write(&d, "relay.toml", TWO);
    let cfg = load_file(&f, &["--server", "github"]).unwrap();
    assert!(cfg.servers.is_empty() && cfg.endpoints.is_empty());
    assert_eq!(cfg.server_name.as_deref(), Some("github"));
    assert_eq!(cfg.session_mode, SessionMode::Shared);
    assert_eq!(cfg.upstream.request_timeout, Duration::from_secs(5));
    let cfg = load_file(&f, &["--server", "fs"]).unwrap();
    assert_eq!(cfg.tcp_listen, Some("127.0.0.1:0".parse().unwrap()));
    let errors = load_file(&f, &["--server", "db"]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("no [servers.db]") && errors[0].contains("github, fs"),
        "{errors:?}"
    );
    let errors = load_with(&["--server", "x", "--", "true"]).unwrap_err();
    assert!(errors[0].contains("--server x"), "{errors:?}");
}

#[test]
fn a_server_gets_every_error_a_single_server_gets_prefixed_once() {
    let d = dir("errors");
    let f = write(
        &d,
        "relay.toml",
        r#"
[serve]
listen = "0.0.0.0:8080"
allowed_host = ["relay.example.com"]

[servers.a]
command = ["no-such-program-anywhere"]

[servers.b]
command = ["PROGRAM"]
cwd = "no-such-dir"
children = 0
session_mode = "per-identity"

[servers.c]
upstream = "ftp://h/"
tcp_listen = "127.0.0.1:7001"

[servers.d]
command = ["PROGRAM"]
tcp_listen = "127.0.0.1:7001"
"#,
    );
    let errors = load_file(&f, &[]).unwrap_err();
    let all = errors.join("\n");
    // The relay's own problem once, unprefixed, not once per server.
    assert_eq!(
        all.matches("is not loopback and no authentication").count(),
        1,
        "{all}"
    );
    assert!(!all.contains("servers.a: --listen"), "{all}");
    for want in [
        "servers.a: ",
        "servers.b: ",
        "--children and --max-inflight-per-child must be > 0",
        "per-identity needs --identity-header or authentication",
        "servers.c: ",
        "servers.d.tcp_listen: 127.0.0.1:7001 is taken by servers.c.tcp_listen",
    ] {
        assert!(all.contains(want), "lacks {want:?} in:\n{all}");
    }
    assert!(errors
        .iter()
        .any(|e| e.starts_with("servers.a: ") && e.contains("no-such-program-anywhere")));
    assert!(errors
        .iter()
        .any(|e| e.starts_with("servers.b: ") && e.contains("no-such-dir")));
    assert!(errors
        .iter()
        .any(|e| e.starts_with("servers.c: ") && e.contains("ftp")));
}

#[test]
fn servers_exclude_a_command_and_other_server_sources() {
    let d = dir("exclusive");
    let f = write(&d, "relay.toml", "[servers.a]\ncommand = [\"PROGRAM\"]\n");
    let errors = load_file(&f, &["--", "true"]).unwrap_err();
    assert!(errors[0].contains("[servers] in --config"), "{errors:?}");
    let errors = load_file(&f, &["--upstream", "http://127.0.0.1:9/mcp"]).unwrap_err();
    assert!(errors[0].contains("[servers] in --config"), "{errors:?}");
    let json = write(
        &d,
        "claude.json",
        r#"{"mcpServers": {"x": {"command": "PROGRAM"}}}"#,
    );
    let errors = load_file(&f, &["--mcp-servers", json.to_str().unwrap()]).unwrap_err();
    assert!(
        errors[0].contains("--mcp-servers and [servers]"),
        "{errors:?}"
    );
    let f = write(
        &d,
        "serve.toml",
        "[serve]\ncommand = [\"PROGRAM\"]\n[servers.a]\ncommand = [\"PROGRAM\"]\n",
    );
    assert!(load_file(&f, &[]).unwrap_err()[0].contains("[servers] in --config"));
}

#[test]
fn endpoints_name_configured_servers_and_publish_something() {
    let d = dir("endpoints");
    let f = write(
        &d,
        "relay.toml",
        r#"
[servers.a]
command = ["PROGRAM"]
[servers.b]
command = ["PROGRAM"]

[endpoints.empty]

[endpoints.wrong]
servers = ["a", "zz"]
tools = ["a:ok_*", "yy:x", "nocolon", "*:fine", "a:[unclosed"]
prompts = ["b:"]
resources = ["b:file:///srv/*", "q?:x"]
"#,
    );
    let errors = load_file(&f, &[]).unwrap_err();
    let all = errors.join("\n");
    for want in [
        "endpoints.empty: publishes nothing",
        "endpoints.wrong.servers: no server named `zz` (configured: a, b)",
        "endpoints.wrong.tools: `yy:x`: no server named `yy`",
        "endpoints.wrong.tools: `nocolon`: expected SERVER:NAME",
        "endpoints.wrong.tools: `a:[unclosed`",
        "endpoints.wrong.prompts: `b:`: both the server and the name are needed",
    ] {
        assert!(all.contains(want), "lacks {want:?} in:\n{all}");
    }
    assert_eq!(errors.len(), 6, "{all}");
    let f = write(&d, "single.toml", "[endpoints.e]\nservers = [\"a\"]\n");
    let errors = load_file(&f, &["--", "true"]).unwrap_err();
    assert!(errors[0].contains("need named servers"), "{errors:?}");
    let f = write(&d, "agg.toml", "[aggregate]\nprefix = \"never\"\n");
    assert!(load_file(&f, &["--", "true"]).unwrap_err()[0].contains("need named servers"));
}

#[test]
fn a_desktop_file_with_several_entries_serves_each_by_its_key() {
    let d = dir("desktop");
    let claude = write(
        &d,
        "claude.json",
        r#"{"mcpServers": {"zeta": {"command": "PROGRAM", "args": ["--z"]}, "alpha": {"url": "https://mcp.example.com/mcp"}}}"#,
    );
    let cfg = load_with(&["--mcp-servers", claude.to_str().unwrap()]).unwrap();
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
    // Upstream credentials on the command line are for the `url` entries: not the relay's
    // own problem, each server's.
    let errors = load_with(&[
        "--mcp-servers",
        claude.to_str().unwrap(),
        "--upstream-header",
        "X-Tenant: acme",
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("servers.zeta: --upstream-header"),
        "{errors:?}"
    );
    assert!(matches!(&cfg.servers[0].cfg.child, ServerSpec::Command(c) if c.args == ["--z"]));
    assert!(matches!(cfg.servers[1].cfg.child, ServerSpec::Remote(_)));
    assert_eq!(cfg.servers[1].cfg.server_name.as_deref(), Some("alpha"));
    // --server picks one: today's single-server relay.
    let one = load_with(&[
        "--mcp-servers",
        claude.to_str().unwrap(),
        "--server",
        "alpha",
    ])
    .unwrap();
    assert!(one.servers.is_empty() && matches!(one.child, ServerSpec::Remote(_)));
    let vscode = write(
        &d,
        "mcp.json",
        r#"{"inputs": [], "servers": {"b": {"type": "stdio", "command": "PROGRAM"}, "a": {"type": "http", "url": "http://127.0.0.1:9/mcp"}}}"#,
    );
    let cfg = load_with(&["--mcp-servers", vscode.to_str().unwrap()]).unwrap();
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    // One entry: a single server, as always.
    let single = write(
        &d,
        "one.json",
        r#"{"mcpServers": {"Only One": {"command": "PROGRAM"}}}"#,
    );
    let cfg = load_with(&["--mcp-servers", single.to_str().unwrap()]).unwrap();
    assert!(cfg.servers.is_empty() && matches!(cfg.child, ServerSpec::Command(_)));
}

#[test]
fn a_desktop_file_with_bad_entries_says_which_and_how_to_go_on() {
    let d = dir("desktop-bad");
    let f = write(
        &d,
        "claude.json",
        r#"{"mcpServers": {"GitHub Server": {"command": "PROGRAM"}, "ok": {"command": "PROGRAM"}}}"#,
    );
    let errors = load_with(&["--mcp-servers", f.to_str().unwrap()]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`GitHub Server` cannot name a server")
            && errors[0].contains("--server 'GitHub Server'"),
        "{errors:?}"
    );
    let cfg = load_with(&[
        "--mcp-servers",
        f.to_str().unwrap(),
        "--server",
        "GitHub Server",
    ]);
    assert!(cfg.unwrap().servers.is_empty());
    let f = write(
        &d,
        "broken.json",
        r#"{"mcpServers": {"a": {"command": "PROGRAM"}, "b": {"command": "PROGRAM", "argz": []}}}"#,
    );
    let errors = load_with(&["--mcp-servers", f.to_str().unwrap()]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("servers.b: ")
            && errors[0].contains("mcpServers.b.argz: unknown key"),
        "{errors:?}"
    );
}

#[test]
fn a_config_without_servers_is_a_single_server_as_always() {
    let d = dir("single");
    let f = write(&d, "relay.toml", "[serve]\ncommand = [\"PROGRAM\"]\n");
    let cfg = load_file(&f, &[]).unwrap();
    assert!(cfg.servers.is_empty() && cfg.endpoints.is_empty());
    assert_eq!(cfg.server_name, None);
    assert_eq!(cfg.aggregate, Default::default());
}

#[test]
fn a_server_name_may_not_hold_the_separator_while_names_are_prefixed() {
    let d = dir("separator");
    let servers = "[servers.a]\ncommand = [\"PROGRAM\"]\n[servers.a__b]\ncommand = [\"PROGRAM\"]\n";
    let f = write(&d, "relay.toml", servers);
    let errors = load_file(&f, &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("servers.a__b: the name holds"),
        "{errors:?}"
    );
    let f = write(
        &d,
        "dot.toml",
        &format!("{servers}[aggregate]\nseparator = \".\"\n"),
    );
    assert!(load_file(&f, &[]).is_ok());
    let f = write(
        &d,
        "never.toml",
        &format!("{servers}[aggregate]\nprefix = \"never\"\n"),
    );
    assert!(load_file(&f, &[]).is_ok());
}

#[test]
fn named_servers_share_the_relays_one_cluster() {
    let d = dir("cluster");
    let cfg = load_file(&write(&d, "relay.toml", TWO), &["--node", "r0"]).unwrap();
    let main = cfg.cluster.as_ref().expect("[cluster] from --node");
    assert_eq!(cfg.servers.len(), 2);
    for s in &cfg.servers {
        let theirs = s.cfg.cluster.as_ref().expect("a named server's cluster");
        assert!(Arc::ptr_eq(main, theirs), "{} has its own cluster", s.name);
    }
    // SIGHUP puts the running cluster on every server.
    let mut reloaded = load_file(&write(&d, "relay.toml", TWO), &["--node", "r0"]).unwrap();
    reloaded.use_cluster(Some(main.clone()));
    assert!(reloaded.servers.iter().all(|s| s
        .cfg
        .cluster
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(main, c))));
}
