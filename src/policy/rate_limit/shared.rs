//! The limits keyed on identity as the whole fleet's (docs/fleet.md): with `[cluster.store]`
//! the global, principal and principal × tool buckets and the per-principal concurrency cap
//! live in the shared store (`cluster/store.rs`), so a limit means the fleet, not each
//! replica. The phases (`policy/phases.rs`) call the async checks here; without a store they
//! are this replica's governor checks (`rate_limit.rs`) and nothing changes.
//!
//! When the store cannot answer, `on_store_error` decides: `local` (this replica's own
//! buckets with every quota and the cap divided by `expected_nodes`, so the fleet stays near
//! the limit), `open` (no shared limit) or `closed` (503 + `Retry-After`). Per-IP limits and
//! overload shedding never depend on the store.
//!
//! Owns: which shared buckets a request has and the fallback. Does not own: the store's
//! protocol, timeouts and breaker (`cluster/store.rs`).

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::Quota;

use super::{authenticated, identity_key, retry, tool_key, InFlight, Limits, Local, Rates};
use crate::caller::Caller;
use crate::cluster::config::OnStoreError;
use crate::cluster::store::{Admission, Bucket, Store};
use crate::error::Error;
use crate::telemetry::metrics;

/// The fleet's side of the limits: the store, and this replica's share for when it is down.
#[derive(Debug)]
pub(crate) struct Fleet {
    store: Arc<Store>,
    fallback: Local,
    max_concurrent: usize,
}

impl Limits {
    /// Shares the limits keyed on identity through `store` (or stops sharing: `None`). The
    /// store outlives a SIGHUP; the limits are rebuilt and shared again through it.
    pub(crate) fn share(&self, store: Option<Arc<Store>>) {
        let fleet = store.map(|store| {
            let n = store.expected_nodes().max(1);
            let max_concurrent = self.local.max_concurrent;
            let share = (max_concurrent / n as usize).max(1);
            Arc::new(Fleet {
                fallback: Local::new(self.rates.divided(n), share),
                store,
                max_concurrent,
            })
        });
        self.fleet.store(fleet);
    }

    /// The request phase's limits of one request in one round trip: the global and
    /// principal rates (`rate`), then a place among the principal's concurrent requests
    /// (`slot`: a lease in the store when it has a fleet, held until the guard drops).
    pub(crate) async fn admit_request(
        &self,
        caller: &Caller,
        rate: bool,
        slot: bool,
    ) -> Result<Option<InFlight>, Error> {
        let local = |local: &Local| -> Result<Option<InFlight>, Error> {
            if rate {
                local.check_principal(caller)?;
            }
            if slot {
                return local.acquire(caller);
            }
            Ok(None)
        };
        let Some(fleet) = self.fleet.load_full() else {
            return local(&self.local);
        };
        let (buckets, scopes) = match rate {
            true => self.principal_buckets(&fleet, caller),
            false => (Vec::new(), Vec::new()),
        };
        let lease = (slot && authenticated(caller)).then(|| {
            let key = fleet.store.key("inflight", &[&caller.principal.name]);
            (key, fleet.max_concurrent)
        });
        // Boxed: the store's future stays out of every caller's (deep) future.
        match Box::pin(fleet.store.admit(&buckets, lease)).await {
            Ok(a) => admission(a, &scopes),
            Err(_) => fleet.fall_back(local),
        }
    }

    /// The global and principal rates of one message (phases: per message on WebSocket and
    /// TCP).
    pub(crate) async fn admit_principal(&self, caller: &Caller) -> Result<(), Error> {
        self.admit_request(caller, true, false).await.map(|_| ())
    }

    /// The global and principal buckets of `caller`, and their scopes for the metric.
    fn principal_buckets(
        &self,
        fleet: &Fleet,
        caller: &Caller,
    ) -> (Vec<Bucket>, Vec<&'static str>) {
        let mut buckets = Vec::with_capacity(2);
        let mut scopes = Vec::with_capacity(2);
        if let Some(q) = self.rates.global {
            buckets.push(bucket(fleet.store.key("rl:g", &[]), q));
            scopes.push("global");
        }
        if let Some(q) = self.rates.principal {
            let key = fleet.store.key("rl:p", &[&identity_key(caller)]);
            buckets.push(bucket(key, q));
            scopes.push("principal");
        }
        (buckets, scopes)
    }

