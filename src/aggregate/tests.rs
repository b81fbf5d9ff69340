//! End-to-end tests of the aggregate: an [`Aggregator`] over real relays, each wrapping a real
//! fixture child (`mcp-relay-fixture`, built with `cargo build --bin mcp-relay-fixture`, found
//! next to this test binary's directory), driven as the relay in front drives it: lines in
//! through the launched handle, lines out of its output.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::caller::{Principal, Transport};
use crate::config::servers::{FailureMode, Prefix};
use crate::telemetry::audit::Audit;
use crate::upstream::stdio::ChildEvent;
use crate::upstream::ServerSpec;

const PATIENCE: Duration = Duration::from_secs(20);

/// The fixture binary: `target/<profile>/mcp-relay-fixture`, this binary being in `deps/`.
fn fixture() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let path = dir.join(format!("mcp-relay-fixture{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "SKIPPED: {} is missing (cargo build --bin mcp-relay-fixture)",
        path.display()
    );
    None
}

/// A relay wrapping the fixture with `args` (per-session mode).
fn relay(fixture: &std::path::Path, args: &[&str]) -> Arc<Relay> {
    relay_with(&[], fixture, args)
}

/// A relay with the relay flags `flags`, wrapping the fixture with `args`.
fn relay_with(flags: &[&str], fixture: &std::path::Path, args: &[&str]) -> Arc<Relay> {
    let mut argv: Vec<std::ffi::OsString> = vec!["mcp-relay".into(), "serve".into()];
    argv.extend(flags.iter().map(Into::into));
    argv.push("--".into());
    argv.push(fixture.into());
    argv.extend(args.iter().map(Into::into));
    let cfg = crate::config::load(argv, &crate::secret::process_env).unwrap();
    Relay::new(Arc::new(cfg), Audit::disabled())
}

fn members(list: &[(&str, Arc<Relay>)]) -> Arc<[Member]> {
    list.iter()
        .map(|(name, relay)| Member {
            name: (*name).to_owned(),
            relay: relay.clone(),
        })
        .collect()
}

/// The client side of one aggregate session.
struct Client {
    handle: ChildHandle,
    out: ChildOutput,
    /// Messages received while waiting for another.
    seen: Vec<Value>,
}

impl Client {
    fn launch(agg: &Aggregator) -> Client {
        let caller = Caller::new(
            Principal::anonymous(),
            None::<std::net::SocketAddr>,
            Transport::StreamableHttp,
        );
        let (handle, out) = agg.launch(Some(&caller));
        Client {
            handle,
            out,
            seen: Vec::new(),
        }
    }

    fn send(&self, v: &Value) {
        self.handle.send(Bytes::from(v.to_string())).unwrap();
    }

    async fn next(&mut self) -> Value {
        match tokio::time::timeout(PATIENCE, self.out.next()).await {
            Ok(Some(ChildEvent::Line(b))) => serde_json::from_slice(&b).unwrap(),
            other => panic!("no message from the aggregate: {other:?}"),
        }
    }

    /// The first message (already seen, or next) matching `pred`.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
            self.seen.push(v);
        }
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.until(|v| v.get("method").is_none() && v["id"] == id)
            .await
    }

    async fn initialize(&mut self) -> Value {
        let params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"sampling": {}, "roots": {"listChanged": true}},
            "clientInfo": {"name": "aggregate-test", "version": "1"}
        });
        let answer = self.request(json!(0), "initialize", params).await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        answer
    }

    async fn call(&mut self, id: Value, tool: &str, args: Value) -> Value {
        let params = json!({"name": tool, "arguments": args});
        self.request(id, "tools/call", params).await
    }
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_str().unwrap().to_owned())
        .collect()
}

/// Two servers (echo and conformance fixtures) behind one aggregate.
fn two(
    fixture: &std::path::Path,
    spec: AggregateSpec,
) -> (Aggregator, watch::Sender<Arc<[Member]>>) {
    let a = relay(fixture, &["echo"]);
    let b = relay(fixture, &["conformance"]);
    let (tx, rx) = watch::channel(members(&[("a", a), ("b", b)]));
    (Aggregator::new(rx, spec, None), tx)
}

