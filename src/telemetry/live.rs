//! The live feed the operator's console reads: the recent audit records (a bounded ring),
//! each new one to subscribers as it comes, and traffic windows (requests, errors, latency
//! per server, tool and principal over the last minutes; refusals by reason) computed from
//! the same records.
//!
//! Owns: what is kept in memory for the console and its bounds. Fed by [`Audit::emit`]
//! (`telemetry/audit.rs`) with every record, whether or not an audit file is configured.
//! Does not own: the record's shape or its sanitising (`audit.rs`), rendering (`admin/console/`).
//!
//! [`Audit::emit`]: super::audit::Audit::emit

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

use super::audit::{Record, Tap};

/// How many recent records the ring keeps.
pub(crate) const RECENT: usize = 1000;
/// How many records a slow subscriber may fall behind before it skips ahead.
const BACKLOG: usize = 256;

/// One record as the console sees it: its place in the feed and its JSON.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Increases by one per record, from 1.
    pub seq: u64,
    /// The record's JSON (strings capped as in the audit file, arguments redacted).
    pub json: Arc<Value>,
}

/// The console's live feed (see the module header).
#[derive(Debug)]
pub(crate) struct Live {
    seq: AtomicU64,
    recent: Mutex<VecDeque<Entry>>,
    tx: broadcast::Sender<Entry>,
}

impl Live {
    pub(crate) fn new() -> Arc<Live> {
        let (tx, _) = broadcast::channel(BACKLOG);
        Arc::new(Live {
            seq: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            tx,
        })
    }

    /// Takes in one record (timestamped).
    fn take(&self, record: &Record) {
        let json = match serde_json::to_value(record) {
            Ok(v) => Arc::new(v),
            Err(_) => return,
        };
        let entry = Entry {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            json,
        };
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(entry.clone());
        }
        let _ = self.tx.send(entry);
    }

    /// The kept records, oldest first.
    pub(crate) fn recent(&self) -> Vec<Entry> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    /// Each record from now on (a receiver that falls [`BACKLOG`] behind skips ahead).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.tx.subscribe()
    }
}

impl Tap for Live {
    fn record(&self, record: &Record) {
        self.take(record);
    }
}