    /// The (caller, tool) rate of a `tools/call` (phases: after RBAC).
    pub(crate) async fn admit_tool(
        &self,
        caller: &Caller,
        server: Option<&str>,
        tool: &str,
    ) -> Result<(), Error> {
        let Some(fleet) = self.fleet.load_full() else {
            return self.check_tool(caller, server, tool);
        };
        let Some(q) = self.rates.tool else {
            return Ok(());
        };
        let key = fleet
            .store
            .key("rl:t", &[&identity_key(caller), &tool_key(server, tool)]);
        match Box::pin(fleet.store.admit(&[bucket(key, q)], None)).await {
            Ok(a) => admission(a, &["tool"]).map(|_| ()),
            Err(_) => fleet.fall_back(|local| local.check_tool(caller, server, tool)),
        }
    }

    /// A place among the principal's concurrent requests, fleet-wide (phases: per message
    /// where the transport takes one per message).
    pub(crate) async fn take_slot(&self, caller: &Caller) -> Result<Option<InFlight>, Error> {
        self.admit_request(caller, false, true).await
    }
}

impl Fleet {
    /// What a check does while the store cannot answer.
    fn fall_back<T: Default>(
        &self,
        local: impl FnOnce(&Local) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.store.on_error() {
            OnStoreError::Local => local(&self.fallback),
            OnStoreError::Open => Ok(T::default()),
            OnStoreError::Closed => Err(Error::StoreUnavailable),
        }
    }
}

impl Rates {
    /// One replica's share of the fleet's quotas: each cell `n` times rarer, the burst
    /// divided (at least one).
    fn divided(self, n: u32) -> Rates {
        let share = |q: Option<Quota>| {
            q.and_then(|q| {
                let burst = NonZeroU32::new((q.burst_size().get() / n).max(1))?;
                Quota::with_period(q.replenish_interval() * n).map(|q| q.allow_burst(burst))
            })
        };
        Rates {
            global: share(self.global),
            principal: share(self.principal),
            tool: share(self.tool),
        }
    }
}

/// A shared bucket with governor's maths: `t` = the replenish interval, `tau = t·(burst−1)`.
fn bucket(key: String, q: Quota) -> Bucket {
    let t_us = u64::try_from(q.replenish_interval().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    Bucket {
        key,
        t_us,
        tau_us: t_us.saturating_mul(u64::from(q.burst_size().get() - 1)),
    }
}

/// The store's answer as the phases answer it; `scopes` names the buckets for the metric.
fn admission(a: Admission, scopes: &[&'static str]) -> Result<Option<InFlight>, Error> {
    match a {
        Admission::Admitted(lease) => Ok(lease.map(InFlight::Shared)),
        Admission::Denied { bucket, wait } => {
            metrics::rate_limited(scopes.get(bucket).copied().unwrap_or("principal"));
            Err(retry(wait))
        }
        Admission::Full => Err(Error::PrincipalInflightCap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicas_share_divides_rate_and_burst() {
        let q = Quota::per_second(NonZeroU32::new(30).unwrap())
            .allow_burst(NonZeroU32::new(30).unwrap());
        let rates = Rates {
            global: None,
            principal: Some(q),
            tool: Some(Quota::per_second(NonZeroU32::new(1).unwrap())),
        };
        let d = rates.divided(3);
        let p = d.principal.unwrap();
        assert_eq!(p.burst_size().get(), 10);
        assert_eq!(p.replenish_interval(), q.replenish_interval() * 3);
        // A burst smaller than the fleet still leaves one cell per replica.
        assert_eq!(d.tool.unwrap().burst_size().get(), 1);
        assert!(d.global.is_none());
    }

    #[test]
    fn a_bucket_has_governors_tolerance() {
        let q = Quota::per_second(NonZeroU32::new(10).unwrap())
            .allow_burst(NonZeroU32::new(10).unwrap());
        let b = bucket("k".into(), q);
        assert_eq!(b.t_us, 100_000);
        assert_eq!(b.tau_us, 900_000);
    }
}
