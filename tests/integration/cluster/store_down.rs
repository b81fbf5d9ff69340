//! The store failing under a fleet: redis-server killed → calls keep flowing, each replica
//! limited to its share of the quota (`local`, the default), `mcp_relay_store_up` 0, and back
//! to 1 once redis-server is restarted; redis-server paused under `closed` → 503 +
//! `Retry-After` (-31005 `store_unavailable`) until it resumes.

use std::time::{Duration, Instant};

use super::store_fleet::{api_key, config, fleet, leases, metric, ping, session};
use crate::support::patience;
use crate::support::redis::Redis;
use crate::support::Client;

#[tokio::test]
async fn redis_killed_each_replica_keeps_its_share_and_store_up_follows() {
    let Some(mut redis) = Redis::start("redis_killed_each_replica_keeps_its_share") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nper_principal = \"30/s\"\nper_principal_burst = 30\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"300ms\"\nexpected_nodes = 3\n",
        redis.url
    ));
    let relays = fleet(3, &cfg);
    let r0 = session(&relays[0], &alice).await;
    let r1 = session(&relays[1], &alice).await;
    assert_eq!(metric(&relays[0], "mcp_relay_store_up").await, Some(1.0));
    redis.kill();
    // r0 alone asks for more than the whole fleet's burst: it admits about its third.
    let started = Instant::now();
    let (mut admitted, mut limited) = (0u32, 0u32);
    for i in 0..60 {
        match ping(&r0, i).await {
            200 => admitted += 1,
            429 => limited += 1,
            other => panic!("ping {i}: status {other}"),
        }
    }
    let share = 10.0 + 10.0 * started.elapsed().as_secs_f64();
    assert!(admitted >= 5, "calls keep flowing: {admitted} admitted");
    assert!(
        f64::from(admitted) <= share + 2.0 && limited > 0,
        "{admitted} admitted, {limited} limited in {:?}: more than a third of 30/s",
        started.elapsed()
    );
    // Another replica has its own share.
    assert_eq!(ping(&r1, 1).await, 200);
    assert_eq!(metric(&relays[0], "mcp_relay_store_up").await, Some(0.0));
    assert!(relays[0].logs().contains("shared store unreachable"));

    redis.restart();
    let deadline = Instant::now() + patience();
    let mut id = 100;
    while metric(&relays[0], "mcp_relay_store_up").await != Some(1.0) {
        assert!(Instant::now() < deadline, "store_up never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
        ping(&r0, id).await;
        id += 1;
    }
    assert!(relays[0].logs().contains("shared store reachable again"));
}

#[tokio::test]
async fn redis_paused_under_closed_answers_503_with_retry_after_until_it_resumes() {
    let Some(redis) = Redis::start("redis_paused_under_closed_answers_503") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nper_principal = \"100/s\"\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"200ms\"\non_store_error = \"closed\"\n",
        redis.url
    ));
    let relays = fleet(2, &cfg);
    let c = session(&relays[0], &alice).await;
    assert_eq!(ping(&c, 1).await, 200);
    redis.signal("-STOP");
    let reply = c
        .post(serde_json::json!({"jsonrpc":"2.0","id":2,"method":"ping"}))
        .await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
    let v = reply.json();
    assert_eq!(v["error"]["code"], -31005, "{v}");
    assert_eq!(v["error"]["data"]["reason"], "store_unavailable", "{v}");
    // Five failures open the breaker: the store is down, and /ready stays 200.
    for i in 3..8 {
        assert_eq!(ping(&c, i).await, 503);
    }
    assert_eq!(metric(&relays[0], "mcp_relay_store_up").await, Some(0.0));
    let base = relays[0].admin_base().await;
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);

    redis.signal("-CONT");
    admitted_again(&c, "never admitted again after redis resumed").await;
    assert_eq!(metric(&relays[0], "mcp_relay_store_up").await, Some(1.0));
}

#[tokio::test]
async fn a_lease_whose_acquire_timed_out_is_released_once_redis_resumes() {
    let Some(redis) = Redis::start("a_lease_whose_acquire_timed_out_is_released") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    // One place per principal, leases far longer than the test waits.
    let cfg = config(&format!(
        "{block}\n[limits]\nmax_concurrent_per_principal = 1\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"300ms\"\nlease = \"60s\"\non_store_error = \"closed\"\n",
        redis.url
    ));
    let relays = fleet(1, &cfg);
    let c = session(&relays[0], &alice).await;
    // Each request gives its lease back just after its answer: wait until none is held.
    admitted_again(&c, "the store never admitted a ping").await;
    no_lease_within_patience(&redis).await;
    // The acquire reaches the paused server and times out; it runs when the server resumes.
    redis.signal("-STOP");
    assert_eq!(ping(&c, 2).await, 503);
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.signal("-CONT");
    // The guard gives the lease back: the one place is free well before one lease (60s).
    admitted_again(
        &c,
        "the timed-out acquire's lease still holds the only place",
    )
    .await;
    // And the store holds no lease once that ping's own is given back.
    no_lease_within_patience(&redis).await;
}

/// Waits until `redis` holds no lease; fails after the tests' patience.
async fn no_lease_within_patience(redis: &Redis) {
    let deadline = Instant::now() + patience();
    while leases(redis) != 0 {
        assert!(Instant::now() < deadline, "leases left: {}", leases(redis));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pings in `c`'s session every 200 ms until one is admitted; fails with `why` after the
/// tests' patience.
async fn admitted_again(c: &Client, why: &str) {
    let deadline = Instant::now() + patience();
    let mut id = 100;
    while ping(c, id).await != 200 {
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        id += 1;
    }
}
