//! The numbers behind the console's pages (`GET /ui/api/VIEW`, `/health?deep=1`), on a loopback
//! admin listener with no admin credential configured (the console is open there): two named
//! servers of fixture children, a client with an API key whose role denies `delete_*`.

use serde_json::{json, Value};

use crate::support::{poll_until, tempdir, text_of, Client, Relay, FIXTURE};

/// A relay with the shared servers `alpha` and `beta`, RBAC denying `delete_*` to `ann` (API
/// key), and a loopback admin listener; the relay, ann's key and the admin base URL.
async fn two_servers() -> (Relay, String, String) {
    let dir = tempdir();
    std::fs::write(
        dir.join("roles.json"),
        r#"{"user": {"allowedMethods": ["*"], "tools": {"allow": ["*"], "deny": ["delete_*"]}}}"#,
    )
    .unwrap();
    let (key, block) =
        crate::support::mint_api_key(&["--id", "ann-key", "--principal", "ann", "--roles", "user"]);
    let server = |name: &str| {
        format!("[servers.{name}]\ncommand = [{FIXTURE:?}, \"echo\"]\nsession_mode = \"shared\"\n")
    };
    let toml = format!(
        "[serve]\nadmin_listen = \"127.0.0.1:0\"\nroles = {:?}\n\n\
         [auth]\nresource = \"http://relay.test/mcp\"\n{block}\n{}{}",
        dir.join("roles.json").to_str().unwrap(),
        server("alpha"),
        server("beta"),
    );
    let config = dir.join("relay.toml");
    std::fs::write(&config, toml).unwrap();
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    let admin = relay.admin_base().await;
    (relay, key, admin)
}

/// Ann's session on `/servers/NAME/mcp`, opened by a client that calls itself `client_name`.
async fn session(relay: &Relay, key: &str, server: &str, client_name: &str) -> Client {
    session_at(relay, key, &format!("/servers/{server}/mcp"), client_name).await
}

/// Ann's session on `PATH` (`/mcp`: the aggregate).
async fn session_at(relay: &Relay, key: &str, path: &str, client_name: &str) -> Client {
    let mut c = Client::new(&format!("{}{path}", relay.base));
    c.extra.push(("x-api-key".into(), key.to_owned()));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": client_name, "version": "9.1"}}});
    let reply = c.post(init).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    c.session = reply.header("mcp-session-id");
    let ack = c
        .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(ack.status, 202);
    c
}

/// `GET ADMIN/PATH` as JSON (status 200 required).
async fn get(admin: &str, path: &str) -> Value {
    let res = reqwest::get(format!("{admin}{path}")).await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// The entry of `name` in the servers view.
fn server<'a>(servers: &'a Value, name: &str) -> &'a Value {
    servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no server {name:?} in {servers}"))
}

