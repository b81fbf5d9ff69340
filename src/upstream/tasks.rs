//! Task ids of a pool's children, renamed for clients (the Tasks extension; PROTOCOL.md §6).
//!
//! Stateless requests are spread over a pool, and each child mints its own task ids, so two
//! children may both have a `task-1`. The answer to a stateless request names a task in
//! `result.taskId` (2026-07-28 `CreateTaskResult`, `tasks/get`) or `result.task.taskId`
//! (2025-11-25); the relay replaces it with a handle the relay makes ([`TaskIds`], sealed and
//! bound to the caller in `era/state.rs`), which names the child, so `tasks/get`,
//! `tasks/result` and `tasks/cancel` with that handle reach the child that made the task
//! (`relay/tasks.rs` opens it). Answers without the `"taskId"` text are not parsed.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::jsonrpc::{Frame, RawId};

/// Makes the handle a client sees for a child's task id.
pub(crate) trait TaskIds: Send + Sync + std::fmt::Debug {
    fn wrap(&self, pid: u32, task: &str) -> String;
}

/// Where task ids sit in answers.
const AT: [&str; 2] = ["/result/taskId", "/result/task/taskId"];

/// `bytes` (an answer with the client's id `raw_id`) with the child's task ids replaced by
/// handles; `None` when it names no task.
pub(super) fn rename(
    bytes: &Bytes,
    raw_id: &RawId,
    ids: &Arc<dyn TaskIds>,
    pid: u32,
) -> Option<Bytes> {
    memchr::memmem::find(bytes, b"\"taskId\"")?;
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    let mut renamed = false;
    for at in AT {
        if let Some(slot) = v.pointer_mut(at) {
            if let Some(task) = slot.as_str() {
                *slot = Value::from(ids.wrap(pid, task));
                renamed = true;
            }
        }
    }
    if !renamed {
        return None;
    }
    // Serialized again: the client's id goes back exactly as it sent it.
    let f = Frame::parse_upstream(Bytes::from(serde_json::to_vec(&v).ok()?)).ok()?;
    let span = f.id_span()?;
    Some(f.splice(&mut [(span, raw_id.as_str())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Plain;
    impl TaskIds for Plain {
        fn wrap(&self, pid: u32, task: &str) -> String {
            format!("h.{pid}.{task}")
        }
    }

    #[test]
    fn task_ids_in_answers_become_handles() {
        let ids: Arc<dyn TaskIds> = Arc::new(Plain);
        let modern = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"task-1"}}"#,
        );
        let out = rename(&modern, &RawId::from_u64(1), &ids, 9).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["taskId"], "h.9.task-1");
        let legacy = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1.0,"result":{"task":{"taskId":"t","status":"working"}}}"#,
        );
        let out = rename(&legacy, &RawId::from_u64(1), &ids, 9).unwrap();
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""taskId":"h.9.t""#));
        let none = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
        assert!(rename(&none, &RawId::from_u64(1), &ids, 9).is_none());
    }
}
