//! What the operator's console reads of a hub's relays (`admin/console.rs`'s [`Console`]):
//! each server with its children, each open session, what clients can connect to, and the
//! operator's actions on them.

use serde_json::{json, Value};

use super::Hub;
use crate::admin::console::{Console, ServerView, SessionView, Target};

#[async_trait::async_trait]
impl Console for Hub {
    fn servers(&self) -> Vec<ServerView> {
        Vec::new()
    }

    fn sessions(&self) -> Vec<SessionView> {
        Vec::new()
    }

    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }

    fn end_session(&self, _id: &str) -> bool {
        false
    }

    fn revoke(&self, _principal: &str) -> usize {
        0
    }

    fn restart(&self, _name: &str) -> Result<usize, String> {
        Err("not yet".into())
    }

    async fn deep_health(&self) -> Value {
        json!({})
    }
}
