//! The config file: every example validates, a broken file reports all its problems at once,
//! `[serve]` keys are flags (the command line wins), a Claude Desktop `mcpServers` file names
//! the server, and `schema` describes the file.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{tempdir, Relay, FIXTURE, RELAY};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_config_passes_check_config() {
    let secret = Command::new(RELAY)
        .args(["token", "secret"])
        .output()
        .unwrap();
    let secret = String::from_utf8(secret.stdout).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = Command::new(RELAY)
            .arg("check-config")
            .arg(&path)
            .env("RELAY_JWT_SECRET", secret.trim())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 2, "no example configs found");
}

#[test]
fn a_broken_config_prints_every_problem_at_once() {
    let f = tempdir().join("bad.toml");
    std::fs::write(
        &f,
        "[serve]\nlisten = \"not an address\"\nno_such_flag = 1\nmax_sessions = \"many\"\n\n[auth]\nunknown = 2\n",
    )
    .unwrap();
    for args in [vec!["check-config"], vec!["serve", "--config"]] {
        let out = Command::new(RELAY).args(&args).arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for path in [
            "serve.listen",
            "serve.no_such_flag",
            "serve.max_sessions",
            "unknown",
        ] {
            assert!(err.contains(path), "{args:?} misses {path}: {err}");
        }
    }
}

