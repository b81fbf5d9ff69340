//! Policy phases, in one ordered place (STYLE.md §7).
//!
//! Per HTTP request: Host → Origin (before anything else, so rebinding attempts and
//! preflights never reach later phases) → header and body limits (in the listener's body
//! read) → route and method → session lookup. Per JSON-RPC message (in `relay.rs`): frame
//! parse and ambiguity rule → era checks → in-flight caps → upstream dispatch. Auth, roles
//! and rate limits join these lists in their own files, in the order written here.

pub mod origin;

use axum::http::HeaderMap;

use crate::error::Error;
pub use origin::OriginGuard;

/// Everything checked before a request's route and body are looked at.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    pub origin: OriginGuard,
}

impl RequestPolicy {
    /// Phase 2 of STYLE.md §7, the parts that exist: Host, then Origin.
    pub fn check(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), Error> {
        // Why first: a rebinding attempt must learn nothing, not even whether a route exists.
        self.origin.check(headers, authority)
    }
}
