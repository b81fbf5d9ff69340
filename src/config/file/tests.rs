//! Tests of `config/file.rs`: the `[serve]` section spliced into the command line.

use super::*;

#[test]
fn serve_section_becomes_flags_before_the_command_line() {
    let dir = std::env::temp_dir().join(format!("mcp-relay-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("relay.toml");
    std::fs::write(
        &f,
        "[serve]\nlisten = \"127.0.0.1:9000\"\nallowed_host = [\"a\", \"b\"]\ninsecure_no_auth = true\nenv = { K = \"v\" }\ncommand = [\"srv\", \"--x\"]\n",
    )
    .unwrap();
    let argv: Vec<OsString> = [
        "mcp-relay",
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--path",
        "/p",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let out: Vec<String> = expand_argv(argv)
        .unwrap()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    let joined = out.join(" ");
    assert!(joined.starts_with("mcp-relay serve "), "{joined}");
    assert!(
        joined.contains("--allowed-host a --allowed-host b"),
        "{joined}"
    );
    assert!(joined.contains("--insecure-no-auth"), "{joined}");
    assert!(joined.contains("--env K=v"), "{joined}");
    assert!(joined.ends_with("--path /p -- srv --x"), "{joined}");
    let _ = std::fs::remove_dir_all(&dir);
}
