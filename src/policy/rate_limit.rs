//! Rate limits and the per-principal concurrency cap (SECURITY.md §2, §8.D6): GCRA buckets
//! (`governor`) keyed on identity, never on the session, so re-initializing dodges nothing.
//!
//! Scopes and where `policy/phases.rs` runs them: per client IP before authentication (the IP is
//! the one `ip.rs` resolved: proxy headers count only from trusted proxies), global and per
//! principal after it (anonymous callers are keyed on their client IP), per principal × tool after
//! RBAC (so denied calls spend no quota and buckets exist only for allowed names), and the
//! concurrency cap around each HTTP request of an authenticated principal. Key memory is bounded:
//! buckets that are full again are forgotten (`retain_recent`) every few thousand checks. Refusals
//! are `Error::RateLimited` (429 + `Retry-After`, -31004 with `data.retry_after_ms`) and
//! `Error::PrincipalInflightCap` (429, -31005).
//!
//! In a fleet with `[cluster.store]`, the limits keyed on identity (global, principal,
//! principal × tool, the concurrency cap) are the fleet's, in the shared store, with this
//! replica's share as the fallback: `rate_limit/shared.rs`, whose async checks the phases call.

use crate::telemetry::metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use crate::caller::{AuthMethod, Caller};
use crate::error::Error;
use crate::policy::overload::Overload;

/// `[limits]` of the `--config` file. Every rate is `"N/unit"` (`s`, `min`, `h`; e.g.
/// `"20/s"`, `"600/min"`) or `"off"`; every burst defaults to twice the rate's count.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsConfig {
    /// Requests per principal (anonymous callers: per client IP), counted per HTTP request,
    /// WebSocket upgrade and WebSocket/TCP request message. Default `"20/s"` (burst 40) on a
    /// non-loopback listener, off on a loopback one unless set here.
    #[serde(default)]
    pub per_principal: Option<String>,
    #[serde(default)]
    pub per_principal_burst: Option<u32>,
    /// Requests per client IP before authentication (every HTTP request and TCP connection).
    /// Default `"50/s"` (burst 100) on a non-loopback listener, off on a loopback one.
    #[serde(default)]
    pub per_ip: Option<String>,
    #[serde(default)]
    pub per_ip_burst: Option<u32>,
    /// `tools/call` per principal and tool name (checked after RBAC). Default off.
    #[serde(default)]
    pub per_tool: Option<String>,
    #[serde(default)]
    pub per_tool_burst: Option<u32>,
    /// Requests over all callers together. Default off.
    #[serde(default)]
    pub global: Option<String>,
    #[serde(default)]
    pub global_burst: Option<u32>,
    /// HTTP requests (POST, DELETE) one authenticated principal may have in flight at once;
    /// more get 429 (-31005) at once. Default 64.
    #[serde(default)]
    pub max_concurrent_per_principal: Option<usize>,
    /// The memory budget overload shedding measures against (`policy/overload.rs`): a size
    /// (`"512MiB"`), or `"off"`. Default: the cgroup's memory limit, else the machine's memory.
    #[serde(default)]
    pub memory_budget: Option<String>,
    /// Percent of the budget from which keep-alive is off. Default 90.
    #[serde(default)]
    pub memory_soft_percent: Option<u8>,
    /// Percent of the budget from which new sessions and requests get 503. Default 95.
    #[serde(default)]
    pub memory_hard_percent: Option<u8>,
}

/// A parsed rate: `count` cells per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("`{s}` is not a rate (examples: 20/s, 600/min, 1000/h)");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count = n.trim().parse::<NonZeroU32>().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate { count, period })
    }
}

impl Rate {
    /// The GCRA quota: one cell every `period / count`, `burst` cells at once.
    fn quota(self, burst: Option<u32>) -> Result<Quota, String> {
        let burst = burst.unwrap_or_else(|| self.count.get().saturating_mul(2));
        let burst = NonZeroU32::new(burst).ok_or("a burst must be at least 1")?;
        let every = self.period / self.count.get();
        Quota::with_period(every)
            .map(|q| q.allow_burst(burst))
            .ok_or_else(|| "rate too high".to_owned())
    }
}

/// One optional rate from the file: absent → `default`, `"off"` → none.
fn quota(
    key: &str,
    value: Option<&str>,
    burst: Option<u32>,
    default: Option<(&str, u32)>,
    errors: &mut Vec<String>,
) -> Option<Quota> {
    let (text, burst) = match (value, default) {
        (Some("off"), _) => return None,
        (Some(v), _) => (v, burst),
        (None, Some((v, b))) => (v, Some(burst.unwrap_or(b))),
        (None, None) => return None,
    };
    match text.parse::<Rate>().and_then(|r| r.quota(burst)) {
        Ok(q) => Some(q),
        Err(e) => {
            errors.push(format!("limits.{key}: {e}"));
            None
        }
    }
}

