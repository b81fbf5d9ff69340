//! The company identity provider's ID token: its checks (OpenID Connect Core §3.1.3.7) and
//! the mapping of its claims to the relay's subject (principal and roles). The key comes from
//! the provider's JWKS (`upstream/discovery.rs`); the token itself from the code exchange
//! (`upstream.rs`). Every refusal is a fixed `reason` for the audit log, never the token's text.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use crate::authz::store::flow::Subject;
use crate::config::oauth_server::UpstreamConfig;

/// The largest ID token read.
pub(super) const MAX_TOKEN: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 60;
/// How old an ID token fresh from the token endpoint may be.
const MAX_AGE: i64 = 3600;

/// The algorithm a key is for: its `alg` when it names one, else the one its type implies.
/// Only RS256, PS256 and ES256.
pub(super) fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS256) | None) => Some(Algorithm::RS256),
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::PS256)) => Some(Algorithm::PS256),
        (AlgorithmParameters::EllipticCurve(p), Some(KeyAlgorithm::ES256) | None)
            if p.curve == EllipticCurve::P256 =>
        {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

/// The `kid` of a token's header (`None` when absent); `Err` when it is not a JWT.
pub(super) fn kid(token: &str) -> Result<Option<String>, &'static str> {
    if token.len() > MAX_TOKEN {
        return Err("idp_bad_token");
    }
    jsonwebtoken::decode_header(token)
        .map(|h| h.kid)
        .map_err(|_| "idp_bad_token")
}

/// Checks the signature (with `key`), `iss`, `aud`, `azp`, `exp`, `nbf`, `iat` and `nonce`;
/// the claims when all hold.
pub(super) fn verify(
    token: &str,
    key: &Jwk,
    cfg: &UpstreamConfig,
    nonce: &str,
    now: i64,
) -> Result<Map<String, Value>, &'static str> {
    let alg = algorithm(key).ok_or("idp_bad_signature")?;
    let decoding = DecodingKey::from_jwk(key).map_err(|_| "idp_bad_signature")?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = LEEWAY;
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &v).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidIssuer => "idp_wrong_issuer",
                ErrorKind::InvalidAudience => "idp_wrong_audience",
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => "idp_token_expired",
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => "idp_bad_signature",
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => "idp_wrong_issuer",
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => "idp_wrong_audience",
                _ => "idp_bad_token",
            }
        })?;
    let claims = data.claims;
    check_claims(&claims, cfg, nonce, now)?;
    Ok(claims)
}

/// The checks jsonwebtoken does not make: `azp`, `iat`, `nonce`.
fn check_claims(
    claims: &Map<String, Value>,
    cfg: &UpstreamConfig,
    nonce: &str,
    now: i64,
) -> Result<(), &'static str> {
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(cfg.client_id.as_str()) {
            return Err("idp_wrong_audience");
        }
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("idp_bad_token")?;
    if iat > now + LEEWAY as i64 {
        return Err("idp_bad_token");
    }
    if iat < now - MAX_AGE {
        return Err("idp_token_expired");
    }
    let got = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got.is_empty() || !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err("idp_bad_nonce");
    }
    Ok(())
}

/// The subject the claims name: the principal from `principal_claim` (a string the relay
/// accepts as an identity), roles from `groups_claim` (an array of strings or one string)
/// through `roles`, plus `default_roles`. A missing groups claim gives the default roles; a
/// wrong type fails closed.
pub(super) fn subject(
    claims: &Map<String, Value>,
    cfg: &UpstreamConfig,
) -> Result<Subject, &'static str> {
    let name = match claims.get(&cfg.principal_claim) {
        Some(Value::String(s)) if crate::caller::identity_is_valid(s) => s.clone(),
        _ => return Err("idp_bad_principal"),
    };
    let groups: Vec<&str> = match claims.get(&cfg.groups_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(g)) => vec![g.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or("idp_bad_groups")?,
        Some(_) => return Err("idp_bad_groups"),
    };
    let mut roles: Vec<String> = Vec::new();
    let mapped = groups.iter().filter_map(|g| cfg.roles.get(*g)).flatten();
    for r in cfg.default_roles.iter().chain(mapped) {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    Ok(Subject {
        name,
        roles,
        method: "upstream".into(),
    })
}

#[cfg(test)]
mod tests;
