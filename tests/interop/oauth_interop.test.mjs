// Interop: the official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
// package.json) runs the whole MCP authorization flow (OAuth 2.1 authorization code + PKCE,
// RFC 9728 discovery, RFC 7591 dynamic registration, RFC 8707 resource indicator) against
// `mcp-relay serve` acting as the protected resource, with an external authorization server
// stand-in written here on node:http (RS256 access tokens, JWKS).
//
// Run: node --test tests/interop/oauth_interop.test.mjs   (Node 20 or 22; cargo build first)
//
// The relay is started here (not through harness.startRelay) because `[auth] resource` has
// to name the relay's port before it starts, so it listens on a port picked up front.
// Child: target/debug/mcp-relay-fixture --record <tmp>/record.jsonl (every stdin line), which
// lets the test check that the bearer token never reaches the wrapped server.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { freePort, logDir, relayBin, repoRoot, sleep, withTimeout } from './harness.mjs';

const fixtureBin = process.env.MCP_RELAY_FIXTURE_BIN ?? path.join(repoRoot, 'target', 'debug', 'mcp-relay-fixture');

const REQUEST_TIMEOUT_MS = 15_000; // per SDK request
const STEP_TIMEOUT_MS = 20_000; // guard around every other await
const TEST_TIMEOUT_MS = 60_000; // node:test per-test limit
const JWKS_REFRESH_MS = 500; // relay.toml jwks_refresh

const b64url = (buf) => Buffer.from(buf).toString('base64url');


// ---------------------------------------------------------------------------------------------
// Authorization server stand-in
// ---------------------------------------------------------------------------------------------

/**
 * Start the AS on 127.0.0.1:<random>. `as.resource` (the relay's canonical URL) must be set
 * before the flow runs. Counts requests per endpoint; keeps what /authorize and /token saw.
 */
