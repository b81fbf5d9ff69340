//! What `jwt.rs` keeps of a verified token (in the shared `policy/token_cache.rs` map) and what
//! a cache hit must still pass: the token's [`Window`] against the clock, and, for an issuer
//! with a JWKS, the same key lookup a full verification makes (so keys past their age are
//! fetched again, and an unknown `kid` refreshes them). A hit under keys fetched since the
//! token was verified is no hit: the token is verified in full against the keys now published,
//! so a withdrawn key refuses it exactly as it would refuse a fresh token.
//!
//! Nothing else a full verification checks can change for one verifier: its issuers, pinned
//! algorithms, HMAC secret, key files and audiences are fixed when it is built, and a reload
//! builds a new verifier with an empty cache. External issuers' tokens are not bound to the
//! request (every path is the one configured resource; required scopes are checked per request
//! in `authn.rs`), and this verifier knows no revocation.

use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::Algorithm;

use super::claims::Window;
use super::keys::Lookup;
use super::JwtVerifier;
use crate::caller::{AuthFailure, Principal};

/// A verified token's outcome.
#[derive(Clone)]
pub(super) struct Verified {
    pub(super) principal: Principal,
    pub(super) window: Window,
    /// For an issuer with a JWKS: the keys the signature was checked against.
    pub(super) keys: Option<Arc<KeysSeen>>,
}

/// The JWKS lookup a token's verification made, and the generation of keys it returned.
pub(super) struct KeysSeen {
    pub(super) issuer: String,
    pub(super) kid: Option<String>,
    pub(super) alg: Algorithm,
    pub(super) generation: u64,
}

impl JwtVerifier {
    /// The outcome for a cached token as of `now`; `None` when its issuer's keys were fetched
    /// again since it was verified (then it is verified in full).
    pub(super) async fn cached_outcome(
        &self,
        hit: Verified,
        now: SystemTime,
    ) -> Option<Result<Principal, AuthFailure>> {
        if let Some(seen) = &hit.keys {
            let issuer = self.issuers.get(&seen.issuer)?;
            let (Some(jwks), Some(http)) = (&issuer.jwks, &self.http) else {
                return None;
            };
            match jwks.lookup(http, seen.kid.as_deref(), seen.alg).await {
                Lookup::Keys(_, generation) if generation == seen.generation => {}
                _ => return None,
            }
        }
        Some(hit.window.check(now).map(|()| hit.principal))
    }
}
