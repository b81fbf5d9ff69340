//! A2, algorithm confusion: `alg: none` and an HS256 token signed with our RSA public key are
//! refused; the RS256 token is accepted.

use super::*;

#[tokio::test]
async fn a2_alg_none_is_401_invalid_token() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let body = b64(&claims("mallory"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("alg {alg}")).await;
        }
    }
    // The same claims, properly signed, pass (the claims were not the problem).
    let good = setup.hs256(hs_header(), &claims("mallory"));
    assert_eq!(post_init(&relay.url, &[auth(&good)]).await.status(), 200);
}

#[tokio::test]
async fn a2_hs256_signed_with_our_rsa_public_key_is_401_and_rs256_is_200() {
    let (public, setup) = rs256_setup();
    let relay = setup.serve(&[], None);
    let mut rs_claims = claims("svc");
    rs_claims["iss"] = json!("rs-issuer");
    let pem = std::fs::read(&public).unwrap();
    let der = std::fs::read(fixtures().join("rsa_public.der")).unwrap();
    let jwk = std::fs::read(fixtures().join("rsa_public.jwk.json")).unwrap();
    let pem_trimmed = String::from_utf8(pem.clone()).unwrap().trim().to_owned();
    for (what, key) in [
        ("pem", pem.clone()),
        ("pem without newline", pem_trimmed.into_bytes()),
        ("der", der),
        ("jwk", jwk),
    ] {
        for header in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT", "kid": "rsa"}),
        ] {
            let token = sign(
                header,
                &rs_claims,
                &EncodingKey::from_secret(&key),
                Algorithm::HS256,
            );
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("HS256 with the public key ({what})")).await;
        }
    }
    // A genuine RS256 token from `token jwt --key-file` is accepted.
    let out = Command::new(RELAY)
        .args(["token", "jwt", "--key-file"])
        .arg(fixtures().join("rsa_private.pem"))
        .args([
            "--alg",
            "RS256",
            "--issuer",
            "rs-issuer",
            "--user",
            "svc",
            "--roles",
            "user",
            "--expires-in",
            "1h",
            "--audience",
            RESOURCE,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    works(&relay, &[auth(&token)], "rs256").await;
    // Signed by another RSA key: refused.
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let forged = sign(
        json!({"alg": "RS256", "typ": "at+jwt"}),
        &rs_claims,
        &other,
        Algorithm::RS256,
    );
    expect_401(
        post_init(&relay.url, &[auth(&forged)]).await,
        true,
        "RS256 by another key",
    )
    .await;
}
