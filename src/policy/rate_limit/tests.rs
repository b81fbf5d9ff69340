use std::net::SocketAddr;

use super::*;
use crate::caller::{Principal, Transport};

fn caller(name: &str, method: AuthMethod, peer: &str) -> Caller {
    let mut p = Principal::anonymous();
    p.name = name.to_owned();
    p.method = method;
    Caller::new(
        p,
        Some(peer.parse::<SocketAddr>().unwrap()),
        Transport::StreamableHttp,
    )
}

fn limits(toml_text: &str) -> Result<Limits, Vec<String>> {
    let cfg: LimitsConfig = toml::from_str(toml_text).map_err(|e| vec![e.to_string()])?;
    let mut errors = Vec::new();
    let l = cfg.build(false, &mut errors);
    if errors.is_empty() {
        Ok(l)
    } else {
        Err(errors)
    }
}

#[test]
fn rates_parse_in_their_units() {
    let r: Rate = "20/s".parse().unwrap();
    assert_eq!((r.count.get(), r.period), (20, Duration::from_secs(1)));
    let r: Rate = "600/min".parse().unwrap();
    assert_eq!((r.count.get(), r.period), (600, Duration::from_secs(60)));
    let r: Rate = " 5 / hour ".parse().unwrap();
    assert_eq!((r.count.get(), r.period), (5, Duration::from_secs(3600)));
    for bad in [
        "", "20", "0/s", "-1/s", "20/day", "x/s", "20/", "/s", "1e3/s",
    ] {
        assert!(bad.parse::<Rate>().is_err(), "{bad}");
    }
}

#[test]
fn config_rejects_unknown_keys_bad_rates_and_zero_caps() {
    assert!(limits("per_principle = \"1/s\"").is_err());
    assert!(limits("per_tool = \"fast\"").is_err());
    assert!(limits("per_ip = \"10/s\"\nper_ip_burst = 0").is_err());
    assert!(limits("max_concurrent_per_principal = 0").is_err());
    assert!(limits("per_principal = \"off\"\nper_ip = \"off\"").is_ok());
}

#[test]
fn defaults_are_on_off_loopback_and_off_on_loopback() {
    let on = LimitsConfig::default().build(false, &mut Vec::new());
    assert!(on.local.principal.is_some() && on.ip.is_some());
    assert!(on.local.tool.is_none() && on.local.global.is_none());
    let local = LimitsConfig::default().build(true, &mut Vec::new());
    assert!(local.local.principal.is_none() && local.ip.is_none());
    assert_eq!(local.local.max_concurrent, DEFAULT_MAX_CONCURRENT);
}

#[test]
fn principal_bucket_is_keyed_on_identity_and_answers_retry_after() {
    let l = limits("per_principal = \"1/min\"\nper_principal_burst = 2").unwrap();
    let alice = caller("alice", AuthMethod::ApiKey, "10.0.0.1:1");
    let alice_elsewhere = caller("alice", AuthMethod::ApiKey, "10.0.0.2:2");
    assert!(l.check_principal(&alice).is_ok());
    assert!(l.check_principal(&alice_elsewhere).is_ok());
    match l.check_principal(&alice) {
        Err(Error::RateLimited(ms)) => assert!(ms > 1000 && ms <= 60_000, "{ms}"),
        other => panic!("{other:?}"),
    }
    let bob = caller("bob", AuthMethod::Jwt, "10.0.0.1:1");
    assert!(l.check_principal(&bob).is_ok());
    // Anonymous callers are keyed on their IP, not on a name they cannot prove.
    let anon_a = caller("", AuthMethod::None, "10.0.0.9:1");
    let anon_b = caller("", AuthMethod::None, "10.0.0.9:2");
    assert!(l.check_principal(&anon_a).is_ok());
    assert!(l.check_principal(&anon_b).is_ok());
    assert!(l.check_principal(&anon_a).is_err());
    assert_eq!(l.keys().0, 3);
}

#[test]
fn ipv6_clients_share_their_64_and_mapped_v4_is_v4() {
    let l = limits("per_ip = \"1/min\"\nper_ip_burst = 1").unwrap();
    assert!(l.check_ip("2001:db8:1:2::1".parse().unwrap()).is_ok());
    assert!(l.check_ip("2001:db8:1:2::ffff".parse().unwrap()).is_err());
    assert!(l.check_ip("2001:db8:1:3::1".parse().unwrap()).is_ok());
    assert!(l.check_ip("192.0.2.1".parse().unwrap()).is_ok());
    assert!(l.check_ip("::ffff:192.0.2.1".parse().unwrap()).is_err());
}

