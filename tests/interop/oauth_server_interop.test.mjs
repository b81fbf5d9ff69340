// Interop: official MCP clients log in to the relay's own authorization server
// (`[oauth_server]`) with nothing else running: the TypeScript SDK client
// (@modelcontextprotocol/sdk, pinned in package.json) and the Python SDK client (`mcp` from
// PyPI, run as tests/interop/py/oauth_client.py). Each goes through metadata discovery →
// dynamic registration → login → consent → code → token → `tools/call`, then a refresh, with
// a test driver that fills the relay's HTML forms (oauth_server_driver.mjs; the Python one
// uses httpx). A relay with two named servers shows that a token is for one server only.
//
// Run: cargo build && node --test tests/interop/oauth_server_interop.test.mjs
// The Python client runs with $MCP_RELAY_PYTHON, else results/venv-tools/bin/python; without
// it (or without its `mcp` package) that test is skipped, unless CI is set: then it fails.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { fixtureBin, relayBin, repoRoot, sleep, withTimeout } from './harness.mjs';
import { FormBrowser, STEP_TIMEOUT_MS, freePort, jwtClaims, randomPassword, rawInitialize, startAuthRelay } from './oauth_server_driver.mjs';

const REQUEST_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 90_000;
const USER = 'alice';
const PASSWORD = randomPassword();
const opts = { timeout: REQUEST_TIMEOUT_MS };
const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/**
 * An OAuthClientProvider kept in memory whose "browser" is a FormBrowser: it logs in and
 * approves, and keeps the code, state and iss of the redirect for finishAuth.
 */
class FormDrivenProvider {
    constructor(issuer, redirectUrl) {
        this.browser = new FormBrowser(issuer, { username: USER, password: PASSWORD });
        this._redirectUrl = redirectUrl;
        this._state = crypto.randomBytes(12).toString('hex');
        this.authorizations = []; // the authorization URLs the SDK built
        this.saved = []; // every token set saved
        this.back = undefined; // the last redirect to redirectUrl
    }
    get redirectUrl() { return this._redirectUrl; }
    get clientMetadata() {
        return {
            client_name: 'mcp-relay SDK interop',
            redirect_uris: [this._redirectUrl],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none',
        };
    }
    state() { return this._state; }
    clientInformation() { return this._client; }
    saveClientInformation(info) { this._client = info; }
    tokens() { return this._tokens; }
    saveTokens(tokens) { this._tokens = tokens; this.saved.push(tokens); }
    saveCodeVerifier(v) { this._verifier = v; }
    codeVerifier() { return this._verifier; }
    saveDiscoveryState(s) { this._discovery = s; }
    discoveryState() { return this._discovery; }
    async redirectToAuthorization(url) {
        this.authorizations.push(new URL(url.href));
        this.back = await this.browser.authorize(url, this._redirectUrl);
    }
}

/** A fetch that records what is posted to the token endpoint (grant types, resource). */
function recordingFetch(tokenRequests) {
    return async (url, init) => {
        if (String(url).endsWith('/oauth/token') && init?.body) tokenRequests.push(new URLSearchParams(String(init.body)));
        return fetch(url, init);
    };
}

/**
 * The SDK's whole flow against `resource`: a first connect that the relay refuses (401),
 * discovery, registration, the forms, finishAuth, then a connected client. Returns
 * { client, transport, provider, tokenRequests }.
 */
