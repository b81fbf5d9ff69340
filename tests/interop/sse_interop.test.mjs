// Interop, legacy HTTP+SSE (2024-11-05): the official TypeScript SDK's SSEClientTransport
// (@modelcontextprotocol/sdk, pinned in package.json) talks to `mcp-relay serve` at `<base>/sse`,
// whose stdio child is the reference server @modelcontextprotocol/server-everything (pinned).
//
// Run: cargo build && node --test tests/interop/sse_interop.test.mjs
//
// One relay serves the whole file; every test opens its own SSE connection, hence its own
// relay session (and, in the default per-session mode, its own child process).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { descendantPids, serverEverythingArgs, sleep, startRelay, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000; // per SDK request (the SDK's own timer)
const STEP_TIMEOUT_MS = 20_000; // guard around every other await
const TEST_TIMEOUT_MS = 60_000; // node:test per-test limit

let relay;
let base;
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

/** Connect a fresh SDK client over legacy SSE (fresh connection, fresh session). */
async function connect({ capabilities = {}, setup } = {}) {
    const client = new Client({ name: 'mcp-relay-sse-interop', version: '1.0.0' }, { capabilities });
    const errors = [];
    client.onerror = (err) => errors.push(err);
    if (setup) setup(client);
    const transport = new SSEClientTransport(new URL(`${base}/sse`));
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'client.connect over SSE');
    const entry = { client, transport, errors };
    openClients.add(entry);
    return entry;
}

/** Close the client (which closes its SSE stream). Never throws. */
async function disconnect(entry) {
    openClients.delete(entry);
    try {
        await withTimeout(entry.client.close(), 5_000, 'client.close');
    } catch { /* best effort */ }
}

/** Poll `predicate` every 50 ms until it holds or `ms` pass. */
async function eventually(what, predicate, ms = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (predicate()) return;
        await sleep(50);
    }
    assert.fail(`timed out waiting for: ${what}`);
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const children = () => descendantPids(relay.proc.pid, 'server-everything');

describe('TypeScript SDK SSEClientTransport -> mcp-relay serve (/sse) -> server-everything (stdio)', () => {
    before(async () => {
        relay = await startRelay({ name: 'sse-interop', child: [process.execPath, ...serverEverythingArgs()] });
        base = new URL(relay.url).origin;
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

    rtest('connect and listTools', async () => {
        const c = await connect();
        assert.equal(c.client.getServerVersion()?.name, 'mcp-servers/everything');
        assert.ok(c.client.getServerCapabilities()?.tools, 'server capabilities lost on the way');
        const { tools } = await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
        const names = tools.map((t) => t.name);
        for (const expected of ['echo', 'get-sum', 'trigger-long-running-operation']) {
            assert.ok(names.includes(expected), `tools/list lacks ${expected}: ${names.join(', ')}`);
        }
        assert.deepEqual(c.errors, [], `transport errors: ${c.errors.map(String).join('; ')}`);
        await disconnect(c);
    });

    rtest('tools/call echo (UTF-8 round trip)', async () => {
        const c = await connect();
        const message = 'legacy SSE through the relay: ünïcödé ✓ 🚀 "quotes" \\ backslash';
        const result = await c.client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
        assert.notEqual(result.isError, true);
        assert.equal(textOf(result), `Echo: ${message}`);
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
                    content: { type: 'text', text: 'sampled reply over legacy SSE' },
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
        const text = textOf(result);
        assert.match(text, /sampled reply over legacy SSE/);
        assert.match(text, /interop-test-model/);
        await disconnect(c);
    });

    rtest('closing the SSE client stops its child', async () => {
        const before = new Set(children());
        const c = await connect();
        await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
        const mine = children().filter((p) => !before.has(p));
        assert.equal(mine.length, 1, `expected one new server-everything child, found ${JSON.stringify(mine)}`);
        await disconnect(c);
        await eventually('the connection\'s child to exit', () => !children().includes(mine[0]));
    });
});
