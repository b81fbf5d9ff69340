//! The multi-server relay as the harness starts it (issue 16): a config file with two named
//! servers `a` and `b`, both the fixture in echo mode, written to a directory of its own under
//! the system temp dir and removed when the system stops. Which path and tool the client uses
//! (the aggregate's `/mcp` and `a__echo`, or `/servers/a/mcp` and `echo`) is `systems.rs`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::systems::Mode;

/// The named servers in the file; the client calls the first one's tool.
const SERVERS: [&str; 2] = ["a", "b"];

/// A config directory, removed on drop (after the relay that reads it has stopped: `Running`
/// declares its process first).
pub(crate) struct ConfigDir {
    dir: PathBuf,
    file: PathBuf,
}

impl ConfigDir {
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The file's text. The listener-wide flags mirror what `relay-sse` is given on its command
/// line (only `--listen`); each server gets the fixture as `relay-sse` runs it, one child per
/// session, or in `Mode::Shared` one child for every session (`--session-mode shared
/// --children 1`, as the single relay's shared-mode process).
pub(crate) fn config_text(fixture: &str, mode: Mode, listen: &str) -> String {
    let quote = |s: &str| toml::Value::from(s).to_string();
    let mut t = format!("[serve]\nlisten = {}\n", quote(listen));
    for name in SERVERS {
        t.push_str(&format!(
            "\n[servers.{name}]\ncommand = [{}, \"echo\"]\n",
            quote(fixture)
        ));
        if mode == Mode::Shared {
            t.push_str("session_mode = \"shared\"\nchildren = 1\n");
        }
    }
    t
}

/// Writes the config for a relay listening on `listen` (port `port`, which makes the
/// directory's name unique within this run).
pub(crate) fn write_config(
    fixture: &Path,
    mode: Mode,
    listen: &str,
    port: u16,
) -> Result<ConfigDir> {
    let fx = fixture.to_str().context("fixture path not UTF-8")?;
    write_dir(port, &config_text(fx, mode, listen))
}

/// Writes `text` as `relay.toml` in a new directory of its own for the relay on `port` (also
/// what `oauth.rs` uses for `relay-oauth`'s config and state).
pub(crate) fn write_dir(port: u16, text: &str) -> Result<ConfigDir> {
    write_named(port, "relay.toml", text)
}

/// Writes `text` as `name` in a new directory of its own for the system on `port`.
pub(crate) fn write_named(port: u16, name: &str, text: &str) -> Result<ConfigDir> {
    let dir = std::env::temp_dir().join(format!("mcp-relay-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let config = ConfigDir {
        file: dir.join(name),
        dir,
    };
    std::fs::write(&config.file, text)
        .with_context(|| format!("write {}", config.file.display()))?;
    Ok(config)
}
