//! [`load`]: a `serve` command line to its [`ServeConfig`], with several servers when the
//! config file has `[servers.NAME]` tables or `--mcp-servers FILE` lists several entries (and
//! no `--server` picks one). Each named server is validated as a single server would be: the
//! relay's command line (its `[serve]` spliced in) followed by the server's own flags, so a
//! server's keys win over `[serve]`'s and every problem a single server would have is
//! reported, prefixed `servers.NAME:`. The endpoints' globs are checked against the servers.
//!
//! Not here: reading the tables from the file (`config/file/servers.rs`) and the checks of one
//! server (`config/validate.rs`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;

use super::Env;
use crate::config::args::{self, ServeArgs};
use crate::config::file::servers::{ServerTable, Tables};
use crate::config::servers::{
    self, name_is_valid, AggregateSpec, EndpointSpec, NamedServer, Prefix,
};
use crate::config::{file, mcp_servers, ServeConfig};

/// The configuration a `serve` (or `stdio`) command line runs with: `config::load`.
pub(crate) fn load(argv: Vec<OsString>, env: Env<'_>) -> Result<ServeConfig, Vec<String>> {
    let argv = file::expand_argv(argv)?;
    let args = args::parse(&argv)?;
    let (tables, mut errors) = match &args.config {
        Some(f) => file::servers::read(f),
        None => Default::default(),
    };
    // The tables' key-level problems come with every other problem of the servers.
    let result = plan(&args, &tables).and_then(|plan| match plan {
        Plan::Single => super::serve(args, env),
        Plan::One(table) => one(&argv, &table, env),
        Plan::Many(servers) => many(&argv, args, &servers, tables, env),
    });
    match result {
        Ok(cfg) if errors.is_empty() => Ok(cfg),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.extend(e);
            Err(errors)
        }
    }
}

/// What the command line serves.
enum Plan {
    /// One server, as always.
    Single,
    /// One `[servers.NAME]`, picked with `--server NAME`, served alone.
    One(ServerTable),
    /// Named servers: the tables, or the entries of `--mcp-servers` (`--server KEY` each).
    Many(Vec<ServerTable>),
}

fn plan(args: &ServeArgs, tables: &Tables) -> Result<Plan, Vec<String>> {
    if !tables.names.is_empty() {
        return from_tables(args, tables);
    }
    if let (Some(file), None) = (&args.mcp_servers, &args.server) {
        // A file that cannot be read is reported by the single-server path, as it always was.
        let names = mcp_servers::names(file).unwrap_or_default();
        if names.len() > 1 {
            return from_entries(file, names).map(Plan::Many);
        }
    }
    if let (Some(name), None) = (&args.server, &args.mcp_servers) {
        return Err(vec![format!(
            "--server {name}: picks an entry of --mcp-servers FILE or a [servers.{name}] table of --config, and there is neither"
        )]);
    }
    if !tables.endpoints.is_empty() || tables.aggregate.is_some() {
        return Err(vec![
            "[endpoints] and [aggregate] need named servers: [servers.NAME] tables, or --mcp-servers with several entries".into(),
        ]);
    }
    Ok(Plan::Single)
}