async function startAuthServer() {
    const newKey = () => {
        const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
        const kid = `as-key-${crypto.randomBytes(4).toString('hex')}`;
        return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
    };
    const as = {
        url: '',
        resource: '',
        counts: { metadata: 0, register: 0, authorize: 0, token: 0, jwks: 0, other: 0 },
        authorizeRequests: [], // URLSearchParams of every /authorize
        tokenRequests: [], // URLSearchParams of every /token
        errors: [], // what the AS refused, and why
        issuedTokens: [],
        clients: new Map(), // client_id -> registration
        codes: new Map(), // code -> { client_id, redirect_uri, challenge, resource, scope }
        current: newKey(), // signs what /token issues
        published: [], // what /jwks serves
        server: null,
    };
    as.published.push(as.current);
    /** Key rotation: a new signing key, published next to the old ones unless `dropOld`. */
    as.rotate = ({ dropOld = false } = {}) => {
        const old = as.current;
        as.current = newKey();
        as.published = dropOld ? [as.current] : [...as.published, as.current];
        return old;
    };

    /** Sign `claims` (merged over the defaults) as an RS256 JWT with the AS key. */
    as.mint = (claims = {}, header = {}, key = as.current) => {
        const now = Math.floor(Date.now() / 1000);
        const h = { alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header };
        const c = {
            iss: as.url,
            aud: as.resource,
            sub: 'alice',
            roles: ['user'],
            scope: 'mcp',
            iat: now,
            exp: now + 600,
            jti: crypto.randomUUID(),
            ...claims,
        };
        for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
        const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(c))}`;
        const sig = crypto.sign('sha256', Buffer.from(input), key.privateKey);
        return `${input}.${b64url(sig)}`;
    };

    const json = (res, status, body, headers = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
        res.end(JSON.stringify(body));
    };
    const oauthError = (res, status, error, description) => {
        as.errors.push(`${error}: ${description}`);
        json(res, status, { error, error_description: description });
    };
    const readBody = (req) => new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });

    const handlers = {
        'GET /.well-known/oauth-authorization-server': (req, res) => {
            as.counts.metadata++;
            json(res, 200, {
                issuer: as.url,
                authorization_endpoint: `${as.url}/authorize`,
                token_endpoint: `${as.url}/token`,
                registration_endpoint: `${as.url}/register`,
                jwks_uri: `${as.url}/jwks`,
                scopes_supported: ['mcp'],
                response_types_supported: ['code'],
                grant_types_supported: ['authorization_code', 'refresh_token'],
                code_challenge_methods_supported: ['S256'],
                token_endpoint_auth_methods_supported: ['none'],
            });
        },
        'POST /register': async (req, res) => {
            as.counts.register++;
            let meta;
            try {
                meta = JSON.parse(await readBody(req));
            } catch {
                return oauthError(res, 400, 'invalid_client_metadata', 'body is not JSON');
            }
            if (!Array.isArray(meta.redirect_uris) || meta.redirect_uris.length === 0) {
                return oauthError(res, 400, 'invalid_redirect_uri', 'redirect_uris missing');
            }
            const client_id = `client-${crypto.randomBytes(8).toString('hex')}`;
            const registered = {
                ...meta,
                client_id,
                client_id_issued_at: Math.floor(Date.now() / 1000),
                token_endpoint_auth_method: 'none',
            };
            as.clients.set(client_id, registered);
            json(res, 201, registered);
        },
        'GET /authorize': (req, res, url) => {
            as.counts.authorize++;
            const q = url.searchParams;
            as.authorizeRequests.push(q);
            const client = as.clients.get(q.get('client_id'));
            if (q.get('response_type') !== 'code') return oauthError(res, 400, 'unsupported_response_type', `response_type=${q.get('response_type')}`);
            if (!client) return oauthError(res, 400, 'invalid_request', `unknown client_id ${q.get('client_id')}`);
            if (!client.redirect_uris.includes(q.get('redirect_uri'))) return oauthError(res, 400, 'invalid_request', `redirect_uri ${q.get('redirect_uri')} not registered`);
            if (q.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? '')) {
                return oauthError(res, 400, 'invalid_request', 'PKCE S256 code_challenge required');
            }
            if (q.get('resource') !== as.resource) return oauthError(res, 400, 'invalid_target', `resource=${q.get('resource')}, expected ${as.resource}`);
            if (!q.get('state')) return oauthError(res, 400, 'invalid_request', 'state missing');
            const code = b64url(crypto.randomBytes(24));
            as.codes.set(code, {
                client_id: client.client_id,
                redirect_uri: q.get('redirect_uri'),
                challenge: q.get('code_challenge'),
                resource: q.get('resource'),
                scope: q.get('scope'),
            });
            const to = new URL(q.get('redirect_uri'));
            to.searchParams.set('code', code);
            to.searchParams.set('state', q.get('state'));
            res.writeHead(302, { location: to.href });
            res.end();
        },
        'POST /token': async (req, res) => {
            as.counts.token++;
            const p = new URLSearchParams(await readBody(req));
            as.tokenRequests.push(p);
            if (p.get('grant_type') !== 'authorization_code') return oauthError(res, 400, 'unsupported_grant_type', `grant_type=${p.get('grant_type')}`);
            const grant = as.codes.get(p.get('code') ?? '');
            if (!grant) return oauthError(res, 400, 'invalid_grant', 'unknown or used code');
            as.codes.delete(p.get('code')); // single use
            if (p.get('client_id') !== grant.client_id) return oauthError(res, 400, 'invalid_grant', 'client_id mismatch');
            if (p.get('redirect_uri') !== grant.redirect_uri) return oauthError(res, 400, 'invalid_grant', 'redirect_uri mismatch');
            const verifier = p.get('code_verifier') ?? '';
            const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
            if (!verifier || challenge !== grant.challenge) return oauthError(res, 400, 'invalid_grant', 'PKCE verification failed');
            if (p.get('resource') !== as.resource || grant.resource !== as.resource) {
                return oauthError(res, 400, 'invalid_target', `resource=${p.get('resource')}, expected ${as.resource}`);
            }
            const access_token = as.mint({ sub: 'alice', client_id: grant.client_id });
            as.issuedTokens.push(access_token);
            json(res, 200, { access_token, token_type: 'Bearer', expires_in: 600, scope: 'mcp' });
        },
        'GET /jwks': (req, res) => {
            as.counts.jwks++;
            json(res, 200, { keys: as.published.map((k) => k.jwk) });
        },
    };

    as.server = http.createServer((req, res) => {
        const url = new URL(req.url, as.url);
        const handler = handlers[`${req.method} ${url.pathname}`];
        if (!handler) {
            as.counts.other++;
            res.writeHead(404, { 'content-type': 'application/json' });
            res.end('{"error":"not_found"}');
            return;
        }
        Promise.resolve(handler(req, res, url)).catch((err) => {
            as.errors.push(`handler ${req.method} ${url.pathname}: ${err.stack}`);
            if (!res.headersSent) res.writeHead(500);
            res.end();
        });
    });
    await new Promise((resolve) => as.server.listen(0, '127.0.0.1', resolve));
    as.url = `http://127.0.0.1:${as.server.address().port}`;
    as.close = () => new Promise((resolve) => {
        as.server.closeAllConnections?.();
        as.server.close(() => resolve());
    });
    return as;
}

