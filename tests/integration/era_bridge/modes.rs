//! Rounds in every session mode and on a named server's path: a retry always reaches the
//! child that parked its request.

use super::*;

const ASK: &str = "test_input_required_result_elicitation";

/// A relay with two named servers: `conf` (the legacy conformance child) and `echo`, and
/// `serve` lines for `[serve]`.
fn two_servers(serve: &str) -> Relay {
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\n{serve}\n\
             [servers.conf]\ncommand = [{FIXTURE:?}, \"conformance\", \"--era\", \"legacy\"]\n\n\
             [servers.echo]\ncommand = [{FIXTURE:?}]\n"
        ),
    )
    .unwrap();
    Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ])
}

/// Runs one elicitation round on `c` for `name` and returns the final text.
async fn round_trip(c: &Client, id: i64, name: &str) -> String {
    let first = call(json!(id), ASK);
    let (_, keys, state) = input_required(&post(c, &first).await);
    assert_eq!(keys, ["user_name"]);
    let again = retry(
        &first,
        json!(id + 1000),
        json!({"user_name": accept(json!({"name": name}))}),
        Some(&state),
    );
    complete_text(&post(c, &again).await)
}

#[tokio::test]
async fn shared_children_resume_where_the_round_was_parked() {
    let (relay, record) = legacy(&["--session-mode", "shared", "--children", "2"]);
    let c = relay.client();
    // Both children ready first: a child still starting takes no requests.
    crate::support::poll_until(
        "both children ready",
        || relay.health(),
        |h| {
            h["slots"]
                .as_array()
                .map_or(0, |v| v.iter().filter(|s| s["state"] == "ready").count())
                >= 2
        },
    )
    .await;
    // Two rounds parked at once: the second goes to the other child (the fixture asks with
    // the same id each time, so one child could not hold both).
    let firsts = [call(json!(1), ASK), call(json!(2), ASK)];
    let mut states = Vec::new();
    for first in &firsts {
        let (_, keys, state) = input_required(&post(&c, first).await);
        assert_eq!(keys, ["user_name"]);
        states.push(state);
    }
    // Completed in the other order, each retry reaches the child that parked it.
    for (i, (first, state)) in firsts.iter().zip(&states).enumerate().rev() {
        let name = format!("n{i}");
        let again = retry(
            first,
            json!(10 + i),
            json!({"user_name": accept(json!({"name": name}))}),
            Some(state),
        );
        assert_eq!(
            complete_text(&post(&c, &again).await),
            format!("Hello, {name}!")
        );
    }
    assert_eq!(relay.children().len(), 2);
    assert!(!received(&record).iter().any(|m| m.get("error").is_some()));
}

#[tokio::test]
async fn per_identity_rounds_stay_with_the_identity() {
    let (relay, _record) = legacy(&[
        "--session-mode",
        "per-identity",
        "--identity-header",
        "x-user",
    ]);
    let as_user = |name: &str| {
        let mut c = relay.client();
        c.extra.push(("x-user".into(), name.into()));
        c
    };
    let (alice, bob) = (as_user("alice"), as_user("bob"));
    assert_eq!(round_trip(&alice, 1, "Alice").await, "Hello, Alice!");
    assert_eq!(round_trip(&bob, 2, "Bob").await, "Hello, Bob!");
    assert_eq!(relay.children().len(), 2);
    // Alice's state is not Bob's to use.
    let first = call(json!(3), ASK);
    let (_, _, state) = input_required(&post(&alice, &first).await);
    let stolen = retry(
        &first,
        json!(4),
        json!({"user_name": accept(json!({"name": "Bob"}))}),
        Some(&state),
    );
    let r = post(&bob, &stolen).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(last(&r)["error"]["data"]["reason"], "request_state_invalid");
}

#[tokio::test]
async fn a_named_servers_path_translates_for_its_legacy_child() {
    let relay = two_servers("");
    let c = Client::new(&format!("{}/servers/conf/mcp", relay.base));
    let d = post(&c, &request(json!(1), "server/discover", json!({}), meta())).await;
    assert_eq!(d.status, 200, "{d:?}");
    assert_eq!(last(&d)["result"]["resultType"], "complete");
    assert_eq!(round_trip(&c, 2, "Nia").await, "Hello, Nia!");
}

#[tokio::test]
async fn the_aggregate_serves_modern_clients_through_one_instance_per_caller() {
    let relay = two_servers("");
    // The main path: the aggregate of both servers.
    let c = relay.client();
    let d = post(&c, &request(json!(1), "server/discover", json!({}), meta())).await;
    assert_eq!(d.status, 200, "{d:?}");
    let result = last(&d)["result"].clone();
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    let versions = result["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!("2026-07-28")), "{result}");
    let list = post(&c, &request(json!(2), "tools/list", json!({}), meta())).await;
    let names: Vec<String> = last(&list)["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list:?}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    let ask = format!("conf__{ASK}");
    assert!(names.contains(&ask), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("echo__")), "{names:?}");
    // A round through the aggregate and the server behind it.
    let first = call(json!(3), &ask);
    let (_, keys, state) = input_required(&post(&c, &first).await);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let again = retry(
        &first,
        json!(4),
        json!({ keys[0].clone(): accept(json!({"name": "Agg"})) }),
        Some(&state),
    );
    assert_eq!(complete_text(&post(&c, &again).await), "Hello, Agg!");
}

#[tokio::test]
async fn an_idle_aggregate_instance_stops_with_its_servers_sessions() {
    let relay = two_servers("session_idle_timeout = \"1s\"\ninput_timeout = \"1s\"\n");
    let c = relay.client();
    let d = post(&c, &request(json!(1), "server/discover", json!({}), meta())).await;
    assert_eq!(d.status, 200, "{d:?}");
    // The instance opened one session (one child) on each server.
    eventually("the instance's servers started", || {
        relay.children().len() == 2
    })
    .await;
    eventually("the idle instance stopped", || relay.children().is_empty()).await;
    // The next request starts a new one.
    let d = post(&c, &request(json!(2), "server/discover", json!({}), meta())).await;
    assert_eq!(d.status, 200, "{d:?}");
}
