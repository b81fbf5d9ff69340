//! The response cache in the fleet's shared store (`storage = "store"`, `[cluster.store]`):
//! answers are keys `<prefix>:cache:e:<hash>:<generation>` with the method's time to live,
//! generations are keys `<prefix>:cache:g:<hash>` replaced by a random value on every change
//! (so a generation is never reused) and kept without a time to live. A lookup is one round
//! trip (a script reads the generation, then the answer in it); keeping (only if the
//! generation is still the one read) and invalidating are sent without waiting.
//!
//! The connection is the limits' (`cluster/store.rs`: one per process, opened on first use,
//! Sentinel included). A store that is down or
//! slower than `timeout` makes the request go to the child, as without a cache, and is then
//! left alone for [`PAUSE`] (one warning when it fails, one line when it answers again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use tracing::{debug, info, warn};

use super::memory::SHARE;
use super::Slot;
use crate::cluster::config::StoreConfig;
use crate::cluster::store::Store as Shared;
use crate::config::cache::CacheConfig;

/// Reads a generation and the answer kept in it, in one round trip.
const LOOKUP: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. ':' .. g)}
";

/// Keeps an answer if its generation is still the one read with the lookup, and unless its
/// holder has written its share within the window: KEYS are the answer, the holder's byte
/// counter and the generation; ARGV the answer, its time to live (ms), the share (bytes),
/// the window (ms, the longest time to live) and the generation read. The counter starts
/// with the window's first answer and expires with it, so a holder has at most about two
/// shares alive at any time.
const FILL: &str = r"
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[5] then return 0 end
local n = #ARGV[1]
local used = redis.call('INCRBY', KEYS[2], n)
if used == n then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if used > tonumber(ARGV[3]) then
  redis.call('DECRBY', KEYS[2], n)
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// How long a store that failed is left alone.
const PAUSE: Duration = Duration::from_secs(2);

/// The clock of [`Store::paused_until`].
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("store unreachable: {0}")]
    Store(#[from] redis::RedisError),
    #[error("store connection: {0}")]
    Connect(String),
    #[error("store timeout")]
    Timeout,
    #[error("store paused after a failure")]
    Paused,
}

pub(super) struct Store {
    cfg: StoreConfig,
    shared: Arc<Shared>,
    lookup: redis::Script,
    fill: redis::Script,
    /// Bytes one holder may write per `window`; no larger answer is kept.
    share: usize,
    window: Duration,
    /// Not asked before this ([`now_ms`]) after a failure.
    paused_until: AtomicU64,
    /// The last lookup failed (for one log line per transition).
    down: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.cfg.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub(super) fn new(cfg: &StoreConfig, shared: Arc<Shared>, cache: &CacheConfig) -> Store {
        Store {
            cfg: cfg.clone(),
            shared,
            lookup: redis::Script::new(LOOKUP),
            fill: redis::Script::new(FILL),
            share: cache.max_bytes / SHARE,
            window: cache.longest(),
            paused_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// Whether the store is left alone now (it failed less than [`PAUSE`] ago).
    fn paused(&self) -> bool {
        now_ms() < self.paused_until.load(Relaxed)
    }

    /// Notes how a lookup went: a failure pauses the store; each change is logged once.
    fn note(&self, ok: bool) {
        if !ok {
            let pause = u64::try_from(PAUSE.as_millis()).unwrap_or(u64::MAX);
            self.paused_until.store(now_ms() + pause, Relaxed);
        }
        match (self.down.swap(!ok, Relaxed), ok) {
            (false, false) => {
                warn!("response cache: the store failed; answers come from the children")
            }
            (true, true) => info!("response cache: the store answers again"),
            _ => {}
        }
    }

    /// The shared connection (it reconnects by itself).
    async fn conn(shared: &Shared) -> Result<ConnectionManager, Error> {
        shared.connection().await.map_err(Error::Connect)
    }

    fn key(&self, name: &str) -> String {
        format!("{}:cache:{name}", self.cfg.key_prefix)
    }

    /// The generation of `generation` now, and the answer of `entry` kept in it.
    pub(super) async fn lookup(
        &self,
        entry: &str,
        generation: &str,
    ) -> Result<(String, Option<Bytes>), Error> {
        if self.paused() {
            return Err(Error::Paused);
        }
        let mut call = self.lookup.key(self.key(generation));
        call.arg(self.key(entry));
        let read = async {
            let mut conn = Store::conn(&self.shared).await?;
            let found = call.invoke_async::<(String, Option<Vec<u8>>)>(&mut conn);
            found.await.map_err(Error::Store)
        };
        let read = match tokio::time::timeout(self.cfg.timeout, read).await {
            Ok(read) => read,
            Err(_) => Err(Error::Timeout),
        };
        self.note(read.is_ok());
        let (gen, answer) = read?;
        Ok((gen, answer.map(Bytes::from)))
    }

    /// Keeps `answer` in `slot` for `ttl`, counted against `holder`'s share, unless the
    /// slot's generation has changed since the lookup; in the background.
    pub(super) fn fill(&self, slot: &Slot, holder: &str, answer: Vec<u8>, ttl: Duration) {
        if self.paused() || answer.len() > self.share {
            return;
        }
        let (script, shared, timeout) = (self.fill.clone(), self.shared.clone(), self.cfg.timeout);
        let keys = [
            self.key(&slot.key),
            self.key(holder),
            self.key(&slot.generation),
        ];
        let gen = slot.gen.clone();
        let share = u64::try_from(self.share).unwrap_or(u64::MAX);
        let (ttl, window) = (millis(ttl), millis(self.window));
        tokio::spawn(async move {
            let sent = async {
                let mut conn = Store::conn(&shared).await?;
                let mut call = script.key(&keys[0]);
                call.key(&keys[1])
                    .key(&keys[2])
                    .arg(answer)
                    .arg(ttl)
                    .arg(share)
                    .arg(window)
                    .arg(&gen);
                call.invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(Error::Store)
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => debug!(error = %e, "response cache write failed"),
                Err(_) => debug!(error = %Error::Timeout, "response cache write failed"),
            }
        });
    }

    /// Replaces `generation` with a value never used before, in the background. It has no
    /// time to live: were it to go, it would read `0` again and answers kept under `0`
    /// before the change could come back (there are few: one per list and updated URI).
    pub(super) fn bump(&self, generation: String) {
        let value = format!("{:016x}", rand::random::<u64>());
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&generation)).arg(value);
        self.send(cmd, "generation");
    }

    /// Sends `cmd` (writing `what`) in the background; a failure is logged at debug.
    fn send(&self, cmd: redis::Cmd, what: &'static str) {
        let (shared, timeout) = (self.shared.clone(), self.cfg.timeout);
        tokio::spawn(async move {
            let sent = async {
                let mut conn = Store::conn(&shared).await?;
                cmd.query_async::<()>(&mut conn).await.map_err(Error::Store)
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, what, "response cache write failed"),
                Err(_) => debug!(error = %Error::Timeout, what, "response cache write failed"),
            }
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
