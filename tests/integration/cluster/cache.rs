//! The response cache (issue 19 §4): a second `tools/list` does not reach the child, the
//! child's `list_changed` and `resources/updated` make the next one reach it, `resources/read`
//! is cached only for the configured URIs, two callers with different roles never share a
//! filtered list (callers with the same roles do), and with the fleet's store a list one
//! replica's child gave answers another replica's caller (and without the store the children
//! answer); one principal keeps at most its share of the store. Counted on the child's
//! side: the fixture records every line it reads, and a request answered by the child was
//! recorded before its answer left.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::redis::Redis;
use crate::support::{poll_until, tempdir, text_of, Client, Relay, Reply, FIXTURE};

const VERSION: &str = "2025-11-25";

/// A config file holding `text`, and a fresh record path for the fixture.
fn files(text: &str) -> (String, PathBuf) {
    let dir = tempdir();
    let config = dir.join("relay.toml");
    std::fs::write(&config, text).unwrap();
    (config.to_str().unwrap().to_owned(), dir.join("stdin.log"))
}

/// `mcp-relay serve` with `args`, around the fixture recording into `record`.
fn relay(args: &[&str], record: &Path, env: &[(&str, &str)]) -> Relay {
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--session-mode",
        "shared",
    ];
    all.extend_from_slice(args);
    all.extend(["--", FIXTURE, "--record", record.to_str().unwrap()]);
    Relay::start_env(&all, env)
}

