//! Rounds of input: the child's requests become `input_required` results keyed by their ids,
//! the retry's `inputResponses` answer them, and inputs the client did not declare are refused.

use super::*;

#[tokio::test]
async fn an_elicitation_round_completes_with_the_answer() {
    let (relay, record) = legacy(&[]);
    let c = relay.client();
    let first = call(json!(1), "test_input_required_result_elicitation");
    let (res, keys, state) = input_required(&post(&c, &first).await);
    assert_eq!(keys, ["user_name"]);
    assert_eq!(
        res["inputRequests"]["user_name"]["method"],
        "elicitation/create"
    );
    let again = retry(
        &first,
        json!(2),
        json!({"user_name": accept(json!({"name": "Ada"}))}),
        Some(&state),
    );
    let r = post(&c, &again).await;
    assert_eq!(complete_text(&r), "Hello, Ada!");
    assert_eq!(last(&r)["id"], 2);
    // The child saw one call, and its request answered under its own id.
    let calls = received(&record)
        .iter()
        .filter(|m| m["params"]["name"] == "test_input_required_result_elicitation")
        .count();
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn a_sampling_round_completes_with_the_sample() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let first = call(json!("s1"), "test_input_required_result_sampling");
    let (res, keys, state) = input_required(&post(&c, &first).await);
    assert_eq!(keys, ["capital_question"]);
    assert_eq!(
        res["inputRequests"]["capital_question"]["method"],
        "sampling/createMessage"
    );
    let again = retry(
        &first,
        json!("s2"),
        json!({"capital_question": sampled("Paris")}),
        Some(&state),
    );
    assert_eq!(
        complete_text(&post(&c, &again).await),
        "Sampling answered: Paris"
    );
}

#[tokio::test]
async fn a_multi_round_flow_gets_a_new_state_each_round() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let first = call(json!(1), "test_input_required_result_multi_round");
    let (_, keys, state1) = input_required(&post(&c, &first).await);
    assert_eq!(keys, ["step1"]);
    let second = retry(
        &first,
        json!(2),
        json!({"step1": accept(json!({"name": "Ada"}))}),
        Some(&state1),
    );
    let (_, keys, state2) = input_required(&post(&c, &second).await);
    assert_eq!(keys, ["step2"]);
    assert_ne!(state1, state2);
    let third = retry(
        &first,
        json!(3),
        json!({"step2": accept(json!({"color": "green"}))}),
        Some(&state2),
    );
    assert_eq!(
        complete_text(&post(&c, &third).await),
        "Ada likes green (state-ok)"
    );
}

#[tokio::test]
async fn several_inputs_of_one_round_come_together() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let first = call(json!(1), "test_input_required_result_multiple_inputs");
    let (res, mut keys, state) = input_required(&post(&c, &first).await);
    keys.sort();
    assert_eq!(keys, ["client_roots", "greeting", "user_name"], "{res}");
    let again = retry(
        &first,
        json!(2),
        json!({
            "user_name": accept(json!({"name": "Ada"})),
            "greeting": sampled("Hi"),
            "client_roots": roots(),
        }),
        Some(&state),
    );
    assert_eq!(
        complete_text(&post(&c, &again).await),
        "name=Ada, greeting=Hi, roots=file:///work (state-ok)"
    );
}

#[tokio::test]
async fn a_prompt_round_completes() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let first = request(
        json!(1),
        "prompts/get",
        json!({"name": "test_input_required_result_prompt", "arguments": {}}),
        meta(),
    );
    let (_, keys, state) = input_required(&post(&c, &first).await);
    assert_eq!(keys, ["user_context"]);
    let again = retry(
        &first,
        json!(2),
        json!({"user_context": accept(json!({"context": "tea"}))}),
        Some(&state),
    );
    let r = post(&c, &again).await;
    let m = last(&r);
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(
        m["result"]["messages"][0]["content"]["text"],
        "Prompt context: tea"
    );
}

#[tokio::test]
async fn only_declared_inputs_are_asked() {
    let (relay, record) = legacy(&[]);
    let c = relay.client();
    let first = request(
        json!(1),
        "tools/call",
        json!({"name": "test_input_required_result_capabilities", "arguments": {}}),
        meta_with(json!({"sampling": {}})),
    );
    let (_, keys, state) = input_required(&post(&c, &first).await);
    assert_eq!(keys, ["model_answer"]);
    // The elicitation was refused to the child as a client without it would.
    let refused = child_got(&record, "user_name refused", |m| m["id"] == "user_name").await;
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
    let again = retry(
        &first,
        json!(2),
        json!({"model_answer": sampled("42")}),
        Some(&state),
    );
    assert_eq!(
        complete_text(&post(&c, &again).await),
        "Received: model_answer"
    );
}

#[tokio::test]
async fn a_round_of_only_undeclared_inputs_is_missing_capability() {
    let (relay, record) = legacy(&[]);
    let c = relay.client();
    let body = request(
        json!(1),
        "tools/call",
        json!({"name": "test_missing_capability", "arguments": {}}),
        meta_with(json!({})),
    );
    let r = post(&c, &body).await;
    assert_eq!(r.status, 400, "{r:?}");
    let e = last(&r)["error"].clone();
    assert_eq!(e["code"], -32021, "{e}");
    assert!(
        e["data"]["requiredCapabilities"]["sampling"].is_object(),
        "{e}"
    );
    // The child's request was refused as a client without sampling would.
    let refused = child_got(&record, "completion refused", |m| m["id"] == "completion").await;
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
}
