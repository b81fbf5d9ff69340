//! Tests of `config/validate.rs`: flags and an environment map in, a config or every problem
//! out. The process environment is never read or changed here.

use std::collections::HashMap;
use std::ffi::OsString;

use super::*;
use crate::config::args;
use crate::upstream::ServerSpec;

const SIGNING: &str = "04396ee02d8025d2cd686a3ee44295e06508134e19a795d44d2b320862c45edb";

/// A command that exists on every machine: this test binary, with its directory as `PATH`.
fn program() -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_str().unwrap().to_owned();
    let name = exe.file_name().unwrap().to_str().unwrap().to_owned();
    (dir, name)
}

fn args_of(flags: &[&str]) -> ServeArgs {
    let argv: Vec<OsString> = ["mcp-relay", "serve"]
        .iter()
        .chain(flags)
        .map(OsString::from)
        .collect();
    args::parse(&argv).unwrap()
}

/// Validates `flags` followed by `-- <program>`, in an environment of `vars` plus `PATH`.
fn validate(flags: &[&str], vars: &[(&str, &str)]) -> Result<ServeConfig, Vec<String>> {
    let (dir, name) = program();
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("PATH".into(), dir);
    let mut all = flags.to_vec();
    all.extend(["--", name.as_str()]);
    serve(args_of(&all), &|k: &str| map.get(k).cloned())
}

#[test]
fn jwt_secret_env_missing_is_an_error_naming_it() {
    let errors = validate(&["--jwt-secret", "env:RELAY_SIGNING"], &[]).unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("RELAY_SIGNING")),
        "{errors:?}"
    );
}

#[test]
fn jwt_secret_env_present_enables_authentication() {
    let cfg = validate(
        &["--jwt-secret", "env:RELAY_SIGNING"],
        &[("RELAY_SIGNING", SIGNING)],
    )
    .unwrap();
    assert!(cfg.policy.auth.is_enabled());
}

#[test]
fn child_env_comes_from_the_passed_environment() {
    let cfg = validate(
        &["--pass-env", "RELAY_EXTRA", "--env", "K=v"],
        &[("RELAY_EXTRA", "1"), ("HOME", "/home/relay")],
    )
    .unwrap();
    let ServerSpec::Command(child) = &cfg.child else {
        panic!("not a command");
    };
    let names: Vec<&str> = child.env.iter().map(|(k, _)| k.as_str()).collect();
    // PATH and HOME pass by default, RELAY_EXTRA by --pass-env; USER is not in the map.
    assert_eq!(names, ["PATH", "HOME", "RELAY_EXTRA", "K"]);
}

#[test]
fn command_not_on_the_passed_path_is_an_error() {
    let map = HashMap::from([("PATH".to_owned(), "/nonexistent-relay-dir".to_owned())]);
    let (_, name) = program();
    let errors = serve(args_of(&["--", &name]), &|k: &str| map.get(k).cloned()).unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("not found on PATH")),
        "{errors:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = validate(
        &[
            "--path",
            "mcp",
            "--max-sessions",
            "0",
            "--request-timeout",
            "20m",
            "--listen",
            "0.0.0.0:8080",
        ],
        &[],
    )
    .unwrap_err();
    for part in [
        "--path `mcp`",
        "--max-sessions",
        "--request-timeout must not exceed",
        "--allowed-host",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(part)),
            "{part}: {errors:?}"
        );
    }
}

#[test]
fn admin_token_env_is_read_from_the_passed_environment() {
    let flags = [
        "--admin-listen",
        "127.0.0.1:9090",
        "--admin-token-env",
        "RELAY_ADMIN",
    ];
    let errors = validate(&flags, &[]).unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("RELAY_ADMIN")),
        "{errors:?}"
    );
    let token = "Zq8vN3xK7pR2mW9tY4bC6dF1gH5jL0sA";
    assert!(validate(&flags, &[("RELAY_ADMIN", token)])
        .unwrap()
        .admin
        .is_some());
}

#[test]
fn bridge_defaults_are_the_serve_defaults() {
    let url = "http://127.0.0.1:1/mcp";
    let none = |_: &str| None;
    let flags = [
        "--upstream",
        url,
        "--session-mode",
        "shared",
        "--children",
        "1",
    ];
    let mut serve_cfg = serve(args_of(&flags), &none).unwrap();
    let remote = RemoteSpec::parse(url, 16 << 20, None).unwrap();
    let bridge_cfg = ServeConfig::bridge(remote, Duration::from_secs(60), &none).unwrap();
    serve_cfg.forward_hello = true;
    serve_cfg.child = bridge_cfg.child.clone();
    // The overload guard's birth instant is the only field that may differ.
    let shown = |c: &ServeConfig| {
        let s = format!("{c:?}");
        let born = s.find("born: Instant").unwrap();
        let end = born + s[born..].find('}').unwrap();
        format!("{}{}", &s[..born], &s[end..])
    };
    assert_eq!(shown(&serve_cfg), shown(&bridge_cfg));
}

#[test]
fn serve_line_finds_the_subcommand_after_global_flags() {
    let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let at = |a: &[&str]| args::subcommand_at(&argv(a));
    assert_eq!(at(&["mcp-relay", "serve"]), Some(1));
    assert_eq!(
        at(&[
            "mcp-relay",
            "--log-format",
            "json",
            "--log-level=debug",
            "stdio"
        ]),
        Some(4)
    );
    assert_eq!(at(&["mcp-relay", "connect", "serve"]), None);
}
