//! The connect page: ready-to-paste client configurations for each server, endpoint and the
//! aggregate (Claude Desktop with `mcp-relay connect`, the claude.ai connector URL, VS Code,
//! Cursor, a `curl` smoke test) and a Claude Desktop extension (`.mcpb`) per target.
//!
//! No configuration holds a secret: where a target takes an API key or a token, the client
//! reads it from an environment variable ([`TOKEN_VAR`]), a VS Code password prompt or the
//! extension's sensitive setting.
//!
//! Owns: the configurations' text, the page, the extension download (the archive itself is
//! `connect/mcpb.rs`). Does not own: what the targets are (`Console::targets`) or the public
//! base URL (`app/console.rs`).

pub(crate) mod mcpb;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use serde_json::{json, Value};

use super::layout::{self, Tab};
use super::{Deps, Operator, Target};

/// The environment variable the configurations read the token from.
pub(crate) const TOKEN_VAR: &str = "MCP_RELAY_TOKEN";
/// The protocol version of the `curl` smoke test.
const CURL_VERSION: &str = "2025-11-25";

/// Whether clients of `t` send a bearer credential of their own (an API key or a JWT); an
/// OAuth target's clients log in themselves.
pub(crate) fn needs_token(t: &Target) -> bool {
    matches!(t.auth, "api_key" | "jwt")
}

/// The MCP URL of `t` under `base`.
pub(crate) fn url_of(t: &Target, base: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), t.path)
}

/// The name clients know `t` by: `mcp-relay`, `mcp-relay-NAME` (lowercase, `a-z0-9-`).
pub(crate) fn slug(t: &Target) -> String {
    match &t.name {
        None => "mcp-relay".to_owned(),
        Some(n) => format!("mcp-relay-{}", clean(n)),
    }
}

/// `name` with every character but `a-z0-9-` as `-`.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect()
}

/// The file name of the extension of `t`, without `.mcpb`: `main` for the main path.
fn file_of(t: &Target) -> String {
    t.name.as_deref().map_or("main".to_owned(), clean)
}

/// One ready-to-paste configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snippet {
    /// `claude-desktop` | `claude-ai` | `vscode` | `cursor` | `curl`.
    pub id: &'static str,
    pub title: &'static str,
    /// Where it goes, and what it needs.
    pub note: String,
    pub text: String,
}

/// The configurations of `t` under `base`.
pub(crate) fn snippets(t: &Target, base: &str) -> Vec<Snippet> {
    let url = url_of(t, base);
    let key = slug(t);
    let token = needs_token(t);
    let pretty = |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    let mut args = vec![json!("connect"), json!(url)];
    let mut desktop = json!({ "command": "mcp-relay" });
    if token {
        args.extend([json!("--bearer-env"), json!(TOKEN_VAR)]);
        desktop["env"] = json!({ TOKEN_VAR: "PASTE-YOUR-TOKEN-HERE" });
    }
    desktop["args"] = Value::Array(args);
    let mut vscode = json!({ "servers": { &key: { "type": "http", "url": url } } });
    let mut cursor = json!({ "mcpServers": { &key: { "url": url } } });
    if token {
        let input = "mcp-relay-token";
        vscode["servers"][&key]["headers"] =
            json!({ "Authorization": format!("Bearer ${{input:{input}}}") });
        vscode["inputs"] = json!([{
            "type": "promptString",
            "id": input,
            "description": format!("Token for {url}"),
            "password": true,
        }]);
        cursor["mcpServers"][&key]["headers"] =
            json!({ "Authorization": format!("Bearer ${{env:{TOKEN_VAR}}}") });
    }
    let claude_ai = match t.auth {
        "api_key" | "jwt" => "Settings → Connectors → Add custom connector. claude.ai connects from the internet and signs in with OAuth: this URL takes API keys or tokens, so use Claude Desktop for it, or turn on the relay's authorization server ([oauth_server]).",
        _ => "Settings → Connectors → Add custom connector, with this URL. claude.ai connects from the internet: the URL must be public and https.",
    };
    vec![
        Snippet {
            id: "claude-desktop",
            title: "Claude Desktop",
            note: match token {
                true => format!("In claude_desktop_config.json, under mcpServers (mcp-relay on the PATH); put your token in {TOKEN_VAR}."),
                false => "In claude_desktop_config.json, under mcpServers (mcp-relay on the PATH); connect signs in by itself when the relay asks for it.".to_owned(),
            },
            text: pretty(json!({ "mcpServers": { &key: desktop } })),
        },
        Snippet {
            id: "claude-ai",
            title: "claude.ai connector",
            note: claude_ai.to_owned(),
            text: url.clone(),
        },
        Snippet {
            id: "vscode",
            title: "VS Code",
            note: "In .vscode/mcp.json (or the user settings' MCP servers).".to_owned(),
            text: pretty(vscode),
        },
        Snippet {
            id: "cursor",
            title: "Cursor",
            note: match token {
                true => format!("In ~/.cursor/mcp.json; Cursor reads the token from {TOKEN_VAR} in its environment."),
                false => "In ~/.cursor/mcp.json.".to_owned(),
            },
            text: pretty(cursor),
        },
        Snippet {
            id: "curl",
            title: "curl smoke test",
            note: match t.auth {
                "none" => "Initializes a session: the answer names the server.".to_owned(),
                _ => format!("Initializes a session with the token in {TOKEN_VAR}: the answer names the server."),
            },
            text: curl(&url, t.auth != "none"),
        },
    ]
}

