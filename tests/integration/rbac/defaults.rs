//! B6: default deny: near-miss methods, missing or unknown roles.

use super::*;

// === B6 ===

#[tokio::test]
async fn b6_near_miss_and_unknown_methods_are_method_not_found_without_reaching_the_child() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        (50, "TOOLS/CALL"),
        (51, "tools/call "),
        (52, "foo/bar"),
        // Look-alikes: capital I for l, a tab, a doubled slash, a fullwidth solidus, NUL.
        (53, "tooIs/call"),
        (54, "tools/call\t"),
        (55, "tools//call"),
        (56, "tools\u{ff0f}call"),
        (57, "tools/call\u{0}"),
        (58, "Tools/Call"),
    ];
    for (id, method) in cases {
        let r = c
            .post(req(
                json!(id),
                method,
                json!({"name":"echo","arguments":{}}),
            ))
            .await;
        assert_eq!(r.status, 200, "{method}");
        assert_unknown(&one(&r), json!(id), -32601, "Method not found");
    }
    rig.barrier(&c, "b6").await;
    for method in [
        "TOOLS/CALL",
        "tools/call",
        "foo/bar",
        "tooIs",
        "tools/",
        "Tools",
    ] {
        assert_eq!(rig.recorded_with(method), 0, "{:?}", rig.recorded());
    }
    let rec = rig
        .audited(json!({"principal":"ursula","method":"foo/bar"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["error_code"], -32601);
    assert_eq!(rec["rule"], "user.default_deny");
}

/// Everything but `initialize` and `ping` is denied for `token`.
async fn assert_denied_everything(rig: &Rig, token: &str, who: &str) {
    let mut c = rig.client(token);
    c.initialize("2025-11-25").await;
    for (id, method, params) in [
        (60, "tools/list", json!({})),
        (61, "tools/call", json!({"name":"echo","arguments":{}})),
        (62, "prompts/list", json!({})),
        (
            63,
            "resources/read",
            json!({"uri":"file:///public/readme.txt"}),
        ),
    ] {
        let r = c.post(req(json!(id), method, params)).await;
        assert_eq!(r.status, 200, "{who} {method}");
        let msg = one(&r);
        assert_eq!(msg["id"], id, "{who} {method}: {msg}");
        assert!(msg.get("error").is_some(), "{who} {method} allowed: {msg}");
        // No known role: every method is denied as a method.
        assert_unknown(&msg, json!(id), -32601, "Method not found");
    }
    rig.barrier(&c, who).await;
    for method in ["tools/list", "tools/call", "prompts/list", "resources/read"] {
        assert_eq!(
            rig.recorded_with(method),
            0,
            "{who}: {method} reached the child"
        );
    }
    let rec = rig
        .audited(json!({"principal": who, "method": "tools/list"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "no_role");
}

#[tokio::test]
async fn b6_token_without_roles_claim_gets_only_initialize_and_ping() {
    let rig = rig(Opts::default());
    assert_denied_everything(&rig, &hand_token("nobody", json!({})), "nobody").await;
}

#[tokio::test]
async fn b6_token_with_empty_or_unknown_roles_gets_only_initialize_and_ping() {
    let rig = rig(Opts::default());
    assert_denied_everything(&rig, &mint("empty", ""), "empty").await;
    assert_denied_everything(&rig, &mint("stranger", "superuser"), "stranger").await;
}

#[tokio::test]
async fn b6_roles_claim_of_the_wrong_type_is_refused() {
    // One string is an accepted form (`jwt.rs`: "Array of strings or one string"); numbers,
    // objects and mixed arrays are not.
    let rig = rig(Opts::default());
    for roles in [
        json!(7),
        json!({"admin": true}),
        json!(["admin", 1]),
        json!(null),
    ] {
        let c = rig.client(&hand_token("typo", json!({ "roles": roles })));
        let r = c
            .post(crate::support::init_request(json!(0), "2025-11-25"))
            .await;
        assert_eq!(r.status, 401, "roles {roles}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -31001, "{}", r.body);
    }
    assert_eq!(rig.recorded().len(), 0);
    rig.audited(json!({"outcome":"unauthenticated", "error_code": -31001}))
        .await;
}
