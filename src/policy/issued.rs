//! The relay's own access tokens (the built-in authorization server, `authz.rs`): verified
//! here, beside the external issuers of `jwt.rs`, against the keys the authorization server
//! publishes into [`IssuedTokens`] (swapped whole when it rotates them).
//!
//! A token is the relay's when its unverified `iss` is the configured issuer; from there only
//! these rules decide: `alg` ES256 only, `typ` `at+jwt`, a `kid` among the current keys, the
//! signature, `exp`/`nbf` (30 s leeway), and `aud` equal to the resource of the path the
//! request is for (`/mcp`, `/servers/NAME/mcp`, `/endpoints/NAME/mcp`): a token minted for one
//! server is refused by every other. Roles and scopes come from the token, which the
//! authorization server filled from the user's record. A verified token is remembered (by its
//! SHA-256) until it expires, so a client's later requests cost a hash, not an ECDSA check.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::caller::{AuthFailure, AuthMethod, Principal};
use crate::policy::token_cache::{self, TokenCache};

/// The `typ` of the relay's access tokens (RFC 9068).
pub(crate) const TOKEN_TYPE: &str = "at+jwt";

/// One verification key: its `kid` and the P-256 public key.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub kid: String,
    pub key: DecodingKey,
}

/// The issuer and its current keys.
pub(crate) struct IssuedTokens {
    issuer: String,
    keys: ArcSwap<Vec<PublicKey>>,
    /// Tokens already verified, so a client's next requests skip the ECDSA verification:
    /// their principal and audience, kept until `exp` plus the leeway.
    verified: TokenCache<Verified>,
}

/// A verified token's outcome.
#[derive(Clone)]
struct Verified {
    /// The key that signed it: a cached token is good only while its key is published.
    kid: String,
    principal: Principal,
    resource: String,
}

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY: u64 = 30;

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

/// The claims the relay puts in its tokens.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    jti: Option<String>,
    exp: u64,
}

impl IssuedTokens {
    pub(crate) fn new(issuer: String) -> IssuedTokens {
        IssuedTokens {
            issuer,
            keys: ArcSwap::from_pointee(Vec::new()),
            verified: TokenCache::default(),
        }
    }

    /// Replaces the verification keys (the authorization server's rotation).
    pub(crate) fn set_keys(&self, keys: Vec<PublicKey>) {
        self.keys.store(Arc::new(keys));
    }

    /// Takes over the keys of the verifier a reload replaces (same issuer), so tokens keep
    /// working from the first request under the new policy.
    pub(crate) fn adopt(&self, old: &IssuedTokens) {
        if old.issuer == self.issuer {
            self.keys.store(old.keys.load_full());
        }
    }

    /// Whether `iss` (read unverified) names this issuer: then only this verifier decides.
    pub(crate) fn claims_issuer(&self, iss: Option<&str>) -> bool {
        iss == Some(self.issuer.as_str())
    }

    /// Verifies `token` for `resource` (the audience the request's path requires): from the
    /// cache when this token was verified before and has not expired, else in full.
    pub(crate) fn verify(&self, token: &str, resource: &str) -> Result<Principal, AuthFailure> {
        let key = token_cache::digest(token);
        let now = SystemTime::now();
        // `until` is `exp` plus the leeway: past it the token is refused, cached or not.
        if let Some((v, until)) = self.verified.get(&key) {
            if !self.keys.load().iter().any(|k| k.kid == v.kid) {
                return Err(AuthFailure::Invalid("unknown_key"));
            }
            if now >= until {
                return Err(AuthFailure::Invalid("token_expired"));
            }
            if v.resource != resource {
                return Err(AuthFailure::Invalid("wrong_audience"));
            }
            return Ok(v.principal);
        }
        let (principal, kid) = self.verify_in_full(token, resource)?;
        let until = principal.expires_at.unwrap_or(now) + Duration::from_secs(LEEWAY);
        let verified = Verified {
            kid,
            principal: principal.clone(),
            resource: resource.to_owned(),
        };
        self.verified.insert(key, verified, until, now);
        Ok(principal)
    }

