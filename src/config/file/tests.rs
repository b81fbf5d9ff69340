//! Tests of `config/file.rs`: the `[serve]` section spliced into the command line, the schema
//! of the other sections, the `check-config` summary lines.

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

/// The keys serde accepts in a table of `[oauth_server]` (from its unknown-field message).
fn accepted_keys(toml_text: &str) -> Vec<String> {
    let e = toml::from_str::<crate::config::security::FileConfig>(toml_text).unwrap_err();
    let msg = e.to_string();
    let list = msg.split("expected one of").nth(1).unwrap_or_default();
    let mut keys: Vec<String> = list
        .split(',')
        .map(|k| {
            k.trim()
                .trim_matches(|c: char| c == '`' || c.is_whitespace())
        })
        .filter(|k| !k.is_empty())
        .map(|k| k.split('`').next().unwrap_or_default().to_owned())
        .collect();
    keys.sort();
    keys
}

fn schema_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_schema_has_every_oauth_server_key() {
    let schema = schema();
    let o = &schema["properties"]["oauth_server"];
    assert_eq!(
        schema_keys(o),
        accepted_keys("[oauth_server]\nzz_unknown = 1\n")
    );
    assert_eq!(
        schema_keys(&o["properties"]["users"]["items"]),
        accepted_keys("[[oauth_server.users]]\nzz_unknown = 1\n")
    );
    assert_eq!(
        schema_keys(&o["properties"]["upstream"]),
        accepted_keys("[oauth_server.upstream]\nzz_unknown = 1\n")
    );
}

#[test]
fn the_schema_has_every_cluster_key() {
    let schema = schema();
    let c = &schema["properties"]["cluster"];
    assert_eq!(schema_keys(c), accepted_keys("[cluster]\nzz_unknown = 1\n"));
    assert_eq!(
        schema_keys(&c["properties"]["store"]),
        accepted_keys("[cluster.store]\nzz_unknown = 1\n")
    );
}

#[test]
fn check_config_names_the_fleet_without_the_store_url() {
    let file: crate::cluster::config::ClusterFile = toml::from_str(
        r#"node = "r1"
           peers = { r0 = "http://10.0.0.10:8080", r1 = "http://10.0.0.11:8080", r2 = "http://10.0.0.12:8080" }
           drain_window = "30s"
           [store]
           url = "redis://:k7Qw9zPx2mVt@10.0.0.20:6379/0"
           expected_nodes = 3"#,
    )
    .unwrap();
    let mut errors = Vec::new();
    let cfg = crate::cluster::config::build(
        Some(file),
        crate::cluster::config::Flags::default(),
        &|_| None,
        &mut errors,
    )
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let line = fleet_summary(&cfg);
    assert!(
        line.starts_with("fleet: node r1, 2 peers (r0, r2), drain window 30s, limits shared"),
        "{line}"
    );
    assert!(line.contains("3 expected nodes"), "{line}");
    assert!(
        !line.contains("k7Qw9zPx2mVt") && !line.contains("10.0.0.20"),
        "{line}"
    );
}
