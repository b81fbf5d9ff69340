//! Pagination over the union: relays whose server pages its tool list (two tools a page),
//! an in-process server of this file's (the fixture children never paginate), behind a real
//! relay each, as the hub puts named servers behind relays.

use super::*;
use crate::upstream::stdio::{ExitInfo, LinkEnds};

/// A server with `tools` tools (`t0`, `t1`, ...), listed `page` at a time; `tools/call`
/// answers the name it was called with.
#[derive(Debug)]
struct Pager {
    tools: usize,
    page: usize,
    /// Every page says the next is the first again.
    stuck: bool,
    /// How long it takes to answer `initialize`.
    slow: Duration,
}

impl Launch for Pager {
    fn launch(&self, _: Option<&Caller>) -> (ChildHandle, ChildOutput) {
        let (handle, output, ends) = stdio::link();
        let next = if self.stuck { Some(0) } else { None };
        let (slow, tools, page) = (self.slow, self.tools, self.page);
        tokio::spawn(async move {
            tokio::time::sleep(slow).await;
            serve(ends, tools, page, next).await;
        });
        (handle, output)
    }

    fn max_line(&self) -> usize {
        1 << 20
    }
}

async fn serve(mut ends: LinkEnds, tools: usize, page: usize, stuck: Option<usize>) {
    loop {
        let line = tokio::select! {
            line = ends.outgoing.recv() => line,
            () = ends.stop.cancelled() => None,
        };
        let Some(line) = line else { break };
        let v: Value = serde_json::from_slice(&line).unwrap();
        let Some(id) = v.get("id").filter(|_| v.get("method").is_some()) else {
            continue;
        };
        let result = match v["method"].as_str().unwrap() {
            "initialize" => json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": "pager", "version": "1"}
            }),
            "tools/list" => {
                let start: usize = v["params"]["cursor"]
                    .as_str()
                    .map_or(0, |c| c.parse().unwrap());
                let end = (start + page).min(tools);
                let items: Vec<Value> = (start..end)
                    .map(|i| json!({"name": format!("t{i}")}))
                    .collect();
                let mut r = json!({"tools": items});
                if end < tools {
                    r["nextCursor"] = stuck.unwrap_or(end).to_string().into();
                }
                r
            }
            "tools/call" => json!({"content": [{"type": "text", "text": v["params"]["name"]}]}),
            _ => json!({}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
        if ends
            .incoming
            .send(Bytes::from(answer.to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(0),
        signal: None,
    }));
}

/// A relay (per-session mode) whose server is a [`Pager`].
fn pager_relay(fixture: &std::path::Path, tools: usize) -> Arc<Relay> {
    pager_relay_of(fixture, tools, false)
}

fn pager_relay_of(fixture: &std::path::Path, tools: usize, stuck: bool) -> Arc<Relay> {
    pager_relay_with(fixture, tools, stuck, Duration::ZERO)
}

fn pager_relay_with(
    fixture: &std::path::Path,
    tools: usize,
    stuck: bool,
    slow: Duration,
) -> Arc<Relay> {
    let argv = ["mcp-relay", "serve", "--"].map(std::ffi::OsString::from);
    let mut argv = argv.to_vec();
    argv.push(fixture.into());
    let mut cfg = crate::config::load(argv, &crate::secret::process_env).unwrap();
    cfg.child = ServerSpec::InProcess(Arc::new(Pager {
        tools,
        page: 2,
        stuck,
        slow,
    }));
    Relay::new(Arc::new(cfg), Audit::disabled())
}

