//! Replicas sharing one store: N relays with `--node rN` and every peer, one `--config`
//! (API keys, `[limits]`, `[cluster.store]`), an admin listener each, and API-key clients.

use std::path::PathBuf;

use crate::support::redis::free_port;
use crate::support::{tempdir, Client, Relay, FIXTURE};

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

/// `n` replicas `r0`…, each knowing all as peers, all with `config`.
pub fn fleet(n: usize, config: &std::path::Path) -> Vec<Relay> {
    fleet_with(n, config, &[])
}

/// Like [`fleet`], with `extra` arguments for every replica.
pub fn fleet_with(n: usize, config: &std::path::Path, extra: &[&str]) -> Vec<Relay> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("r{i}=http://127.0.0.1:{p}"))
        .collect();
    (0..n)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", ports[i]);
            let node = format!("r{i}");
            let mut args = vec!["serve", "--listen", &listen, "--node", &node];
            for p in &peers {
                args.extend(["--peer", p.as_str()]);
            }
            args.extend(["--admin-listen", "127.0.0.1:0"]);
            args.extend_from_slice(extra);
            args.extend(["--config", config.to_str().unwrap(), "--", FIXTURE]);
            Relay::start_raw(&args)
        })
        .collect()
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
