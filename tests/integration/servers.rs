//! Several servers behind one relay (issue 16): `[servers.NAME]` reached at `/servers/NAME/`
//! on every front, the aggregate on the main path, tool subsets at `/endpoints/NAME/`, roles
//! per server, SIGHUP adding, removing and changing servers, a server killed under load.
//! Every server is the real fixture child, every client a real socket.

mod aggregate;
mod fronts;
mod reload;

use std::path::{Path, PathBuf};

use crate::support::{tempdir, Client, Relay, FIXTURE};

/// A `[servers.NAME]` table running the fixture in `mode` (`echo` or `conformance`), plus
/// `extra` lines.
pub fn server(name: &str, mode: &str, extra: &str) -> String {
    format!("[servers.{name}]\ncommand = [{FIXTURE:?}, {mode:?}]\n{extra}\n")
}

/// Writes `toml` to `relay.toml` in a fresh directory; the file's path.
pub fn write_config(toml: &str) -> PathBuf {
    let path = tempdir().join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `mcp-relay serve --listen 127.0.0.1:0 --config FILE`.
pub fn start(config: &Path) -> Relay {
    Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ])
}

/// A Streamable HTTP client of `path` (`/servers/echo/mcp`, `/endpoints/support/mcp`, `/mcp`).
pub fn client_at(relay: &Relay, path: &str) -> Client {
    Client::new(&format!("{}{path}", relay.base))
}

/// The names of a `tools/list` answer.
pub fn tool_names(reply: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = reply["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {reply}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}