async function sdkLogin(issuer, resource) {
    const provider = new FormDrivenProvider(issuer, `http://127.0.0.1:${await freePort()}/callback`);
    const tokenRequests = [];
    const fetchFn = recordingFetch(tokenRequests);
    const first = new Client({ name: 'mcp-relay-oauth-server-interop', version: '1.0.0' });
    const t1 = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider, fetch: fetchFn });
    const err = await withTimeout(first.connect(t1, opts).then(() => null, (e) => e), STEP_TIMEOUT_MS, 'first connect');
    assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${err?.constructor?.name}: ${err?.message}`);
    await first.close().catch(() => {});
    assert.ok(provider.clientInformation()?.client_id, 'the SDK did not register a client');
    assert.equal(provider.authorizations.length, 1, 'one authorization');
    const az = provider.authorizations[0];
    assert.equal(az.origin + az.pathname, `${issuer}/oauth/authorize`);
    assert.equal(az.searchParams.get('resource'), resource, 'RFC 8707 resource on /authorize');
    assert.equal(az.searchParams.get('code_challenge_method'), 'S256');
    assert.deepEqual(provider.browser.seen, ['login', 'consent'], 'the driver logged in and approved');
    const back = provider.back;
    assert.ok(back?.searchParams.get('code'), `no code in ${back?.href}`);
    assert.equal(back.searchParams.get('state'), provider.state(), 'state round trip');
    assert.equal(back.searchParams.get('iss'), issuer, 'iss in the authorization response (RFC 9207)');

    await withTimeout(t1.finishAuth(back.searchParams.get('code')), STEP_TIMEOUT_MS, 'finishAuth');
    assert.equal(tokenRequests.length, 1);
    assert.equal(tokenRequests[0].get('grant_type'), 'authorization_code');
    const tokens = provider.tokens();
    assert.ok(tokens?.access_token && tokens.refresh_token, `tokens: ${JSON.stringify(Object.keys(tokens ?? {}))}`);
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');

    const client = new Client({ name: 'mcp-relay-oauth-server-interop', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider, fetch: fetchFn });
    await withTimeout(client.connect(transport, opts), STEP_TIMEOUT_MS, 'authorized connect');
    return { client, transport, provider, tokenRequests };
}

async function closeClient(c) {
    if (!c) return;
    try { await withTimeout(c.transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
    try { await withTimeout(c.client.close(), 5_000, 'close'); } catch { /* best effort */ }
}

describe('built-in authorization server: TypeScript SDK client, one server', () => {
    let relay;
    let resource;
    let session;
    before(async () => {
        relay = await startAuthRelay({
            name: 'oauth-server-interop',
            users: [{ name: USER, password: PASSWORD, roles: ['admin'] }],
            child: [relayBin, 'demo-server'],
        });
        resource = `${relay.issuer}/mcp`;
    });
    after(async () => {
        await closeClient(session);
        if (relay) await relay.stop();
    });

    test('discovery: 401 names the protected-resource metadata, which names the relay as issuer', { timeout: TEST_TIMEOUT_MS }, async () => {
        const r = await rawInitialize(resource);
        assert.equal(r.status, 401, r.text);
        const prm = /resource_metadata="([^"]+)"/.exec(r.wwwAuth)?.[1];
        assert.ok(prm, `WWW-Authenticate: ${r.wwwAuth}`);
        const doc = await (await fetch(prm)).json();
        assert.equal(doc.resource, resource);
        assert.deepEqual(doc.authorization_servers, [relay.issuer]);
        const meta = await (await fetch(`${relay.issuer}/.well-known/oauth-authorization-server`)).json();
        assert.equal(meta.issuer, relay.issuer);
        assert.equal(meta.registration_endpoint, `${relay.issuer}/oauth/register`);
        assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    });

    test('SDK: discovery → registration → login → consent → code → token → tools/call', { timeout: TEST_TIMEOUT_MS }, async () => {
        session = await sdkLogin(relay.issuer, resource);
        const { client, provider } = session;
        assert.equal(client.getServerVersion()?.name, 'mcp-relay-demo');
        const claims = jwtClaims(provider.tokens().access_token);
        assert.equal(claims.iss, relay.issuer);
        assert.equal(claims.aud, resource);
        assert.equal(claims.sub, USER);
        assert.equal(claims.client_id, provider.clientInformation().client_id);
        const { tools } = await client.listTools(undefined, opts);
        assert.ok(tools.some((t) => t.name === 'echo'), tools.map((t) => t.name).join(', '));
        const result = await client.callTool({ name: 'echo', arguments: { text: 'from the TypeScript SDK' } }, undefined, opts);
        assert.equal(textOf(result), 'from the TypeScript SDK');
    });

    test('refresh: a refused access token makes the SDK use its refresh token, which rotates', { timeout: TEST_TIMEOUT_MS }, async () => {
        assert.ok(session, 'the flow test did not finish');
        const { client, provider, tokenRequests } = session;
        const before = provider.tokens();
        // The access token goes bad (as when it expires): the next request is refused (401),
        // and the SDK refreshes instead of sending the person to log in again.
        provider.saveTokens({ ...before, access_token: `${before.access_token.slice(0, -8)}AAAAAAAA` });
        const result = await client.callTool({ name: 'echo', arguments: { text: 'after refresh' } }, undefined, opts);
        assert.equal(textOf(result), 'after refresh');
        assert.equal(provider.authorizations.length, 1, 'no new authorization: a refresh');
        const grants = tokenRequests.map((p) => p.get('grant_type'));
        assert.deepEqual(grants, ['authorization_code', 'refresh_token']);
        assert.equal(tokenRequests[1].get('refresh_token'), before.refresh_token);
        assert.equal(tokenRequests[1].get('resource'), resource);
        const after = provider.tokens();
        assert.notEqual(after.access_token, before.access_token);
        assert.ok(after.refresh_token && after.refresh_token !== before.refresh_token, 'the refresh token rotated');
        assert.equal(jwtClaims(after.access_token).aud, resource);
        assert.equal((await rawInitialize(resource, after.access_token)).status, 200);
    });

    test('audit: login, consent, registration and token issue and refresh recorded, no secrets', { timeout: TEST_TIMEOUT_MS }, async () => {
        assert.ok(session, 'the flow test did not finish');
        const wanted = ['oauth/register', 'oauth/login', 'oauth/consent', 'oauth/token', 'oauth/refresh'];
        let records = relay.audit();
        for (let i = 0; i < 50 && !wanted.every((m) => records.some((r) => r.method === m)); i++) {
            await sleep(100); // the audit writer flushes in the background
            records = relay.audit();
        }
        const methods = new Set(records.filter((r) => r.decision === 'allow').map((r) => r.method));
        const text = JSON.stringify(records);
        for (const secret of [PASSWORD, session.provider.tokens().access_token, session.provider.tokens().refresh_token]) {
            assert.ok(!text.includes(secret), 'a secret reached the audit log');
        }
        for (const m of wanted) {
            assert.ok(methods.has(m), `no allowed ${m} in the audit log (${[...methods].join(', ')})`);
        }
        const login = records.find((r) => r.method === 'oauth/login' && r.decision === 'allow');
        assert.equal(login.principal, USER, 'the login record names the user');
    });
});

describe('built-in authorization server: a token for one named server only', () => {
    let relay;
    let session;
    before(async () => {
        relay = await startAuthRelay({
            name: 'oauth-server-interop-servers',
            users: [{ name: USER, password: PASSWORD, roles: ['admin'] }],
            servers: { alpha: [relayBin, 'demo-server'], beta: [fixtureBin, 'echo'] },
        });
    });
    after(async () => {
        await closeClient(session);
        if (relay) await relay.stop();
    });

    test('SDK logs in for /servers/alpha/mcp; that token is refused at beta and at the aggregate', { timeout: TEST_TIMEOUT_MS }, async () => {
        const alpha = `${relay.issuer}/servers/alpha/mcp`;
        session = await sdkLogin(relay.issuer, alpha);
        const { client, provider } = session;
        assert.equal(provider.authorizations[0].searchParams.get('resource'), alpha);
        const token = provider.tokens().access_token;
        assert.equal(jwtClaims(token).aud, alpha);
        const result = await client.callTool({ name: 'echo', arguments: { text: 'alpha only' } }, undefined, opts);
        assert.equal(textOf(result), 'alpha only');
        for (const other of [`${relay.issuer}/servers/beta/mcp`, `${relay.issuer}/mcp`]) {
            const r = await rawInitialize(other, token);
            assert.equal(r.status, 401, `${other}: ${r.status} ${r.text}`);
            assert.match(r.wwwAuth, /invalid_token/, `${other}: ${r.wwwAuth}`);
        }
        assert.equal((await rawInitialize(alpha, token)).status, 200);
    });
});

// ---------------------------------------------------------------------------------------------
// The Python SDK client
// ---------------------------------------------------------------------------------------------

const python = process.env.MCP_RELAY_PYTHON ?? path.join(repoRoot, 'results', 'venv-tools', 'bin', 'python');
const PY_CLIENT = path.join(repoRoot, 'tests', 'interop', 'py', 'oauth_client.py');

/** Why the Python client cannot run here, or null. */
function pythonMissing() {
    if (!fs.existsSync(python)) return `no Python at ${python} (set MCP_RELAY_PYTHON)`;
    const r = spawnSync(python, ['-c', 'import mcp.client.auth, mcp.client.streamable_http'], { encoding: 'utf8' });
    return r.status === 0 ? null : `${python} has no mcp package: ${r.stderr.trim().split('\n').pop()}`;
}
const missing = pythonMissing();
if (missing && process.env.CI) {
    test('the Python SDK client is available', () => assert.fail(`${missing} (CI is set, so this is a failure)`));
}

describe('built-in authorization server: Python SDK client', { skip: missing && !process.env.CI ? missing : false }, () => {
    let relay;
    before(async () => {
        if (missing) return;
        relay = await startAuthRelay({
            name: 'oauth-server-interop-python',
            users: [{ name: USER, password: PASSWORD, roles: ['admin'] }],
            child: [relayBin, 'demo-server'],
            // short-lived access tokens: the Python client refreshes once this has passed
            oauthExtra: 'access_token_ttl = "2s"',
        });
    });
    after(async () => { if (relay) await relay.stop(); });

    test('mcp OAuthClientProvider + streamable HTTP: the whole flow, tools/call, then a refresh', { timeout: TEST_TIMEOUT_MS }, async (t) => {
        if (missing) return t.skip(missing);
        const resource = `${relay.issuer}/mcp`;
        const child = spawn(python, [PY_CLIENT, resource], {
            env: { ...process.env, OAUTH_USER: USER, OAUTH_PASSWORD: PASSWORD },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        const code = await withTimeout(new Promise((resolve) => child.on('exit', resolve)), 60_000, 'python client')
            .catch((e) => { child.kill('SIGKILL'); throw new Error(`${e.message}\n${err}`); });
        assert.equal(code, 0, `python client failed:\n${err}\n${out}`);
        const report = JSON.parse(out.trim().split('\n').pop());
        assert.deepEqual(report.pages, ['login', 'consent']);
        assert.equal(report.state_ok, true);
        assert.equal(report.iss, relay.issuer);
        assert.equal(report.server, 'mcp-relay-demo');
        assert.equal(report.echo, 'from the Python SDK');
        assert.equal(report.after_refresh, 'after refresh');
        assert.deepEqual(report.grants, ['authorization_code', 'refresh_token']);
        assert.equal(report.rotated, true, 'the refresh token rotated');
        assert.equal(report.new_access, true, 'a new access token');
        assert.equal(report.aud, resource);
    });
});