/// Lines the child read that contain every one of `needles`.
fn recorded(record: &Path, needles: &[&str]) -> usize {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

const LISTS: &[&str] = &["\"method\":\"tools/list\""];

async fn session(relay: &Relay, token: Option<&str>) -> Client {
    let mut c = relay.client();
    if let Some(t) = token {
        c.extra
            .push(("authorization".to_owned(), format!("Bearer {t}")));
    }
    c.initialize(VERSION).await;
    c
}

async fn request(c: &Client, id: Value, method: &str, params: Value) -> Reply {
    let r = c
        .post(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r
}

async fn tools_list(c: &Client, id: Value) -> Reply {
    request(c, id, "tools/list", json!({})).await
}

fn tool_names(r: &Reply) -> Vec<String> {
    r.messages()[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cache_second_tools_list_does_not_reach_the_child_until_list_changed() {
    let (config, record) = files("[cache]\ntools_list = \"60s\"\n");
    let relay = relay(
        &["--config", &config, "--admin-listen", "127.0.0.1:0"],
        &record,
        &[],
    );
    let (a, b) = (session(&relay, None).await, session(&relay, None).await);
    let first = tools_list(&a, json!(1)).await;
    let second = tools_list(&b, json!("two")).await;
    let third = tools_list(&a, json!(3)).await;
    assert_eq!(recorded(&record, LISTS), 1, "the child was asked again");
    // The kept answer gets each client's id, byte for byte otherwise.
    let bytes = first.raw()[0].clone();
    assert!(bytes.contains("\"id\":1,"), "{bytes}");
    assert_eq!(
        second.raw()[0],
        bytes.replacen("\"id\":1,", "\"id\":\"two\",", 1)
    );
    assert_eq!(third.raw()[0], bytes.replacen("\"id\":1,", "\"id\":3,", 1));
    let admin = relay.admin_base().await;
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |result: &str| {
        format!("mcp_relay_cache_requests_total{{method=\"tools/list\",result=\"{result}\"}}")
    };
    assert!(
        metrics.contains(&format!("{} 2\n", line("hit"))),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("{} 1\n", line("miss"))),
        "{metrics}"
    );

    // The child says its tools changed (before answering the call): the next list is its.
    let notified = a.call(json!(4), "notify", json!({})).await;
    assert_eq!(text_of(notified.messages().last().unwrap()), "notified");
    tools_list(&b, json!(5)).await;
    assert_eq!(recorded(&record, LISTS), 2);
    tools_list(&a, json!(6)).await;
    assert_eq!(recorded(&record, LISTS), 2);
}

#[tokio::test]
async fn cache_resources_read_only_for_configured_uris_until_updated() {
    let (config, record) =
        files("[cache]\nresources_read = \"60s\"\nresources = [\"file:///public/*\"]\n");
    let relay = relay(&["--config", &config], &record, &[]);
    let c = session(&relay, None).await;
    let read = |id: u64, uri: &'static str| {
        let c = c.clone();
        async move { request(&c, json!(id), "resources/read", json!({ "uri": uri })).await }
    };
    const README: &str = "file:///public/readme.txt";
    const KEYS: &str = "file:///secret/keys.txt";
    let reads = |uri: &str| recorded(&record, &["\"method\":\"resources/read\"", uri]);
    let first = read(1, README).await;
    let again = read(2, README).await;
    assert_eq!(first.messages()[0]["result"], again.messages()[0]["result"]);
    read(3, KEYS).await;
    read(4, KEYS).await;
    assert_eq!(reads(README), 1, "a configured URI was read twice");
    assert_eq!(reads(KEYS), 2, "a URI outside the globs was cached");
    // Lists are not cached without their own TTL.
    tools_list(&c, json!(5)).await;
    tools_list(&c, json!(6)).await;
    assert_eq!(recorded(&record, LISTS), 2);

    // The child says the readme changed: the next read is the child's.
    request(
        &c,
        json!(7),
        "resources/subscribe",
        json!({ "uri": README }),
    )
    .await;
    let touched = c.call(json!(8), "touch", json!({ "uri": README })).await;
    assert_eq!(
        text_of(touched.messages().last().unwrap()),
        format!("touched {README}")
    );
    read(9, README).await;
    assert_eq!(reads(README), 2);
    read(10, README).await;
    assert_eq!(reads(README), 2);
}

/// Seed-like roles: `user` may not see `delete_*`.
const ROLES: &str = r#"{
  "admin": {"allowedMethods": ["*"]},
  "user": {"allowedMethods": ["tools/call", "*/list"], "tools": {"deny": ["delete_*"]}}
}"#;
const SECRET_VAR: &str = "RELAY_CACHE_JWT_SECRET";
const SECRET: &str = "Qm4v_pX2kRf9LwZc7NsT0bYhJd3GuE8aVoKi5yMnWq1";
const RESOURCE: &str = "http://relay.test/mcp";

#[tokio::test]
async fn cache_callers_with_other_roles_never_share_a_filtered_list() {
    let (config, record) = files("[cache]\ntools_list = \"60s\"\n");
    let roles = tempdir().join("roles.json");
    std::fs::write(&roles, ROLES).unwrap();
    let secret = format!("env:{SECRET_VAR}");
    let args = [
        "--config",
        &config,
        "--resource",
        RESOURCE,
        "--jwt-secret",
        &secret,
        "--roles",
        roles.to_str().unwrap(),
    ];
    let relay = relay(&args, &record, &[(SECRET_VAR, SECRET)]);
    let mint = |user: &str, roles: &str| {
        crate::support::mint_jwt(SECRET_VAR, SECRET, user, roles, RESOURCE)
    };
    let ursula = session(&relay, Some(&mint("ursula", "user"))).await;
    let alice = session(&relay, Some(&mint("alice", "admin"))).await;
    let uma = session(&relay, Some(&mint("uma", "user"))).await;

    let filtered = tools_list(&ursula, json!(1)).await;
    assert!(!tool_names(&filtered).contains(&"delete_everything".to_owned()));
    let full = tools_list(&alice, json!(1)).await;
    assert!(tool_names(&full).contains(&"delete_everything".to_owned()));
    // Another caller with the same roles shares the user's answer, filtered the same.
    let shared = tools_list(&uma, json!(1)).await;
    assert_eq!(shared.raw(), filtered.raw());
    // And the user never gets the admin's list, cached or not.
    let again = tools_list(&ursula, json!(2)).await;
    assert!(!tool_names(&again).contains(&"delete_everything".to_owned()));
    let admin_again = tools_list(&alice, json!(2)).await;
    assert_eq!(tool_names(&admin_again), tool_names(&full));
    assert_eq!(recorded(&record, LISTS), 2, "one list per set of roles");
}

#[tokio::test]
async fn cache_serves_the_aggregate_from_each_named_servers_answers() {
    let dir = tempdir();
    let (rec_a, rec_b) = (dir.join("a.log"), dir.join("b.log"));
    let table = |name: &str, record: &Path| {
        format!(
            "[servers.{name}]\ncommand = [{FIXTURE:?}, \"--record\", {:?}]\n",
            record.to_str().unwrap()
        )
    };
    let (config, _) = files(&format!(
        "[cache]\ntools_list = \"60s\"\n\n{}\n{}",
        table("a", &rec_a),
        table("b", &rec_b)
    ));
    let relay = Relay::start_raw(&["serve", "--listen", "127.0.0.1:0", "--config", &config]);
    let main = format!("{}/mcp", relay.base);
    let mut first = Client::new(&main);
    first.initialize(VERSION).await;
    let merged = tools_list(&first, json!(1)).await;
    let (a, b) = (recorded(&rec_a, LISTS), recorded(&rec_b, LISTS));
    assert!(a >= 1 && b >= 1, "the servers were not asked: {a} {b}");
    // Another aggregate session, and a session on one server itself: no child is asked again.
    let mut second = Client::new(&main);
    second.initialize(VERSION).await;
    let again = tools_list(&second, json!(1)).await;
    assert_eq!(tool_names(&again), tool_names(&merged));
    let mut direct = Client::new(&format!("{}/servers/a/mcp", relay.base));
    direct.initialize(VERSION).await;
    tools_list(&direct, json!(1)).await;
    assert_eq!((recorded(&rec_a, LISTS), recorded(&rec_b, LISTS)), (a, b));
}

#[tokio::test]
async fn cache_in_the_fleet_store_is_shared_and_invalidated_across_replicas() {
    let Some(redis) = Redis::start("cache_in_the_fleet_store") else {
        return;
    };
    let (config, _) = files("[cache]\nstorage = \"store\"\ntools_list = \"60s\"\n");
    let start = |node: &str| {
        let record = tempdir().join("stdin.log");
        let args = [
            "--config",
            &config,
            "--node",
            node,
            "--cluster-store",
            &redis.url,
        ];
        (relay(&args, &record, &[]), record)
    };
    let ((r0, rec0), (r1, rec1)) = (start("r0"), start("r1"));
    let (c0, c1) = (session(&r0, None).await, session(&r1, None).await);
    let first = tools_list(&c0, json!(1)).await;
    let other = tools_list(&c1, json!(1)).await;
    assert_eq!(other.raw(), first.raw());
    assert_eq!(recorded(&rec0, LISTS), 1);
    assert_eq!(recorded(&rec1, LISTS), 0, "r1's child was asked");

    // r1's child changes its tools: r0's next list is asked of r0's child (the change is
    // written to the store without waiting, hence the poll).
    c1.call(json!(2), "notify", json!({})).await;
    let mut id = 10;
    poll_until(
        "r0's child asked again",
        || {
            id += 1;
            let c0 = c0.clone();
            let rec0 = rec0.clone();
            async move {
                tools_list(&c0, json!(id)).await;
                recorded(&rec0, LISTS)
            }
        },
        |n| *n == 2,
    )
    .await;
    // The answer kept again is shared again.
    tools_list(&c1, json!(99)).await;
    assert_eq!(recorded(&rec1, LISTS), 0);
    // The generation never expires: it would read as before the change again, and an
    // answer kept under that could come back.
    let keys = redis.command("KEYS *:cache:g:*").unwrap();
    let generation = keys.lines().find(|l| l.contains(":cache:g:")).expect(&keys);
    let ttl = redis.command(&format!("PTTL {generation}")).unwrap();
    assert_eq!(ttl.trim(), ":-1", "{generation}");

    // Without the store, lists are answered by the children, as without a cache.
    drop(redis);
    tools_list(&c1, json!(100)).await;
    tools_list(&c1, json!(101)).await;
    assert_eq!(recorded(&rec1, LISTS), 2);
    assert!(r1.logs().contains("the store failed"), "{}", r1.logs());
}

#[tokio::test]
async fn cache_in_the_store_keeps_at_most_a_share_per_principal() {
    let Some(redis) = Redis::start("cache_in_the_store_keeps_at_most_a_share") else {
        return;
    };
    // A share is an eighth of 64 KiB: 8 KiB per principal and longest time to live.
    let (config, record) =
        files("[cache]\nstorage = \"store\"\ntools_list = \"60s\"\nmax_bytes = \"64KiB\"\n");
    let args = [
        "--config",
        &config,
        "--node",
        "r0",
        "--cluster-store",
        &redis.url,
    ];
    let relay = relay(&args, &record, &[]);
    let c = session(&relay, None).await;
    // The fixture ignores cursors: each answers the whole list, kept under its own key.
    let mut size = 0;
    for i in 0..20 {
        let r = request(
            &c,
            json!(i),
            "tools/list",
            json!({"cursor": format!("c{i}")}),
        )
        .await;
        size = r.raw()[0].len();
    }
    let kept = || -> usize {
        let keys = redis.command("KEYS *:cache:e:*").unwrap();
        keys.lines().filter(|l| l.contains(":cache:e:")).count()
    };
    // Keeping is sent without waiting: wait for the first, then for nothing more to come.
    poll_until("an answer kept", || async { kept() }, |n| *n >= 1).await;
    let again = tools_list(&c, json!("again")).await;
    assert_eq!(again.status, 200);
    assert!(size > 512, "{size}");
    let most = (8 << 10) / size;
    assert!(kept() <= most, "{} answers of {size} bytes kept", kept());
}
