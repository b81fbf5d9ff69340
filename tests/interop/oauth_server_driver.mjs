// Shared by the tests of the relay's own authorization server (`[oauth_server]`):
// oauth_server_interop.test.mjs and oauth_browser.test.mjs. It starts a relay whose issuer is
// its own origin (so on a port chosen before it starts), hashes passwords with
// `mcp-relay token password-hash`, and drives the login and consent pages as a browser without
// JavaScript would: plain form posts, cookies kept by hand, redirects followed by hand.
// Not here: the MCP clients (each test has its own) and anything the relay checks.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { freePort, relayBin, startRelayWithConfig, tomlArray, tomlString } from './harness.mjs';

export const STEP_TIMEOUT_MS = 20_000;

export { freePort };

/** A random password (the relay refuses placeholder-like secrets). */
export const randomPassword = () => crypto.randomBytes(15).toString('base64url');

/** The PHC Argon2id string `mcp-relay token password-hash` prints for `password`. */
export function passwordHash(password) {
    const r = spawnSync(relayBin, ['token', 'password-hash'], { input: `${password}\n`, encoding: 'utf8', timeout: 30_000 });
    const phc = (r.stdout ?? '').split('\n').map((l) => l.trim()).find((l) => l.startsWith('$argon2id$'));
    if (r.status !== 0 || !phc) {
        throw new Error(`mcp-relay token password-hash failed (status ${r.status}): ${r.stderr}`);
    }
    return phc;
}

/**
 * A relay with `[oauth_server]` on 127.0.0.1:<free port>: issuer = its origin, state in a
 * temporary directory, an audit file, the given local users ({ name, password, roles }).
 * `servers` (name -> argv) become `[servers.NAME]` tables; else `child` is the one server.
 * Returns the harness relay plus { issuer, port, dir, auditFile, audit() }.
 */
export async function startAuthRelay({ name, users, child, servers, oauthExtra = '', extraArgs = [] }) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mcp-relay-${name}-`));
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const auditFile = path.join(dir, 'audit.jsonl');
    const lines = [
        '[audit]',
        `file = ${tomlString(auditFile)}`,
        '',
        '[oauth_server]',
        `issuer = ${tomlString(issuer)}`,
        `state_dir = ${tomlString(path.join(dir, 'state'))}`,
        oauthExtra,
        '',
    ];
    for (const u of users) {
        lines.push('[[oauth_server.users]]', `name = ${tomlString(u.name)}`,
            `password_hash = ${tomlString(passwordHash(u.password))}`, `roles = ${tomlArray(u.roles ?? [])}`, '');
    }
    for (const [server, argv] of Object.entries(servers ?? {})) {
        lines.push(`[servers.${server}]`, `command = ${tomlArray(argv)}`, '');
    }
    const args = child ? [...extraArgs, '--', ...child] : extraArgs;
    const relay = await startRelayWithConfig({ name, config: lines.join('\n'), listen: `127.0.0.1:${port}`, extraArgs: args });
    const audit = () => (fs.existsSync(auditFile) ? fs.readFileSync(auditFile, 'utf8') : '')
        .split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } })
        .filter((r) => r && r.transport === 'oauth');
    const stop = async () => {
        const exit = await relay.stop();
        fs.rmSync(dir, { recursive: true, force: true });
        return exit;
    };
    return { ...relay, stop, issuer, port, dir, auditFile, audit };
}

const unescapeHtml = (s) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The value of the input named `name` in `html` (the pages quote attributes with "). */
export function formField(html, name) {
    const at = html.indexOf(`name="${name}"`);
    if (at < 0) return undefined;
    const start = html.lastIndexOf('<', at);
    const end = html.indexOf('>', at);
    const m = /value="([^"]*)"/.exec(html.slice(start, end));
    return m ? unescapeHtml(m[1]) : undefined;
}

/** The `action` of the first form in `html`. */
export const formAction = (html) => /<form[^>]*action="([^"]*)"/.exec(html)?.[1];

/**
 * A browser stand-in for the relay's pages: keeps cookies (by name, for the issuer only),
 * follows redirects by hand, posts forms with `Origin` as a browser does, and logs in and
 * approves as `username`. `seen` lists the pages it went through ('login', 'consent').
 */
export class FormBrowser {
    constructor(issuer, { username, password }) {
        this.issuer = issuer;
        this.username = username;
        this.password = password;
        this.cookies = new Map();
        this.seen = [];
    }

    async request(url, form) {
        const headers = {};
        if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
        const init = { headers, redirect: 'manual', signal: AbortSignal.timeout(STEP_TIMEOUT_MS) };
        if (form) {
            init.method = 'POST';
            headers.origin = this.issuer;
            headers['content-type'] = 'application/x-www-form-urlencoded';
            init.body = new URLSearchParams(form).toString();
        }
        const res = await fetch(url, init);
        for (const c of res.headers.getSetCookie()) {
            const [pair, ...attrs] = c.split(';');
            const eq = pair.indexOf('=');
            const [k, v] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
            if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || v === '') this.cookies.delete(k);
            else this.cookies.set(k, v);
        }
        const location = res.headers.get('location');
        return { url, status: res.status, location: location && new URL(location, url).href, body: await res.text() };
    }

    /**
     * From the authorization URL to the client's redirect URI: logs in and approves on the
     * way. Resolves with the redirect URL (a URL object) as the relay sent it.
     */
    async authorize(authorizationUrl, redirectUri) {
        const target = new URL(redirectUri);
        let page = await this.request(String(authorizationUrl));
        for (let step = 0; step < 8; step++) {
            if (page.location && [302, 303].includes(page.status)) {
                const to = new URL(page.location);
                if (to.origin === target.origin && to.pathname === target.pathname) return to;
                if (to.origin !== this.issuer) throw new Error(`redirect to a stranger: ${to.href}`);
                page = await this.request(to.href);
                continue;
            }
            if (page.status !== 200) throw new Error(`${page.status} at ${page.url}: ${page.body.slice(0, 500)}`);
            const action = formAction(page.body);
            const base = { request: formField(page.body, 'request'), csrf: formField(page.body, 'csrf') };
            if (action === '/oauth/login') {
                this.seen.push('login');
                page = await this.request(`${this.issuer}/oauth/login`, { ...base, username: this.username, password: this.password });
            } else if (action === '/oauth/consent') {
                this.seen.push('consent');
                page = await this.request(`${this.issuer}/oauth/consent`, { ...base, decision: 'approve', remember: 'yes' });
            } else {
                throw new Error(`no login or consent form at ${page.url}: ${page.body.slice(0, 500)}`);
            }
        }
        throw new Error(`too many pages (${this.seen.join(', ')})`);
    }
}

/** The claims of a JWT (not verified: the relay verifies; tests only look). */
export const jwtClaims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

/** A raw `initialize` POST to `url` with an optional bearer token: { status, wwwAuth, sid }. */
export async function rawInitialize(url, token) {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const res = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({
            jsonrpc: '2.0', id: 1, method: 'initialize',
            params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth-server-probe', version: '1.0.0' } },
        }),
        signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, text, wwwAuth: res.headers.get('www-authenticate') ?? '', sid: res.headers.get('mcp-session-id') };
}
