//! Wiring the operator's console (`/ui` on the admin listener): whether it is on, and what its
//! routes share (the hub as [`Console`], the live feed, the authorization server's admins,
//! the reload channel, the main listener's public URL).

use std::sync::Arc;

use crate::admin::console::{Console, Deps};
pub(crate) use crate::admin::console::{Reloaded, Reloader};
use crate::config::admin::AdminConfig;
use crate::config::ServeConfig;
use crate::hub::Hub;
use crate::telemetry::live::Live;

/// Whether `cfg` serves the console: an admin listener without `--no-console`.
pub(crate) fn wanted(cfg: &ServeConfig) -> bool {
    cfg.admin.as_ref().is_some_and(|a| a.console)
}

/// What the console's routes share.
pub(crate) fn deps(
    hub: &Arc<Hub>,
    authz: Option<&Arc<crate::authz::AuthServer>>,
    admin: &AdminConfig,
    live: Arc<Live>,
    reload: Option<Reloader>,
) -> Deps {
    let _ = authz;
    let cfg = hub.main().config();
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    Deps {
        console: hub.clone() as Arc<dyn Console>,
        live,
        operators: None,
        token: admin.token.clone(),
        loopback: admin.listen.ip().is_loopback(),
        reload,
        audit: hub.main().audit().clone(),
        public_base: format!("{scheme}://{}", cfg.listen),
    }
}
