//! Legacy sessions in front of a modern-only child (issue 17 item 5): with `--child-era
//! modern` every legacy session is bound to its own instance of the relay's legacy face
//! (`face.rs`), an in-process server that talks to the relay's stateless pool of modern
//! children (`relay/modern.rs`), instead of to a child of its own. The face is made once per
//! relay, with the pool, at the first `initialize`. `auto` keeps binding legacy sessions to
//! the child itself (a modern child found by the probe may still be dual-era), and so does
//! `per-identity` mode (its stateless pool would mix identities).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tracing::{info, warn};

use super::children::Backend;
use super::modern::ModernPool;
use super::Relay;
use crate::caller::Caller;
use crate::config::{ChildEra, SessionMode};
use crate::error::Error;
use crate::face::{self, Face};
use crate::upstream::audience::Audience;
use crate::upstream::{ServerSpec, Upstream};

impl face::Children for ModernPool {
    fn upstream(&self) -> BoxFuture<'_, Result<Arc<Upstream>, Error>> {
        Box::pin(ModernPool::upstream(self))
    }
}

impl Relay {
    /// The legacy face legacy sessions are bound to, when the child is modern-only.
    pub(super) async fn legacy_face(&self) -> Result<Option<Arc<ServerSpec>>, Error> {
        if self.cfg.child_era != ChildEra::Modern
            || self.cfg.session_mode == SessionMode::PerIdentity
        {
            return Ok(None);
        }
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let super::modern::Served::Native(pool) =
            self.modern.found(&self.cfg, &self.counters).await?
        else {
            return Ok(None);
        };
        let spec = self.face.get_or_init(|| {
            info!("the child is modern-only: legacy sessions are served by the relay");
            let pool: Arc<dyn face::Children> = pool;
            let face = Face::new(pool, self.cfg.buffer, self.cfg.child.max_line());
            Arc::new(ServerSpec::InProcess(Arc::new(face)))
        });
        Ok(Some(spec.clone()))
    }

    /// A new legacy session's own instance of the face.
    pub(super) fn bind_face(&self, face: &ServerSpec, caller: &Caller) -> Result<Backend, Error> {
        let limits = self.cfg.upstream.clone();
        let counters = self.counters.clone();
        match Upstream::spawn(face, Some(caller), limits, Audience::new(false), counters) {
            Ok(up) => Ok(Backend::Own(up)),
            Err(e) => {
                warn!(error = %e, "legacy face failed to start");
                Err(Error::ChildUnavailable)
            }
        }
    }
}
