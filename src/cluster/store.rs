//! The fleet's shared store of limits (`[cluster.store]`, Redis or Valkey; docs/fleet.md):
//! one lazily opened `ConnectionManager` per process (multiplexed, reconnecting), one script
//! call per request for all its GCRA rate buckets and its concurrency lease (one round trip),
//! a local cache of buckets known to be over their limit (no round trip until they refill),
//! and the leases' renewal and release (`store/leases.rs`). Every operation has the configured timeout and
//! goes through the breaker (`store/breaker.rs`); a failure is [`Unavailable`], and the
//! caller falls back as `on_store_error` says.
//!
//! Keys are `<prefix>:rl:g`, `<prefix>:rl:p:<h>`, `<prefix>:rl:t:<h>:<h>` and
//! `<prefix>:inflight:<h>`, where `h` is HMAC-SHA256 over the name with `key_secret`,
//! truncated to 16 bytes: principal names, addresses and tool names are never stored in clear.
//!
//! Owns: talking to the store. Does not own: which buckets a request has, their quotas, nor
//! the fallback (`policy/rate_limit/shared.rs`). The store lives in `Cluster`, so a SIGHUP
//! keeps its connection, breaker and leases.

mod breaker;
mod leases;
mod scripts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{IntoConnectionInfo, Script, ScriptInvocation};
use ring::hmac;

use super::config::{Clock, OnStoreError, StoreConfig};
use breaker::Breaker;
pub(crate) use leases::Lease;

/// The store could not answer (error, timeout, or breaker open): fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// One GCRA bucket: its key and its quota in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub key: String,
    /// The emission interval: one cell every `t`.
    pub t_us: u64,
    /// The tolerance: `t * (burst - 1)`.
    pub tau_us: u64,
}

/// A store's answer for one request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Every bucket had room; the lease, when one was asked for, is held.
    Admitted(Option<Lease>),
    /// Bucket number `bucket` (0-based) is over its limit for `wait` more; nothing was spent.
    Denied { bucket: usize, wait: Duration },
    /// The rates are spent, but the concurrency cap is reached.
    Full,
}

/// How to reach the store.
enum Target {
    Direct(redis::Client),
    /// The master named by Sentinel, asked again whenever the connection is rebuilt.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// The URL did not parse (validated already, so this is a library's refusal).
    Invalid(String),
}

/// The shared store of one process.
pub(crate) struct Store {
    cfg: StoreConfig,
    /// `<node>:<epoch>`: the prefix of this process's lease members.
    member: String,
    target: Target,
    conn: Mutex<Option<ConnectionManager>>,
    breaker: Breaker,
    admit: Script,
    renew: Script,
    /// Buckets known to be over their limit, until when.
    over: Mutex<HashMap<String, Instant>>,
    leases: leases::Held,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// Remembered over-limit buckets past which expired ones are swept.
const OVER_SWEEP: usize = 4096;

impl Store {
    /// Builds the store of `node`; nothing connects until the first operation.
    pub(crate) fn new(cfg: StoreConfig, node: &str) -> Store {
        let target = target(&cfg.url).unwrap_or_else(Target::Invalid);
        Store {
            member: format!("{node}:{:08x}", super::id::epoch()),
            target,
            conn: Mutex::new(None),
            breaker: Breaker::new(),
            admit: scripts::script(scripts::ADMIT),
            renew: scripts::script(scripts::RENEW),
            over: Mutex::default(),
            leases: leases::Held::default(),
            cfg,
        }
    }

    pub(crate) fn on_error(&self) -> OnStoreError {
        self.cfg.on_error
    }

    pub(crate) fn expected_nodes(&self) -> u32 {
        self.cfg.expected_nodes
    }

    /// `<prefix>:<kind>:<h(part)>:<h(part)>…`.
    pub(crate) fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut key = format!("{}:{kind}", self.cfg.key_prefix);
        for p in parts {
            key.push(':');
            key.push_str(&self.hash(p));
        }
        key
    }