#[tokio::test]
async fn lists_page_through_every_servers_pages_under_one_cursor() {
    let Some(fx) = fixture() else { return };
    let list = members(&[
        ("a", pager_relay(&fx, 5)),
        ("b", pager_relay(&fx, 3)),
        ("c", pager_relay(&fx, 1)),
    ]);
    let (_tx, rx) = watch::channel(list);
    let agg = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let mut pages = Vec::new();
    let mut params = json!({});
    loop {
        let page = c.request(json!(pages.len()), "tools/list", params).await;
        pages.push(names(&page, "tools", "name"));
        match page["result"]["nextCursor"].as_str() {
            Some(cursor) => params = json!({"cursor": cursor}),
            None => break,
        }
        assert!(pages.len() < 10, "endless pages");
    }
    assert_eq!(
        pages,
        [
            vec!["a__t0", "a__t1", "b__t0", "b__t1", "c__t0"],
            vec!["a__t2", "a__t3", "b__t2"],
            vec!["a__t4"]
        ]
    );
    let bad = c
        .request(json!("x"), "tools/list", json!({"cursor": "not-ours"}))
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    // Forged: a server named twice, more servers than there are.
    let pair = |s: &str| (s.to_owned(), "2".to_owned());
    let forged = [
        vec![pair("a"), pair("a")],
        vec![pair("a"), pair("b"), pair("c"), pair("d")],
    ];
    for (i, next) in forged.into_iter().enumerate() {
        let cursor = crate::aggregate::cursor::encode(next).unwrap();
        let bad = c
            .request(json!(i), "tools/list", json!({"cursor": cursor}))
            .await;
        assert_eq!(bad["error"]["code"], -32602, "{bad}");
    }
}

#[tokio::test]
async fn a_lookup_listing_stops_at_a_repeated_cursor_and_after_its_page_cap() {
    let Some(fx) = fixture() else { return };
    let list = members(&[
        ("a", pager_relay_of(&fx, 10, true)),
        ("b", pager_relay(&fx, 1_000_000)),
    ]);
    let (_tx, rx) = watch::channel(list);
    let spec = AggregateSpec {
        prefix: Prefix::Never,
        ..AggregateSpec::default()
    };
    let agg = Aggregator::new(rx, spec, None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    let call = c.call(json!(1), "nowhere", json!({}));
    let missing = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the lookup listing never ended");
    assert!(missing["error"].is_object(), "{missing}");
}

#[tokio::test]
async fn an_unlisted_name_is_found_on_a_later_page_without_prefixes() {
    let Some(fx) = fixture() else { return };
    let list = members(&[("a", pager_relay(&fx, 2)), ("b", pager_relay(&fx, 7))]);
    let (_tx, rx) = watch::channel(list);
    let spec = AggregateSpec {
        prefix: Prefix::Never,
        ..AggregateSpec::default()
    };
    let agg = Aggregator::new(rx, spec, None);
    let mut c = Client::launch(&agg);
    c.initialize().await;
    // `t6` is on b's fourth page; the session reads every page to find it.
    let found = c.call(json!(1), "t6", json!({})).await;
    assert_eq!(text(&found), "t6", "{found}");
    let missing = c.call(json!(2), "t7", json!({})).await;
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
}

#[tokio::test]
async fn requests_held_behind_initialize_past_the_cap_are_refused_as_busy() {
    let Some(fx) = fixture() else { return };
    let slow = pager_relay_with(&fx, 1, false, Duration::from_secs(3));
    let (_tx, rx) = watch::channel(members(&[("slow", slow)]));
    let agg = Aggregator::new(rx, AggregateSpec::default(), None);
    let mut c = Client::launch(&agg);
    let hello = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    c.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}));
    for i in 1..=300 {
        let line = json!({"jsonrpc": "2.0", "id": i, "method": "tools/list"}).to_string();
        // The link's queue is short: wait for room.
        while c.handle.send(Bytes::from(line.clone())).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let busy = c.until(|v| v["id"] == 300).await;
    assert_eq!(busy["error"]["code"], -31005, "{busy} {:?}", c.seen.first());
    assert!(
        c.seen.iter().all(|v| v["id"].as_i64().unwrap() > 256),
        "{:?}",
        c.seen
    );
}
