// What console_browser.test.mjs drives besides the browser: a relay with two named servers,
// API keys and roles, its admin listener on a loopback port with an admin token (so the
// console asks for the credential), and live traffic from the official TypeScript SDK client
// (load loops on both servers, a client with a hostile name, a caller the roles deny).
// Also the page helpers the test shares: table cells by column, what Tab reaches.
// Not here: the assertions (the test file) and the relay's own checks.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { fixtureBin, freePort, logDir, relayBin, sleep, startRelayWithConfig, tomlArray, tomlString, withTimeout } from './harness.mjs';

export const STEP_TIMEOUT_MS = 20_000;
export const TOKEN_ENV = 'MCP_RELAY_CONSOLE_TOKEN';

/** HTML and script in a client's name and a tool's name: the pages must show them as text. */
export const HOSTILE_CLIENT = '<img src=x onerror="window.__pwned=1;alert(1)">';
export const HOSTILE_TOOL = '<img src=x onerror=alert(2)>';

/** A random credential that cannot look like a placeholder (the relay refuses those). */
export function randomCredential(prefix = '') {
    for (;;) {
        const s = prefix + crypto.randomBytes(24).toString('base64url');
        if (!/secret|test|changeme|password|example/i.test(s)) return s;
    }
}

/** Principals, their API keys and roles: `loader` may call tools, `mallory` only list them. */
const PRINCIPALS = ['loader', 'victim', 'mallory'];
const ROLES = {
    caller: { allowedMethods: ['tools/call', '*/list'] },
    reader: { allowedMethods: ['tools/list'] },
};
const ROLE_OF = { loader: 'caller', victim: 'caller', mallory: 'reader' };

/** The config: servers `alpha` (the fixture's echo) and `beta` (the demo server). */
function configText(keys, rolesFile) {
    const lines = [
        `[servers.alpha]`, `command = ${tomlArray([fixtureBin, 'echo'])}`, '',
        `[servers.beta]`, `command = ${tomlArray([relayBin, 'demo-server'])}`, '',
        `[roles]`, `file = ${tomlString(rolesFile)}`, '',
    ];
    for (const p of PRINCIPALS) {
        const sha256 = crypto.createHash('sha256').update(keys[p]).digest('hex');
        lines.push('[[auth.api_keys]]', `id = ${tomlString(p)}`, `principal = ${tomlString(p)}`,
            `roles = [${tomlString(ROLE_OF[p])}]`, `sha256 = ${tomlString(sha256)}`, '');
    }
    return lines.join('\n');
}

/**
 * Starts the relay. Returns the harness relay plus { admin (the console's origin), token,
 * serverUrl(name), keys }.
 */
export async function startConsoleRelay() {
    const keys = Object.fromEntries(PRINCIPALS.map((p) => [p, randomCredential('mcpr_')]));
    const token = randomCredential();
    fs.mkdirSync(logDir, { recursive: true });
    const rolesFile = path.join(logDir, 'console-browser-roles.json');
    fs.writeFileSync(rolesFile, JSON.stringify(ROLES, null, 2));
    const adminPort = await freePort();
    const relay = await startRelayWithConfig({
        name: 'console-browser',
        config: configText(keys, rolesFile),
        extraArgs: ['--admin-listen', `127.0.0.1:${adminPort}`, '--admin-token-env', TOKEN_ENV],
        env: { [TOKEN_ENV]: token },
    });
    const base = new URL(relay.url).origin;
    return { ...relay, admin: `http://127.0.0.1:${adminPort}`, token, keys, serverUrl: (name) => `${base}/servers/${name}/mcp` };
}

/** An SDK client of `principal` on server `server`, named `name`, connected. */
export async function connectClient(relay, { principal, server, name, version = '1.0.0' }) {
    const transport = new StreamableHTTPClientTransport(new URL(relay.serverUrl(server)), {
        requestInit: { headers: { authorization: `Bearer ${relay.keys[principal]}` } },
    });
    const client = new Client({ name, version });
    await withTimeout(client.connect(transport), STEP_TIMEOUT_MS, `connect ${name}`);
    return { client, transport, name, server, calls: 0 };
}

