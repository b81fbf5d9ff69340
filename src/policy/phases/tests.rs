//! The phase order, pinned where two phases would both refuse, and one policy per scope.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::caller::AuthMethod;
use crate::policy::ip::NetworkConfig;
use crate::policy::rate_limit::LimitsConfig;
use crate::policy::{authn::Authenticator, cors, rbac::Rbac, OriginGuard};

/// A policy with these limits and network rules, no authentication, on a loopback bind.
fn policy(limits: LimitsConfig, network: NetworkConfig, rbac: Option<&str>) -> RequestPolicy {
    let mut errors = Vec::new();
    let p = RequestPolicy {
        origin: OriginGuard {
            loopback: true,
            hosts: Vec::new(),
            origins: Vec::new(),
        },
        auth: Arc::new(Authenticator::none()),
        rbac: rbac.map(|r| Arc::new(Rbac::parse(r).unwrap())),
        ip: Arc::new(network.build(&mut errors)),
        cors: Arc::new(cors::build(&[], &mut errors)),
        limits: Arc::new(limits.build(true, &mut errors)),
    };
    assert!(errors.is_empty(), "{errors:?}");
    p
}

/// Always shedding (a one-byte budget), one connection per hour and client address.
fn shedding_and_one_per_ip() -> LimitsConfig {
    LimitsConfig {
        memory_budget: Some("1".into()),
        per_ip: Some("1/h".into()),
        per_ip_burst: Some(1),
        ..LimitsConfig::default()
    }
}

fn host_only() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    h
}

/// A new-session POST from `peer`, through the request phases.
async fn http_post(p: &RequestPolicy, peer: SocketAddr) -> Result<Admitted, Stop> {
    let headers = host_only();
    let head = Head {
        method: &Method::POST,
        headers: &headers,
        authority: None,
        route: Route::Front(Transport::StreamableHttp),
        in_session: false,
        resumes: false,
    };
    let req = Incoming {
        source: Source::Http {
            peer: Some(peer),
            head,
        },
        credential: Some(&headers),
        query: None,
        cert: None,
        transport: Transport::StreamableHttp,
    };
    p.on_request(&Audit::disabled(), req).await
}

fn refusal(r: Result<Admitted, Stop>) -> Error {
    match r {
        Err(Stop::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn overload_comes_before_the_per_ip_rate_on_http_and_tcp_alike() {
    let p = policy(shedding_and_one_per_ip(), NetworkConfig::default(), None);
    let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    for _ in 0..3 {
        let tcp = p.on_connection(&Audit::disabled(), peer, Transport::Tcp);
        assert_eq!(tcp.unwrap_err(), Error::Overloaded);
        assert_eq!(refusal(http_post(&p, peer).await), Error::Overloaded);
    }
    // Shedding cost the client nothing: its one per-IP token is still there.
    assert!(p.limits.check_ip(peer.ip()).is_ok());
    assert!(p.limits.check_ip(peer.ip()).is_err());
}

#[tokio::test]
async fn a_denied_network_is_refused_first_on_http_and_tcp_alike() {
    let network = NetworkConfig {
        deny: vec!["192.0.2.0/24".into()],
        ..NetworkConfig::default()
    };
    let p = policy(shedding_and_one_per_ip(), network, None);
    let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let tcp = p.on_connection(&Audit::disabled(), peer, Transport::Tcp);
    assert_eq!(tcp.unwrap_err(), Error::IpDenied);
    assert_eq!(refusal(http_post(&p, peer).await), Error::IpDenied);
}

/// A relay serving `policy` (per-session mode: nothing is spawned).
fn relay_with(policy: RequestPolicy) -> Arc<crate::relay::Relay> {
    let argv = ["mcp-relay", "serve", "--", "sh"].map(std::ffi::OsString::from);
    let mut cfg = crate::config::load(argv.to_vec(), &crate::secret::process_env).unwrap();
    cfg.policy = policy;
    crate::relay::Relay::new(Arc::new(cfg), Audit::disabled())
}

/// A message arriving while SIGHUP swaps between two policies is judged by one of them, never
/// by RBAC of one and the limits of the other. Under A (no roles, no rates) the call passes;
/// under B (role `b` allows it; the principal's rate is spent) it is rate limited with B's
/// rule. Loading the policy once per phase would, sooner or later, give "rate limited" with
/// A's empty rule.
#[test]
fn a_message_straddling_a_reload_is_judged_by_one_policy() {
    // One thread judging, one swapping: the fewer threads, the more often they overlap.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _inside = rt.enter();
    let off = || LimitsConfig {
        memory_budget: Some("off".into()),
        ..LimitsConfig::default()
    };
    let a = policy(off(), NetworkConfig::default(), None);
    let spent = LimitsConfig {
        per_principal: Some("1/h".into()),
        per_principal_burst: Some(1),
        ..off()
    };
    let roles = r#"{"b": {"allowedMethods": ["*"]}}"#;
    let b = policy(spent, NetworkConfig::default(), Some(roles));
    let caller = Caller::new(
        Principal {
            name: "alice".into(),
            method: AuthMethod::ApiKey,
            roles: vec!["b".into()],
            ..Principal::anonymous()
        },
        None::<SocketAddr>,
        Transport::Tcp,
    );
    assert!(b.limits.check_principal(&caller).is_ok());
    let relay = relay_with(a.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (relay, stop) = (relay.clone(), stop.clone());
        std::thread::spawn(move || {
            // Each policy stays a little while, so a message's phases often straddle a swap.
            let stay = || (0..64).for_each(|_| std::hint::spin_loop());
            while !stop.load(Ordering::Relaxed) {
                relay.reload_policy(b.clone());
                stay();
                relay.reload_policy(a.clone());
                stay();
            }
        })
    };
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let crate::jsonrpc::Message::Single(frame) =
        crate::jsonrpc::Message::parse(bytes::Bytes::from_static(call.as_bytes())).unwrap()
    else {
        panic!("not one frame")
    };
    let (mut passed, mut limited) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) || passed == 0 || limited == 0 {
        match relay.admit(&caller, None, &frame, false) {
            Ok(ticket) => {
                ticket.discard();
                passed += 1;
            }
            Err((Error::RateLimited(_), rule)) => {
                assert_eq!(
                    rule, "b.allowedMethods[0]",
                    "judged by the roles of one policy, the rates of another"
                );
                limited += 1;
            }
            Err((e, rule)) => panic!("unexpected refusal {e} ({rule})"),
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no swap seen");
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
}
