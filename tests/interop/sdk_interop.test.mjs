// Interop: the official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
// package.json) talks MCP Streamable HTTP to `mcp-relay serve`, whose stdio child is the
// reference server @modelcontextprotocol/server-everything (pinned), started as
// `node <server-everything>/dist/index.js stdio`.
//
// Run: node --test tests/interop/        (Node 20 or 22; scripts/setup-node-tools.sh first)
//
// One relay serves the whole file; every test opens its own client, hence its own MCP session
// (and, in the relay's default per-session mode, its own child process).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
    CreateMessageRequestSchema,
    ElicitRequestSchema,
    ErrorCode,
    ListRootsRequestSchema,
    McpError,
    ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { descendantPids, serverEverythingArgs, sleep, startRelay, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000; // per SDK request (the SDK's own timer)
const STEP_TIMEOUT_MS = 20_000; // guard around every other await
const TEST_TIMEOUT_MS = 60_000; // node:test per-test limit

let relay;
let failed = false;
const openClients = new Set();

/** A test whose failure also prints the relay's recent log lines. */
function rtest(name, fn) {
    test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
        try {
            await fn(t);
        } catch (err) {
            failed = true; // the relay's log tail is printed once, after the last test
            throw err;
        }
    });
}

/** Connect a fresh SDK client (fresh session). */
async function connect({ capabilities = {}, name = 'mcp-relay-interop', setup } = {}) {
    const client = new Client({ name, version: '1.0.0' }, { capabilities });
    const errors = [];
    client.onerror = (err) => errors.push(err);
    if (setup) setup(client);
    const transport = new StreamableHTTPClientTransport(new URL(relay.url));
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'client.connect (initialize)');
    const entry = { client, transport, errors };
    openClients.add(entry);
    return entry;
}

/** End the session politely (DELETE), then close the client. Never throws. */
async function disconnect(entry) {
    openClients.delete(entry);
    try {
        await withTimeout(entry.transport.terminateSession(), 5_000, 'terminateSession');
    } catch { /* best effort */ }
    try {
        await withTimeout(entry.client.close(), 5_000, 'client.close');
    } catch { /* best effort */ }
}

