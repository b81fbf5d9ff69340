//! Fleet-wide concurrency caps as leases (docs/fleet.md): one sorted set per principal, one
//! member `<node>:<epoch>:<seq>` per request in flight, scored with the time it was last
//! renewed. This process renews all its leases every `lease / 3` in one background task
//! (started with the first lease, ended with the store), and releases a lease when its guard
//! drops. The guard exists before the acquire is sent: an acquire that fails, times out or is
//! cancelled (the client went away) may still have been run by the store, so its guard removes
//! the member, trying again while the store does not answer. A replica that dies stops
//! renewing: its leases are dropped by the next acquire after one `lease`.
//!
//! Owns: acquiring, renewing and releasing leases. Does not own: the cap, nor what happens
//! when the store cannot answer (`policy/rate_limit/shared.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Store;

/// Leases renewed per script call.
const RENEW_CHUNK: usize = 256;

/// The sequence of this process's lease members: one for the process, however many stores
/// it builds, so no two leases of one process share a member.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// First pause between tries of a release the store did not take; doubled each try.
const RELEASE_RETRY: Duration = Duration::from_millis(250);

/// This process's leases: key and member by sequence number.
#[derive(Debug, Default)]
pub(super) struct Held {
    held: Mutex<HashMap<u64, (String, String)>>,
    renewing: AtomicBool,
}

/// One request's lease, released when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    store: Arc<Store>,
    id: u64,
    /// Whether the store answered the acquire (else the member may or may not be there).
    settled: bool,
}

impl Store {
    /// The sequence number of a new lease.
    pub(super) fn next_lease(&self) -> u64 {
        SEQ.fetch_add(1, Ordering::Relaxed)
    }

    /// The member of lease `id`: `<node>:<epoch>:<id>`.
    pub(super) fn lease_member(&self, id: u64) -> String {
        format!("{}:{id}", self.member)
    }

    /// Lease `id`, about to be acquired in `key`: renewed from now on (renewal never adds a
    /// member), released when dropped, even before the acquire answered.
    pub(super) fn hold(self: &Arc<Self>, id: u64, key: String, member: String) -> Lease {
        self.held().insert(id, (key, member));
        self.start_renewing();
        Lease {
            store: self.clone(),
            id,
            settled: false,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, String)>> {
        self.leases.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lease_ms(&self) -> u64 {
        u64::try_from(self.cfg.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Starts the renewal task once; it holds the store weakly and ends with it.
    fn start_renewing(self: &Arc<Self>) {
        if self.leases.renewing.swap(true, Ordering::Relaxed) {
            return;
        }
        let store = Arc::downgrade(self);
        let every = (self.cfg.lease / 3).max(std::time::Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = store.upgrade() else { return };
                store.renew_all().await;
            }
        });
    }

    /// Renews every lease this process holds.
    async fn renew_all(&self) {
        let held: Vec<(String, String)> = self.held().values().cloned().collect();
        for chunk in held.chunks(RENEW_CHUNK) {
            let mut inv = self.renew.prepare_invoke();
            inv.arg(self.now_arg()).arg(self.lease_ms());
            for (key, member) in chunk {
                inv.key(key).arg(member);
            }
            if self.run::<u64>("renew", &inv).await.is_err() {
                // The breaker counted it; leases not renewed expire on their own.
                return;
            }
        }
    }

    /// Gives a lease back at once (else it would expire after one lease). A release the
    /// store does not take is tried again, pausing longer each time, for one lease at most
    /// (then it has expired anyway); so is one whose acquire never answered while the member
    /// is not found yet (the acquire may still be on its way: it was sent first).
    async fn release(&self, key: String, member: String, settled: bool) {
        let give_up = Instant::now() + self.cfg.lease;
        let mut pause = RELEASE_RETRY;
        loop {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(&key).arg(&member);
            let removed = self
                .run_with::<u64, _, _>("release", |mut conn| async move {
                    cmd.query_async(&mut conn).await
                })
                .await;
            match removed {
                Ok(1..) => return,
                Ok(0) if settled => return,
                _ if Instant::now() + pause >= give_up => return,
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}

impl Lease {
    /// The store answered the acquire and holds the lease.
    pub(super) fn settle(mut self) -> Lease {
        self.settled = true;
        self
    }

    /// The store answered without taking the lease: nothing to give back.
    pub(super) fn forget(self) {
        self.store.held().remove(&self.id);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some((key, member)) = self.store.held().remove(&self.id) else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let settled = self.settled;
            rt.spawn(async move { store.release(key, member, settled).await });
        }
    }
}
