use axum::http::HeaderValue;

use super::*;

fn rules(allow: Option<&[&str]>, deny: &[&str], trusted: &[&str]) -> IpRules {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cfg = NetworkConfig {
        allow: allow.map(v),
        deny: v(deny),
        trusted_proxies: v(trusted),
        cors_origins: vec![],
    };
    let mut errors = Vec::new();
    let r = cfg.build(&mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    r
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn client(r: &IpRules, peer: &str, h: &[(&str, &str)]) -> String {
    r.client(peer.parse().unwrap(), &headers(h)).ip.to_string()
}

#[test]
fn cidrs_parse_with_mapped_v6_as_v4() {
    assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    assert_eq!(parse_net("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
    assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
    assert_eq!(
        parse_net("::ffff:10.0.0.0/104").unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        parse_net("::ffff:192.0.2.7").unwrap().to_string(),
        "192.0.2.7/32"
    );
    for bad in ["", "10.0.0.0/33", "example.com", "10.0.0", "::/129"] {
        assert!(parse_net(bad).is_err(), "{bad}");
    }
}

#[test]
fn deny_wins_and_mapped_addresses_match_v4_rules() {
    let r = rules(Some(&["10.0.0.0/8", "2001:db8::/32"]), &["10.0.0.66"], &[]);
    assert!(r.allows(ip("10.1.1.1")));
    assert!(r.allows(ip("::ffff:10.1.1.1")));
    assert!(!r.allows(ip("10.0.0.66")));
    assert!(!r.allows(ip("::ffff:10.0.0.66")));
    assert!(r.allows(ip("2001:db8::5")));
    assert!(!r.allows(ip("192.0.2.1")));
    let open = rules(None, &["::ffff:192.0.2.0/120"], &[]);
    assert!(open.allows(ip("203.0.113.1")));
    assert!(!open.allows(ip("192.0.2.9")));
}

#[test]
fn empty_allow_list_and_bad_entries_are_config_errors() {
    let mut errors = Vec::new();
    NetworkConfig {
        allow: Some(vec![]),
        deny: vec!["nope".into()],
        trusted_proxies: vec!["1.2.3.4/40".into()],
        cors_origins: vec![],
    }
    .build(&mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn d6_forwarded_headers_from_untrusted_peers_are_ignored() {
    let r = rules(None, &[], &[]);
    let h = [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=1.2.3.4"),
    ];
    assert_eq!(client(&r, "198.51.100.1:5", &h), "198.51.100.1");
    let r = rules(None, &[], &["10.0.0.1"]);
    assert_eq!(client(&r, "198.51.100.1:5", &h), "198.51.100.1");
    assert_eq!(client(&r, "[::ffff:198.51.100.1]:5", &h), "198.51.100.1");
}

#[test]
fn xff_is_walked_right_to_left_skipping_trusted_hops() {
    let r = rules(None, &[], &["10.0.0.0/8"]);
    // client, spoofed by the client itself, then the real client as seen by proxy 1.
    let xff = [("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")];
    assert_eq!(client(&r, "10.0.0.1:5", &xff), "203.0.113.9");
    // Split over two fields, with ports and brackets.
    let h = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "[2001:db8::7]:443, 10.9.9.9:80"),
    ];
    assert_eq!(client(&r, "10.0.0.1:5", &h), "2001:db8::7");
    // Every hop trusted: the leftmost is the client.
    assert_eq!(
        client(
            &r,
            "10.0.0.1:5",
            &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]
        ),
        "10.1.1.1"
    );
    // Junk stops the walk at the last address known.
    assert_eq!(
        client(&r, "10.0.0.1:5", &[("x-forwarded-for", "1.1.1.1, junk")]),
        "10.0.0.1"
    );
    // No header: the proxy itself.
    assert_eq!(client(&r, "10.0.0.1:5", &[]), "10.0.0.1");
    // Issue 14: a forwarded client is not given the proxy's port; the proxy is `via`.
    let sa = r.client("10.0.0.1:5".parse().unwrap(), &headers(&xff));
    assert_eq!(sa.port, None);
    assert_eq!(sa.via, Some("10.0.0.1:5".parse().unwrap()));
    // The peer itself keeps its own port.
    let own = r.client("10.0.0.1:5".parse().unwrap(), &headers(&[]));
    assert_eq!((own.to_string(), own.via), ("10.0.0.1:5".to_owned(), None));
}

#[test]
fn forwarded_for_is_used_without_xff() {
    let r = rules(None, &[], &["10.0.0.0/8"]);
    let h = [(
        "forwarded",
        "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, For=10.0.0.3",
    )];
    assert_eq!(client(&r, "10.0.0.1:5", &h), "2001:db8::1");
    let h = [("forwarded", "for=unknown;proto=http")];
    assert_eq!(client(&r, "10.0.0.1:5", &h), "10.0.0.1");
}