// ---------------------------------------------------------------------------------------------
// Relay on a fixed port (the resource URL must be in its config before it starts)
// ---------------------------------------------------------------------------------------------

async function startRelayOn({ name, port, configPath, child }) {
    for (const bin of [relayBin, child[0]]) {
        if (!fs.existsSync(bin)) throw new Error(`${bin} not found (run cargo build first)`);
    }
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--config', configPath, '--', ...child];
    fs.mkdirSync(logDir, { recursive: true });
    const logFile = path.join(logDir, `${name}.log`);
    const logStream = fs.createWriteStream(logFile);
    logStream.write(`$ ${relayBin} ${args.join(' ')}\n`);
    const proc = spawn(relayBin, args, {
        cwd: repoRoot,
        detached: true, // own process group: stop() kills the relay and whatever it spawned
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1' },
    });
    const lines = [];
    let exited = null;
    const exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((exited = { code, signal }))));
    const emergencyKill = () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } };
    process.on('exit', emergencyKill);
    let ready;
    const readyPromise = new Promise((resolve, reject) => {
        ready = resolve;
        proc.on('error', reject);
        exitPromise.then((e) => reject(new Error(`relay exited before listening (code ${e.code}, signal ${e.signal})`)));
    });
    for (const stream of [proc.stdout, proc.stderr]) {
        let buf = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk) => {
            logStream.write(chunk);
            buf += chunk;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                // eslint-disable-next-line no-control-regex
                const line = buf.slice(0, nl).replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
                buf = buf.slice(nl + 1);
                lines.push(line);
                if (lines.length > 5000) lines.shift();
                if (/listening/i.test(line)) ready();
            }
        });
    }
    const tail = (n = 60) => lines.slice(-n).join('\n');
    async function stop() {
        process.off('exit', emergencyKill);
        if (exited === null) {
            try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
            // withTimeout clears its timer, so a relay that exits at once does not keep this
            // process alive for the full grace period.
            const gone = await withTimeout(exitPromise, 5000, 'relay exit after SIGTERM').catch(() => null);
            if (gone === null) {
                emergencyKill();
                await withTimeout(exitPromise, 2000, 'relay exit after SIGKILL').catch(() => null);
            }
        }
        emergencyKill(); // no child outlives the relay
        await new Promise((resolve) => logStream.end(resolve));
        return exited;
    }
    try {
        await withTimeout(readyPromise, 20_000, 'relay to log "listening"');
    } catch (err) {
        await stop();
        err.message += `\n--- relay output (${name}) ---\n${tail()}`;
        throw err;
    }
    return { name, proc, logFile, lines, tail, stop };
}

// ---------------------------------------------------------------------------------------------
// In-memory OAuthClientProvider whose "user agent" follows the AS redirect by hand
// ---------------------------------------------------------------------------------------------

