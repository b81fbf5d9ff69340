//! Tasks on a pool of children (the Tasks extension): which child a task's follow-ups go to.
//!
//! A stateless request may create a task on any child of a pool, and each child mints its own
//! task ids. The answer's task id is replaced by a handle ([`Handles`], sealed in
//! `era/state.rs` and bound to the principal and the server; the renaming is
//! `upstream/tasks.rs`), and a follow-up (`tasks/get`, `tasks/result`, `tasks/cancel`,
//! `tasks/update`) naming a handle goes to the child that made the task, with the child's own
//! id. A handle that does not open, was made for another principal, or names a child that is
//! gone is answered "Unknown task" (-32602) and reaches no child. Legacy sessions need none of
//! this: a session stays on its child.

use std::sync::Arc;

use serde_json::Value;

use super::Relay;
use crate::caller::Caller;
use crate::era::state::{StateKey, TaskRef};
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::ticket::Ticket;
use crate::upstream::supervisor::Slot;
use crate::upstream::tasks::TaskIds;
use crate::upstream::Upstream;

/// Methods that name an existing task.
const FOLLOW_UPS: [&str; 4] = ["tasks/get", "tasks/result", "tasks/cancel", "tasks/update"];

/// A follow-up on its way to the child that made the task.
#[derive(Debug)]
pub(super) struct Followed {
    pub up: Arc<Upstream>,
    /// The request, with the child's own task id.
    pub frame: Frame,
    task: String,
    handle: String,
}

/// Makes the handles of one caller's tasks.
#[derive(Debug)]
struct Handles {
    key: Arc<StateKey>,
    principal: String,
    server: String,
    /// The task a follow-up named (pid, the child's id, the client's handle): its answer
    /// names it with the same handle.
    named: Option<(u32, String, String)>,
}

impl TaskIds for Handles {
    fn wrap(&self, pid: u32, task: &str) -> String {
        if let Some((p, t, handle)) = &self.named {
            if *p == pid && t == task {
                return handle.clone();
            }
        }
        self.key.seal_task(&TaskRef {
            principal: self.principal.clone(),
            server: self.server.clone(),
            pid,
            task: task.to_owned(),
        })
    }
}

/// How a stateless request meets tasks: the child a follow-up must go to (with the child's own
/// task id), the handle maker for its answer, and the request's ticket back.
pub(super) type TaskPlan = (Option<Followed>, Option<Arc<dyn TaskIds>>, Ticket);

impl Relay {
    /// [`TaskPlan`] for a stateless request on `slots`; a handle that does not open is
    /// refused (its ticket discarded: the caller records the refusal once).
    pub(super) fn task_plan(
        &self,
        caller: &Caller,
        frame: &Frame,
        key: &Arc<StateKey>,
        slots: &[Arc<Slot>],
        ticket: Ticket,
    ) -> Result<TaskPlan, Error> {
        let followed = match self.task_child(caller, frame, key, slots) {
            Ok(f) => f,
            Err(e) => {
                ticket.discard();
                return Err(e);
            }
        };
        let method = frame.method().unwrap_or_default();
        let tasks = self.task_handles(caller, key, method, followed.as_ref());
        Ok((followed, tasks, ticket))
    }

    /// The handle maker for a request whose answer may name a task (`tools/call` and the
    /// follow-ups); `None` for other methods.
    fn task_handles(
        &self,
        caller: &Caller,
        key: &Arc<StateKey>,
        method: &str,
        followed: Option<&Followed>,
    ) -> Option<Arc<dyn TaskIds>> {
        if method != "tools/call" && !FOLLOW_UPS.contains(&method) {
            return None;
        }
        Some(Arc::new(Handles {
            key: key.clone(),
            principal: caller.owner().unwrap_or_default().to_owned(),
            server: self.cfg.server_name.clone().unwrap_or_default(),
            named: followed.map(|f| (f.up.pid(), f.task.clone(), f.handle.clone())),
        }))
    }

    /// For a follow-up naming a handle: the child that made the task, and the request with
    /// the child's own task id. `None` for any other request.
    fn task_child(
        &self,
        caller: &Caller,
        frame: &Frame,
        key: &StateKey,
        slots: &[Arc<Slot>],
    ) -> Result<Option<Followed>, Error> {
        if !frame.method().is_some_and(|m| FOLLOW_UPS.contains(&m)) {
            return Ok(None);
        }
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(rename = "taskId", borrow)]
            task_id: Option<&'a serde_json::value::RawValue>,
        }
        let Some(raw) = frame.params::<Params<'_>>().and_then(|p| p.task_id) else {
            return Ok(None);
        };
        let handle: String = serde_json::from_str(raw.get()).map_err(|_| Error::UnknownTask)?;
        let principal = caller.owner().unwrap_or_default();
        let server = self.cfg.server_name.as_deref().unwrap_or_default();
        let task = key
            .open_task(&handle, principal, server)
            .map_err(|_| Error::UnknownTask)?;
        let up = slots
            .iter()
            .filter_map(|s| s.current())
            .find(|u| u.pid() == task.pid && u.is_alive())
            .ok_or(Error::UnknownTask)?;
        // Only the id string changes: everything else reaches the child byte for byte.
        let span = crate::jsonrpc::span_in(frame.bytes(), raw.get()).ok_or(Error::Internal)?;
        let text = Value::from(task.task.as_str()).to_string();
        let bytes = frame.splice(&mut [(span, text.as_str())]);
        let frame = Frame::parse(bytes).map_err(|_| Error::Internal)?;
        Ok(Some(Followed {
            up,
            frame,
            task: task.task,
            handle,
        }))
    }
}