#[tokio::test]
async fn initialize_merges_and_lists_unite_every_server_prefixed() {
    let Some(fx) = fixture() else { return };
    let (agg, _tx) = two(&fx, AggregateSpec::default());
    let mut c = Client::launch(&agg);
    let init = c.initialize().await;
    let r = &init["result"];
    assert_eq!(r["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(r["serverInfo"]["name"], "mcp-relay");
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(r["capabilities"]["resources"]["subscribe"], true);
    let instructions = r["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("`a__`") && instructions.contains("`b__`"),
        "{instructions}"
    );
    let tools = names(
        &c.request(json!("t"), "tools/list", json!({})).await,
        "tools",
        "name",
    );
    assert!(tools.contains(&"a__echo".to_owned()), "{tools:?}");
    assert!(
        tools.contains(&"b__test_simple_text".to_owned()),
        "{tools:?}"
    );
    assert!(tools
        .iter()
        .all(|t| t.starts_with("a__") || t.starts_with("b__")));
    let prompts = names(
        &c.request(json!(2), "prompts/list", json!({})).await,
        "prompts",
        "name",
    );
    assert!(
        prompts.contains(&"a__greet".to_owned())
            && prompts.contains(&"b__test_simple_prompt".to_owned())
    );
    let resources = c.request(json!(3), "resources/list", json!({})).await;
    let uris = names(&resources, "resources", "uri");
    assert!(
        uris.contains(&"file:///public/readme.txt".to_owned())
            && uris.contains(&"test://static-text".to_owned())
    );
    assert_eq!(
        agg.status().get("a").map(|h| h.state),
        Some(status::State::Up)
    );
}

#[tokio::test]
async fn calls_reach_each_server_with_the_clients_id_and_unknown_names_are_refused() {
    let Some(fx) = fixture() else { return };
    let (agg, _tx) = two(&fx, AggregateSpec::default());
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let echoed = c
        .call(json!("id 1.0"), "a__echo", json!({"text": "hello"}))
        .await;
    assert_eq!(text(&echoed), "hello", "{echoed}");
    let simple = c.call(json!(1.5), "b__test_simple_text", json!({})).await;
    assert!(simple["result"]["content"].is_array(), "{simple}");
    let unknown = c.call(json!(7), "c__echo", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert_eq!(unknown["error"]["message"], "Unknown tool: c__echo");
    // A server's own "unknown" reads the same, under the name the client asked for.
    let theirs = c.call(json!(71), "a__nonexistent", json!({})).await;
    assert_eq!(
        theirs["error"],
        json!({"code": -32602, "message": "Unknown tool: a__nonexistent"})
    );
    let prompt = c
        .request(json!(8), "prompts/get", json!({"name": "a__greet"}))
        .await;
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"], "prompt greet",
        "{prompt}"
    );
    let read = c
        .request(
            json!(9),
            "resources/read",
            json!({"uri": "test://static-text"}),
        )
        .await;
    assert!(read["result"]["contents"].is_array(), "{read}");
    let missing = c
        .request(json!(10), "resources/read", json!({"uri": "nope://x"}))
        .await;
    assert_eq!(missing["error"]["code"], -32002, "{missing}");
    let ping = c.request(json!(11), "ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));
    let level = c
        .request(json!(12), "logging/setLevel", json!({"level": "debug"}))
        .await;
    assert_eq!(level["result"], json!({}), "{level}");
}

#[tokio::test]
async fn progress_sampling_and_list_changed_travel_through() {
    let Some(fx) = fixture() else { return };
    let (agg, _tx) = two(&fx, AggregateSpec::default());
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let params = json!({"name": "a__progress", "arguments": {"steps": 3, "interval_ms": 1}, "_meta": {"progressToken": "tok-1"}});
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}));
    for step in 1..=3 {
        let p = c.until(|v| v["method"] == "notifications/progress").await;
        assert_eq!(p["params"]["progressToken"], "tok-1");
        assert_eq!(p["params"]["progress"], step);
    }
    assert_eq!(text(&c.until(|v| v["id"] == 1).await), "done");

    c.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a__sample", "arguments": {}}}));
    let ask = c.until(|v| v["method"] == "sampling/createMessage").await;
    let reply = json!({"role": "assistant", "content": {"type": "text", "text": "sampled-xyz"}, "model": "m"});
    c.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": reply}));
    let sampled = c.until(|v| v["id"] == 2).await;
    assert!(text(&sampled).contains("sampled-xyz"), "{sampled}");

    c.send(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "a__roots", "arguments": {}}}));
    let ask = c.until(|v| v["method"] == "roots/list").await;
    let roots = json!({"roots": [{"uri": "file:///work", "name": "work"}]});
    c.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": roots}));
    assert!(text(&c.until(|v| v["id"] == 4).await).contains("file:///work"));

    let readme = json!({"uri": "file:///public/readme.txt"});
    c.request(json!(5), "resources/subscribe", readme.clone())
        .await;
    c.call(json!(6), "a__touch", readme.clone()).await;
    let updated = c
        .until(|v| v["method"] == "notifications/resources/updated")
        .await;
    assert_eq!(updated["params"], readme);

    c.call(json!(3), "a__notify", json!({})).await;
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    c.until(|v| v["method"] == "notifications/message").await;
}

