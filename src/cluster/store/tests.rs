//! The store's pure parts: key hashing and URL forms. Its scripts run against a real
//! redis-server in `tests/integration/cluster/limits.rs`.

use super::*;
use crate::cluster::config::{Clock, OnStoreError, StoreConfig};

fn config(url: &str) -> StoreConfig {
    StoreConfig {
        url: url.to_owned(),
        key_prefix: "mcpr".into(),
        key_secret: b"Zq8v1LmT0pXw3RkN".to_vec(),
        timeout: Duration::from_millis(50),
        on_error: OnStoreError::Local,
        expected_nodes: 3,
        lease: Duration::from_secs(30),
        clock: Clock::Server,
    }
}

#[test]
fn keys_are_hashed_so_names_never_appear_in_clear() {
    let s = Store::new(config("redis://127.0.0.1:6379"), "r0");
    let k = s.key("rl:t", &["p:alice@example.com", "github:create_issue"]);
    assert!(k.starts_with("mcpr:rl:t:"), "{k}");
    assert!(!k.contains("alice") && !k.contains("github"), "{k}");
    let parts: Vec<&str> = k.split(':').collect();
    assert_eq!(parts.len(), 5);
    assert!(parts[3..].iter().all(|h| h.len() == 32));
    // Stable for one secret, different for another.
    assert_eq!(
        k,
        s.key("rl:t", &["p:alice@example.com", "github:create_issue"])
    );
    let mut other = config("redis://127.0.0.1:6379");
    other.key_secret = b"Hc4nY7uB2eQs9JdV".to_vec();
    let o = Store::new(other, "r0");
    assert_ne!(
        k,
        o.key("rl:t", &["p:alice@example.com", "github:create_issue"])
    );
}

#[test]
fn direct_and_sentinel_urls_build_and_junk_is_kept_as_an_error() {
    assert!(matches!(
        target("redis://127.0.0.1:6379/0"),
        Ok(Target::Direct(_))
    ));
    assert!(matches!(
        target("valkey://127.0.0.1:6379"),
        Ok(Target::Direct(_))
    ));
    assert!(matches!(
        target("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"),
        Ok(Target::Sentinel(_))
    ));
    assert!(target("redis+sentinel://10.0.0.1:26379").is_err());
    assert!(target("redis://[").is_err());
}

#[test]
fn two_stores_of_one_process_never_mint_the_same_lease_member() {
    let a = Store::new(config("redis://127.0.0.1:6379"), "r0");
    let b = Store::new(config("redis://127.0.0.1:6379"), "r0");
    let (x, y) = (
        a.lease_member(a.next_lease()),
        b.lease_member(b.next_lease()),
    );
    assert!(x.starts_with("r0:") && y.starts_with("r0:"), "{x} {y}");
    assert_ne!(x, y);
}