/// Default concurrent requests per authenticated principal (SECURITY.md §2).
pub(crate) const DEFAULT_MAX_CONCURRENT: usize = 64;

impl LimitsConfig {
    /// Validates into [`Limits`]. `loopback`: the listener is loopback-only, where the rate
    /// defaults are off (a local relay serves its own user; set them here to have them).
    pub(crate) fn build(&self, loopback: bool, errors: &mut Vec<String>) -> Limits {
        let on = |rate: &'static str, burst: u32| (!loopback).then_some((rate, burst));
        let principal = quota(
            "per_principal",
            self.per_principal.as_deref(),
            self.per_principal_burst,
            on("20/s", 40),
            errors,
        );
        let ip = quota(
            "per_ip",
            self.per_ip.as_deref(),
            self.per_ip_burst,
            on("50/s", 100),
            errors,
        );
        let tool = quota(
            "per_tool",
            self.per_tool.as_deref(),
            self.per_tool_burst,
            None,
            errors,
        );
        let global = quota(
            "global",
            self.global.as_deref(),
            self.global_burst,
            None,
            errors,
        );
        let max_concurrent = self
            .max_concurrent_per_principal
            .unwrap_or(DEFAULT_MAX_CONCURRENT);
        if max_concurrent == 0 {
            errors.push("limits.max_concurrent_per_principal must be > 0".into());
        }
        let overload = Overload::build(
            self.memory_budget.as_deref(),
            self.memory_soft_percent,
            self.memory_hard_percent,
            errors,
        );
        let rates = Rates {
            global,
            principal,
            tool,
        };
        Limits {
            overload,
            ip: ip.map(Keyed::new),
            local: Local::new(rates, max_concurrent),
            rates,
            fleet: arc_swap::ArcSwapOption::empty(),
        }
    }
}

// === Limits ===

/// The runtime limiters, shared by every listener of one relay.
#[derive(Debug)]
pub(crate) struct Limits {
    overload: Overload,
    ip: Option<Keyed<IpAddr>>,
    /// This replica's own buckets and concurrency cap.
    local: Local,
    /// The quotas, for the shared buckets and the fallback (`rate_limit/shared.rs`).
    rates: Rates,
    /// The fleet's shared buckets and leases, when `[cluster.store]` is set.
    fleet: arc_swap::ArcSwapOption<shared::Fleet>,
}

/// The quotas of the limits keyed on identity (those a fleet shares).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rates {
    pub global: Option<Quota>,
    pub principal: Option<Quota>,
    pub tool: Option<Quota>,
}

/// One replica's buckets keyed on identity, and its concurrency cap: the limits themselves
/// without a fleet, the fallback (with quotas divided among the replicas) with one.
#[derive(Debug)]
pub(crate) struct Local {
    principal: Option<Keyed<String>>,
    tool: Option<Keyed<(String, String)>>,
    global: Option<DefaultDirectRateLimiter>,
    max_concurrent: usize,
    inflight: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for Limits {
    /// No rates, the default concurrency cap (tests and the stdio front).
    fn default() -> Limits {
        LimitsConfig::default().build(true, &mut Vec::new())
    }
}

/// Longest tool name kept in a bucket key (longer names share the truncated key).
const MAX_TOOL_KEY: usize = 128;

impl Limits {
    /// Overload shedding by memory.
    pub(crate) fn overload(&self) -> &Overload {
        &self.overload
    }

    /// Before authentication: the client IP's bucket (IPv6 keyed per /64, one host's share).
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), Error> {
        let Some(k) = &self.ip else { return Ok(()) };
        k.check(&ip_key(ip))
            .inspect_err(|_| metrics::rate_limited("ip"))
    }

    /// After authentication: the global bucket, then the caller's own (this replica's; the
    /// phases go through `admit_request`, which asks the fleet's store when there is one).
    #[cfg(test)]
    pub(crate) fn check_principal(&self, caller: &Caller) -> Result<(), Error> {
        self.local.check_principal(caller)
    }

    /// After RBAC: the (caller, tool) bucket of a `tools/call` (this replica's).
    pub(crate) fn check_tool(
        &self,
        caller: &Caller,
        server: Option<&str>,
        tool: &str,
    ) -> Result<(), Error> {
        self.local.check_tool(caller, server, tool)
    }

    /// A slot among the principal's concurrent requests on this replica.
    #[cfg(test)]
    pub(crate) fn acquire(&self, caller: &Caller) -> Result<Option<InFlight>, Error> {
        self.local.acquire(caller)
    }

