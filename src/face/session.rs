//! One legacy session of the face: reads what the relay in front sends (client requests with
//! relay ids, notifications, answers to the face's own requests), answers what the modern era
//! removed (`initialize`, `ping`, `logging/setLevel`, subscriptions) and starts one task per
//! other request (`face/call.rs`). Ends when the relay stops it (the session ended).
//!
//! Not here: the input rounds (`call.rs`), the listens (`listen.rs`), the translations
//! (`era/legacy_face.rs`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::task::{AbortHandle, JoinSet};
use tracing::debug;

use super::{call, listen, lock, Exchange, Session, Shared};
use crate::era::legacy_face::{self as face, Hello};
use crate::era::{is_legacy, LEGACY_VERSIONS};
use crate::error::Error;
use crate::jsonrpc::{error_response, Frame, Kind, RawId};
use crate::upstream::stdio::{ExitInfo, LinkEnds};

/// Finished request tasks are forgotten once this many are remembered.
const SWEEP_AT: usize = 256;

/// Runs one session until the relay stops it.
pub(super) async fn run(shared: Arc<Shared>, mut ends: LinkEnds) {
    let s = Arc::new(Session {
        shared,
        out: ends.incoming.clone(),
        hello: OnceLock::new(),
        caps: OnceLock::new(),
        level: Mutex::new(None),
        next: AtomicU64::new(1),
        waiting: Mutex::new(HashMap::new()),
        subs: tokio::sync::Mutex::new(listen::Subscriptions::default()),
        following: OnceLock::new(),
    });
    let mut tasks = JoinSet::new();
    let mut calls: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let line = tokio::select! {
            line = ends.outgoing.recv() => line,
            () = ends.stop.cancelled() => None,
        };
        let Some(line) = line else { break };
        while tasks.try_join_next().is_some() {}
        if calls.len() >= SWEEP_AT {
            calls.retain(|_, t| !t.is_finished());
        }
        if let Ok(frame) = Frame::parse_upstream(line) {
            s.on_message(frame, &mut tasks, &mut calls);
        }
    }
    // Aborted tasks drop their exchanges: the children are told to cancel.
    tasks.abort_all();
    s.subs.lock().await.close();
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(0),
        signal: None,
    }));
}

impl Session {
    fn on_message(
        self: &Arc<Self>,
        frame: Frame,
        tasks: &mut JoinSet<()>,
        calls: &mut HashMap<String, AbortHandle>,
    ) {
        let method = frame.method().unwrap_or_default().to_owned();
        match (frame.kind(), frame.id()) {
            (Kind::Request, Some(id)) => match method.as_str() {
                "initialize" => {
                    let params = params_of(&frame);
                    let _ = self.hello.set(Hello::of(&params));
                    tasks.spawn(self.clone().initialize(params, id));
                }
                "ping" => {
                    tasks.spawn(self.clone().answer(face::empty_result(&id)));
                }
                "logging/setLevel" => {
                    let caps = self.caps.get().cloned().unwrap_or_else(|| json!({}));
                    let answer = match face::log_level(&params_of(&frame), &caps) {
                        Ok(level) => {
                            *lock(&self.level) = Some(level);
                            face::empty_result(&id)
                        }
                        Err((code, message)) => {
                            error_response(Some(id.as_str()), code, message, &Value::Null)
                        }
                    };
                    tasks.spawn(self.clone().answer(answer));
                }
                // A pool's children each mint their own task ids, and nothing here binds
                // one to its child or its caller: tasks are not offered through the face.
                m if m.starts_with("tasks/") => {
                    let refusal =
                        error_response(Some(id.as_str()), -32601, "Method not found", &Value::Null);
                    tasks.spawn(self.clone().answer(refusal));
                }
                "resources/subscribe" | "resources/unsubscribe" => {
                    let uri = params_of(&frame)
                        .get("uri")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let on = method == "resources/subscribe";
                    tasks.spawn(listen::subscribe(self.clone(), id, uri, on));
                }
                _ => {
                    let task = tasks.spawn(call::call(self.clone(), frame));
                    calls.insert(id.as_str().to_owned(), task);
                }
            },
            (Kind::Response, _) => self.take_response(&frame),
            (Kind::Notification, _) => match method.as_str() {
                "notifications/cancelled" => {
                    if let Some(task) = frame.request_id().and_then(|id| calls.remove(id)) {
                        task.abort();
                    }
                }
                // (Once: a repeated one would deliver each change twice.)
                "notifications/initialized" if self.following.set(()).is_ok() => {
                    tasks.spawn(self.clone().follow_changes());
                }
                // The modern era has no other client notifications.
                _ => debug!(method, "client notification dropped"),
            },
            _ => {}
        }
    }

    async fn answer(self: Arc<Self>, line: Bytes) {
        self.send(line).await;
    }

    /// Answers `initialize` from the child's `server/discover`, asked with the client's hello.
    async fn initialize(self: Arc<Self>, params: Value, id: RawId) {
        let answer = match self.discover().await {
            Ok(result) => {
                let _ = self.caps.set(
                    result
                        .get("capabilities")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                );
                let asked = params.get("protocolVersion").and_then(Value::as_str);
                let version = asked.filter(|v| is_legacy(v)).unwrap_or(LEGACY_VERSIONS[3]);
                face::result_message(&id, &face::initialize_result(&result, json!(version)))
            }
            Err(e) => e.to_jsonrpc(&id),
        };
        self.send(answer).await;
    }

    async fn discover(&self) -> Result<Value, Error> {
        let body = self.hello().discover(json!(self.fresh_id("discover-")));
        let mut ex = Exchange::start(&self.shared, body).await?;
        while let Some(out) = ex.next().await {
            if out.last {
                let v: Value = serde_json::from_slice(&out.data).map_err(|_| Error::Internal)?;
                return face::discovered(&v).cloned().ok_or(Error::ChildUnavailable);
            }
        }
        Err(Error::ChildExited)
    }

    /// Passes the list changes of the face's shared listen to this session.
    async fn follow_changes(self: Arc<Self>) {
        let caps = self.caps.get().cloned().unwrap_or_else(|| json!({}));
        let mut rx = self.shared.changes.subscribe();
        listen::watch_lists(&self.shared, &caps);
        loop {
            match rx.recv().await {
                Ok(line) => self.send(line).await,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// A client's answer to an input request: handed to the request waiting for it.
    fn take_response(&self, frame: &Frame) {
        let key = frame
            .id()
            .and_then(|id| serde_json::from_str::<String>(id.as_str()).ok());
        let Some(tx) = key.and_then(|k| lock(&self.waiting).remove(&k)) else {
            debug!("answer to no input request dropped");
            return;
        };
        let v: Value = serde_json::from_slice(frame.bytes()).unwrap_or(Value::Null);
        let _ = tx.send(v);
    }
}

fn params_of(frame: &Frame) -> Value {
    serde_json::from_slice::<Value>(frame.bytes())
        .ok()
        .and_then(|v| v.get("params").cloned())
        .unwrap_or_else(|| json!({}))
}
