//! Replicas sharing one store: N relays started by `support::fleet` with one `--config` each
//! (API keys, `[limits]`, `[cluster.store]`), and their API-key clients.

use std::path::{Path, PathBuf};

use crate::support::fleet::Fleet;
use crate::support::redis::Redis;
use crate::support::{tempdir, Client, Relay};

pub const VERSION: &str = "2025-06-18";

/// `mcp-relay token key --id ID --principal NAME`: the key and its config block.
pub fn api_key(id: &str, principal: &str) -> (String, String) {
    crate::support::mint_api_key(&["--id", id, "--principal", principal])
}

/// Writes a `--config` file.
pub fn config(text: &str) -> PathBuf {
    let path = tempdir().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` replicas `r0`…, each knowing all as peers, all with `config` (`support::fleet`).
pub fn fleet(n: usize, config: &Path) -> Vec<Relay> {
    fleet_with(n, config, &[])
}

/// Like [`fleet`], with `extra` arguments for every replica.
pub fn fleet_with(n: usize, config: &Path, extra: &[&str]) -> Vec<Relay> {
    let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--config".to_owned(), config.to_str().unwrap().to_owned()]);
    let fleet = Fleet::start(n, |_| args.clone(), &[]);
    fleet.relays.into_iter().flatten().collect()
}

/// A client of `relay` with `key`, its session open.
pub async fn session(relay: &Relay, key: &str) -> Client {
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), key.to_owned())];
    c.initialize(VERSION).await;
    c
}

/// One ping in the session: the HTTP status.
pub async fn ping(c: &Client, id: u64) -> u16 {
    c.post(serde_json::json!({"jsonrpc":"2.0","id":id,"method":"ping"}))
        .await
        .status
}

/// The value of the unlabelled series `name` in `relay`'s `/metrics`.
pub async fn metric(relay: &Relay, name: &str) -> Option<f64> {
    let base = relay.admin_base().await;
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
}

/// Leases held in `redis` (one principal's set is the only one).
pub fn leases(redis: &Redis) -> u64 {
    let keys = redis.command("KEYS *:inflight:*").unwrap_or_default();
    let Some(key) = keys.lines().nth(2) else {
        return 0;
    };
    let n = redis.command(&format!("ZCARD {key}")).unwrap_or_default();
    n.trim().trim_start_matches(':').parse().unwrap_or(0)
}