#[tokio::test]
async fn serve_keys_are_flags_and_the_command_line_wins() {
    let dir = tempdir();
    let f = dir.join("relay.toml");
    std::fs::write(
        &f,
        format!(
            "[serve]\nlisten = \"127.0.0.1:1\"\npath = \"/from-file\"\ncommand = [{:?}]\n",
            FIXTURE
        ),
    )
    .unwrap();
    // `--listen` on the command line overrides the file's; `path` comes from the file.
    let relay = Relay::start_raw(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(relay.url.ends_with("/from-file"), "{}", relay.url);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "echo", json!({"text": "from a file"}))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn an_mcp_servers_file_names_the_server() {
    let dir = tempdir();
    let f = dir.join("claude_desktop_config.json");
    std::fs::write(
        &f,
        json!({"mcpServers": {
            "fixture": {"command": FIXTURE, "args": ["--record", dir.join("rec.log")], "env": {"MCP_TEST_VAR": "set"}},
            "Other Server": {"url": "https://mcp.example.com/mcp"}
        }})
        .to_string(),
    )
    .unwrap();
    let two = Command::new(RELAY)
        .args(["serve", "--listen", "127.0.0.1:0", "--mcp-servers"])
        .arg(&f)
        .output()
        .unwrap();
    // Without --server every entry would be a named server, and `Other Server` cannot name
    // one: the error says to rename it or to pick an entry.
    assert_eq!(two.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("--server 'Other Server'"),
        "{two:?}"
    );
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mcp-servers",
        f.to_str().unwrap(),
        "--server",
        "fixture",
    ]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "env", json!({"name": "MCP_TEST_VAR"}))
        .await;
    assert_eq!(crate::support::text_of(&r.messages()[0]), "set");
    assert!(dir.join("rec.log").exists());
    // The bundled example parses too.
    let out = Command::new(RELAY)
        .args(["check-config"])
        .arg(examples().join("relay.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn schema_describes_every_serve_flag() {
    let out = Command::new(RELAY).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let serve = &schema["properties"]["serve"]["properties"];
    for key in [
        "listen",
        "allowed_host",
        "session_mode",
        "command",
        "tls_cert",
        "max_body",
    ] {
        assert!(serve.get(key).is_some(), "schema lacks serve.{key}");
    }
    assert_eq!(serve["listen"]["default"], "127.0.0.1:8080");
    assert_eq!(serve["allowed_host"]["type"], "array");
}

// Issue 14, bug 9: `--mcp-servers` reads VS Code's `servers`, refuses an unknown key of the
// chosen entry with its path (as the TOML config does), refuses a `${input:…}` it cannot
// resolve, and without --server (every entry a named server) says which entry is wrong. On
// main unknown keys were ignored, `servers` was not read, and a second `no server` error
// followed.
#[tokio::test]
async fn mcp_servers_files_are_read_strictly_in_every_hosts_format() {
    let dir = tempdir();
    let serve = |file: &std::path::Path, extra: &[&str]| {
        Command::new(RELAY)
            .args(["serve", "--listen", "127.0.0.1:0", "--mcp-servers"])
            .arg(file)
            .args(extra)
            .output()
            .unwrap()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let two = dir.join("claude_desktop_config.json");
    std::fs::write(
        &two,
        json!({"globalShortcut": "", "mcpServers": {
            "a": {"command": FIXTURE, "autoApprove": []},
            "b": {"command": FIXTURE, "argz": ["x"]}
        }})
        .to_string(),
    )
    .unwrap();
    let out = serve(&two, &[]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("servers.b: ") && err.contains("mcpServers.b.argz: unknown key"),
        "{err}"
    );
    assert!(!err.contains("servers.a"), "{err}");
    assert!(
        !err.contains("no server"),
        "a second, misleading error: {err}"
    );
    let out = serve(&two, &["--server", "b"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("mcpServers.b.argz: unknown key"),
        "{}",
        stderr(&out)
    );

    let inputs = dir.join("inputs.json");
    std::fs::write(
        &inputs,
        json!({"inputs": [{"id": "key", "type": "promptString"}], "servers": {
            "r": {"type": "http", "url": "http://127.0.0.1:1/mcp",
                "headers": {"X-API-Key": "${input:key}"}}
        }})
        .to_string(),
    )
    .unwrap();
    let out = serve(&inputs, &[]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("servers.r.headers.X-API-Key") && err.contains("VS Code input"),
        "{err}"
    );

    // VS Code's `servers` with a stdio entry is served.
    let vscode = dir.join("mcp.json");
    std::fs::write(
        &vscode,
        json!({"servers": {"fixture": {"type": "stdio", "command": FIXTURE,
            "env": {"MCP_TEST_VAR": "from-vscode"}}}})
        .to_string(),
    )
    .unwrap();
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mcp-servers",
        vscode.to_str().unwrap(),
    ]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "env", json!({"name": "MCP_TEST_VAR"}))
        .await;
    assert_eq!(crate::support::text_of(&r.messages()[0]), "from-vscode");
}

#[test]
fn bad_audit_settings_are_all_reported_before_binding() {
    // Issue 14, bug 4: check-config said `ok`, and serve bound, said "listening", then exited 1.
    let dir = tempdir();
    let f = dir.join("relay.toml");
    // Held by the test: a relay that bound before checking would say "cannot listen".
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    std::fs::write(
        &f,
        format!(
            "[serve]\nlisten = \"{addr}\"\ncommand = [{FIXTURE:?}]\n\n[audit]\nfile = \"no-such-dir/audit.log\"\nmax_size = \"lots\"\nkeep = 100000\n"
        ),
    )
    .unwrap();
    let missing = dir.join("no-such-dir");
    for args in [vec!["check-config"], vec!["serve", "--config"]] {
        let out = Command::new(RELAY).args(&args).arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "audit.max_size `lots`",
            "audit.keep",
            &format!("audit.file: cannot write {}/audit.log", missing.display()),
            &format!("directory {}: No such file or directory", missing.display()),
        ] {
            assert!(err.contains(want), "{args:?} misses {want:?}: {err}");
        }
        assert!(!err.contains("listening"), "{args:?}: {err}");
        assert!(!err.contains("cannot listen"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created the directory");
    }
    // The same from the command line, with the other settings checked before binding too.
    let file_not_dir = dir.join("relay.toml/audit.log");
    let out = Command::new(RELAY)
        .args(["serve", "--listen", &addr.to_string(), "--audit-log"])
        .arg(&file_not_dir)
        .arg("--cwd")
        .arg(&missing)
        .args(["--", FIXTURE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        format!("--audit-log: cannot write {}", file_not_dir.display()),
        "Not a directory".to_owned(),
        format!("--cwd {}: No such file or directory", missing.display()),
    ] {
        assert!(err.contains(&want), "misses {want:?}: {err}");
    }
    assert!(
        !err.contains("listening") && !err.contains("cannot listen"),
        "{err}"
    );
    // With a bad `[serve]` key too, the audit problems still come in the same run.
    let both = dir.join("both.toml");
    std::fs::write(
        &both,
        "[serve]\nno_such_flag = 1\n\n[audit]\nfile = \"no-such-dir/audit.log\"\nmax_size = \"lots\"\n",
    )
    .unwrap();
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&both)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "serve.no_such_flag",
        "audit.max_size",
        "audit.file: cannot write",
    ] {
        assert!(err.contains(want), "misses {want:?}: {err}");
    }
    // A log that can be written is fine, and is created only when serving.
    let ok = dir.join("relay-ok.toml");
    std::fs::write(
        &ok,
        format!("[serve]\nlisten = \"{addr}\"\ncommand = [{FIXTURE:?}]\n\n[audit]\nfile = \"audit.log\"\nmax_size = \"1MiB\"\n"),
    )
    .unwrap();
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&ok)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!dir.join("audit.log").exists());
    drop(taken);
}