class MemoryOAuthProvider {
    constructor(redirectUrl) {
        this._redirectUrl = redirectUrl;
        this._client = undefined;
        this._tokens = undefined;
        this._verifier = undefined;
        this._state = crypto.randomBytes(12).toString('hex');
        this._discovery = undefined;
        this.authorizationUrls = [];
        this.redirects = []; // { status, location }
        this.code = undefined;
        this.returnedState = undefined;
    }
    get redirectUrl() { return this._redirectUrl; }
    get clientMetadata() {
        return {
            client_name: 'mcp-relay oauth interop',
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
    saveTokens(tokens) { this._tokens = tokens; }
    saveCodeVerifier(v) { this._verifier = v; }
    codeVerifier() {
        if (!this._verifier) throw new Error('no code verifier saved');
        return this._verifier;
    }
    saveDiscoveryState(s) { this._discovery = s; }
    discoveryState() { return this._discovery; }
    async redirectToAuthorization(url) {
        this.authorizationUrls.push(new URL(url.href));
        const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
        const location = res.headers.get('location');
        this.redirects.push({ status: res.status, location, body: location ? '' : await res.text() });
        if (res.status !== 302 || !location) return; // the test reports what the AS said
        const back = new URL(location);
        this.code = back.searchParams.get('code') ?? undefined;
        this.returnedState = back.searchParams.get('state') ?? undefined;
    }
}

// ---------------------------------------------------------------------------------------------

let as;
let relay;
let tmp;
let relayPort;
let resource; // http://127.0.0.1:<relayPort>/mcp
let recordPath;
let failed = false;
let provider;
let accessToken;
let metadataUrlFromChallenge;
const openClients = [];

function rtest(name, fn) {
    test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
        try {
            await fn(t);
        } catch (err) {
            failed = true;
            throw err;
        }
    });
}

const initializeBody = (id = 1) => ({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-oauth-probe', version: '1.0.0' } },
});

