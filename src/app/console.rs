//! Wiring the operator's console (`/ui` on the admin listener): whether it is on, and what its
//! routes share (the hub as [`Console`], the live feed, the authorization server's admins as
//! [`Operators`], the reload channel, the main listener's public URL).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::admin::console::{Console, Deps, Operators};
pub(crate) use crate::admin::console::{Reloaded, Reloader};
use crate::config::admin::AdminConfig;
use crate::config::ServeConfig;
use crate::hub::Hub;
use crate::telemetry::live::Live;

/// Whether `cfg` serves the console: an admin listener without `--no-console`.
pub(crate) fn wanted(cfg: &ServeConfig) -> bool {
    cfg.admin.as_ref().is_some_and(|a| a.console)
}

/// What the console's routes share; `bound` is the main listener's address.
pub(crate) fn deps(
    hub: &Arc<Hub>,
    authz: Option<&Arc<crate::authz::AuthServer>>,
    admin: &AdminConfig,
    live: Arc<Live>,
    reload: Option<Reloader>,
    bound: SocketAddr,
) -> Deps {
    // Users log in when the authorization server has administrators (at startup).
    let operators = authz
        .filter(|a| a.cfg().users.iter().any(crate::authz::is_operator))
        .map(|a| a.clone() as Arc<dyn Operators>);
    let tls = hub.main().config().tls.is_some();
    let issuer = authz.map(|a| a.cfg().issuer.clone());
    let hosts = hub.main().policy().origin.hosts.clone();
    Deps {
        console: hub.clone() as Arc<dyn Console>,
        live,
        operators,
        token: admin.token.clone(),
        loopback: admin.listen.ip().is_loopback(),
        reload,
        audit: hub.main().audit().clone(),
        public_base: public_base(issuer.as_deref(), &hosts, tls, bound),
        gate: Arc::default(),
    }
}

/// Serves the admin listener's routes until `stop`, with each client's address (the
/// console's login throttle counts per address).
pub(crate) fn serve_admin(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(stop.cancelled_owned());
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "admin listener failed");
        }
    });
}

/// The main listener's public base URL: the authorization server's issuer's origin when it is
/// on (clients already know the relay by it), else the first `--allowed-host` with the
/// listener's scheme and port, else the listener's own address.
fn public_base(issuer: Option<&str>, hosts: &[String], tls: bool, bound: SocketAddr) -> String {
    if let Some(origin) = issuer
        .and_then(|i| url::Url::parse(i).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
    {
        return origin;
    }
    let scheme = if tls { "https" } else { "http" };
    let default_port = if tls { 443 } else { 80 };
    match hosts.first() {
        Some(h)
            if h.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
        {
            format!("{scheme}://{h}")
        }
        Some(h) if bound.port() == default_port => format!("{scheme}://{h}"),
        Some(h) => format!("{scheme}://{h}:{}", bound.port()),
        None => format!("{scheme}://{bound}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_base_is_the_issuer_then_the_allowed_host_then_the_address() {
        let at: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let hosts = vec!["mcp.example.com".to_owned()];
        let b = public_base(Some("https://relay.example.com/base"), &hosts, true, at);
        assert_eq!(b, "https://relay.example.com");
        assert_eq!(
            public_base(None, &hosts, true, at),
            "https://mcp.example.com:8443"
        );
        let lb = vec!["mcp.example.com:443".to_owned()];
        assert_eq!(
            public_base(None, &lb, true, at),
            "https://mcp.example.com:443"
        );
        let p443: SocketAddr = "0.0.0.0:443".parse().unwrap();
        assert_eq!(
            public_base(None, &hosts, true, p443),
            "https://mcp.example.com"
        );
        assert_eq!(public_base(None, &[], false, at), "http://127.0.0.1:8443");
    }
}