    /// HMAC-SHA256 of `name` with the key secret, 16 bytes in hex.
    fn hash(&self, name: &str) -> String {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.cfg.key_secret);
        let tag = hmac::sign(&k, name.as_bytes());
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Admits one request in one round trip: checks (and, when all allow, spends one cell
    /// of) every bucket, then takes a lease in `lease`'s set if fewer than its cap are held
    /// fleet-wide. A bucket known to be over its limit answers without a round trip.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        buckets: &[Bucket],
        lease: Option<(String, usize)>,
    ) -> Result<Admission, Unavailable> {
        if buckets.is_empty() && lease.is_none() {
            return Ok(Admission::Admitted(None));
        }
        if let Some(denied) = self.known_over(buckets) {
            return Ok(denied);
        }
        let id = self.next_lease();
        let (member, cap) = match &lease {
            Some((_, cap)) => (self.lease_member(id), *cap),
            None => (String::new(), 0),
        };
        let mut inv = self.admit.prepare_invoke();
        inv.arg(self.now_arg())
            .arg(&member)
            .arg(cap)
            .arg(self.lease_ms());
        for b in buckets {
            inv.key(&b.key).arg(b.t_us).arg(b.tau_us);
        }
        if let Some((key, _)) = &lease {
            inv.key(key);
        }
        // Held before the script is sent: if no answer comes (error, timeout, or this future
        // dropped), the guard removes a member the store may have added all the same.
        let pending = lease.map(|(key, _)| self.hold(id, key, member));
        let (answer, which, wait_us): (u8, usize, u64) = self.run("admit", &inv).await?;
        let pending = match (answer, pending) {
            (1, pending) => pending.map(Lease::settle),
            (_, Some(unused)) => {
                unused.forget();
                None
            }
            (_, None) => None,
        };
        match answer {
            1 => Ok(Admission::Admitted(pending)),
            2 => Ok(Admission::Full),
            _ => {
                let bucket = which.saturating_sub(1).min(buckets.len().max(1) - 1);
                let wait = Duration::from_micros(wait_us.max(1));
                if let Some(b) = buckets.get(bucket) {
                    self.remember_over(&b.key, wait);
                }
                Ok(Admission::Denied { bucket, wait })
            }
        }
    }

    fn known_over(&self, buckets: &[Bucket]) -> Option<Admission> {
        let over = self.over.lock().unwrap_or_else(|p| p.into_inner());
        if over.is_empty() {
            return None;
        }
        let now = Instant::now();
        buckets.iter().enumerate().find_map(|(i, b)| {
            let until = *over.get(&b.key)?;
            (until > now).then(|| Admission::Denied {
                bucket: i,
                wait: until - now,
            })
        })
    }

    fn remember_over(&self, key: &str, wait: Duration) {
        let mut over = self.over.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if over.len() >= OVER_SWEEP {
            over.retain(|_, until| *until > now);
            if over.len() >= OVER_SWEEP {
                // Only a cache: forgetting it costs round trips, never a wrong answer.
                over.clear();
            }
        }
        over.insert(key.to_owned(), now + wait);
    }

    /// `ARGV[1]` of every script: empty (Redis `TIME`), or this replica's clock in µs.
    fn now_arg(&self) -> String {
        match self.cfg.clock {
            Clock::Server => String::new(),
            Clock::Client => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros())
                .to_string(),
        }
    }

    /// Runs one script under the timeout and the breaker.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        self.run_with(op, |mut conn| async move {
            inv.invoke_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs one operation on the connection under the timeout and the breaker.
    async fn run_with<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allows() {
            return Err(Unavailable);
        }
        let answer = tokio::time::timeout(self.cfg.timeout, async {
            let conn = self.connection().await?;
            f(conn).await.map_err(|e| e.to_string())
        })
        .await;
        let error = match answer {
            Ok(Ok(v)) => {
                self.breaker.success();
                return Ok(v);
            }
            Ok(Err(e)) => e,
            Err(_) => "timed out".to_owned(),
        };
        if self.breaker.failure(op, &error) {
            // Rebuilt on the next try (for Sentinel: after asking who the master is now).
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        Err(Unavailable)
    }

    /// The connection manager, opened on first use (the response cache shares it).
    pub(crate) async fn connection(&self) -> Result<ConnectionManager, String> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let client = match &self.target {
            Target::Direct(c) => c.clone(),
            Target::Sentinel(s) => s
                .lock()
                .await
                .async_get_client()
                .await
                .map_err(|e| e.to_string())?,
            Target::Invalid(e) => return Err(e.clone()),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.cfg.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.cfg.timeout))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| e.to_string())?;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }
}

/// The client for `url`: a direct `redis(s)://` / `valkey(s)://` URL, or
/// `redis(s)+sentinel://[user:password@]host:port[,host:port…]/service[/db]`.
fn target(url: &str) -> Result<Target, String> {
    let Some((scheme, rest)) = url.split_once("+sentinel://") else {
        return redis::Client::open(url)
            .map(Target::Direct)
            .map_err(|e| e.to_string());
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (service, db) = path.split_once('/').unwrap_or((path, "0"));
    if hosts.is_empty() || service.is_empty() {
        return Err("a sentinel URL needs hosts and a service name".into());
    }
    let sentinels: Vec<String> = hosts
        .split(',')
        .map(|h| format!("{scheme}://{auth}{h}"))
        .collect();
    let master = format!("{scheme}://{auth}localhost/{db}")
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    let node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(master.redis_settings().clone());
    let node = match scheme {
        "rediss" => node.set_tls_mode(redis::TlsMode::Secure),
        _ => node,
    };
    SentinelClient::build(sentinels, service, Some(node), SentinelServerType::Master)
        .map(|c| Target::Sentinel(tokio::sync::Mutex::new(c)))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