/** A raw POST initialize to the relay (status-code checks, bypassing the SDK). */
async function rawInitialize(token) {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const res = await fetch(resource, {
        method: 'POST',
        headers,
        body: JSON.stringify(initializeBody()),
        signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, wwwAuth: res.headers.get('www-authenticate') ?? '' };
}

/** End a raw session we opened (DELETE), best effort. */
async function deleteSession(sid, token) {
    if (!sid) return;
    try {
        await fetch(resource, {
            method: 'DELETE',
            headers: { 'mcp-session-id': sid, authorization: `Bearer ${token}` },
            signal: AbortSignal.timeout(5_000),
        });
    } catch { /* best effort */ }
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

describe('OAuth 2.1: TypeScript SDK client + AS stand-in -> mcp-relay (RFC 9728 resource server)', () => {
    before(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-relay-oauth-'));
        recordPath = path.join(tmp, 'record.jsonl');
        as = await startAuthServer();
        relayPort = await freePort();
        resource = `http://127.0.0.1:${relayPort}/mcp`;
        as.resource = resource;
        const configPath = path.join(tmp, 'relay.toml');
        fs.writeFileSync(configPath, [
            '[auth]',
            `resource = "${resource}"`,
            `authorization_servers = ["${as.url}"]`,
            'required_scopes = ["mcp"]',
            '',
            '[[auth.jwt]]',
            `issuer = "${as.url}"`,
            'algorithms = ["RS256"]',
            `jwks_url = "${as.url}/jwks"`,
            // an unknown kid refetches the JWKS at most this often (default 30s): short, so
            // the key-rotation test does not wait long
            `jwks_refresh = "${JWKS_REFRESH_MS}ms"`,
            '',
        ].join('\n'));
        relay = await startRelayOn({
            name: 'oauth-interop',
            port: relayPort,
            configPath,
            child: [fixtureBin, '--record', recordPath],
        });
    });

    after(async () => {
        for (const c of openClients.splice(0)) {
            try { await withTimeout(c.transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
            try { await withTimeout(c.client.close(), 5_000, 'client.close'); } catch { /* best effort */ }
        }
        if (relay) {
            const exit = await relay.stop();
            if (failed) {
                process.stderr.write(`\n--- relay log tail (full log: ${relay.logFile}) ---\n${relay.tail(80)}\n`);
                process.stderr.write(`--- AS counts ${JSON.stringify(as?.counts)}; AS errors: ${JSON.stringify(as?.errors)}\n`);
            }
            process.stderr.write(`relay stopped (${JSON.stringify(exit)}); log: ${relay.logFile}\n`);
        }
        if (as) await as.close();
        if (tmp && !failed) fs.rmSync(tmp, { recursive: true, force: true });
        else if (tmp) process.stderr.write(`kept ${tmp} (relay.toml, record.jsonl)\n`);
    });

    rtest('unauthenticated POST: 401 with WWW-Authenticate Bearer resource_metadata=', async () => {
        const r = await rawInitialize();
        assert.equal(r.status, 401, `expected 401, got ${r.status}: ${r.text}`);
        assert.match(r.wwwAuth, /^Bearer\b/i, `WWW-Authenticate: ${r.wwwAuth}`);
        const m = r.wwwAuth.match(/resource_metadata="([^"]+)"/);
        assert.ok(m, `no resource_metadata="…" in WWW-Authenticate: ${r.wwwAuth}`);
        metadataUrlFromChallenge = m[1];
        assert.equal(metadataUrlFromChallenge, `http://127.0.0.1:${relayPort}/.well-known/oauth-protected-resource/mcp`);
        assert.doesNotMatch(r.wwwAuth, /error=/, 'no token was presented, so no error= (RFC 6750 §3.1)');
    });

    rtest('protected-resource metadata (path-inserted and root forms)', async () => {
        assert.ok(metadataUrlFromChallenge, 'previous test did not find the metadata URL');
        for (const url of [metadataUrlFromChallenge, `http://127.0.0.1:${relayPort}/.well-known/oauth-protected-resource`]) {
            const res = await fetch(url, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
            const text = await res.text();
            assert.equal(res.status, 200, `GET ${url}: ${res.status} ${text}`);
            assert.match(res.headers.get('content-type') ?? '', /application\/json/);
            const doc = JSON.parse(text);
            assert.equal(doc.resource, resource, `${url}: resource`);
            assert.deepEqual(doc.authorization_servers, [as.url], `${url}: authorization_servers`);
            assert.ok(doc.scopes_supported?.includes('mcp'), `${url}: scopes_supported ${JSON.stringify(doc.scopes_supported)}`);
            assert.deepEqual(doc.bearer_methods_supported, ['header']);
        }
    });

    rtest('SDK client: 401 -> discovery -> register -> authorize (PKCE, resource) -> token -> MCP works', async () => {
        const callbackPort = await freePort(); // never listened on: the code is read from Location
        provider = new MemoryOAuthProvider(`http://127.0.0.1:${callbackPort}/callback`);

        // 1. First connect: the relay says 401, the SDK discovers, registers and "redirects".
        const client1 = new Client({ name: 'mcp-relay-oauth-interop', version: '1.0.0' }, { capabilities: {} });
        const transport1 = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
        const err = await withTimeout(
            client1.connect(transport1, { timeout: REQUEST_TIMEOUT_MS }).then(() => null, (e) => e),
            STEP_TIMEOUT_MS,
            'first client.connect (expected to reject with UnauthorizedError)',
        );
        assert.ok(err, 'first connect without a token unexpectedly succeeded');
        assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${err?.constructor?.name}: ${err?.message}\nAS errors: ${as.errors.join('; ')}`);
        try { await client1.close(); } catch { /* nothing open */ }

        assert.equal(as.counts.metadata >= 1, true, 'SDK never fetched the AS metadata');
        assert.equal(as.counts.register, 1, 'dynamic registration calls');
        assert.equal(as.counts.authorize, 1, `authorize calls (redirects: ${JSON.stringify(provider.redirects)})`);
        assert.equal(provider.redirects[0]?.status, 302, `AS refused /authorize: ${JSON.stringify(provider.redirects)} ${as.errors.join('; ')}`);
        const authz = as.authorizeRequests[0];
        assert.equal(authz.get('resource'), resource, '/authorize must carry the RFC 8707 resource parameter');
        assert.equal(authz.get('code_challenge_method'), 'S256');
        assert.equal(authz.get('scope'), 'mcp', 'scope taken from the relay metadata scopes_supported');
        assert.ok(provider.code, 'no code in the AS redirect');
        assert.equal(provider.returnedState, provider.state(), 'state round trip');
        assert.equal(as.counts.token, 0, 'no token request before finishAuth');

        // 2. finishAuth: code + PKCE verifier + resource -> access token.
        await withTimeout(transport1.finishAuth(provider.code), STEP_TIMEOUT_MS, 'transport.finishAuth(code)');
        assert.equal(as.counts.token, 1, `exactly one /token request (AS errors: ${as.errors.join('; ')})`);
        assert.deepEqual(as.errors, [], 'the AS refused something');
        const tokenReq = as.tokenRequests[0];
        assert.equal(tokenReq.get('resource'), resource, '/token must carry the resource parameter');
        assert.equal(tokenReq.get('grant_type'), 'authorization_code');
        accessToken = provider.tokens()?.access_token;
        assert.ok(accessToken, 'provider did not save the access token');
        assert.equal(accessToken, as.issuedTokens[0]);

        // 3. Fresh transport + client with the token: initialize, tools/list, tools/call.
        const jwksBefore = as.counts.jwks;
        const client = new Client({ name: 'mcp-relay-oauth-interop', version: '1.0.0' }, { capabilities: {} });
        const errors = [];
        client.onerror = (e) => errors.push(e);
        const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
        openClients.push({ client, transport });
        await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'authorized client.connect');
        assert.ok(transport.sessionId, 'no Mcp-Session-Id on the authorized initialize');
        assert.equal(client.getServerVersion()?.name, 'mcp-relay-fixture');

        const { tools } = await client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.ok(tools.some((t) => t.name === 'echo'), `tools/list lacks echo: ${tools.map((t) => t.name).join(', ')}`);
        const result = await client.callTool({ name: 'echo', arguments: { text: 'hi' } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.notEqual(result.isError, true, JSON.stringify(result));
        assert.equal(textOf(result), 'hi');

        assert.equal(as.counts.token, 1, 'the authorized connect must not ask for another token');
        assert.equal(as.counts.authorize, 1, 'the authorized connect must not re-authorize');
        assert.ok(as.counts.jwks >= 1, `the relay never fetched /jwks (jwks=${as.counts.jwks}, before connect ${jwksBefore})`);
        const authErrors = errors.filter((e) => /401|403|unauthori[sz]ed/i.test(String(e?.message ?? e)));
        assert.deepEqual(authErrors.map(String), [], 'auth errors on the authorized client');
    });

    rtest('the access token never reaches the child (record.jsonl)', async () => {
        assert.ok(accessToken, 'the flow test did not obtain a token');
        // The fixture records every stdin line and flushes per line; give the last one a moment.
        let record = '';
        for (let i = 0; i < 20; i++) {
            record = fs.existsSync(recordPath) ? fs.readFileSync(recordPath, 'utf8') : '';
            if (record.includes('"tools/call"')) break;
            await sleep(100);
        }
        assert.match(record, /"initialize"/, 'record.jsonl has no initialize: is --record working?');
        assert.match(record, /"tools\/call"/, 'record.jsonl has no tools/call');
        const [, payload, signature] = accessToken.split('.');
        assert.ok(!record.includes(accessToken), 'the access token was written to the child stdin');
        assert.ok(!record.includes(signature), 'the token signature reached the child stdin');
        assert.ok(!record.includes(payload), 'the token payload reached the child stdin');
        assert.doesNotMatch(record, /Bearer /i, '"Bearer …" reached the child stdin');
        assert.doesNotMatch(record, /"authorization"/i, 'an authorization field reached the child stdin');
    });

    rtest('the AS token also works on a raw request (200 + session)', async () => {
        const r = await rawInitialize(accessToken);
        assert.equal(r.status, 200, `${r.status} ${r.wwwAuth} ${r.text}`);
        await deleteSession(r.headers.get('mcp-session-id'), accessToken);
    });

    rtest('wrong audience (same AS key) -> 401 invalid_token', async () => {
        const token = as.mint({ aud: `http://127.0.0.1:${relayPort}/other` });
        const r = await rawInitialize(token);
        assert.equal(r.status, 401, `${r.status} ${r.text}`);
        assert.match(r.wwwAuth, /error="invalid_token"/, `WWW-Authenticate: ${r.wwwAuth}`);
        assert.match(r.wwwAuth, /resource_metadata="/, `WWW-Authenticate: ${r.wwwAuth}`);
    });

    rtest('other token defects -> 401 (expired, wrong issuer, no aud, foreign key, alg none)', async () => {
        const now = Math.floor(Date.now() / 1000);
        const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
        const forged = (() => {
            // same kid as the AS key, signed by another key
            const h = b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: as.current.kid }));
            const c = b64url(JSON.stringify({ iss: as.url, aud: resource, sub: 'mallory', scope: 'mcp', exp: now + 600 }));
            return `${h}.${c}.${b64url(crypto.sign('sha256', Buffer.from(`${h}.${c}`), other))}`;
        })();
        const none = (() => {
            const h = b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
            const c = b64url(JSON.stringify({ iss: as.url, aud: resource, sub: 'mallory', scope: 'mcp', exp: now + 600 }));
            return `${h}.${c}.`;
        })();
        const cases = {
            expired: as.mint({ iat: now - 3600, exp: now - 600 }),
            wrongIssuer: as.mint({ iss: 'http://127.0.0.1:1/' }),
            noAudience: as.mint({ aud: undefined }),
            foreignKey: forged,
            algNone: none,
        };
        const got = {};
        for (const [name, token] of Object.entries(cases)) {
            const r = await rawInitialize(token);
            got[name] = `${r.status} ${r.wwwAuth}`;
        }
        for (const [name, line] of Object.entries(got)) {
            assert.match(line, /^401 Bearer error="invalid_token"/, `${name}: ${line}`);
        }
    });

    rtest('valid token without scope mcp -> 403 insufficient_scope', async () => {
        for (const claims of [{ scope: 'other' }, { scope: undefined }]) {
            const r = await rawInitialize(as.mint(claims));
            assert.equal(r.status, 403, `${JSON.stringify(claims)}: ${r.status} ${r.wwwAuth} ${r.text}`);
            assert.match(r.wwwAuth, /error="insufficient_scope"/, `WWW-Authenticate: ${r.wwwAuth}`);
            assert.match(r.wwwAuth, /scope="mcp"/, `WWW-Authenticate: ${r.wwwAuth}`);
        }
    });

    rtest('AS key rotation: an unknown kid makes the relay refetch /jwks; a dropped key stops working', async () => {
        const wait = () => sleep(JWKS_REFRESH_MS + 200); // let the relay's refresh gate open
        await wait();
        const jwks0 = as.counts.jwks;
        const k1 = as.rotate(); // JWKS now {k1, k2}; k2 signs
        const k2 = as.current;
        let r = await rawInitialize(as.mint({}, {}, k2));
        assert.equal(r.status, 200, `token signed by the new key k2: ${r.status} ${r.wwwAuth} ${r.text}`);
        assert.equal(as.counts.jwks, jwks0 + 1, 'the unknown kid should trigger exactly one JWKS fetch');
        await deleteSession(r.headers.get('mcp-session-id'), as.mint({}, {}, k2));
        r = await rawInitialize(as.mint({}, {}, k1));
        assert.equal(r.status, 200, `k1 is still published: ${r.status} ${r.wwwAuth} ${r.text}`);
        await deleteSession(r.headers.get('mcp-session-id'), as.mint({}, {}, k1));
        assert.equal(as.counts.jwks, jwks0 + 1, 'a known kid must not refetch');

        // The AS retires k1 and k2 and signs with k3; the next unknown kid reloads the set.
        as.rotate({ dropOld: true });
        await wait();
        r = await rawInitialize(as.mint());
        assert.equal(r.status, 200, `token signed by k3: ${r.status} ${r.wwwAuth} ${r.text}`);
        await deleteSession(r.headers.get('mcp-session-id'), as.mint());
        assert.equal(as.counts.jwks, jwks0 + 2);
        r = await rawInitialize(as.mint({}, {}, k1));
        assert.equal(r.status, 401, `k1 was removed from the JWKS: ${r.status} ${r.text}`);
        assert.match(r.wwwAuth, /error="invalid_token"/);
    });
});
