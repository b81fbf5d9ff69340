//! What bounds the relay's stand-in work: requests that wait for input are capped per child
//! (a quarter of `--max-inflight-per-child`), a listen watches at most 64 URIs, and the era
//! settings that cannot work together are refused at startup.

use serde_json::json;

use super::*;

#[tokio::test]
async fn waiting_for_input_is_capped_per_child() {
    // 8 in flight per child: at most 2 requests may wait for input on it.
    let (relay, record) = legacy(&["--max-inflight-per-child", "8"]);
    let c = relay.client();
    let first = post(
        &c,
        &call(json!(1), "test_input_required_result_elicitation"),
    )
    .await;
    let (_, keys, state) = input_required(&first);
    assert_eq!(keys, ["user_name"]);
    let second = post(&c, &call(json!(2), "test_input_required_result_sampling")).await;
    input_required(&second);
    // A third is refused as busy; its child request is answered and its call cancelled.
    let third = post(&c, &call(json!(3), "test_input_required_result_list_roots")).await;
    let m = last(&third);
    assert_eq!(m["error"]["code"], -31005, "{m}");
    let answered = child_got(&record, "an error for client_roots", |v| {
        v["id"] == "client_roots" && v["error"]["code"] == -31008
    })
    .await;
    assert!(answered["error"]["message"].is_string(), "{answered}");
    // The waiting ones still complete.
    let body = call(json!(1), "test_input_required_result_elicitation");
    let done = post(
        &c,
        &retry(
            &body,
            json!(4),
            json!({"user_name": accept(json!({"name": "Ann"}))}),
            Some(&state),
        ),
    )
    .await;
    assert!(complete_text(&done).contains("Ann"), "{done:?}");
}

#[tokio::test]
async fn a_listen_watches_at_most_64_uris() {
    let (relay, _) = legacy(&[]);
    let c = relay.client();
    let uris: Vec<String> = (0..65).map(|i| format!("test://r/{i}")).collect();
    let listen = request(
        json!("L"),
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": uris}}),
        meta(),
    );
    let r = post(&c, &listen).await;
    let m = last(&r);
    assert_eq!(m["error"]["code"], -32602, "{m}");
    assert_eq!(m["error"]["data"]["max"], 64, "{m}");
}

#[test]
fn era_settings_that_cannot_work_together_are_refused() {
    for args in [
        &[
            "--child-era",
            "modern",
            "--session-mode",
            "per-identity",
            "--identity-header",
            "x-user",
        ][..],
        &["--input-timeout", "0s"][..],
    ] {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", FIXTURE]);
        let out = std::process::Command::new(crate::support::RELAY)
            .args(&all)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(args[1].trim_start_matches("--")) || err.contains(args[0]),
            "{err}"
        );
    }
}
