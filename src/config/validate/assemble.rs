//! Puts validated pieces together into a [`ServeConfig`]: the flags of `serve` once every
//! check has passed ([`serve_config`]), and the fixed configuration of `connect`
//! ([`ServeConfig::bridge`]). No checks here: they are in `config/validate.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::{Env, Server};
use crate::config::args::ServeArgs;
use crate::config::security::{self, Security, Shorthands};
use crate::config::{self, ChildEra, ResponseMode, ServeConfig, SessionMode};
use crate::policy::OriginGuard;
use crate::session::stream::BufferLimits;
use crate::upstream::remote::RemoteSpec;
use crate::upstream::stdio::ChildSpec;
use crate::upstream::{Limits, ServerSpec};

/// What the checks produced, beside the flags themselves.
pub(super) struct Parts {
    pub(super) server: Server,
    pub(super) origin: OriginGuard,
    pub(super) security: Security,
    pub(super) tls: Option<crate::tls::TlsFiles>,
    pub(super) admin: Option<config::admin::AdminConfig>,
    pub(super) otel: Option<crate::telemetry::otel::OtelConfig>,
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The validated `serve` configuration. Long because it is one struct literal: every field of
/// [`ServeConfig`], each from its flag.
pub(super) fn serve_config(args: ServeArgs, parts: Parts, env: Env<'_>) -> ServeConfig {
    let Parts {
        server,
        origin,
        security,
        tls,
        admin,
        otel,
    } = parts;
    let child = match server {
        Server::Remote(remote) => ServerSpec::Remote(remote),
        Server::Command(program) => {
            let mut child_env: Vec<(String, String)> = config::DEFAULT_PASS_ENV
                .iter()
                .map(|s| s.to_string())
                .chain(args.pass_env)
                .filter_map(|k| env(&k).map(|v| (k, v)))
                .collect();
            child_env.extend(args.env);
            ServerSpec::Command(ChildSpec {
                program,
                args: args.command.get(1..).unwrap_or_default().to_vec(),
                env: child_env,
                cwd: args.cwd,
                max_line: usize_of(args.max_line),
                stop_timeout: args.child_stop_timeout,
            })
        }
    };
    let method_timeouts: Vec<(Box<str>, Duration)> = args
        .method_timeout
        .iter()
        .map(|(m, t)| (m.as_str().into(), *t))
        .collect();
    let mut security = security;
    let oauth_server = security.oauth_server.take();
    let cluster = security.cluster.take().map(|mut c| {
        // A forward waits for the owner's answer as long as a request may (by default).
        c.forward_timeout.get_or_insert(args.request_timeout);
        Arc::new(crate::cluster::Cluster::new(c))
    });
    let response_cache = security.cache.take().map(Arc::new);
    let (policy, audit, mtls) = security.into_policy(origin);
    // The fleet's limits go through the cluster's store (kept with it across SIGHUP).
    policy
        .limits
        .share(cluster.as_ref().and_then(|c| c.store().cloned()));
    ServeConfig {
        oauth_server,
        cluster,
        response_cache,
        listen: args.listen,
        path: args.path,
        tcp_listen: args.tcp_listen,
        tls,
        tcp_max_line: usize_of(args.tcp_max_line),
        tcp_idle: args.tcp_idle,
        ws_path: args.ws_path,
        ws_max_message: usize_of(args.ws_max_message),
        ws_max_frame: usize_of(args.ws_max_frame),
        child,
        policy,
        audit,
        mtls,
        session_mode: args.session_mode,
        child_era: args.child_era,
        era: args.era,
        input_wait: args.input_timeout,
        cache_ttl: args.cache_ttl,
        cache_public: args.cache_scope == config::CacheScope::Public,
        children: args.children,
        spare_children: args.spare_children,
        max_sessions: args.max_sessions,
        max_connections: args.max_connections,
        admin,
        otel,
        forward_hello: false,
        stdio_roles: Vec::new(),
        max_sessions_per_principal: args.max_sessions_per_principal,
        session_ttl: args.session_ttl,
        session_idle: args.session_idle_timeout,
        max_body: args.max_body,
        body_idle: args.body_idle_timeout,
        upstream: Limits {
            request_timeout: args.request_timeout,
            request_timeout_max: args.request_timeout_max,
            inflight_per_session: args.max_inflight,
            inflight_per_child: args.max_inflight_per_child,
            method_timeouts: method_timeouts.into(),
        },
        buffer: BufferLimits {
            events: args.replay_events,
            bytes: usize_of(args.replay_bytes),
        },
        sse_keep_alive: args.sse_keep_alive,
        sse_close_after: args.sse_close_after,
        sse_retry: args.sse_retry,
        response_mode: args.response_mode,
        json_hold: args.json_hold,
        shutdown_grace: args.shutdown_grace,
        servers: Vec::new(),
        endpoints: Vec::new(),
        aggregate: Default::default(),
        server_name: None,
        mount: String::new(),
    }
}

// === impl ServeConfig ===

impl ServeConfig {
    /// The configuration `connect` runs with: the stdio front and one shared, supervised link
    /// to `remote`, which is initialized with the host's own `initialize`. Everything else is
    /// `serve`'s default (a test pins that they agree); only the trace exporter reads `env`
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`). Long because it is one struct literal.
    pub(crate) fn bridge(
        remote: RemoteSpec,
        request_timeout: Duration,
        env: Env<'_>,
    ) -> Result<ServeConfig, Vec<String>> {
        const SECOND: Duration = Duration::from_secs(1);
        const MIB: usize = 1 << 20;
        const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(600);
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
        let mut errors = Vec::new();
        let otel = crate::telemetry::otel::OtelConfig::build(None, env)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let origin = config::origin_guard(&listen, &[], &[]).map_err(|e| errors.push(e));
        let shorthands = Shorthands {
            jwt_issuer: "mcp-relay".into(),
            loopback: true,
            ..Shorthands::default()
        };
        let security =
            security::build(shorthands, format!("http://{listen}/mcp"), env, &mut errors);
        if request_timeout > REQUEST_TIMEOUT_MAX {
            errors.push("--request-timeout must not exceed --request-timeout-max".into());
        }
        let (Ok(origin), Some(security), true) = (origin, security, errors.is_empty()) else {
            return Err(errors);
        };
        let (policy, audit, mtls) = security.into_policy(origin);
        Ok(ServeConfig {
            oauth_server: None,
            cluster: None,
            response_cache: None,
            listen,
            path: "/mcp".into(),
            tcp_listen: None,
            tls: None,
            tcp_max_line: 4 * MIB,
            tcp_idle: 300 * SECOND,
            ws_path: "/ws".into(),
            ws_max_message: 4 * MIB,
            ws_max_frame: MIB,
            child: ServerSpec::Remote(remote),
            policy,
            audit,
            mtls,
            session_mode: SessionMode::Shared,
            child_era: ChildEra::Auto,
            era: config::EraPolicy::Auto,
            input_wait: 300 * SECOND,
            cache_ttl: Duration::ZERO,
            cache_public: false,
            children: 1,
            spare_children: 0,
            max_sessions: 10_000,
            max_connections: 10_000,
            admin: None,
            otel,
            forward_hello: true,
            stdio_roles: Vec::new(),
            max_sessions_per_principal: 64,
            session_ttl: 1800 * SECOND,
            session_idle: 300 * SECOND,
            max_body: 4 << 20,
            body_idle: 30 * SECOND,
            upstream: Limits {
                request_timeout,
                request_timeout_max: REQUEST_TIMEOUT_MAX,
                inflight_per_session: 64,
                inflight_per_child: 256,
                method_timeouts: Arc::from([]),
            },
            buffer: BufferLimits {
                events: 1000,
                bytes: 8 * MIB,
            },
            sse_keep_alive: 15 * SECOND,
            sse_close_after: None,
            sse_retry: SECOND,
            response_mode: ResponseMode::Sse,
            json_hold: 5 * SECOND,
            shutdown_grace: 15 * SECOND,
            servers: Vec::new(),
            endpoints: Vec::new(),
            aggregate: Default::default(),
            server_name: None,
            mount: String::new(),
        })
    }
}
