//! The sealed `requestState`: altered, replayed by another principal, after its expiry or
//! after completion, it is refused with HTTP 400 and -32602 naming the reason, recorded in
//! the audit log, and never reaches the child; a retry that never comes ends the child's wait.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::*;

/// `state` with one bit of its sealed bytes flipped.
fn flip_bit(state: &str) -> String {
    let mut raw = URL_SAFE_NO_PAD
        .decode(state.strip_prefix("mcpr1.").unwrap())
        .unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x10;
    format!("mcpr1.{}", URL_SAFE_NO_PAD.encode(raw))
}

/// Asserts `r` is the refusal of a state for `reason`.
fn assert_refused(r: &Reply, reason: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    let e = last(r)["error"].clone();
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(e["data"]["reason"], reason, "{e}");
}

/// Waits for an audit line of a refusal for `reason` by `principal`.
async fn audited(audit: &Path, principal: &str, reason: &str) {
    eventually(&format!("audit of {reason} for {principal}"), || {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| {
                r["principal"] == principal
                    && r["reason"] == reason
                    && r["error_code"] == -32602
                    && r["outcome"] == "refused"
            })
    })
    .await;
}

const ASK: &str = "test_input_required_result_elicitation";

fn answer(state: &str, id: i64) -> Value {
    retry(
        &call(json!(1), ASK),
        json!(id),
        json!({"user_name": accept(json!({"name": "Ada"}))}),
        Some(state),
    )
}

#[tokio::test]
async fn altered_or_foreign_states_are_refused_before_the_child() {
    let (relay, record, audit) = authed(&[]);
    let (alice, mallory) = (
        as_user(&relay, "alice", "admin"),
        as_user(&relay, "mallory", "admin"),
    );
    let (_, _, state) = input_required(&post(&alice, &call(json!(1), ASK)).await);
    let before = received(&record).len();
    assert_refused(
        &post(&alice, &answer(&flip_bit(&state), 2)).await,
        "request_state_invalid",
    );
    audited(&audit, "alice", "request_state_invalid").await;
    assert_refused(
        &post(&mallory, &answer(&state, 3)).await,
        "request_state_invalid",
    );
    audited(&audit, "mallory", "request_state_invalid").await;
    // The same state for another tool is not this request's either.
    let mut other = answer(&state, 4);
    other["params"]["name"] = json!("test_input_required_result_request_state");
    assert_refused(&post(&alice, &other).await, "request_state_invalid");
    assert_eq!(
        received(&record).len(),
        before,
        "a refused retry reached the child"
    );
    // The untouched state still completes for its owner; then it is spent.
    assert_eq!(
        complete_text(&post(&alice, &answer(&state, 5)).await),
        "Hello, Ada!"
    );
    let done = received(&record).len();
    assert_refused(
        &post(&alice, &answer(&state, 6)).await,
        "request_state_expired",
    );
    audited(&audit, "alice", "request_state_expired").await;
    assert_eq!(received(&record).len(), done, "a replay reached the child");
}

#[tokio::test]
async fn a_retry_that_never_comes_ends_the_childs_wait_and_its_state() {
    let (relay, record, audit) = authed(&["--input-timeout", "1s"]);
    let alice = as_user(&relay, "alice", "admin");
    let (_, _, state) = input_required(&post(&alice, &call(json!(1), ASK)).await);
    let asked = child_got(&record, "the call", |m| {
        m["method"] == "tools/call" && m["params"]["name"] == ASK
    })
    .await;
    let refused = child_got(&record, "user_name answered with an error", |m| {
        m["id"] == "user_name" && m.get("error").is_some()
    })
    .await;
    assert_eq!(refused["error"]["code"], -31008, "{refused}");
    let cancelled = child_got(&record, "the call cancelled", |m| {
        m["method"] == "notifications/cancelled"
    })
    .await;
    assert_eq!(cancelled["params"]["requestId"], asked["id"], "{cancelled}");
    let before = received(&record).len();
    assert_refused(
        &post(&alice, &answer(&state, 2)).await,
        "request_state_expired",
    );
    audited(&audit, "alice", "request_state_expired").await;
    assert_eq!(received(&record).len(), before);
}
