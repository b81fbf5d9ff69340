//! Tests of `token.rs`: API keys and their hashes, HMAC secrets, development JWTs.

use clap::Parser;

use super::*;
use crate::caller::AuthFailure;
use crate::policy::api_key::ApiKeyConfig;
use crate::policy::jwt::{JwtConfig, JwtVerifier};

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: TokenCommand,
}

const SECRET: &str = "04396ee02d8025d2cd686a3ee44295e06508134e19a795d44d2b320862c45edb";
const DEFAULT_AUDIENCE: &str = "http://127.0.0.1:8080/mcp";

fn env(name: &str) -> Option<String> {
    (name == "SIGNING").then(|| SECRET.to_owned())
}

/// Runs `mcp-relay token <args>`; returns (stdout, stderr).
fn run_args(args: &[&str]) -> anyhow::Result<(String, String)> {
    let mut args = args.to_vec();
    if args.first() == Some(&"jwt") && !args.contains(&"--audience") {
        args.extend(["--audience", DEFAULT_AUDIENCE]);
    }
    let cli = Cli::try_parse_from(std::iter::once("token").chain(args.iter().copied()))?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_with(cli.cmd, &mut out, &mut err, &env)?;
    Ok((String::from_utf8(out)?, String::from_utf8(err)?))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn verify(issuer: serde_json::Value, token: &str) -> Result<Principal, AuthFailure> {
    let config: JwtConfig = serde_json::from_value(issuer).unwrap();
    let v = JwtVerifier::build(vec![config], DEFAULT_AUDIENCE, &env).unwrap();
    v.verify(token).await
}

use crate::caller::Principal;

#[test]
fn key_prints_key_then_block_that_verifies() {
    let (out, _) = run_args(&[
        "key",
        "--id",
        "ci",
        "--principal",
        "bot",
        "--roles",
        "a,b",
        "--expires",
        "2099-01-01T00:00:00Z",
    ])
    .unwrap();
    let (key, block) = out.split_once('\n').unwrap();
    assert!(key.starts_with("mcpr_"));
    assert!(
        !block.contains(key),
        "the key must not be in the config block"
    );
    let doc: toml::Value = toml::from_str(block).unwrap();
    let entry = doc["auth"]["api_keys"][0].clone();
    let entry: ApiKeyConfig = entry.try_into().unwrap();
    assert_eq!((entry.id.as_str(), entry.principal.as_str()), ("ci", "bot"));
    let keys = ApiKeys::new(vec![entry]).unwrap();
    let p = keys.verify(key, SystemTime::now()).unwrap();
    assert_eq!(p.roles, vec!["a", "b"]);
}

#[test]
fn key_defaults_principal_to_random_id_and_checks_expiry() {
    let (out, _) = run_args(&["key"]).unwrap();
    let doc: toml::Value = toml::from_str(out.split_once('\n').unwrap().1).unwrap();
    let entry = &doc["auth"]["api_keys"][0];
    assert!(entry["id"].as_str().unwrap().starts_with("key-"));
    assert_eq!(entry["id"], entry["principal"]);
    assert!(run_args(&["key", "--expires", "next week"]).is_err());
}

#[test]
fn secret_bits_are_checked_and_encoded() {
    let (out, _) = run_args(&["secret"]).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(out.trim()).unwrap().len(), 32);
    let (out, _) = run_args(&["secret", "--bits", "512"]).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(out.trim()).unwrap().len(), 64);
    assert!(run_args(&["secret", "--bits", "128"]).is_err());
    assert!(run_args(&["secret", "--bits", "260"]).is_err());
}

#[tokio::test]
async fn jwt_with_secret_reference_verifies() {
    let (out, err) = run_args(&[
        "jwt",
        "--user",
        "alice",
        "--roles",
        "admin,dev",
        "--expires-in",
        "1h",
        "--secret",
        "env:SIGNING",
        "--scope",
        "tools:call",
    ])
    .unwrap();
    assert!(err.is_empty());
    assert_eq!(out.lines().count(), 1);
    let issuer = serde_json::json!({"issuer": "mcp-relay", "algorithms": ["HS256"],
        "secret": "env:SIGNING"});
    let p = verify(issuer, out.trim()).await.unwrap();
    assert_eq!(p.name, "alice");
    assert_eq!(p.roles, vec!["admin", "dev"]);
    assert_eq!(p.scopes, vec!["tools:call"]);
    assert!(p.key_id.is_some());
}