/** The echo call of each server: the fixture's `echo {text}`, the demo server's `echo {text}`. */
export const call = (c, text) => withTimeout(
    c.client.callTool({ name: 'echo', arguments: { text } }, undefined, { timeout: STEP_TIMEOUT_MS }),
    STEP_TIMEOUT_MS, `${c.name}: echo`);

/**
 * The load: every client calls echo in a loop (a pause of `pauseMs` between calls) until
 * stop(); `paused` holds it (the sessions stay open). Errors are kept, not thrown.
 */
export function startLoad(clients, pauseMs = 100) {
    const state = { running: true, paused: false, errors: [], clients: [...clients] };
    const loop = async (c) => {
        while (state.running) {
            if (!state.paused && !c.ended) {
                try {
                    await call(c, `load ${c.calls}`);
                    c.calls += 1;
                } catch (err) {
                    if (!c.ended) state.errors.push(`${c.name}: ${err.message}`);
                }
            }
            await sleep(pauseMs);
        }
    };
    const loops = clients.map(loop);
    state.add = (c) => { state.clients.push(c); loops.push(loop(c)); };
    state.stop = async () => { state.running = false; await Promise.all(loops); };
    return state;
}

/** Closes every client, ignoring errors (a session the console ended is already gone). */
export async function closeAll(clients) {
    await Promise.all(clients.map((c) => withTimeout(c.client.close(), 5000, 'close').catch(() => {})));
}

// === page helpers ===

/**
 * The cells of the first table row (under `main`) whose text contains `needle`, keyed by its
 * table's column headers (lower case); null when there is no such row.
 */
export function rowOf(page, needle) {
    return page.evaluate((needle) => {
        for (const table of document.querySelectorAll('main table')) {
            const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim().toLowerCase());
            for (const tr of table.querySelectorAll('tbody tr')) {
                if (!tr.textContent.includes(needle)) continue;
                const cells = [...tr.children].map((td) => td.textContent.trim());
                return Object.fromEntries(heads.map((h, i) => [h, cells[i] ?? '']));
            }
        }
        return null;
    }, needle);
}

/** The number in `row`'s first column whose header matches `re`. */
export function numberIn(row, re) {
    const key = Object.keys(row ?? {}).find((k) => re.test(k));
    if (key === undefined) return NaN;
    return Number(String(row[key]).replace(/[^0-9.]/g, ''));
}

// What the keyboard must reach: every visible link, button, field, summary and tab stop.
const CONTROLS = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])';

/** In the page: a stable description of a control (its kind, name, target, text, form fields). */
function describeInPage(controls) {
    const visible = (el) => el.checkVisibility({ checkVisibilityCSS: true }) && !el.disabled;
    const base = (el) => {
        const form = el.form ? [...new FormData(el.form)].filter(([k]) => k !== 'csrf').map(([k, v]) => `${k}=${v}`).join('&') : '';
        const text = (el.textContent || el.value || el.getAttribute('aria-label') || '').trim().replace(/\s+/g, ' ').slice(0, 60);
        return [el.tagName.toLowerCase(), el.type ?? '', el.name ?? '', el.getAttribute('href') ?? '', text, el.form?.getAttribute('action') ?? '', form].join('|');
    };
    const all = [...document.querySelectorAll(controls)].filter(visible);
    const seen = new Map();
    const names = new Map();
    for (const el of all) {
        const b = base(el);
        const n = (seen.get(b) ?? 0) + 1;
        seen.set(b, n);
        names.set(el, `${b}#${n}`);
    }
    return { all: all.map((el) => names.get(el)), active: names.get(document.activeElement) ?? null };
}

/**
 * Loads `url` afresh and presses Tab until every control of the page has had the focus once
 * (at most three times as many presses as controls). Returns the controls never reached.
 */
export async function unreachedByTab(page, url) {
    await page.goto(url);
    const { all } = await page.evaluate(describeInPage, CONTROLS);
    const reached = new Set();
    for (let i = 0; i < all.length * 3 + 10 && reached.size < all.length; i++) {
        await page.keyboard.press('Tab');
        const { active } = await page.evaluate(describeInPage, CONTROLS);
        if (active) reached.add(active);
    }
    return { total: all.length, missing: all.filter((c) => !reached.has(c)) };
}