/** A raw POST to the relay, bypassing the SDK (for status-code checks). */
async function rawPost(body, headers = {}) {
    const res = await fetch(relay.url, {
        method: 'POST',
        headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...headers,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text };
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

describe('TypeScript SDK client -> mcp-relay serve -> server-everything (stdio)', () => {
    before(async () => {
        relay = await startRelay({ name: 'sdk-interop', child: [process.execPath, ...serverEverythingArgs()] });
    });

    after(async () => {
        for (const entry of [...openClients]) await disconnect(entry);
        if (relay) {
            const exit = await relay.stop();
            if (failed) {
                process.stderr.write(`\n--- relay log tail (full log: ${relay.logFile}) ---\n${relay.tail(80)}\n`);
            }
            process.stderr.write(`relay stopped (${JSON.stringify(exit)}); log: ${relay.logFile}\n`);
        }
    });

    rtest('initialize: session id, server info and tools/list', async () => {
        const c = await connect({ capabilities: { sampling: {} } });
        const sid = c.transport.sessionId;
        assert.ok(sid, 'relay returned no Mcp-Session-Id on the initialize response');
        assert.match(sid, /^[\x21-\x7E]+$/, 'session id must be visible ASCII only');
        assert.equal(c.client.getServerVersion()?.name, 'mcp-servers/everything');
        assert.equal(c.transport.protocolVersion, '2025-11-25');
        assert.ok(c.client.getServerCapabilities()?.tools, 'server capabilities lost on the way');

        const { tools } = await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
        const names = tools.map((t) => t.name);
        for (const expected of ['echo', 'get-sum', 'trigger-long-running-operation', 'toggle-subscriber-updates', 'trigger-sampling-request']) {
            assert.ok(names.includes(expected), `tools/list lacks ${expected}: ${names.join(', ')}`);
        }
        const echo = tools.find((t) => t.name === 'echo');
        assert.equal(echo.inputSchema.type, 'object');
        assert.ok(echo.inputSchema.properties.message, 'echo input schema lost its properties');
        await disconnect(c);
    });

    rtest('tools/call echo (UTF-8 round trip)', async () => {
        const c = await connect();
        const message = 'hello through the relay: ünïcödé ✓ 🚀 "quotes" \\ backslash';
        const result = await c.client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.notEqual(result.isError, true);
        assert.equal(textOf(result), `Echo: ${message}`);
        await disconnect(c);
    });

    rtest('tools/call get-sum', async () => {
        const c = await connect();
        const result = await c.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3.5 } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.notEqual(result.isError, true);
        assert.equal(textOf(result), 'The sum of 2 and 3.5 is 5.5.');
        await disconnect(c);
    });

    rtest('concurrent calls on one session keep their own responses', async () => {
        const c = await connect();
        const calls = [];
        for (let i = 0; i < 8; i++) {
            calls.push(c.client.callTool({ name: 'get-sum', arguments: { a: i, b: 100 } }, undefined, { timeout: REQUEST_TIMEOUT_MS }));
        }
        const results = await withTimeout(Promise.all(calls), STEP_TIMEOUT_MS, '8 concurrent get-sum calls');
        results.forEach((r, i) => assert.equal(textOf(r), `The sum of ${i} and 100 is ${i + 100}.`));
        await disconnect(c);
    });

    rtest('long-running operation reports progress via onprogress', async () => {
        const c = await connect();
        const progress = [];
        const result = await c.client.callTool(
            { name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 } },
            undefined,
            { timeout: REQUEST_TIMEOUT_MS, onprogress: (p) => progress.push(p) },
        );
        assert.match(textOf(result), /Long running operation completed\. Duration: 1\.5 seconds, Steps: 3\./);
        assert.deepEqual(
            progress.map((p) => [p.progress, p.total]),
            [[1, 3], [2, 3], [3, 3]],
            `progress notifications: ${JSON.stringify(progress)}`,
        );
        await disconnect(c);
    });

    rtest('sampling/createMessage from the child is answered by the client', async () => {
        const seen = [];
        const c = await connect({
            capabilities: { sampling: {} },
            setup: (client) => client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
                seen.push(request.params);
                return {
                    model: 'interop-test-model',
                    role: 'assistant',
                    content: { type: 'text', text: 'sampled reply from the SDK client' },
                    stopReason: 'endTurn',
                };
            }),
        });
        const result = await c.client.callTool(
            { name: 'trigger-sampling-request', arguments: { prompt: 'what is 6 times 7?', maxTokens: 20 } },
            undefined,
            { timeout: REQUEST_TIMEOUT_MS },
        );
        assert.equal(seen.length, 1, 'the sampling handler should run exactly once');
        assert.equal(seen[0].maxTokens, 20);
        assert.match(JSON.stringify(seen[0].messages), /what is 6 times 7\?/);
        const text = textOf(result);
        assert.match(text, /LLM sampling result/);
        assert.match(text, /sampled reply from the SDK client/);
        assert.match(text, /interop-test-model/);
        await disconnect(c);
    });

    rtest('elicitation/create from the child is answered by the client', async () => {
        const seen = [];
        const c = await connect({
            capabilities: { elicitation: { form: {} } },
            setup: (client) => client.setRequestHandler(ElicitRequestSchema, async (request) => {
                seen.push(request.params);
                return { action: 'accept', content: { name: 'Interop Tester', check: true, integer: 7 } };
            }),
        });
        const result = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.equal(seen.length, 1, 'the elicitation handler should run exactly once');
        assert.equal(seen[0].requestedSchema.type, 'object');
        assert.ok(seen[0].requestedSchema.properties.name, 'requestedSchema lost its properties');
        const text = textOf(result);
        assert.match(text, /accept/);
        assert.match(text, /Interop Tester/);
        await disconnect(c);
    });

    rtest('roots/list from the child with no request in flight (GET stream), then after list_changed', async () => {
        let roots = [{ uri: 'file:///tmp/mcp-relay-interop/first', name: 'first root' }];
        let calls = 0;
        let wake = () => {};
        const c = await connect({
            capabilities: { roots: { listChanged: true } },
            setup: (client) => client.setRequestHandler(ListRootsRequestSchema, async () => {
                calls++;
                wake();
                return { roots };
            }),
        });
        // server-everything asks for the roots 350 ms after notifications/initialized, while the
        // client has no request in flight: the relay must deliver it on the standalone GET
        // stream (or hold it until that stream opens).
        const waitForCalls = async (n, what) => {
            const deadline = Date.now() + 10_000;
            while (calls < n && Date.now() < deadline) {
                await Promise.race([new Promise((r) => { wake = r; }), sleep(250)]);
            }
            assert.ok(calls >= n, `${what}: roots/list reached the client ${calls} time(s), expected ${n}`);
        };
        await waitForCalls(1, 'after initialize');
        let result = await c.client.callTool({ name: 'get-roots-list', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.match(textOf(result), /Current MCP Roots \(1 total\)/);
        assert.match(textOf(result), /file:\/\/\/tmp\/mcp-relay-interop\/first/);

        // notifications/roots/list_changed (client -> child) makes the child ask again.
        roots = [...roots, { uri: 'file:///tmp/mcp-relay-interop/second', name: 'second root' }];
        await withTimeout(c.client.sendRootsListChanged(), STEP_TIMEOUT_MS, 'sendRootsListChanged');
        await waitForCalls(2, 'after notifications/roots/list_changed');
        // the child stores the answer asynchronously; give it a moment, then ask it
        const deadline = Date.now() + 5_000;
        do {
            result = await c.client.callTool({ name: 'get-roots-list', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
            if (/\(2 total\)/.test(textOf(result))) break;
            await sleep(100);
        } while (Date.now() < deadline);
        assert.match(textOf(result), /Current MCP Roots \(2 total\)/);
        assert.match(textOf(result), /second/);
        await disconnect(c);
    });

    rtest('resources/subscribe then notifications/resources/updated arrive (incl. on the GET stream)', async () => {
        const uri = 'demo://resource/dynamic/text/1';
        const updates = [];
        let wake = () => {};
        const c = await connect({
            setup: (client) => client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
                updates.push({ uri: n.params.uri, at: Date.now() });
                wake();
            }),
        });
        assert.ok(c.client.getServerCapabilities()?.resources?.subscribe, 'server should advertise resources.subscribe');
        await c.client.subscribeResource({ uri }, { timeout: REQUEST_TIMEOUT_MS });
        // server-everything sends one update at once (while the tool call is in flight, so it
        // may ride the POST stream), then one every 5 s with no request in flight: those can
        // only reach the client on the standalone GET stream.
        const toggled = await c.client.callTool({ name: 'toggle-subscriber-updates', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.match(textOf(toggled), /Started simulated resource updated notifications/);
        const deadline = Date.now() + 15_000;
        while (updates.length < 2 && Date.now() < deadline) {
            await Promise.race([new Promise((r) => { wake = r; }), sleep(500)]);
        }
        assert.ok(updates.length >= 2, `expected >= 2 resource updates within 15 s, got ${JSON.stringify(updates)}`);
        for (const u of updates) assert.equal(u.uri, uri);

        const stopped = await c.client.callTool({ name: 'toggle-subscriber-updates', arguments: {} }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.match(textOf(stopped), /Stopped simulated resource updates/);
        await c.client.unsubscribeResource({ uri }, { timeout: REQUEST_TIMEOUT_MS });
        await disconnect(c);
    });

    rtest('terminateSession (DELETE) ends the session; its id then gets 404', async () => {
        const c = await connect();
        const sid = c.transport.sessionId;
        const version = c.transport.protocolVersion;
        assert.ok(sid);
        await c.client.ping({ timeout: REQUEST_TIMEOUT_MS });
        await withTimeout(c.transport.terminateSession(), STEP_TIMEOUT_MS, 'transport.terminateSession()');
        assert.equal(c.transport.sessionId, undefined, 'the SDK clears the session id after a successful DELETE');

        const res = await rawPost(
            { jsonrpc: '2.0', id: 99, method: 'tools/list', params: {} },
            { 'mcp-session-id': sid, 'mcp-protocol-version': version },
        );
        assert.equal(res.status, 404, `POST with the ended session id: expected 404, got ${res.status} ${res.text}`);

        const del = await fetch(relay.url, {
            method: 'DELETE',
            headers: { 'mcp-session-id': sid, 'mcp-protocol-version': version },
            signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
        });
        await del.body?.cancel();
        assert.equal(del.status, 404, `second DELETE of the ended session: expected 404, got ${del.status}`);
        openClients.delete(c);
        await withTimeout(c.client.close(), 5_000, 'client.close');
    });

    rtest('a request with an unknown session id gets 404', async () => {
        const res = await rawPost(
            { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
            { 'mcp-session-id': 'no-such-session-0123456789', 'mcp-protocol-version': '2025-11-25' },
        );
        assert.equal(res.status, 404, `expected 404, got ${res.status} ${res.text}`);
    });

    rtest('child crash mid-request: the SDK call fails promptly, nothing hangs', async (t) => {
        const existing = new Set(descendantPids(relay.proc.pid, 'server-everything'));
        const c = await connect();
        // Find the child serving this session (the one that appeared with it).
        let mine = [];
        for (let i = 0; i < 40 && mine.length === 0; i++) {
            mine = descendantPids(relay.proc.pid, 'server-everything').filter((p) => !existing.has(p));
            if (mine.length === 0) await sleep(50);
        }
        assert.equal(mine.length, 1, `expected exactly one new server-everything child, found ${JSON.stringify(mine)}`);

        const started = Date.now();
        const call = c.client.callTool(
            { name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 } },
            undefined,
            { timeout: 45_000, onprogress: () => {} },
        );
        const outcome = call.then((r) => ({ ok: r }), (e) => ({ err: e }));
        await sleep(1_500); // the call is in flight and has reported progress
        process.kill(mine[0], 'SIGKILL');

        const res = await withTimeout(outcome, 15_000, 'the in-flight call to fail after the child was killed');
        assert.ok(res.err, `the call should fail when the child dies, got result ${JSON.stringify(res.ok)}`);
        assert.ok(Date.now() - started < 20_000, 'the failure should come promptly, not from the client timeout');
        assert.ok(
            !(res.err instanceof McpError && res.err.code === ErrorCode.RequestTimeout),
            `the call failed only through the SDK's own timeout: ${res.err}`,
        );

        // The session's child is gone. A next request must settle promptly (an error such as
        // 404, or a result if the relay restarts the child); it must never hang.
        const next = await withTimeout(
            c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS }).then((r) => ({ ok: r }), (e) => ({ err: e })),
            STEP_TIMEOUT_MS,
            'tools/list after the child crashed',
        );
        t.diagnostic(`in-flight call failed with: ${res.err}; next tools/list: ${next.err ? `error ${next.err}` : 'ok'}`);
        if (next.err) {
            assert.ok(
                !(next.err instanceof McpError && next.err.code === ErrorCode.RequestTimeout),
                `tools/list after the crash hung until the SDK timeout: ${next.err}`,
            );
        }
        openClients.delete(c);
        await withTimeout(c.client.close(), 5_000, 'client.close');
    });
});