#[tokio::test]
async fn a_crashed_server_fails_its_calls_leaves_the_others_and_comes_back() {
    let Some(fx) = fixture() else { return };
    let (agg, _tx) = two(&fx, AggregateSpec::default());
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let crashed = c.call(json!(1), "a__crash", json!({"code": 9})).await;
    assert_eq!(crashed["error"]["code"], -31007, "{crashed}");
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    let other = c.call(json!(2), "b__test_simple_text", json!({})).await;
    assert!(other["result"].is_object(), "{other}");
    // Reopened with backoff: a second list_changed says it is back.
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    assert_eq!(
        agg.status().get("a").map(|h| h.state),
        Some(status::State::Up)
    );
    let back = c.call(json!(3), "a__echo", json!({"text": "again"})).await;
    assert_eq!(text(&back), "again", "{back}");
}

#[tokio::test]
async fn cancellation_reaches_the_server_the_call_went_to() {
    let Some(fx) = fixture() else { return };
    let dir = std::env::temp_dir().join(format!("agg-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("stdin.log");
    let record_arg = format!("--record={}", record.display());
    let a = relay(&fx, &["echo", &record_arg]);
    let b = relay(&fx, &["echo"]);
    let (_tx, rx) = watch::channel(members(&[("a", a), ("b", b)]));
    let agg = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let params = json!({"name": "a__slow", "arguments": {"ms": 20000}});
    c.send(&json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": params}));
    // The call is in the child once its line is recorded.
    let seen = |needle: &str| {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains(needle)
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen("\"slow\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached the child"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1", "reason": "enough"}}));
    while !seen("notifications/cancelled") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancellation never reached the child"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = c
        .call(json!(2), "b__echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text(&after), "still here");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn without_prefixes_the_first_server_keeps_a_name_and_calls_route_by_list() {
    let Some(fx) = fixture() else { return };
    let a = relay(&fx, &["echo"]);
    let b = relay(&fx, &["echo"]);
    let (_tx, rx) = watch::channel(members(&[("a", a), ("b", b)]));
    let spec = AggregateSpec {
        prefix: Prefix::Never,
        ..AggregateSpec::default()
    };
    let agg = Aggregator::new(rx, spec, None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    // Routed before any list: the session lists everything first.
    let pid_a = c.call(json!(1), "pid", json!({})).await;
    let tools = names(
        &c.request(json!(2), "tools/list", json!({})).await,
        "tools",
        "name",
    );
    assert_eq!(
        tools.iter().filter(|t| *t == "echo").count(),
        1,
        "{tools:?}"
    );
    let pid_again = c.call(json!(3), "pid", json!({})).await;
    assert_eq!(text(&pid_a), text(&pid_again));
    let conflicts = agg.status().snapshot()["conflicts"].clone();
    assert!(
        conflicts
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "tools: echo (a, b)"),
        "{conflicts}"
    );
}

#[tokio::test]
async fn a_subset_publishes_only_its_selection() {
    let Some(fx) = fixture() else { return };
    let a = relay(&fx, &["echo"]);
    let b = relay(&fx, &["conformance"]);
    let (_tx, rx) = watch::channel(members(&[("a", a), ("b", b)]));
    let subset = EndpointSpec {
        name: "support".into(),
        tools: vec!["a:echo".into(), "b:test_simple_*".into()],
        ..EndpointSpec::default()
    };
    let agg = Aggregator::new(rx, AggregateSpec::default(), Some(subset));
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let mut tools = names(
        &c.request(json!(1), "tools/list", json!({})).await,
        "tools",
        "name",
    );
    tools.sort();
    assert_eq!(tools, ["a__echo", "b__test_simple_text"]);
    let denied = c.call(json!(2), "a__pid", json!({})).await;
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    assert_eq!(
        text(&c.call(json!(3), "a__echo", json!({"text": "ok"})).await),
        "ok"
    );
}

#[tokio::test]
async fn members_added_and_removed_change_the_lists() {
    let Some(fx) = fixture() else { return };
    let a = relay(&fx, &["echo"]);
    let (tx, rx) = watch::channel(members(&[("a", a.clone())]));
    let agg = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    tx.send_replace(members(&[("a", a.clone()), ("b", relay(&fx, &["echo"]))]));
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    let echoed = c
        .call(json!(1), "b__echo", json!({"text": "b is here"}))
        .await;
    assert_eq!(text(&echoed), "b is here", "{echoed}");
    // Removed with a call in flight: the call still gets its answer (the server drains).
    let slow = json!({"name": "b__slow", "arguments": {"ms": 300}});
    c.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": slow}));
    // The session takes the client's messages in order: once the ping is answered, the
    // call went to b.
    c.request(json!("p"), "ping", json!({})).await;
    tx.send_replace(members(&[("a", a)]));
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    let gone = c.call(json!(2), "b__echo", json!({})).await;
    assert_eq!(gone["error"]["code"], -32602, "{gone}");
    assert_eq!(text(&c.until(|v| v["id"] == "slow").await), "slept 300");
    let tools = names(
        &c.request(json!(3), "tools/list", json!({})).await,
        "tools",
        "name",
    );
    assert!(tools.iter().all(|t| t.starts_with("a__")), "{tools:?}");
}

#[tokio::test]
async fn closed_mode_fails_initialize_when_a_server_cannot_start() {
    let Some(fx) = fixture() else { return };
    let a = relay(&fx, &["echo"]);
    let broken = relay(&fx, &["echo", "--crash-on-init"]);
    let (_tx, rx) = watch::channel(members(&[("a", a), ("broken", broken)]));
    let spec = AggregateSpec {
        failure_mode: FailureMode::Closed,
        ..AggregateSpec::default()
    };
    let agg = Aggregator::new(rx.clone(), spec, None);
    let mut c = Client::launch(&agg);
    let init = c.initialize().await;
    assert_eq!(init["error"]["code"], -31006, "{init}");
    assert_eq!(init["error"]["data"]["source"], "mcp-relay", "{init}");
    assert_eq!(
        init["error"]["data"]["reason"], "child_unavailable",
        "{init}"
    );
    assert!(!init.to_string().contains("broken"), "{init}");
    // Open (the default): the others serve, and the status says why.
    let open = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&open);
    let init = c.initialize().await;
    assert!(
        init["result"]["instructions"]
            .as_str()
            .unwrap()
            .contains("`a__`"),
        "{init}"
    );
    assert_eq!(
        open.status().get("broken").map(|h| h.state),
        Some(status::State::Down)
    );
    assert_eq!(
        text(&c.call(json!(1), "a__echo", json!({"text": "x"})).await),
        "x"
    );
}

#[tokio::test]
async fn a_shared_child_crashing_comes_back_behind_the_aggregate() {
    let Some(fx) = fixture() else { return };
    let shared = relay_with(&["--session-mode", "shared"], &fx, &["echo"]);
    let b = relay(&fx, &["conformance"]);
    let (_tx, rx) = watch::channel(members(&[("a", shared), ("b", b)]));
    let agg = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let pid = c.call(json!(1), "a__pid", json!({})).await;
    assert!(text(&pid).parse::<u32>().is_ok(), "{pid}");
    let crashed = c.call(json!(2), "a__crash", json!({"code": 3})).await;
    assert_eq!(crashed["error"]["code"], -31007, "{crashed}");
    let other = c.call(json!(3), "b__test_simple_text", json!({})).await;
    assert!(other["result"].is_object(), "{other}");
    // Back on the restarted child (its relay restarts it; the session reopens).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut id = 10;
    loop {
        let again = c.call(json!(id), "a__pid", json!({})).await;
        if again["result"].is_object() {
            assert_ne!(text(&again), text(&pid), "a new child");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never came back: {again}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        id += 1;
    }
}

#[tokio::test]
async fn a_launch_without_a_caller_serves_nothing() {
    let Some(fx) = fixture() else { return };
    let (agg, _tx) = two(&fx, AggregateSpec::default());
    let (handle, out) = agg.launch(None);
    let mut c = Client {
        handle,
        out,
        seen: Vec::new(),
    };
    let discover = c.request(json!(1), "server/discover", json!({})).await;
    assert_eq!(discover["error"]["code"], -32601, "{discover}");
    let init = c.initialize().await;
    assert_eq!(init["error"]["code"], -32601, "{init}");
    assert!(
        agg.status().get("a").is_none(),
        "no server session was opened"
    );
}

mod paging;
