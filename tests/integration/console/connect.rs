//! The connect page: for the main path and each named server, configurations that are valid
//! JSON naming the right URL and no secret, and a `.mcpb` extension that unzips to an MCPB
//! manifest running `mcp-relay connect URL`.

use std::io::Read as _;

use serde_json::Value;

use super::operator::{admin_of, config_relay, server, unescape, write_config, Browser, TOKEN};

/// The text of `<pre data-snippet="ID" data-target="TARGET">` on a page.
fn snippet(html: &str, id: &str, target: &str) -> String {
    let tag = format!("<pre data-snippet=\"{id}\" data-target=\"{target}\">");
    let at = html
        .find(&tag)
        .unwrap_or_else(|| panic!("no {id} for {target}: {html}"));
    let rest = &html[at + tag.len()..];
    let inner = rest.split("</pre>").next().unwrap();
    unescape(
        inner
            .trim_start_matches("<code>")
            .trim_end_matches("</code>"),
    )
}

#[tokio::test]
async fn each_target_has_json_configurations_with_its_url_and_an_extension() {
    let config = write_config(&format!("{}{}", server("alpha"), server("beta")));
    let relay = config_relay(&config, &[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    b.bearer = Some(TOKEN.into());
    let (status, html) = b.page("/ui/connect").await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains(TOKEN));
    for (target, url) in [
        ("main", format!("{}/mcp", relay.base)),
        ("alpha", format!("{}/servers/alpha/mcp", relay.base)),
        ("beta", format!("{}/servers/beta/mcp", relay.base)),
    ] {
        let desktop: Value =
            serde_json::from_str(&snippet(&html, "claude-desktop", target)).unwrap();
        let (_, entry) = desktop["mcpServers"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(entry["command"], "mcp-relay");
        assert_eq!(entry["args"][0], "connect");
        assert_eq!(entry["args"][1], url.as_str());
        let vscode: Value = serde_json::from_str(&snippet(&html, "vscode", target)).unwrap();
        let (_, entry) = vscode["servers"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(
            (entry["type"].as_str(), entry["url"].as_str()),
            (Some("http"), Some(url.as_str()))
        );
        let cursor: Value = serde_json::from_str(&snippet(&html, "cursor", target)).unwrap();
        let (_, entry) = cursor["mcpServers"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(entry["url"], url.as_str());
        assert_eq!(snippet(&html, "claude-ai", target), url);
        let curl = snippet(&html, "curl", target);
        assert!(curl.starts_with(&format!("curl -sS '{url}'")), "{curl}");
        assert!(curl.contains("\"method\":\"initialize\""), "{curl}");

        let res = b.get(&format!("/ui/connect/{target}.mcpb")).await;
        assert_eq!(res.status(), 200, "{target}");
        assert_eq!(res.headers()["content-type"], "application/zip");
        let bytes = res.bytes().await.unwrap().to_vec();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        zip.by_name("manifest.json")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let m: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["manifest_version"], "0.3");
        for field in ["name", "version", "description"] {
            assert!(
                m[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}: {m}"
            );
        }
        assert!(m["author"]["name"].is_string());
        assert_eq!(m["server"]["type"], "binary");
        let c = &m["server"]["mcp_config"];
        assert_eq!(c["command"], "mcp-relay");
        assert_eq!(c["args"], serde_json::json!(["connect", url]));
        assert!(
            m.get("user_config").is_none(),
            "an open relay needs no token: {m}"
        );
    }
    assert_eq!(b.get("/ui/connect/gamma.mcpb").await.status(), 404);
    assert_eq!(b.get("/ui/connect/alpha.zip").await.status(), 404);
}

#[tokio::test]
async fn a_target_with_api_keys_reads_the_token_from_the_environment() {
    let (_, block) = crate::support::mint_api_key(&["--id", "laptop"]);
    let config = write_config(&block);
    let relay = config_relay(&config, &["--", crate::support::FIXTURE]);
    let mut b = Browser::new(&admin_of(&relay).await);
    b.bearer = Some(TOKEN.into());
    let (_, html) = b.page("/ui/connect").await;
    let desktop: Value = serde_json::from_str(&snippet(&html, "claude-desktop", "main")).unwrap();
    let entry = &desktop["mcpServers"]["mcp-relay"];
    assert_eq!(entry["args"][2], "--bearer-env");
    assert_eq!(entry["args"][3], "MCP_RELAY_TOKEN");
    let vscode: Value = serde_json::from_str(&snippet(&html, "vscode", "main")).unwrap();
    assert_eq!(vscode["inputs"][0]["type"], "promptString");
    assert_eq!(vscode["inputs"][0]["password"], true);
    let res = b.get("/ui/connect/main.mcpb").await;
    let bytes = res.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let m: Value = serde_json::from_reader(zip.by_name("manifest.json").unwrap()).unwrap();
    assert_eq!(m["user_config"]["token"]["sensitive"], true);
    assert_eq!(
        m["server"]["mcp_config"]["env"]["MCP_RELAY_TOKEN"],
        "${user_config.token}"
    );
}