#[tokio::test]
async fn console_views_show_servers_sessions_traffic_and_the_filtered_audit() {
    let (relay, key, admin) = two_servers().await;
    let c = session(&relay, &key, "alpha", "console-probe").await;
    for id in 1..=3 {
        let r = c.call(json!(id), "echo", json!({"text": "hi"})).await;
        assert_eq!(text_of(&r.messages()[0]), "hi");
    }
    let denied = c.call(json!(9), "delete_everything", json!({})).await;
    assert!(denied.messages()[0]["error"].is_object(), "{denied:?}");

    let servers = get(&admin, "/ui/api/servers").await;
    let names: Vec<&str> = servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["", "alpha", "beta"]);
    assert_eq!(server(&servers, "")["kind"], "aggregate");
    let alpha = server(&servers, "alpha");
    assert_eq!(
        (alpha["kind"].as_str(), alpha["session_mode"].as_str()),
        (Some("command"), Some("shared"))
    );
    assert_eq!(alpha["sessions"], 1);
    assert_eq!(alpha["children"][0]["state"], "ready");
    assert!(alpha["children"][0]["pid"].as_u64().unwrap() > 0);

    // The session with its client, principal and front; its calls grow with each call.
    let sessions = get(&admin, "/ui/api/sessions?server=alpha").await;
    let s = &sessions[0];
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(s["principal"], "ann");
    assert_eq!(s["transport"], "streamable_http");
    assert_eq!(
        (s["client_name"].as_str(), s["client_version"].as_str()),
        (Some("console-probe"), Some("9.1"))
    );
    assert_eq!(s["protocol_version"], "2025-11-25");
    assert_eq!(s["id"].as_str(), c.session.as_deref());
    let calls = s["calls"].as_u64().unwrap();
    assert!(calls >= 3, "{s}");
    c.call(json!(4), "echo", json!({"text": "more"})).await;
    poll_until(
        "the session's calls grow",
        || get(&admin, "/ui/api/sessions?principal=ann&server=alpha"),
        |v| v[0]["calls"].as_u64().unwrap_or(0) > calls,
    )
    .await;
    assert_eq!(
        get(&admin, "/ui/api/sessions?principal=bob").await,
        json!([])
    );

    // Traffic: alpha's calls, the top tool, the refusal by its reason.
    let traffic = get(&admin, "/ui/api/traffic").await;
    let row = traffic["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "alpha")
        .unwrap_or_else(|| panic!("{traffic}"));
    assert!(row["count"].as_u64().unwrap() >= 5, "{row}");
    assert!(row["errors"].as_u64().unwrap() >= 1, "{row}");
    assert!(row["p50_ms"].as_f64().unwrap() > 0.0, "{row}");
    assert!(traffic["top_tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "echo"));
    assert!(
        !traffic["refusals"].as_array().unwrap().is_empty(),
        "{traffic}"
    );
    assert_eq!(traffic["per_second"].as_array().unwrap().len(), 300);

    // The denied call in the audit feed, found by its filters and not by others.
    let found = get(
        &admin,
        "/ui/api/audit?outcome=denied&principal=ann&tool=delete_everything&server=alpha",
    )
    .await;
    let records = found["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{found}");
    let record = &records[0]["record"];
    assert_eq!(
        (record["decision"].as_str(), record["method"].as_str()),
        (Some("deny"), Some("tools/call"))
    );
    assert_eq!(record["session"].as_str(), c.session.as_deref());
    let seq = records[0]["seq"].as_u64().unwrap();
    let others = get(&admin, "/ui/api/audit?outcome=denied&principal=bob").await;
    assert_eq!(others["records"], json!([]));
    let after = get(&admin, &format!("/ui/api/audit?outcome=denied&after={seq}")).await;
    assert_eq!(after["records"], json!([]));
    let all = get(&admin, "/ui/api/audit?limit=2").await;
    assert_eq!(all["records"].as_array().unwrap().len(), 2);

    let res = reqwest::get(format!("{admin}/ui/api/nothing"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn deep_health_pings_and_a_killed_child_shows_its_exit_restart_and_stderr() {
    let (relay, key, admin) = two_servers().await;
    let deep = get(&admin, "/health?deep=1").await;
    for name in ["alpha", "beta"] {
        let ping = &deep["servers"][name]["ping_ms"];
        assert!(ping.as_f64().is_some_and(|ms| ms >= 0.0), "{name}: {deep}");
    }
    assert_eq!(get(&admin, "/ui/api/health").await["deep"], true);
    // Without `deep`, nothing is pinged.
    assert!(get(&admin, "/health").await["servers"]["alpha"]
        .get("ping_ms")
        .is_none());

    let servers = get(&admin, "/ui/api/servers").await;
    let child = &server(&servers, "alpha")["children"][0];
    let (pid, restarts) = (
        child["pid"].as_u64().unwrap(),
        child["restarts"].as_u64().unwrap(),
    );
    assert_eq!(restarts, 0, "{child}");

    let c = session(&relay, &key, "alpha", "crasher").await;
    // The child exits at once: the call fails (or is never answered); either way it is gone.
    let _ = tokio::time::timeout(
        crate::support::patience(),
        c.call(json!(1), "crash", json!({"code": 7})),
    )
    .await;
    let servers = poll_until(
        "alpha's child comes back with a new pid",
        || get(&admin, "/ui/api/servers"),
        |v| {
            let ch = &server(v, "alpha")["children"][0];
            ch["state"] == "ready" && ch["pid"].as_u64().is_some_and(|p| p != pid)
        },
    )
    .await;
    let child = &server(&servers, "alpha")["children"][0];
    assert_eq!(child["restarts"], 1, "{child}");
    assert_eq!(child["last_exit"], "exit status 7", "{child}");
    let stderr: Vec<&str> = child["stderr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        stderr.iter().any(|l| l.contains("crash tool: exiting 7")),
        "{child}"
    );
    // beta was not touched.
    let beta = &server(&servers, "beta")["children"][0];
    assert_eq!(beta["restarts"], 0, "{beta}");
}

#[tokio::test]
async fn deep_health_on_the_main_listener_pings_the_single_servers_child() {
    // No admin listener: the main router serves the probes.
    let relay = Relay::start(&["--session-mode", "shared"], &[]);
    let res = reqwest::get(format!("{}/health?deep=1", relay.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["ping_ms"].as_f64().is_some(), "{doc}");
    assert_eq!(doc["pinged"], 1, "{doc}");
    assert!(relay.health().await.get("ping_ms").is_none());
}

#[tokio::test]
async fn a_call_through_the_aggregate_counts_once_and_its_card_offers_no_restart() {
    let (relay, key, admin) = two_servers().await;
    let c = session_at(&relay, &key, "/mcp", "aggregate-probe").await;
    let r = c
        .call(json!(1), "alpha__echo", json!({"text": "once"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "once");
    // Per tool: the front's name only, once; per server: the aggregate and alpha.
    let traffic = poll_until(
        "the call in the traffic view",
        || get(&admin, "/ui/api/traffic"),
        |v| {
            let has =
                |dim: &str, key: &str| v[dim].as_array().unwrap().iter().any(|r| r["key"] == key);
            has("tools", "alpha__echo") && has("servers", "alpha")
        },
    )
    .await;
    let tools: Vec<(String, u64)> = traffic["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tools, [("alpha__echo".to_owned(), 1)], "{traffic}");
    let sum = |dim: &str| -> u64 {
        traffic[dim]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    let per_second: u64 = traffic["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sum("principals"), per_second, "{traffic}");

    // Restart is offered on alpha's and beta's cards (and the script's hidden template), not
    // on the aggregate's.
    let html = reqwest::get(format!("{admin}/ui/servers"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("/ui/actions/restart").count(), 3, "{html}");
}
