//! Limits shared through a real redis-server hold for the whole fleet: a principal's rate
//! (compared with the same fleet without the store, which admits about three times as much),
//! a tool's rate, the concurrency cap over three replicas (HTTP) and two (TCP messages), a
//! killed replica's leases returning after one lease, buckets known to be over their limit
//! answered without the store, a store found through Sentinel, and limits reloaded by SIGHUP
//! still shared through the running store.

use std::time::{Duration, Instant};

use serde_json::json;

use super::store_fleet::{api_key, config, fleet, leases, ping, session};
use crate::support::redis::Redis;
use crate::support::{patience, Relay};

/// Pings round-robin over the fleet's sessions of `key`, one every 10 ms, after opening them:
/// how many HTTP requests were admitted (the sessions' own included) and over how long.
async fn spread(relays: &[Relay], key: &str, pings: u64) -> (u64, Duration) {
    let started = Instant::now();
    let mut clients = Vec::new();
    for r in relays {
        clients.push(session(r, key).await);
    }
    // `initialize` and `notifications/initialized` count too.
    let mut admitted = 2 * relays.len() as u64;
    for i in 0..pings {
        let c = &clients[i as usize % clients.len()];
        match ping(c, i).await {
            200 => admitted += 1,
            429 => {}
            other => panic!("ping {i}: status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (admitted, started.elapsed())
}

#[tokio::test]
async fn a_principal_rate_holds_across_the_fleet_and_triples_without_the_store() {
    let Some(redis) = Redis::start("a_principal_rate_holds_across_the_fleet") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let limits = "[limits]\nper_principal = \"10/s\"\nper_principal_burst = 10\n";
    let store = format!(
        "[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\nexpected_nodes = 3\n",
        redis.url
    );
    let shared = fleet(3, &config(&format!("{block}\n{limits}\n{store}")));
    let (admitted, took) = spread(&shared, &alice, 96).await;
    // GCRA: the burst at once, then one every 100 ms.
    let expected = 10.0 + 10.0 * took.as_secs_f64();
    assert!(
        admitted as f64 <= expected + 2.0 && admitted as f64 >= expected * 0.9 - 2.0,
        "shared: {admitted} admitted in {took:?}, expected about {expected:.0}"
    );
    drop(shared);
    // The same traffic without the store: each replica admits its own 10/s.
    let alone = fleet(3, &config(&format!("{block}\n{limits}")));
    let (apart, took) = spread(&alone, &alice, 96).await;
    assert!(
        apart >= 2 * admitted,
        "without the store {apart} admitted in {took:?}, with it {admitted}: not shared"
    );
}

/// A slow call in `c`'s session: `Some(true)` answered, `Some(false)` refused with -31005.
async fn slow(c: &crate::support::Client, id: u64, ms: u64) -> bool {
    let reply = c.call(json!(id), "slow", json!({ "ms": ms })).await;
    match reply.status {
        200 => {
            assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
            true
        }
        429 => {
            assert_eq!(reply.json()["error"]["code"], -31005, "{reply:?}");
            false
        }
        other => panic!("slow call {id}: status {other}: {reply:?}"),
    }
}

#[tokio::test]
async fn the_concurrency_cap_holds_fleet_wide_and_a_killed_replicas_leases_expire() {
    let Some(redis) = Redis::start("the_concurrency_cap_holds_fleet_wide") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nmax_concurrent_per_principal = 4\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\nlease = \"3s\"\nexpected_nodes = 3\n",
        redis.url
    ));
    let mut relays = fleet(3, &cfg);
    let mut clients = Vec::new();
    for r in &relays {
        clients.push(session(r, &alice).await);
    }
    // Nine slow calls at once, three per replica: exactly four run, fleet-wide.
    let calls: Vec<_> = (0..9u64)
        .map(|i| {
            let c = clients[i as usize % 3].clone();
            tokio::spawn(async move { slow(&c, i, 2500).await })
        })
        .collect();
    let mut ran = 0;
    for call in calls {
        ran += u32::from(call.await.unwrap());
    }
    assert_eq!(ran, 4, "the cap of 4 is the fleet's");

    // Four long calls on r0 hold every lease; r1 is refused.
    for i in 0..4u64 {
        let c = clients[0].clone();
        tokio::spawn(async move {
            let body = json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call",
                "params":{"name":"slow","arguments":{"ms": 60_000}}});
            // Read to the end: a client that goes away cancels its call (and its lease).
            if let Ok(res) = c.post_builder().body(body.to_string()).send().await {
                let _ = res.bytes().await;
            }
        });
    }
    // They hold the four leases (the store says so), so r1 is refused.
    let deadline = Instant::now() + patience();
    while leases(&redis) < 4 {
        assert!(
            Instant::now() < deadline,
            "r0's four calls never held the cap"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Renewed while r0 lives: still refused after more than one lease (3s).
    let held = Instant::now();
    let mut id = 200;
    while held.elapsed() < Duration::from_secs(4) {
        assert!(!slow(&clients[1], id, 1).await, "the cap is the fleet's");
        tokio::time::sleep(Duration::from_millis(250)).await;
        id += 1;
    }
    // r0 dies holding them: nobody renews, they expire within one lease.
    relays[0].child.kill().unwrap();
    let killed = Instant::now();
    let mut id = 300;
    while !slow(&clients[1], id, 1).await {
        id += 1;
        assert!(
            killed.elapsed() < Duration::from_millis(5500),
            "capacity not back {:?} after the holder died (lease 3s)",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(relays.remove(0));
}

#[tokio::test]
async fn after_sighup_the_new_limits_are_still_the_fleets() {
    let Some(redis) = Redis::start("after_sighup_the_new_limits_are_still_the_fleets") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    // The replicas' clock this time (`clock = "client"`, for stores that refuse `TIME`).
    let store = format!(
        "[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\nexpected_nodes = 2\nclock = \"client\"\n",
        redis.url
    );
    let path = config(&format!(
        "{block}\n[limits]\nper_principal = \"100/s\"\n\n{store}"
    ));
    let relays = fleet(2, &path);
    let clients = [
        session(&relays[0], &alice).await,
        session(&relays[1], &alice).await,
    ];
    std::fs::write(
        &path,
        format!("{block}\n[limits]\nper_principal = \"2/min\"\nper_principal_burst = 2\n\n{store}"),
    )
    .unwrap();
    for r in &relays {
        crate::support::hangup(r);
    }
    for r in &relays {
        crate::support::eventually("the policy is reloaded", || {
            r.logs().contains("policy reloaded")
        })
        .await;
    }
    // One bucket for both replicas: at most its burst of 2 (each replica alone would take 2).
    let mut admitted = 0;
    for i in 0..6u64 {
        if ping(&clients[i as usize % 2], i).await == 200 {
            admitted += 1;
        }
    }
    assert!(
        (1..=2).contains(&admitted),
        "{admitted} of 6 admitted under a shared 2/min"
    );
    // Through the store the replicas ran with: one connection each (and this one's).
    let info = redis.command("INFO clients").unwrap_or_default();
    assert!(
        info.contains("connected_clients:3\r\n"),
        "a reload opened another connection: {info}"
    );
}

/// Calls of the GCRA script the server has run (`INFO commandstats`).
fn script_calls(redis: &Redis) -> u64 {
    let stats = redis.command("INFO commandstats").unwrap_or_default();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn a_bucket_known_to_be_over_its_limit_is_not_asked_again() {
    let Some(redis) = Redis::start("a_bucket_known_to_be_over_its_limit") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nper_principal = \"3/min\"\nper_principal_burst = 3\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\n",
        redis.url
    ));
    let relays = fleet(1, &cfg);
    let c = session(&relays[0], &alice).await;
    assert_eq!(ping(&c, 1).await, 200);
    assert_eq!(ping(&c, 2).await, 429, "the burst of 3 is spent");
    let asked = script_calls(&redis);
    assert!(asked >= 4, "the store judged every request: {asked}");
    for i in 3..13 {
        assert_eq!(ping(&c, i).await, 429);
    }
    assert_eq!(script_calls(&redis), asked, "refused from the local cache");
}

#[tokio::test]
async fn a_tool_rate_is_the_fleets() {
    let Some(redis) = Redis::start("a_tool_rate_is_the_fleets") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nper_tool = \"2/min\"\nper_tool_burst = 2\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\nexpected_nodes = 2\n",
        redis.url
    ));
    let relays = fleet(2, &cfg);
    let clients = [
        session(&relays[0], &alice).await,
        session(&relays[1], &alice).await,
    ];
    let (mut answered, mut limited) = (0, 0);
    for i in 0..6u64 {
        let reply = clients[i as usize % 2]
            .call(json!(i), "echo", json!({"text": "hi"}))
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let m = &reply.messages()[0];
        match m["error"]["code"].as_i64() {
            None => answered += 1,
            Some(-31004) => limited += 1,
            Some(other) => panic!("call {i}: {other}: {m}"),
        }
    }
    assert_eq!((answered, limited), (2, 4), "one bucket for both replicas");
    // Another tool has its own bucket.
    let reply = clients[1].call(json!(9), "slow", json!({"ms": 1})).await;
    assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
}

