//! The systems' names: the `Kind` of each system under test, its name in `BENCH_SYSTEMS` and the
//! report, the groups `BENCH_SYSTEMS` accepts, and what kind of system each is (relay, peer,
//! floor; shared child; authenticated; fleet). How each is started is in `systems.rs`.

use anyhow::{bail, Result};

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// mcp-relay, per-session children, SSE answers (the default).
    RelaySse,
    /// mcp-relay `--response-mode json`.
    RelayJson,
    /// mcp-relay as `RelaySse`, the client speaking 2026-07-28 (stateless `tools/call`, no
    /// session) to the legacy fixture: the relay translates (initialized children of a pool).
    RelayModern,
    /// mcp-relay with two named servers `a` and `b` (both the fixture) from a config file;
    /// the client on the aggregate's main path `/mcp`, calling `a__echo`.
    RelayAggregate,
    /// The same multi-server relay; the client on server `a`'s own path `/servers/a/mcp`,
    /// calling `echo`.
    RelayServer,
    /// mcp-relay as `RelaySse` with `--jwt-secret` (HS256, a random secret in its
    /// environment): every request carries a token minted once by `token jwt`.
    RelayJwt,
    /// mcp-relay as `RelaySse` as its own authorization server (`[oauth_server]`): every
    /// request carries the relay's own ES256 access token, obtained once per start through
    /// registration, login, consent and the code exchange.
    RelayOauth,
    /// mcp-relay as `RelaySse`, a replica of a fleet (`--node r0`, no peers): the cost of
    /// owner-tagged ids on a local call.
    RelayNode,
    /// Two replicas `r0` and `r1`: sessions opened on `r0`, every call sent to `r1`, which
    /// forwards it to `r0` (issue 19).
    RelayForwarded,
    /// mcp-relay as `RelayJwt` with rate limits on (global and per principal, high enough
    /// never to refuse) and the concurrency cap, in this process's memory.
    RelayLimits,
    /// The same limits shared through a Redis the harness starts (`[cluster.store]`): one
    /// pipelined round trip for the buckets and a lease per request.
    RelaySharedLimits,
    /// `RelaySse` with `--admin-listen` and three console live streams open (issue 20).
    RelayConsole,
    /// `RelaySse` with `--spare-children 2`: per-session children started ahead of their
    /// sessions (no shared-mode run: spares are a per-session setting).
    RelaySpare,
    /// The harness speaking stdio to the fixture directly: the physical floor.
    FloorStdio,
    /// A bare axum responder in a separate process, no child: the HTTP stack's floor.
    FloorHttp,
    /// The smallest correct relay, in a separate process: axum, one shared fixture child over
    /// pipes, ids rewritten by a counter, answers routed by a map (`floor_relay.rs`).
    FloorRelay,
    /// npm `supergateway --stateful` (one child per session).
    Supergateway,
    /// npm `mcp-proxy` (punkpeye; one child shared by every session).
    McpProxyNode,
    /// PyPI `mcp-proxy` (sparfenyuk; one child shared by every session).
    McpProxyPy,
    /// agentgateway (Rust), a stdio target: `agentgateway.rs`.
    Agentgateway,
}

