// Shared helpers for the interop tests: start `mcp-relay serve` in front of a stdio child (or
// with a config file naming its servers), find the URL it bound, keep its log, and kill it (and
// its process group) at the end.
//
// Environment:
//   MCP_RELAY_BIN          path of the relay binary (default: <repo>/target/debug/mcp-relay)
//   MCP_RELAY_FIXTURE_BIN  path of the test child (default: <repo>/target/debug/mcp-relay-fixture)
//   INTEROP_LOG_DIR        where the relay's stderr (and a written config) is saved
//                          (default: <repo>/results/interop)

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const relayBin = process.env.MCP_RELAY_BIN ?? path.join(repoRoot, 'target', 'debug', 'mcp-relay');
export const fixtureBin = process.env.MCP_RELAY_FIXTURE_BIN ?? path.join(repoRoot, 'target', 'debug', 'mcp-relay-fixture');
export const logDir = process.env.INTEROP_LOG_DIR ?? path.join(repoRoot, 'results', 'interop');

const require = createRequire(import.meta.url);

/** argv (after the node binary) that starts server-everything in stdio mode. */
export function serverEverythingArgs() {
    const pkgJson = require.resolve('@modelcontextprotocol/server-everything/package.json');
    const pkg = JSON.parse(fs.readFileSync(pkgJson, 'utf8'));
    const entry = path.join(path.dirname(pkgJson), pkg.bin['mcp-server-everything']);
    // `dist/index.js stdio` (stdio is also the default when no argument is given).
    return [entry, 'stdio'];
}

/** Reject with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/**
 * Start `mcp-relay serve --listen 127.0.0.1:0 [extraArgs] -- <child...>` and resolve once it
 * logged the line with `listening` and `url=http://…`.
 * Returns { url, proc, log(), tail(n), stop(), name }.
 */
export async function startRelay({ name = 'relay', child, extraArgs = [], startTimeoutMs = 20_000, env = {} }) {
    return spawnRelay({ name, args: ['serve', '--listen', '127.0.0.1:0', ...extraArgs, '--', ...child], startTimeoutMs, env });
}

/** `s` as a TOML basic string (JSON's escapes are a subset of TOML's). */
export const tomlString = (s) => JSON.stringify(String(s));

/** `argv` as a TOML array of strings, e.g. for `command = [...]`. */
export const tomlArray = (argv) => `[${argv.map(tomlString).join(', ')}]`;

/**
 * Start `mcp-relay serve --listen LISTEN --config FILE [extraArgs]` with no child on the
 * command line: the config (TOML text, written to `<logDir>/<name>.toml`) names the servers,
 * e.g. `[servers.NAME]` tables. `listen` defaults to `127.0.0.1:0` (a fixed port is for a
 * config that must name it, e.g. an `[oauth_server] issuer`). Resolves like startRelay (the
 * URL is the main path, `/mcp`), plus `configFile`.
 */
export async function startRelayWithConfig({ name = 'relay', config, listen = '127.0.0.1:0', extraArgs = [], startTimeoutMs = 20_000, env = {} }) {
    fs.mkdirSync(logDir, { recursive: true });
    const configFile = path.join(logDir, `${name}.toml`);
    fs.writeFileSync(configFile, config);
    const args = ['serve', '--listen', listen, '--config', configFile, ...extraArgs];
    const relay = await spawnRelay({ name, args, startTimeoutMs, env });
    return { ...relay, configFile };
}

async function spawnRelay({ name, args, startTimeoutMs, env }) {
    if (!fs.existsSync(relayBin)) {
        throw new Error(`relay binary not found at ${relayBin} (run cargo build first, or set MCP_RELAY_BIN)`);
    }
    fs.mkdirSync(logDir, { recursive: true });
    const logFile = path.join(logDir, `${name}.log`);
    const logStream = fs.createWriteStream(logFile);
    logStream.write(`$ ${relayBin} ${args.join(' ')}\n`);

    const proc = spawn(relayBin, args, {
        cwd: repoRoot,
        // own process group, so stop() can signal the relay and every child it left behind
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', ...env },
    });
    const lines = [];
    let exited = null;
    const exitPromise = new Promise((resolve) => {
        proc.on('exit', (code, signal) => {
            exited = { code, signal };
            resolve(exited);
        });
    });
    const emergencyKill = () => {
        try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* already gone */ }
    };
    process.on('exit', emergencyKill);

    let resolveUrl;
    let rejectUrl;
    const urlPromise = new Promise((resolve, reject) => { resolveUrl = resolve; rejectUrl = reject; });
    const onData = (stream) => {
        let buf = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk) => {
            logStream.write(chunk);
            buf += chunk;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl).replace(ANSI, '');
                buf = buf.slice(nl + 1);
                lines.push(line);
                if (lines.length > 5000) lines.shift();
                if (/listening/i.test(line)) {
                    const m = line.match(/url="?(http:\/\/[^\s",]+)/);
                    if (m) resolveUrl(m[1]);
                }
            }
        });
    };
    onData(proc.stderr);
    onData(proc.stdout);
    proc.on('error', (err) => rejectUrl(err));
    exitPromise.then((e) => rejectUrl(new Error(`relay exited before listening (code ${e.code}, signal ${e.signal})`)));

    const tail = (n = 60) => lines.slice(-n).join('\n');
    let url;
    try {
        url = await withTimeout(urlPromise, startTimeoutMs, 'relay to log "listening ... url=http://..."');
    } catch (err) {
        emergencyKill();
        err.message += `\n--- relay output (${name}) ---\n${tail()}`;
        throw err;
    }

    async function stop() {
        process.off('exit', emergencyKill);
        if (exited === null) {
            try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
            // withTimeout clears its timer, so a quick exit does not keep Node alive for 5 s.
            const done = await withTimeout(exitPromise, 5000, 'relay exit').catch(() => null);
            if (done === null) {
                try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
                await withTimeout(exitPromise, 2000, 'relay exit after SIGKILL').catch(() => null);
            }
        }
        // The relay is gone; make sure none of its children outlived it.
        try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* group empty */ }
        await new Promise((resolve) => logStream.end(resolve));
        return exited;
    }

    return { name, url, proc, logFile, lines, tail, stop, exited: () => exited };
}

/** Pids of the direct children of `pid` whose command line contains `needle` (Linux /proc). */
export function childPids(pid, needle = '') {
    const out = [];
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
            // pid (comm) state ppid ...; comm may contain spaces and parentheses
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid !== pid) continue;
            const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
            if (cmdline.includes(needle)) out.push(Number(entry));
        } catch { /* process went away */ }
    }
    return out;
}

/** Pids of all descendants of `pid` whose command line contains `needle`. */
export function descendantPids(pid, needle = '') {
    const all = [];
    const queue = [pid];
    while (queue.length) {
        const p = queue.shift();
        for (const c of childPids(p)) {
            queue.push(c);
            try {
                const cmdline = fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').replace(/\0/g, ' ');
                if (cmdline.includes(needle)) all.push(c);
            } catch { /* gone */ }
        }
    }
    return all;
}

/** A free loopback TCP port (bound on port 0, read, released). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}