#[tokio::test]
async fn jwt_with_key_files_verifies() {
    let cases = [
        ("rsa_private.pem", "rsa_public.pem", "RS256"),
        ("ec_private.pem", "ec_public.pem", "ES256"),
        ("ed25519_private.pem", "ed25519_public.pem", "EdDSA"),
    ];
    for (private, public, alg) in cases {
        let (out, _) = run_args(&[
            "jwt",
            "--user",
            "u",
            "--roles",
            "r",
            "--expires-in",
            "5m",
            "--key-file",
            &fixture(private),
        ])
        .unwrap();
        let issuer = serde_json::json!({"issuer": "mcp-relay", "algorithms": [alg],
            "public_keys": [fixture(public)]});
        assert!(verify(issuer, out.trim()).await.is_ok(), "{alg}");
    }
}

#[tokio::test]
async fn jwt_auto_secret_goes_to_stderr_and_token_to_stdout() {
    let (out, err) = run_args(&[
        "jwt",
        "--user",
        "u",
        "--roles",
        "r",
        "--expires-in",
        "5m",
        "--auto-secret",
        "--alg",
        "HS512",
    ])
    .unwrap();
    let secret = err.trim().strip_prefix("secret: ").unwrap().to_owned();
    let env = move |n: &str| (n == "AUTO").then(|| secret.clone());
    let config: JwtConfig = serde_json::from_value(serde_json::json!({"issuer": "mcp-relay",
        "algorithms": ["HS512"], "secret": "env:AUTO"}))
    .unwrap();
    let v = JwtVerifier::build(vec![config], DEFAULT_AUDIENCE, &env).unwrap();
    assert!(v.verify(out.trim()).await.is_ok());
}

#[test]
fn jwt_without_audience_or_config_says_what_to_pass() {
    // Issue 14, bug 6: the audience silently defaulted to port 8080.
    let cli = Cli::try_parse_from([
        "token",
        "jwt",
        "--user",
        "u",
        "--roles",
        "r",
        "--expires-in",
        "5m",
        "--secret",
        "env:SIGNING",
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let e = run_with(cli.cmd, &mut out, &mut err, &env).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("--audience") && text.contains("--config"),
        "{text}"
    );
    assert!(out.is_empty());
}

#[test]
fn jwt_refuses_literal_secret_and_mismatched_alg() {
    let base = ["jwt", "--user", "u", "--roles", "r", "--expires-in", "5m"];
    let with = |extra: &[&str]| run_args(&[&base[..], extra].concat());
    assert!(with(&["--secret", SECRET]).is_err());
    assert!(with(&[]).is_err(), "a signer is required");
    assert!(with(&["--secret", "env:SIGNING", "--alg", "RS256"]).is_err());
    assert!(with(&["--key-file", &fixture("rsa_private.pem"), "--alg", "ES256"]).is_err());
    assert!(with(&["--key-file", &fixture("rsa_public.pem")]).is_err());
    assert!(with(&["--secret", "env:SIGNING", "--auto-secret"]).is_err());
}

#[test]
fn password_hash_is_an_argon2id_phc_string_that_verifies() {
    use argon2::password_hash::PasswordVerifier as _;
    let password = "Vq8-tmW3zLr0pXe";
    let a = password_hash(password).unwrap();
    let b = password_hash(password).unwrap();
    assert!(a.starts_with("$argon2id$v=19$"), "{a}");
    assert_ne!(a, b, "a random salt each time");
    let parsed = argon2::PasswordHash::new(&a).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok());
    assert!(argon2::Argon2::default()
        .verify_password(b"Vq8-tmW3zLr0pXf", &parsed)
        .is_err());
    assert!(password_hash("").is_err());
}