fn from_tables(args: &ServeArgs, tables: &Tables) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    if !args.command.is_empty() || args.upstream.is_some() {
        errors.push(
            "[servers] in --config: each server gives its `command` or `upstream` in its [servers.NAME] table, so there is none in [serve] nor after `--`".into(),
        );
    }
    if args.mcp_servers.is_some() {
        errors.push(
            "--mcp-servers and [servers] in --config: give the servers one way (a [servers.NAME] table takes `mcp_servers` and `server`)".into(),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(name) = &args.server else {
        return Ok(Plan::Many(tables.servers.clone()));
    };
    if let Some(table) = tables.servers.iter().find(|s| &s.name == name) {
        return Ok(Plan::One(table.clone()));
    }
    if tables.names.contains(name) {
        // Its table has problems, already said.
        return Err(Vec::new());
    }
    Err(vec![format!(
        "--server {name}: no [servers.{name}] in --config (it has: {})",
        tables.names.join(", ")
    )])
}

/// Every entry of `--mcp-servers FILE` as a named server, named by its key.
fn from_entries(
    file: &std::path::Path,
    names: Vec<String>,
) -> Result<Vec<ServerTable>, Vec<String>> {
    let bad: Vec<String> = names
        .iter()
        .filter(|n| !name_is_valid(n))
        .map(|n| {
            format!(
                "--mcp-servers {}: `{n}` cannot name a server (1-32 of a-z, 0-9, _ and -): rename it in the file, or serve that entry alone with --server '{n}'",
                file.display()
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(bad);
    }
    Ok(names
        .into_iter()
        .map(|name| ServerTable {
            flags: vec!["--server".into(), name.clone()],
            name,
            ..ServerTable::default()
        })
        .collect())
}

/// `argv` (without its `--server`) followed by the server's own flags and command.
fn server_argv(argv: &[OsString], table: &ServerTable) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len() + table.flags.len());
    let mut skip = false;
    for a in argv {
        if std::mem::take(&mut skip) {
            continue;
        }
        match a.to_str() {
            Some("--server") => skip = true,
            Some(s) if s.starts_with("--server=") => {}
            _ => out.push(a.clone()),
        }
    }
    out.extend(table.argv());
    out
}

/// A clap message as one line (its usage part left out).
fn one_line(errors: Vec<String>) -> Vec<String> {
    errors
        .into_iter()
        .map(|e| {
            let first = e.split("\n\n").next().unwrap_or_default();
            first.trim_start_matches("error: ").replace('\n', " ")
        })
        .collect()
}

/// One named server, validated as a single server.
fn validate_one(
    argv: &[OsString],
    table: &ServerTable,
    env: Env<'_>,
) -> Result<ServeConfig, Vec<String>> {
    let mut args = args::parse(&server_argv(argv, table)).map_err(one_line)?;
    args.spare_children_inherited = !table.flags.iter().any(|f| f == "--spare-children");
    let mut cfg = super::serve(args, env)?;
    cfg.server_name = Some(table.name.clone());
    Ok(cfg)
}

/// `--server NAME` with `[servers]`: that server alone, as a single-server relay.
fn one(argv: &[OsString], table: &ServerTable, env: Env<'_>) -> Result<ServeConfig, Vec<String>> {
    validate_one(argv, table, env).map_err(|e| prefixed(&table.name, e))
}

fn prefixed(name: &str, errors: Vec<String>) -> Vec<String> {
    errors
        .into_iter()
        .map(|e| format!("servers.{name}: {e}"))
        .collect()
}

/// Several servers: the relay's own configuration (listeners, security, the aggregate's
/// sessions) from the command line, each server's from it plus its flags. Every server shares
/// the relay's request policy, audit and mTLS settings (one set of credentials, rate limits
/// and audit log) and its `[cluster]` (one node, one store connection). The relay's `child` is the first server's (unused: each server has its
/// own), its `session_mode` that of `[serve]` (unused too).
fn many(
    argv: &[OsString],
    mut args: ServeArgs,
    tables: &[ServerTable],
    file: Tables,
    env: Env<'_>,
) -> Result<ServeConfig, Vec<String>> {
    let fronts = (args.listen, args.tcp_listen);
    // What says which server and how to reach it is each server's, checked with it.
    args.mcp_servers = None;
    args.server = None;
    args.upstream_ca = None;
    args.upstream_auth = Default::default();
    let main = super::serve_with(args, env, false);
    // The relay's own problems are every server's too: said once, unprefixed.
    let known = main.as_ref().err().cloned().unwrap_or_default();
    let mut errors = known.clone();
    let mut named = Vec::new();
    for table in tables {
        match validate_one(argv, table, env) {
            Ok(mut cfg) => {
                cfg.tcp_listen = table.tcp_listen;
                named.push(cfg);
            }
            Err(e) => {
                let new = e.into_iter().filter(|e| !known.contains(e)).collect();
                errors.extend(prefixed(&table.name, new));
            }
        }
    }
    // Servers whose tables have problems are configured too (their problems are said).
    let names: Vec<&str> = match file.names.is_empty() {
        true => tables.iter().map(|s| s.name.as_str()).collect(),
        false => file.names.iter().map(String::as_str).collect(),
    };
    errors.extend(endpoint_errors(&file.endpoints, &names));
    errors.extend(tcp_errors(fronts, tables));
    errors.extend(separator_errors(&names, file.aggregate.as_ref()));
    let (Ok(mut main), true) = (main, errors.is_empty() && named.len() == names.len()) else {
        return Err(errors);
    };
    if let Some(first) = named.first() {
        main.child = first.child.clone();
    }
    main.servers = named
        .into_iter()
        .map(|mut cfg| {
            cfg.policy = main.policy.clone();
            cfg.audit = main.audit.clone();
            cfg.mtls = main.mtls.clone();
            // One `[cluster]` per process: one store connection, one set of leases.
            cfg.cluster = main.cluster.clone();
            NamedServer {
                name: cfg.server_name.clone().unwrap_or_default(),
                cfg: Arc::new(cfg),
            }
        })
        .collect();
    main.endpoints = file.endpoints;
    main.aggregate = file.aggregate.unwrap_or_default();
    Ok(main)
}

/// With prefixes, servers `a` and `a__b` would both claim the tool `a__b__x`: no server name
/// may hold the separator.
fn separator_errors(names: &[&str], aggregate: Option<&AggregateSpec>) -> Vec<String> {
    let spec = aggregate.cloned().unwrap_or_default();
    if spec.prefix != Prefix::Always {
        return Vec::new();
    }
    let sep = &spec.separator;
    names
        .iter()
        .filter(|n| n.contains(sep.as_str()))
        .map(|n| format!("servers.{n}: the name holds the aggregate's separator `{sep}`, so its tools' names could be another server's: rename it, or set another [aggregate] separator"))
        .collect()
}

/// A server's own TCP front may not take the address of another front.
fn tcp_errors(
    (listen, tcp): (SocketAddr, Option<SocketAddr>),
    tables: &[ServerTable],
) -> Vec<String> {
    let mut taken: Vec<(String, SocketAddr)> = vec![("--listen".into(), listen)];
    taken.extend(tcp.map(|a| ("--tcp-listen".to_owned(), a)));
    let mut errors = Vec::new();
    for t in tables {
        let Some(addr) = t.tcp_listen.filter(|a| a.port() != 0) else {
            continue;
        };
        if let Some((owner, _)) = taken.iter().find(|(_, a)| *a == addr) {
            errors.push(format!(
                "servers.{}.tcp_listen: {addr} is taken by {owner}",
                t.name
            ));
        }
        taken.push((format!("servers.{}.tcp_listen", t.name), addr));
    }
    errors
}

/// Endpoints name configured servers, publish something, and their globs compile.
fn endpoint_errors(endpoints: &[EndpointSpec], names: &[&str]) -> Vec<String> {
    let mut errors = Vec::new();
    let configured = names.join(", ");
    for ep in endpoints {
        let at = format!("endpoints.{}", ep.name);
        if ep.servers.is_empty()
            && ep.tools.is_empty()
            && ep.prompts.is_empty()
            && ep.resources.is_empty()
        {
            errors.push(format!(
                "{at}: publishes nothing: give `servers`, `tools`, `prompts` or `resources`"
            ));
        }
        for s in ep.servers.iter().filter(|s| !names.contains(&s.as_str())) {
            errors.push(format!(
                "{at}.servers: no server named `{s}` (configured: {configured})"
            ));
        }
        for (kind, globs) in [
            ("tools", &ep.tools),
            ("prompts", &ep.prompts),
            ("resources", &ep.resources),
        ] {
            for g in globs {
                if let Some(e) = glob_error(g, names) {
                    errors.push(format!("{at}.{kind}: {e}"));
                }
            }
        }
    }
    errors
}

/// What is wrong with one glob over qualified names (`server:name`), if anything.
fn glob_error(glob: &str, names: &[&str]) -> Option<String> {
    let Some((server, rest)) = glob.split_once(':') else {
        return Some(format!(
            "`{glob}`: expected SERVER:NAME (a glob over qualified names, e.g. github:get_*)"
        ));
    };
    if let Err(e) = servers::glob(glob) {
        return Some(e);
    }
    let is_glob = server.contains(['*', '?', '[', '{', '\\']);
    if server.is_empty() || rest.is_empty() {
        return Some(format!("`{glob}`: both the server and the name are needed"));
    }
    (!is_glob && !names.contains(&server)).then(|| {
        format!(
            "`{glob}`: no server named `{server}` (configured: {})",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests;
