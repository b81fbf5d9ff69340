//! The relay's own access tokens (the built-in authorization server, `authz.rs`): verified
//! here, beside the external issuers of `jwt.rs`, against the keys the authorization server
//! publishes into [`IssuedTokens`] (swapped whole when it rotates them).
//!
//! A token is the relay's when its unverified `iss` is the configured issuer; from there only
//! these rules decide: `alg` ES256 only, `typ` `at+jwt`, a `kid` among the current keys, the
//! signature, `exp`/`nbf` (30 s leeway), and `aud` equal to the resource of the path the
//! request is for (`/mcp`, `/servers/NAME/mcp`, `/endpoints/NAME/mcp`): a token minted for one
//! server is refused by every other. Roles and scopes come from the token, which the
//! authorization server filled from the user's record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::caller::{AuthFailure, AuthMethod, Principal};

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
}

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
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
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

    /// Verifies `token` for `resource` (the audience the request's path requires).
    pub(crate) fn verify(&self, token: &str, resource: &str) -> Result<Principal, AuthFailure> {
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
        v.leeway = 30;
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
        Ok(Principal {
            name: c.sub,
            method: AuthMethod::Jwt,
            roles: c.roles,
            scopes: c.scope.split_whitespace().map(str::to_owned).collect(),
            key_id: c.jti.or(Some(kid.to_owned())),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(c.exp)),
        })
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