    #[cfg(test)]
    /// Buckets currently remembered per scope (principal, ip, tool): for tests and metrics.
    pub(crate) fn keys(&self) -> (usize, usize, usize) {
        (
            self.local.principal.as_ref().map_or(0, |k| k.limiter.len()),
            self.ip.as_ref().map_or(0, |k| k.limiter.len()),
            self.local.tool.as_ref().map_or(0, |k| k.limiter.len()),
        )
    }
}

// === Local ===

impl Local {
    pub(crate) fn new(rates: Rates, max_concurrent: usize) -> Local {
        Local {
            principal: rates.principal.map(Keyed::new),
            tool: rates.tool.map(Keyed::new),
            global: rates.global.map(RateLimiter::direct),
            max_concurrent,
            inflight: Arc::default(),
        }
    }

    /// The global bucket, then the caller's own.
    fn check_principal(&self, caller: &Caller) -> Result<(), Error> {
        if let Some(g) = &self.global {
            g.check()
                .map_err(|n| retry(n.wait_time_from(g.clock().now())))
                .inspect_err(|_| metrics::rate_limited("global"))?;
        }
        match &self.principal {
            Some(k) => k
                .check(&identity_key(caller))
                .inspect_err(|_| metrics::rate_limited("principal")),
            None => Ok(()),
        }
    }

    /// The (caller, tool) bucket of a `tools/call`; the tool of a named server is keyed
    /// `server:tool`, so two servers' tools of one name have a bucket each.
    fn check_tool(&self, caller: &Caller, server: Option<&str>, tool: &str) -> Result<(), Error> {
        let Some(k) = &self.tool else { return Ok(()) };
        k.check(&(identity_key(caller), tool_key(server, tool)))
            .inspect_err(|_| metrics::rate_limited("tool"))
    }

    /// A slot among the principal's concurrent requests, released when the guard drops.
    /// Anonymous callers have no per-principal cap (SECURITY.md §2), only the others.
    fn acquire(&self, caller: &Caller) -> Result<Option<InFlight>, Error> {
        if !authenticated(caller) {
            return Ok(None);
        }
        let key = caller.principal.name.clone();
        let mut table = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let n = table.entry(key.clone()).or_insert(0);
        if *n >= self.max_concurrent {
            return Err(Error::PrincipalInflightCap);
        }
        *n += 1;
        Ok(Some(InFlight::Local(LocalSlot {
            table: self.inflight.clone(),
            key,
        })))
    }
}

/// The bucket key of a tool: `server:tool` for a named server's, cut to [`MAX_TOOL_KEY`].
fn tool_key(server: Option<&str>, tool: &str) -> String {
    let mut key = match server {
        Some(server) => format!("{server}:{tool}"),
        None => tool.to_owned(),
    };
    let mut end = key.len().min(MAX_TOOL_KEY);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key.truncate(end);
    key
}

/// One request counted against its principal's concurrency cap: on this replica, or as a
/// lease in the fleet's store.
#[derive(Debug)]
// The guards are held for what their `Drop` gives back.
#[allow(dead_code)]
pub(crate) enum InFlight {
    Local(LocalSlot),
    Shared(crate::cluster::store::Lease),
}

/// A slot in this replica's table of requests in flight, given back when dropped.
#[derive(Debug)]
pub(crate) struct LocalSlot {
    table: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = table.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.remove(&self.key);
            }
        }
    }
}

fn authenticated(caller: &Caller) -> bool {
    matches!(
        caller.principal.method,
        AuthMethod::ApiKey | AuthMethod::Jwt | AuthMethod::Mtls
    )
}

/// The identity a bucket belongs to: the principal's name, or for anonymous callers the
/// client IP (never the session).
fn identity_key(caller: &Caller) -> String {
    match (caller.principal.method, caller.peer) {
        (AuthMethod::None, Some(peer)) => format!("ip:{}", ip_key(peer.ip)),
        (AuthMethod::None, None) => "ip:-".to_owned(),
        _ => format!("p:{}", caller.principal.name),
    }
}

/// IPv4 as is; IPv6 by its /64 (one host usually owns the whole prefix).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn retry(wait: Duration) -> Error {
    let ms = wait.as_nanos().div_ceil(1_000_000).max(1);
    Error::RateLimited(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A keyed limiter whose forgotten-when-full buckets are swept every few thousand checks.
#[derive(Debug)]
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

/// Checks between sweeps of full buckets.
const SWEEP_EVERY: u64 = 4096;

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Keyed<K> {
        Keyed {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), Error> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|n| retry(n.wait_time_from(self.limiter.clock().now())))
    }
}

mod shared;

#[cfg(test)]
mod tests;