pub(crate) const ALL: [Kind; 20] = [
    Kind::RelaySse,
    Kind::RelayJson,
    Kind::RelayModern,
    Kind::RelayAggregate,
    Kind::RelayServer,
    Kind::RelayJwt,
    Kind::RelayOauth,
    Kind::RelayNode,
    Kind::RelayForwarded,
    Kind::RelayLimits,
    Kind::RelaySharedLimits,
    Kind::RelayConsole,
    Kind::RelaySpare,
    Kind::FloorStdio,
    Kind::FloorHttp,
    Kind::FloorRelay,
    Kind::Supergateway,
    Kind::McpProxyNode,
    Kind::McpProxyPy,
    Kind::Agentgateway,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RelaySse => "relay-sse",
            Kind::RelayJson => "relay-json",
            Kind::RelayModern => "relay-modern",
            Kind::RelayAggregate => "relay-aggregate",
            Kind::RelayServer => "relay-server",
            Kind::RelayJwt => "relay-jwt",
            Kind::RelayOauth => "relay-oauth",
            Kind::RelayNode => "relay-node",
            Kind::RelayForwarded => "relay-forwarded",
            Kind::RelayLimits => "relay-limits",
            Kind::RelaySharedLimits => "relay-shared-limits",
            Kind::RelayConsole => "relay-console",
            Kind::RelaySpare => "relay-spare",
            Kind::FloorStdio => "floor-stdio",
            Kind::FloorHttp => "floor-http",
            Kind::FloorRelay => "floor-relay",
            Kind::Supergateway => "supergateway",
            Kind::McpProxyNode => "mcp-proxy-node",
            Kind::McpProxyPy => "mcp-proxy-py",
            Kind::Agentgateway => "agentgateway",
        }
    }

    /// Names in `BENCH_SYSTEMS`; `relay` selects both single-server relay modes, `servers`
    /// the single relay with the multi-server relay's two paths, `eras` legacy sessions (SSE
    /// and JSON answers) and a 2026-07-28 client on the same relay, `auth` the single relay
    /// without and with each kind of bearer token, `fleet` the single relay, a replica of a
    /// fleet, a forwarded call and local against shared limits, `console` the single relay
    /// with and without its console's streams, `churn` the single relay without and with spare
    /// children and the stdio floor, `floors` the three floors, `peers` the peers.
    pub(crate) fn parse(s: &str) -> Result<Vec<Kind>> {
        Ok(match s {
            "relay" => vec![Kind::RelaySse, Kind::RelayJson],
            "servers" => vec![Kind::RelaySse, Kind::RelayAggregate, Kind::RelayServer],
            "eras" => vec![Kind::RelaySse, Kind::RelayJson, Kind::RelayModern],
            "auth" => vec![Kind::RelaySse, Kind::RelayJwt, Kind::RelayOauth],
            "floors" => vec![Kind::FloorStdio, Kind::FloorHttp, Kind::FloorRelay],
            "console" => vec![Kind::RelaySse, Kind::RelayConsole],
            "churn" => vec![Kind::RelaySse, Kind::RelaySpare, Kind::FloorStdio],
            "fleet" => vec![
                Kind::RelaySse,
                Kind::RelayNode,
                Kind::RelayForwarded,
                Kind::RelayJwt,
                Kind::RelayLimits,
                Kind::RelaySharedLimits,
            ],
            "peers" => vec![
                Kind::Supergateway,
                Kind::McpProxyNode,
                Kind::McpProxyPy,
                Kind::Agentgateway,
            ],
            _ => match ALL.iter().find(|k| k.name() == s) {
                Some(k) => vec![*k],
                None => bail!(
                    "unknown system {s:?} (known: relay, servers, eras, auth, fleet, console, churn, floors, peers, {:?})",
                    ALL.map(Kind::name)
                ),
            },
        })
    }

    /// mcp-relay in any of its forms (each also has a shared-mode process for (d) and (e)).
    pub(crate) fn is_relay(self) -> bool {
        matches!(
            self,
            Kind::RelaySse
                | Kind::RelayJson
                | Kind::RelayModern
                | Kind::RelayAggregate
                | Kind::RelayServer
                | Kind::RelayJwt
                | Kind::RelayOauth
                | Kind::RelayNode
                | Kind::RelayForwarded
                | Kind::RelayLimits
                | Kind::RelaySharedLimits
                | Kind::RelayConsole
                | Kind::RelaySpare
        )
    }

    /// A relay form that also gets a second, shared-mode process (`Mode::Shared`).
    pub(crate) fn has_shared_mode(self) -> bool {
        self.is_relay() && !self.is_modern() && !self.is_fleet() && self != Kind::RelaySpare
    }

    /// The relay with authentication (a bearer token on every request).
    pub(crate) fn is_auth(self) -> bool {
        matches!(
            self,
            Kind::RelayJwt | Kind::RelayOauth | Kind::RelayLimits | Kind::RelaySharedLimits
        )
    }

    /// An HS256 token from `token jwt` on every request.
    pub(crate) fn is_jwt(self) -> bool {
        matches!(
            self,
            Kind::RelayJwt | Kind::RelayLimits | Kind::RelaySharedLimits
        )
    }

    /// A system of several processes (a fleet's replicas, a store): no shared-mode run.
    pub(crate) fn is_fleet(self) -> bool {
        matches!(
            self,
            Kind::RelayNode | Kind::RelayForwarded | Kind::RelayLimits | Kind::RelaySharedLimits
        )
    }

    /// The client speaks 2026-07-28: no sessions, so only (a), (b) and (c) apply.
    pub(crate) fn is_modern(self) -> bool {
        self == Kind::RelayModern
    }

    /// The multi-server relay (either path).
    pub(crate) fn is_multi(self) -> bool {
        matches!(self, Kind::RelayAggregate | Kind::RelayServer)
    }

    /// The MCP path the client uses and the echo tool's name there.
    pub(crate) fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Kind::RelayAggregate => ("/mcp", "a__echo"),
            Kind::RelayServer => ("/servers/a/mcp", "echo"),
            _ => ("/mcp", "echo"),
        }
    }

    pub(crate) fn is_peer(self) -> bool {
        matches!(
            self,
            Kind::Supergateway | Kind::McpProxyNode | Kind::McpProxyPy | Kind::Agentgateway
        )
    }

    /// Whether every session shares one child in the system's only mode (the relay has a
    /// shared mode too, started separately: `Mode::Shared`).
    pub(crate) fn shared_child(self) -> bool {
        matches!(
            self,
            Kind::McpProxyNode | Kind::McpProxyPy | Kind::FloorStdio | Kind::FloorRelay
        )
    }
}
