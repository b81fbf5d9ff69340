//! The phase order, pinned where two phases would both refuse, and one policy per scope.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::caller::AuthMethod;
use crate::policy::ip::NetworkConfig;
use crate::policy::rate_limit::LimitsConfig;
use crate::policy::rbac::Names;
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
        elsewhere: false,
        mount: None,
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
        match rt.block_on(relay.admit(&caller, None, &frame, false)) {
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

// === relays of named servers and the aggregate ===

fn one_frame(text: &'static str) -> Frame {
    match crate::jsonrpc::Message::parse(bytes::Bytes::from_static(text.as_bytes())).unwrap() {
        crate::jsonrpc::Message::Single(frame) => frame,
        _ => panic!("not one frame"),
    }
}

fn dev(transport: Transport) -> Caller {
    let principal = Principal {
        name: "dev".into(),
        method: AuthMethod::ApiKey,
        roles: vec!["dev".into()],
        ..Principal::anonymous()
    };
    Caller::new(principal, None::<SocketAddr>, transport)
}

const DEV: &str = r#"{"dev": {"allowedMethods": ["*"], "tools": {"allow": ["github:create_*"]}}}"#;

/// The aggregate's names are prefixed: its relay checks methods only, and leaves the name to
/// the named server's relay, which the same role lets call `create_issue`.
#[tokio::test]
async fn a_delegated_scope_does_not_deny_a_prefixed_name_the_roles_would_not_match() {
    let p = policy(LimitsConfig::default(), NetworkConfig::default(), Some(DEV));
    let audit = Audit::disabled();
    let prefixed = one_frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"github__create_issue"}}"#,
    );
    let caller = dev(Transport::StreamableHttp);
    let ticket = p
        .on_message(&audit, &caller, Names::Delegated, None, &prefixed, false)
        .await;
    ticket.unwrap().discard();
    let plain = p
        .on_message(&audit, &caller, Names::Plain, None, &prefixed, false)
        .await;
    assert!(matches!(plain, Err((Error::UnknownTool(_), _))));
    let list = one_frame(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let ticket = p
        .on_message(&audit, &caller, Names::Delegated, None, &list, false)
        .await;
    assert!(!ticket.unwrap().filters(), "the aggregate filters no list");
    // Method rules still apply there.
    let ro = policy(
        LimitsConfig::default(),
        NetworkConfig::default(),
        Some(r#"{"dev": {"allowedMethods": ["*/list"]}}"#),
    );
    let denied = ro
        .on_message(&audit, &caller, Names::Delegated, None, &prefixed, false)
        .await;
    assert!(matches!(denied, Err((Error::DeniedMethod, _))));
}

/// A relay whose configuration names its server decides names qualified by it.
#[tokio::test]
async fn a_named_servers_relay_decides_its_qualified_names() {
    let call = one_frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_issue"}}"#,
    );
    let caller = dev(Transport::Aggregate);
    for (server, allowed) in [(Some("github"), true), (Some("fs"), false), (None, false)] {
        let p = policy(LimitsConfig::default(), NetworkConfig::default(), Some(DEV));
        let relay = relay_named(p, server);
        let want = server.map_or(Names::Plain, Names::Server);
        assert_eq!(relay.names(), want);
        match relay.admit(&caller, None, &call, false).await {
            Ok(ticket) => {
                assert!(allowed, "{server:?}");
                ticket.discard();
            }
            Err((e, rule)) => {
                assert!(!allowed, "{server:?}: {e}");
                assert_eq!(rule, "dev.tools.default_deny");
            }
        }
    }
}

/// The principal × tool bucket is the named server's, keyed on its own name for the tool:
/// calls through the aggregate (skipping the other limits) and straight to the server share
/// it; another server's tool of the same name has its own.
#[tokio::test]
async fn tool_rates_are_per_server_and_shared_by_the_aggregate_and_the_server_path() {
    let limits = LimitsConfig {
        per_tool: Some("1/h".into()),
        per_tool_burst: Some(1),
        memory_budget: Some("off".into()),
        ..LimitsConfig::default()
    };
    let p = policy(limits, NetworkConfig::default(), None);
    let audit = Audit::disabled();
    let call = one_frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_issue"}}"#,
    );
    let (through, direct) = (dev(Transport::Aggregate), dev(Transport::Tcp));
    let github = Names::Server("github");
    let aggregate = p
        .on_message(&audit, &through, Names::Delegated, None, &call, false)
        .await;
    aggregate.unwrap().discard();
    p.on_message(&audit, &through, github, None, &call, false)
        .await
        .unwrap()
        .discard();
    let again = p
        .on_message(&audit, &direct, github, None, &call, false)
        .await;
    assert!(matches!(again, Err((Error::RateLimited(_), _))));
    let fs = p
        .on_message(&audit, &through, Names::Server("fs"), None, &call, false)
        .await;
    fs.unwrap().discard();
}

/// A relay serving `policy` as the named server `server`.
fn relay_named(policy: RequestPolicy, server: Option<&str>) -> Arc<crate::relay::Relay> {
    let argv = ["mcp-relay", "serve", "--", "sh"].map(std::ffi::OsString::from);
    let mut cfg = crate::config::load(argv.to_vec(), &crate::secret::process_env).unwrap();
    cfg.policy = policy;
    cfg.server_name = server.map(str::to_owned);
    crate::relay::Relay::new(Arc::new(cfg), Audit::disabled())
}