#[test]
fn tool_buckets_are_per_principal_and_tool() {
    let l = limits("per_tool = \"1/min\"\nper_tool_burst = 1").unwrap();
    let a = caller("a", AuthMethod::ApiKey, "10.0.0.1:1");
    let b = caller("b", AuthMethod::ApiKey, "10.0.0.1:1");
    assert!(l.check_tool(&a, None, "echo").is_ok());
    assert!(l.check_tool(&a, None, "echo").is_err());
    assert!(l.check_tool(&a, None, "slow").is_ok());
    assert!(l.check_tool(&b, None, "echo").is_ok());
    let long = "é".repeat(200);
    assert!(l.check_tool(&a, None, &long).is_ok());
}

#[test]
fn tool_buckets_of_named_servers_are_per_server() {
    let l = limits("per_tool = \"1/min\"\nper_tool_burst = 1").unwrap();
    let a = caller("a", AuthMethod::ApiKey, "10.0.0.1:1");
    assert!(l.check_tool(&a, Some("github"), "create_issue").is_ok());
    assert!(l.check_tool(&a, Some("github"), "create_issue").is_err());
    assert!(l.check_tool(&a, Some("fs"), "create_issue").is_ok());
    assert!(l.check_tool(&a, None, "create_issue").is_ok());
}

#[test]
fn concurrency_cap_counts_authenticated_principals_and_releases_on_drop() {
    let l = limits("max_concurrent_per_principal = 2").unwrap();
    let a = caller("a", AuthMethod::ApiKey, "10.0.0.1:1");
    let g1 = l.acquire(&a).unwrap();
    let _g2 = l.acquire(&a).unwrap();
    assert_eq!(l.acquire(&a).unwrap_err(), Error::PrincipalInflightCap);
    assert!(l
        .acquire(&caller("b", AuthMethod::Jwt, "10.0.0.1:1"))
        .is_ok());
    drop(g1);
    assert!(l.acquire(&a).unwrap().is_some());
    let anon = caller("", AuthMethod::None, "10.0.0.1:1");
    for _ in 0..10 {
        assert!(l.acquire(&anon).unwrap().is_none());
    }
}

#[test]
fn full_buckets_are_forgotten() {
    let l = limits("per_ip = \"1000/s\"\nper_ip_burst = 1").unwrap();
    for i in 0..(SWEEP_EVERY as u32 - 1) {
        let _ = l.check_ip(std::net::IpAddr::from(i.to_be_bytes()));
    }
    std::thread::sleep(Duration::from_millis(20));
    let _ = l.check_ip("192.0.2.1".parse().unwrap());
    assert!(l.keys().1 < 10, "{:?}", l.keys());
}

/// The complete config block of docs/traffic.md parses and validates (STYLE.md §6).
#[test]
fn docs_traffic_config_block_is_valid() {
    let doc = include_str!("../../../docs/traffic.md");
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let file: crate::config::security::FileConfig = toml::from_str(block).unwrap();
    let mut errors = Vec::new();
    let limits = file.limits.unwrap().build(false, &mut errors);
    let ip = file.network.as_ref().unwrap().build(&mut errors);
    crate::policy::cors::build(&file.network.unwrap().cors_origins, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(limits.local.tool.is_some() && limits.local.global.is_some());
    assert!(!ip.allows("10.66.1.1".parse().unwrap()));
    assert!(ip.allows("10.1.1.1".parse().unwrap()));
}

#[test]
fn global_bucket_is_shared_by_everyone() {
    let l = limits("global = \"1/min\"\nglobal_burst = 1\nper_principal = \"off\"").unwrap();
    assert!(l
        .check_principal(&caller("a", AuthMethod::ApiKey, "10.0.0.1:1"))
        .is_ok());
    let e = l.check_principal(&caller("b", AuthMethod::Jwt, "10.0.0.2:1"));
    assert!(
        matches!(e, Err(Error::RateLimited(ms)) if ms > 1000),
        "{e:?}"
    );
}
