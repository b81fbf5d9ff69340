//! The Claude Desktop extension (`.mcpb`, an MCP Bundle) of one target: a zip archive with a
//! `manifest.json` (MCPB manifest version 0.3) whose server runs `mcp-relay connect URL`
//! (the `mcp-relay` binary on the user's `PATH`), asking for the access token as a
//! sensitive setting when the target needs one.
//!
//! Owns: the manifest and the archive. Does not own: the connect page (`connect.rs`).

use std::io::Write as _;

use serde_json::{json, Value};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::{needs_token, slug, url_of, TOKEN_VAR};
use crate::admin::console::Target;

/// The manifest of `target` served under `base`.
pub(crate) fn manifest(target: &Target, base: &str) -> Value {
    let url = url_of(target, base);
    let label = target.name.as_deref().unwrap_or("all servers");
    let mut args = vec![json!("connect"), json!(url)];
    let mut config = json!({ "command": "mcp-relay", "args": [] });
    let mut m = json!({
        "manifest_version": "0.3",
        "name": slug(target),
        "display_name": format!("{label} (mcp-relay)"),
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!("The MCP server {url}, through mcp-relay connect"),
        "long_description": "Runs `mcp-relay connect` (the `mcp-relay` program must be installed and on the PATH), which relays this MCP server to Claude Desktop over stdio.",
        "author": { "name": "mcp-relay" },
        "server": { "type": "binary", "entry_point": "mcp-relay", "mcp_config": {} },
        "tools_generated": true,
        "prompts_generated": true,
        "compatibility": { "platforms": ["darwin", "win32", "linux"] },
    });
    if needs_token(target) {
        args.extend([json!("--bearer-env"), json!(TOKEN_VAR)]);
        config["env"] = json!({ TOKEN_VAR: "${user_config.token}" });
        m["user_config"] = json!({
            "token": {
                "type": "string",
                "title": "Access token",
                "description": format!("The API key or token the relay gives you for {label}"),
                "sensitive": true,
                "required": true,
            }
        });
    }
    config["args"] = Value::Array(args);
    m["server"]["mcp_config"] = config;
    m
}

/// The `.mcpb` archive of `target`: `manifest.json` alone, stored.
pub(crate) fn archive(target: &Target, base: &str) -> Result<Vec<u8>, zip::result::ZipError> {
    let text = serde_json::to_vec_pretty(&manifest(target, base)).unwrap_or_default();
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644);
    zip.start_file("manifest.json", options)?;
    zip.write_all(&text)?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: Option<&str>, auth: &'static str) -> Target {
        Target {
            name: name.map(str::to_owned),
            kind: "named",
            path: name.map_or("/mcp".to_owned(), |n| format!("/servers/{n}/mcp")),
            auth,
        }
    }

    #[test]
    fn a_token_target_asks_for_a_sensitive_token_passed_in_the_environment() {
        let m = manifest(&target(Some("git"), "api_key"), "https://relay.example");
        assert_eq!(m["manifest_version"], "0.3");
        assert_eq!(m["name"], "mcp-relay-git");
        assert_eq!(m["server"]["type"], "binary");
        let c = &m["server"]["mcp_config"];
        assert_eq!(c["command"], "mcp-relay");
        assert_eq!(
            c["args"],
            json!([
                "connect",
                "https://relay.example/servers/git/mcp",
                "--bearer-env",
                TOKEN_VAR
            ])
        );
        assert_eq!(c["env"][TOKEN_VAR], "${user_config.token}");
        assert_eq!(m["user_config"]["token"]["sensitive"], true);
    }

    #[test]
    fn an_open_or_oauth_target_asks_for_nothing() {
        for auth in ["none", "oauth"] {
            let m = manifest(&target(None, auth), "http://127.0.0.1:8080");
            assert_eq!(m["name"], "mcp-relay");
            let args = &m["server"]["mcp_config"]["args"];
            assert_eq!(args, &json!(["connect", "http://127.0.0.1:8080/mcp"]));
            assert!(m.get("user_config").is_none());
        }
    }

    #[test]
    fn the_archive_holds_the_manifest() {
        let t = target(Some("git"), "jwt");
        let bytes = archive(&t, "https://relay.example").unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let file = zip.by_name("manifest.json").unwrap();
        let m: Value = serde_json::from_reader(file).unwrap();
        assert_eq!(m, manifest(&t, "https://relay.example"));
    }
}