    /// The full check; the principal and the `kid` of the key that signed.
    fn verify_in_full(
        &self,
        token: &str,
        resource: &str,
    ) -> Result<(Principal, String), AuthFailure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthFailure::Invalid("malformed_token"))?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthFailure::Invalid("algorithm_not_allowed"));
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(TOKEN_TYPE))
        {
            return Err(AuthFailure::Invalid("bad_token_type"));
        }
        let keys = self.keys.load();
        let kid = header
            .kid
            .as_deref()
            .ok_or(AuthFailure::Invalid("unknown_key"))?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AuthFailure::Invalid("unknown_key"))?;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[resource]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthFailure::Invalid(match e.kind() {
                K::ExpiredSignature => "token_expired",
                K::ImmatureSignature => "token_not_yet_valid",
                K::InvalidAudience => "wrong_audience",
                K::InvalidIssuer => "wrong_issuer",
                K::InvalidSignature => "bad_signature",
                _ => "malformed_token",
            })
        })?;
        let c = data.claims;
        if !crate::caller::identity_is_valid(&c.sub) {
            return Err(AuthFailure::Invalid("bad_principal_claim"));
        }
        let principal = Principal {
            name: c.sub,
            method: AuthMethod::Jwt,
            roles: c.roles,
            scopes: c.scope.split_whitespace().map(str::to_owned).collect(),
            key_id: c.jti.or(Some(kid.to_owned())),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(c.exp)),
        };
        Ok((principal, kid.to_owned()))
    }
}

/// The unverified `iss` of a compact JWT, when it has one (only to pick the verifier).
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    const ISS: &str = "https://relay.example";
    const AUD: &str = "https://relay.example/mcp";

    fn key() -> (EncodingKey, PublicKey) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let p = pair.public_key().as_ref();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&p[1..33]),
            URL_SAFE_NO_PAD.encode(&p[33..65]),
        );
        let public = PublicKey {
            kid: "k1".into(),
            key: DecodingKey::from_ec_components(&x, &y).unwrap(),
        };
        (EncodingKey::from_ec_der(pkcs8.as_ref()), public)
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(k: &EncodingKey, typ: &str, kid: &str, claims: serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some(typ.into());
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, k).unwrap()
    }

    fn claims(aud: &str, exp: u64) -> serde_json::Value {
        json!({"iss": ISS, "sub": "alice", "aud": aud, "exp": exp, "iat": now(), "roles": ["admin"], "scope": "mcp", "jti": "j1"})
    }

    #[test]
    fn the_relays_own_tokens_verify_for_their_resource_only() {
        let (enc, public) = key();
        let issued = IssuedTokens::new(ISS.into());
        issued.set_keys(vec![public.clone()]);
        let t = token(&enc, TOKEN_TYPE, "k1", claims(AUD, now() + 600));
        assert_eq!(unverified_issuer(&t).as_deref(), Some(ISS));
        let p = issued.verify(&t, AUD).unwrap();
        assert_eq!(
            (p.name.as_str(), p.roles.clone(), p.scopes.clone()),
            ("alice", vec!["admin".into()], vec!["mcp".into()])
        );
        // Again (from the cache), and for another resource (refused either way).
        assert!(issued.verify(&t, AUD).is_ok());
        let other = "https://relay.example/servers/b/mcp";
        assert_eq!(
            issued.verify(&t, other).unwrap_err(),
            AuthFailure::Invalid("wrong_audience")
        );
        // Its key withdrawn: refused, cached or not.
        issued.set_keys(Vec::new());
        assert_eq!(
            issued.verify(&t, AUD).unwrap_err(),
            AuthFailure::Invalid("unknown_key")
        );
        issued.set_keys(vec![public]);
        let fresh = token(&enc, TOKEN_TYPE, "k1", claims(AUD, now() + 601));
        assert_eq!(
            issued.verify(&fresh, other).unwrap_err(),
            AuthFailure::Invalid("wrong_audience")
        );
    }

    #[test]
    fn wrong_type_key_expiry_and_signature_are_refused() {
        let (enc, public) = key();
        let (stranger, _) = key();
        let issued = IssuedTokens::new(ISS.into());
        issued.set_keys(vec![public]);
        let cases = [
            (
                token(&enc, "JWT", "k1", claims(AUD, now() + 600)),
                "bad_token_type",
            ),
            (
                token(&enc, TOKEN_TYPE, "k9", claims(AUD, now() + 600)),
                "unknown_key",
            ),
            (
                token(&enc, TOKEN_TYPE, "k1", claims(AUD, now() - 120)),
                "token_expired",
            ),
            (
                token(&stranger, TOKEN_TYPE, "k1", claims(AUD, now() + 600)),
                "bad_signature",
            ),
        ];
        for (t, why) in cases {
            assert_eq!(
                issued.verify(&t, AUD).unwrap_err(),
                AuthFailure::Invalid(why)
            );
        }
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(AUD, now() + 600),
            &EncodingKey::from_secret(b"k7P2xQ9vL4mN8rT1wZ5yB3cF6hJ0sD2g"),
        )
        .unwrap();
        assert_eq!(
            issued.verify(&hs, AUD).unwrap_err(),
            AuthFailure::Invalid("algorithm_not_allowed")
        );
    }
}