#[tokio::test]
async fn a_store_found_through_sentinel_shares_the_limits() {
    let Some(redis) = Redis::start("a_store_found_through_sentinel") else {
        return;
    };
    let sentinel = redis.sentinel();
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nper_principal = \"3/min\"\nper_principal_burst = 3\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\n",
        sentinel.url
    ));
    let relays = fleet(2, &cfg);
    // Two requests open the session on r0, a ping is the third.
    let c = session(&relays[0], &alice).await;
    assert_eq!(ping(&c, 1).await, 200);
    // The burst of 3 is spent fleet-wide: r1 cannot even open a session.
    let mut other = relays[1].client();
    other.extra = vec![("x-api-key".into(), alice.clone())];
    let reply = other
        .post(crate::support::init_request(
            json!(0),
            super::store_fleet::VERSION,
        ))
        .await;
    assert_eq!(reply.status, 429, "{reply:?}");
    let keys = redis.command("KEYS *:rl:p:*").unwrap_or_default();
    assert!(
        keys.starts_with("*1"),
        "the bucket is in the master: {keys}"
    );
}

#[tokio::test]
async fn tcp_request_messages_hold_fleet_wide_leases() {
    use crate::support::conn::Conn;
    use crate::support::lines::Lines;
    use crate::support::relay::tcp_listening;
    let Some(redis) = Redis::start("tcp_request_messages_hold_fleet_wide_leases") else {
        return;
    };
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "{block}\n[limits]\nmax_concurrent_per_principal = 2\n\n[cluster.store]\nurl = \"{}\"\ntimeout = \"1s\"\nexpected_nodes = 2\n",
        redis.url
    ));
    let relays = super::store_fleet::fleet_with(2, &cfg, &["--tcp-listen", "127.0.0.1:0"]);
    let hello = json!({ "authorization": format!("Bearer {alice}") });
    let mut a = Lines::tcp_with(&tcp_listening(&relays[0]).await, &hello).await;
    assert!(a
        .initialize(super::store_fleet::VERSION)
        .await
        .get("result")
        .is_some());
    for i in 0..2 {
        a.send(json!({"jsonrpc":"2.0","id":100 + i,"method":"tools/call",
            "params":{"name":"slow","arguments":{"ms": 10_000}}}))
            .await;
    }
    let deadline = Instant::now() + patience();
    while leases(&redis) < 2 {
        assert!(Instant::now() < deadline, "the two calls never held leases");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other replica's connection of the same principal: no room, fleet-wide.
    let mut b = Lines::tcp_with(&tcp_listening(&relays[1]).await, &hello).await;
    let init = b.initialize(super::store_fleet::VERSION).await;
    assert_eq!(init["error"]["code"], -31005, "{init}");
}
