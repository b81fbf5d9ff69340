//! `mcp-relay oauth`: the operator's view of the built-in authorization server's state —
//! registered clients, grants (refresh-token families) and users — and what may be done to it
//! (remove a client, revoke grants, disable or enable a user), with the relay running or not.
//!
//! Owns only the command line, finding the state from the relay's config file (the
//! `[oauth_server]` section, validated by `config::oauth_server::build` as `serve` does, or
//! `--oauth-state-dir` / `--oauth-database-url`) and the output (tables, or `--json`, in
//! `oauth_cli/show.rs`). The state itself and its queries are `authz::store`. `cli.rs` wires
//! [`OAuthArgs`]; `command.rs` runs it.
//!
//! Exit codes: 0 done, 1 nothing to act on (an unknown client), 64 bad usage or config
//! (EX_USAGE), 69 the database cannot be opened (EX_UNAVAILABLE), 70 a query failed
//! (EX_SOFTWARE).

mod show;

use std::path::{Path, PathBuf};

use crate::authz::store::{self, Store, StoreError};
use crate::config::oauth_server::{self, OAuthServerConfig, Storage};

/// Bad usage or config (EX_USAGE, as `cli::EX_USAGE`; not imported: `cli` names this module).
const EX_USAGE: u8 = 64;
/// The database cannot be opened or reached (EX_UNAVAILABLE).
const EX_UNAVAILABLE: u8 = 69;
/// A statement failed on an open database (EX_SOFTWARE).
const EX_SOFTWARE: u8 = 70;

#[derive(Debug, clap::Args)]
pub(crate) struct OAuthArgs {
    /// The relay's config file (`serve --config`): its `[oauth_server]` says where the state
    /// is and who the local users are.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of the SQLite state (`oauth.db`), as `serve --oauth-state-dir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub oauth_state_dir: Option<PathBuf>,
    /// The PostgreSQL state (`postgres://…`, `env:NAME` or `file:PATH`), as `serve
    /// --oauth-database-url`.
    #[arg(long, global = true, value_name = "URL")]
    pub oauth_database_url: Option<String>,
    /// Lists as JSON (an array of objects) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: OAuthCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum OAuthCommand {
    /// Registered clients and cached client ID metadata documents.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Grants: one per authorization (a refresh-token family).
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Users: the local users of the config and those the operator disabled.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClientsCommand {
    /// Id, name, source, token endpoint auth method, redirect URIs, created.
    List,
    /// Remove a client: its grants are revoked and its consents forgotten.
    Revoke {
        /// The client's `client_id`.
        client_id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum GrantsCommand {
    /// Live grants, newest first: user, client, resource, scope, created, last used.
    List {
        /// Revoked grants too, with when and why.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a user's grants (all, or one client's) and forget their consents.
    Revoke {
        /// The user (`sub` of their tokens).
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Only this client's grants.
        #[arg(long, value_name = "CLIENT_ID")]
        client: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UsersCommand {
    /// Configured local users (roles, disabled in the config) and users the operator disabled.
    List,
    /// Disable a user (local or from the company identity provider): their login sessions
    /// end, their grants are revoked, and they cannot log in until enabled again.
    Disable {
        /// The user name.
        name: String,
    },
    /// Enable a user the operator disabled (`disabled = true` in the config still wins).
    Enable {
        /// The user name.
        name: String,
    },
}

/// Where the state is and, with a config file, the validated `[oauth_server]`.
struct Target {
    storage: Storage,
    cfg: Option<OAuthServerConfig>,
}

/// Runs an `oauth` subcommand for `main`: its exit code, problems on stderr.
pub(crate) fn command(args: OAuthArgs) -> u8 {
    let target = match target(&args) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                eprintln!("mcp-relay oauth: {e}");
            }
            return EX_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-relay oauth: runtime: {e}");
            return 1;
        }
    };
    if let Storage::Sqlite(dir) = &target.storage {
        let file = dir.join("oauth.db");
        if !file.is_file() {
            eprintln!(
                "mcp-relay oauth: no state at {} (has the relay run with this config?)",
                file.display()
            );
            return EX_UNAVAILABLE;
        }
    }
    runtime.block_on(async move {
        let store = match Store::open(&target.storage).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mcp-relay oauth: cannot open the state: {e}");
                return EX_UNAVAILABLE;
            }
        };
        let mut out = std::io::stdout().lock();
        match run(&store, &target, args, &mut out).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mcp-relay oauth: {e}");
                EX_SOFTWARE
            }
        }
    })
}

