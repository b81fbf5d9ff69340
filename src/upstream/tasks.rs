//! Task ids of a pool's children, renamed for clients (the Tasks extension; PROTOCOL.md §6).
//!
//! Stateless requests are spread over a pool, and each child mints its own task ids, so two
//! children may both have a `task-1`. The answer to a stateless request names a task in
//! `result.taskId` (2026-07-28 `CreateTaskResult`, `tasks/get`) or `result.task.taskId`
//! (2025-11-25); the relay replaces it with a handle the relay makes ([`TaskIds`], sealed and
//! bound to the caller in `era/state.rs`), which names the child, so `tasks/get`,
//! `tasks/result` and `tasks/cancel` with that handle reach the child that made the task
//! (`relay/tasks.rs` opens it). Answers without the `"taskId"` text are not parsed.

use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::jsonrpc::Frame;

/// Makes the handle a client sees for a child's task id.
pub(crate) trait TaskIds: Send + Sync + std::fmt::Debug {
    fn wrap(&self, pid: u32, task: &str) -> String;
}

/// The edits that put handles in place of the child's task ids in an answer (spans of
/// `frame`'s bytes, JSON string texts); empty when it names no task. Only the id strings are
/// replaced: the rest of the answer stays byte for byte.
pub(super) fn task_edits(
    frame: &Frame,
    ids: &Arc<dyn TaskIds>,
    pid: u32,
) -> Vec<(Range<usize>, String)> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<Found<'a>>,
    }
    #[derive(Deserialize)]
    struct Found<'a> {
        #[serde(rename = "taskId", borrow)]
        task_id: Option<&'a RawValue>,
        #[serde(borrow)]
        task: Option<Nested<'a>>,
    }
    #[derive(Deserialize)]
    struct Nested<'a> {
        #[serde(rename = "taskId", borrow)]
        task_id: Option<&'a RawValue>,
    }
    let bytes = frame.bytes();
    if memchr::memmem::find(bytes, b"\"taskId\"").is_none() {
        return Vec::new();
    }
    let Ok(answer) = serde_json::from_slice::<Answer<'_>>(bytes) else {
        return Vec::new();
    };
    let Some(found) = answer.result else {
        return Vec::new();
    };
    [found.task_id, found.task.and_then(|t| t.task_id)]
        .into_iter()
        .flatten()
        .filter_map(|raw| {
            let task: String = serde_json::from_str(raw.get()).ok()?;
            let span = crate::jsonrpc::span_in(bytes, raw.get())?;
            Some((span, Value::from(ids.wrap(pid, &task)).to_string()))
        })
        .collect()
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
        let apply = |line: &'static [u8]| {
            let f = Frame::parse_upstream(bytes::Bytes::from_static(line)).unwrap();
            let mut edits = task_edits(&f, &ids, 9);
            let n = edits.len();
            let mut refs: Vec<_> = edits
                .iter_mut()
                .map(|(r, t)| (r.clone(), t.as_str()))
                .collect();
            (f.splice(&mut refs), n)
        };
        let (out, n) = apply(br#"{"jsonrpc":"2.0","id":1e2,"result":{"resultType":"task","taskId":"task-1","n":1.0}}"#);
        assert_eq!(n, 1);
        assert_eq!(
            &out[..],
            br#"{"jsonrpc":"2.0","id":1e2,"result":{"resultType":"task","taskId":"h.9.task-1","n":1.0}}"#
        );
        let (out, n) = apply(
            br#"{"jsonrpc":"2.0","id":1,"result":{"task":{"taskId":"t","status":"working"}}}"#,
        );
        assert_eq!(n, 1);
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""taskId":"h.9.t""#));
        let (_, n) = apply(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
        assert_eq!(n, 0);
    }
}