/// A `curl` command that sends `initialize` to `url`.
fn curl(url: &str, token: bool) -> String {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": CURL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "curl", "version": "1" },
        },
    });
    let auth = match token {
        true => format!(" \\\n  -H \"Authorization: Bearer ${TOKEN_VAR}\""),
        false => String::new(),
    };
    format!(
        "curl -sS '{url}' \\\n  -H 'Content-Type: application/json' \\\n  -H 'Accept: application/json, text/event-stream'{auth} \\\n  -d '{body}'"
    )
}

/// `GET /ui/connect`.
pub(crate) async fn page(State(deps): State<Deps>, Extension(op): Extension<Operator>) -> Response {
    let base = deps.public_base.as_str();
    let body = html! {
        p { "Clients connect to " code { (base) } ". Copy a configuration for your client, or "
            "download the Claude Desktop extension. No configuration holds a secret: put your "
            "own API key or token where it says." }
        @for t in deps.console.targets() {
            @let file = file_of(&t);
            section aria-labelledby={ "t-" (file) } {
                h2 id={ "t-" (file) } {
                    (t.name.as_deref().unwrap_or("All servers")) " "
                    small { code { (t.path) } " · " (t.kind) " · auth: " (t.auth) }
                }
                p {
                    a href={ "/ui/connect/" (file) ".mcpb" } download {
                        "Claude Desktop extension (" (file) ".mcpb)"
                    }
                }
                @for s in snippets(&t, base) {
                    h3 { (s.title) }
                    p { (s.note) }
                    pre data-snippet=(s.id) data-target=(file) { code { (s.text) } }
                }
            }
        }
    };
    let page = layout::page("Connect", Tab::Connect, Some(&op), None, body);
    layout::respond(StatusCode::OK, page)
}

/// `GET /ui/connect/NAME.mcpb`: the Claude Desktop extension for one target (`main`: the
/// main path).
pub(crate) async fn download(State(deps): State<Deps>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".mcpb") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let targets = deps.console.targets();
    let Some(target) = targets.iter().find(|t| file_of(t) == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(bytes) = mcpb::archive(target, &deps.public_base) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let disposition = format!("attachment; filename=\"{name}.mcpb\"");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_json_naming_the_url_and_no_secret() {
        let t = Target {
            name: Some("Git Hub".into()),
            kind: "named",
            path: "/servers/Git Hub/mcp".into(),
            auth: "api_key",
        };
        let all = snippets(&t, "https://relay.example/");
        let url = "https://relay.example/servers/Git Hub/mcp";
        for s in &all {
            assert!(s.text.contains(url), "{s:?}");
            if !matches!(s.id, "curl" | "claude-ai") {
                let v: Value = serde_json::from_str(&s.text).unwrap();
                assert!(v.to_string().contains("mcp-relay-git-hub"), "{v}");
            }
        }
        let vscode: Value = serde_json::from_str(&all[2].text).unwrap();
        assert_eq!(vscode["inputs"][0]["password"], true);
        let h = &vscode["servers"]["mcp-relay-git-hub"]["headers"]["Authorization"];
        assert_eq!(h, "Bearer ${input:mcp-relay-token}");
        assert_eq!(file_of(&t), "git-hub");
    }
}
