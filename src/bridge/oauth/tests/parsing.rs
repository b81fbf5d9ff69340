//! Pure parsing: challenges, discovery URL order, PKCE, scope unions.

use super::*;

#[test]
fn challenge_params_parse() {
    let c = Challenge::parse(Some(
        "Basic realm=\"x\", Bearer error=\"insufficient_scope\", scope=\"a b\", resource_metadata=\"https://r/x\"",
    ));
    assert_eq!(c.scope.as_deref(), Some("a b"));
    assert_eq!(c.resource_metadata.as_deref(), Some("https://r/x"));
    assert!(c.insufficient_scope());
    let c = Challenge::parse(Some("Bearer error=invalid_token,scope=\"a\\\"b\""));
    assert_eq!(c.error.as_deref(), Some("invalid_token"));
    assert_eq!(c.scope.as_deref(), Some("a\"b"));
    assert_eq!(
        Challenge::parse(Some("Basic realm=\"scope\"")),
        Challenge::default()
    );
}

#[test]
fn discovery_urls_follow_the_spec_order() {
    let s = Url::parse("https://mcp.example.com/api/mcp").unwrap();
    let prm: Vec<String> = discovery::prm_candidates(&s, &Challenge::default())
        .unwrap()
        .iter()
        .map(Url::to_string)
        .collect();
    assert_eq!(
        prm,
        [
            "https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp",
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        ]
    );
    let i = Url::parse("https://as.example.com/tenant1").unwrap();
    let asm: Vec<String> = discovery::as_candidates(&i)
        .unwrap()
        .iter()
        .map(Url::to_string)
        .collect();
    assert_eq!(
        asm,
        [
            "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
            "https://as.example.com/.well-known/openid-configuration/tenant1",
            "https://as.example.com/tenant1/.well-known/openid-configuration"
        ]
    );
    assert!(discovery::resource_matches(
        "https://mcp.example.com/api",
        &s
    ));
    assert!(!discovery::resource_matches(
        "https://mcp.example.com/ap",
        &s
    ));
    assert!(!discovery::resource_matches(
        "https://evil.example.com/api/mcp",
        &s
    ));
}

#[test]
fn pkce_s256_matches_rfc7636_appendix_b() {
    assert_eq!(
        pkce::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(
        union_scope(Some("a b"), Some("b c")).as_deref(),
        Some("a b c")
    );
}