/// The state named by `--config` (and the flags over it), or by the flags alone.
fn target(args: &OAuthArgs) -> Result<Target, Vec<String>> {
    let env = &crate::secret::process_env;
    let mut errors = Vec::new();
    let Some(path) = &args.config else {
        let storage = match (&args.oauth_database_url, &args.oauth_state_dir) {
            (Some(url), _) => Storage::Postgres(database_url(url, env)?),
            (None, Some(dir)) => Storage::Sqlite(std::path::absolute(dir).unwrap_or(dir.clone())),
            (None, None) => {
                return Err(vec![
                    "say where the state is: --config FILE (the relay's), --oauth-state-dir DIR or --oauth-database-url URL".into(),
                ])
            }
        };
        return Ok(Target { storage, cfg: None });
    };
    let file = crate::config::security::read(path).map_err(|e| vec![e])?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let serve = serve_keys(path);
    let flags = oauth_server::Flags {
        issuer: serve.issuer,
        state_dir: args.oauth_state_dir.clone().or(serve.state_dir),
        database_url: args.oauth_database_url.clone().or(serve.database_url),
    };
    if file.oauth_server.is_none() && flags.issuer.is_none() {
        return Err(vec![format!(
            "--config {}: the authorization server is off (no [oauth_server])",
            path.display()
        )]);
    }
    match oauth_server::build(file.oauth_server, flags, &base, env, &mut errors) {
        Some(cfg) if errors.is_empty() => Ok(Target {
            storage: cfg.storage.clone(),
            cfg: Some(cfg),
        }),
        _ => Err(errors
            .into_iter()
            .map(|e| format!("--config {}: {e}", path.display()))
            .collect()),
    }
}

/// A `postgres://` URL given directly or as a secret reference.
fn database_url(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let url = if url.starts_with("env:") || url.starts_with("file:") {
        let bytes = crate::secret::resolve(url, env)
            .map_err(|e| vec![format!("--oauth-database-url: {e}")])?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        url.to_owned()
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(vec![
            "--oauth-database-url: must be a postgres:// URL".into()
        ]);
    }
    Ok(url)
}

/// `oauth_issuer`, `oauth_state_dir` and `oauth_database_url` of the file's `[serve]` table
/// (the flags' form in the file), which `serve` reads too.
fn serve_keys(path: &Path) -> oauth_server::Flags {
    let table: toml::Table = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default();
    let serve = table.get("serve").and_then(toml::Value::as_table);
    let key = |k: &str| {
        serve
            .and_then(|s| s.get(k))
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    oauth_server::Flags {
        issuer: key("oauth_issuer"),
        state_dir: key("oauth_state_dir").map(PathBuf::from),
        database_url: key("oauth_database_url"),
    }
}

/// Runs one subcommand against the open state; its exit code.
async fn run(
    store: &Store,
    target: &Target,
    args: OAuthArgs,
    out: &mut dyn std::io::Write,
) -> Result<u8, StoreError> {
    let now = store::now();
    let json = args.json;
    let say = |out: &mut dyn std::io::Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    match args.command {
        OAuthCommand::Clients(ClientsCommand::List) => {
            show::clients(&store.clients().await?, json, out);
        }
        OAuthCommand::Clients(ClientsCommand::Revoke { client_id }) => {
            if !store.delete_client(&client_id, now).await? {
                eprintln!("mcp-relay oauth: no client `{client_id}`");
                return Ok(1);
            }
            say(
                out,
                format!("client {client_id} removed; its grants revoked"),
            );
        }
        OAuthCommand::Grants(GrantsCommand::List { all }) => {
            show::grants(&store.families(!all).await?, json, out);
        }
        OAuthCommand::Grants(GrantsCommand::Revoke { user, client }) => {
            let n = store.revoke_grants(&user, client.as_deref(), now).await?;
            say(out, format!("{n} grant(s) of {user} revoked"));
        }
        OAuthCommand::Users(UsersCommand::List) => {
            let disabled = store.disabled_users().await?;
            show::users(target.cfg.as_ref(), &disabled, json, out);
        }
        OAuthCommand::Users(UsersCommand::Disable { name }) => {
            store.set_disabled(&name, true, now).await?;
            say(
                out,
                format!("user {name} disabled; sessions ended, grants revoked"),
            );
            unknown_user_note(target, &name);
        }
        OAuthCommand::Users(UsersCommand::Enable { name }) => {
            store.set_disabled(&name, false, now).await?;
            let in_config = target.cfg.as_ref().and_then(|c| c.user(&name));
            match in_config {
                Some(u) if u.disabled => say(
                    out,
                    format!("user {name} enabled by the operator, but still `disabled = true` in the config"),
                ),
                _ => say(out, format!("user {name} enabled")),
            }
        }
    }
    Ok(0)
}

/// A note on stderr when a disabled name is no local user (it may be an upstream one).
fn unknown_user_note(target: &Target, name: &str) {
    if let Some(cfg) = &target.cfg {
        if cfg.user(name).is_none() {
            eprintln!(
                "note: `{name}` is not a local user of the config (a user of the company identity provider, or a typo)"
            );
        }
    }
}
