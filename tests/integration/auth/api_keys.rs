//! API keys in `Authorization: Bearer` or `X-API-Key`; unknown or expired keys are 401.

use super::*;

#[tokio::test]
async fn api_key_in_bearer_or_x_api_key_works_and_unknown_or_expired_is_401() {
    let (key, block) = api_key(&["--id", "ci", "--principal", "ci-bot", "--roles", "user"]);
    let (old, old_block) = api_key(&[
        "--id",
        "old",
        "--principal",
        "ci-bot",
        "--roles",
        "user",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    let (later, later_block) = api_key(&[
        "--id",
        "later",
        "--principal",
        "ci-bot",
        "--expires",
        "2999-01-01T00:00:00Z",
    ]);
    let (unknown, _) = api_key(&["--id", "nobody"]);
    let setup = Setup::new("", &format!("{block}\n{old_block}\n{later_block}"));
    let relay = setup.serve(&[], None);
    works(&relay, &[auth(&key)], "key as bearer").await;
    works(&relay, &[("x-api-key", key.clone())], "key as x-api-key").await;
    works(
        &relay,
        &[("X-Api-Key", later.clone())],
        "key with future expiry",
    )
    .await;
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (what, headers) in [
        ("unknown key (bearer)", vec![auth(&unknown)]),
        (
            "unknown key (x-api-key)",
            vec![("x-api-key", unknown.clone())],
        ),
        ("tampered key", vec![("x-api-key", tampered)]),
        (
            "key without prefix",
            vec![("x-api-key", key[5..].to_owned())],
        ),
        ("expired key (bearer)", vec![auth(&old)]),
        ("expired key (x-api-key)", vec![("x-api-key", old.clone())]),
        (
            "basic scheme",
            vec![("authorization", format!("Basic {key}"))],
        ),
    ] {
        expect_401(post_init(&relay.url, &headers).await, true, what).await;
    }
}
