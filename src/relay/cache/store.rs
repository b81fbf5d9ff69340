//! The response cache in the fleet's shared store (`storage = "store"`, `[cluster.store]`):
//! answers are keys `<prefix>:cache:e:<hash>:<generation>` with the method's time to live,
//! generations are keys `<prefix>:cache:g:<hash>` replaced by a random value on every change
//! (so a generation is never reused) and living as long as the longest time to live. A
//! lookup is one round trip (a script reads the generation, then the answer in it); keeping
//! and invalidating are sent without waiting.
//!
//! Opens its own connection manager, lazily, from `[cluster.store] url`; the limits' store
//! (`cluster/store.rs`) can lend its connection instead once there. A store that is down or
//! slower than `timeout` makes the request go to the child, as without a cache, and is then
//! left alone for [`PAUSE`] (one warning when it fails, one line when it answers again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::{debug, info, warn};

use crate::cluster::config::StoreConfig;

/// Reads a generation and the answer kept in it, in one round trip.
const LOOKUP: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. ':' .. g)}
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
    #[error("store timeout")]
    Timeout,
    #[error("store paused after a failure")]
    Paused,
}

pub(super) struct Store {
    cfg: StoreConfig,
    conn: OnceLock<Result<ConnectionManager, String>>,
    lookup: redis::Script,
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
    pub(super) fn new(cfg: &StoreConfig) -> Store {
        Store {
            cfg: cfg.clone(),
            conn: OnceLock::new(),
            lookup: redis::Script::new(LOOKUP),
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

    /// The connection, opened on first use (it reconnects by itself afterwards).
    fn conn(&self) -> Result<ConnectionManager, Error> {
        let made = self.conn.get_or_init(|| {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.cfg.timeout.max(Duration::from_millis(500))))
                .set_response_timeout(Some(self.cfg.timeout))
                .set_number_of_retries(1);
            redis::Client::open(self.cfg.url.as_str())
                .and_then(|c| c.get_connection_manager_lazy(config))
                .map_err(|e| e.to_string())
        });
        made.clone().map_err(|e| {
            Error::Store(redis::RedisError::from((
                redis::ErrorKind::Client,
                "cannot open",
                e,
            )))
        })
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
        let mut conn = self.conn()?;
        let mut call = self.lookup.key(self.key(generation));
        call.arg(self.key(entry));
        let read = call.invoke_async::<(String, Option<Vec<u8>>)>(&mut conn);
        let read = match tokio::time::timeout(self.cfg.timeout, read).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(Error::Store(e)),
            Err(_) => Err(Error::Timeout),
        };
        self.note(read.is_ok());
        let (gen, answer) = read?;
        Ok((gen, answer.map(Bytes::from)))
    }

    /// Keeps `answer` under `key` (`<entry>:<generation>`) for `ttl`, in the background.
    pub(super) fn fill(&self, key: String, answer: Vec<u8>, ttl: Duration) {
        let Ok(mut conn) = self.conn() else { return };
        if self.paused() {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&key))
            .arg(answer)
            .arg("PX")
            .arg(millis(ttl));
        let timeout = self.cfg.timeout;
        tokio::spawn(async move {
            let set = cmd.query_async::<()>(&mut conn);
            if let Ok(Err(e)) = tokio::time::timeout(timeout, set).await {
                debug!(error = %e, "response cache: answer not kept");
            }
        });
    }

    /// Replaces `generation` with a value never used before, in the background.
    pub(super) fn bump(&self, generation: String, longest: Duration) {
        let Ok(mut conn) = self.conn() else { return };
        let value = format!("{:016x}", rand::random::<u64>());
        let mut cmd = redis::cmd("SET");
        // The generation outlives every answer kept in it.
        let keep = longest + Duration::from_secs(1);
        cmd.arg(self.key(&generation))
            .arg(value)
            .arg("PX")
            .arg(millis(keep));
        let timeout = self.cfg.timeout;
        tokio::spawn(async move {
            let set = cmd.query_async::<()>(&mut conn);
            if let Ok(Err(e)) = tokio::time::timeout(timeout, set).await {
                debug!(error = %e, "response cache: generation not replaced");
            }
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
