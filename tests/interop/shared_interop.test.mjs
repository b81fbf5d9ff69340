// Interop in shared mode: many official TypeScript SDK clients (@modelcontextprotocol/sdk) on
// one `mcp-relay serve --session-mode shared` whose single stdio child is the reference
// server @modelcontextprotocol/server-everything. Colliding ids across clients, sampling
// answered by the one client that asked, and one child process for everyone.
//
// Run: node --test tests/interop/shared_interop.test.mjs (after scripts/setup-node-tools.sh)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { childPids, serverEverythingArgs, startRelay, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000;
const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

let relay;
const open = new Set();

async function connect({ capabilities = {}, setup } = {}) {
    const client = new Client({ name: 'mcp-relay-shared-interop', version: '1.0.0' }, { capabilities });
    if (setup) setup(client);
    const transport = new StreamableHTTPClientTransport(new URL(relay.url));
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'connect');
    const entry = { client, transport };
    open.add(entry);
    return entry;
}

async function disconnect(entry) {
    open.delete(entry);
    try { await withTimeout(entry.transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
    try { await withTimeout(entry.client.close(), 5_000, 'close'); } catch { /* best effort */ }
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

describe('TypeScript SDK clients -> mcp-relay serve --session-mode shared -> one server-everything', () => {
    before(async () => {
        relay = await startRelay({
            name: 'shared-interop',
            child: [process.execPath, ...serverEverythingArgs()],
            extraArgs: ['--session-mode', 'shared'],
        });
    });

    after(async () => {
        for (const entry of [...open]) await disconnect(entry);
        if (relay) await relay.stop();
    });

    test('20 SDK clients with colliding ids each get their own answers from one child', { timeout: TEST_TIMEOUT_MS }, async () => {
        const clients = await Promise.all(Array.from({ length: 20 }, () => connect()));
        const sessions = new Set(clients.map((c) => c.transport.sessionId));
        assert.equal(sessions.size, 20, 'every client has its own session');
        for (const c of clients) {
            assert.equal(c.client.getServerVersion()?.name, 'mcp-servers/everything');
        }
        // Every SDK client numbers its requests from 0, so the ids collide across clients.
        await Promise.all(clients.map(async (c, i) => {
            for (let k = 0; k < 10; k++) {
                const message = `client ${i} call ${k}`;
                const r = await c.client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
                assert.equal(textOf(r), `Echo: ${message}`);
                const sum = await c.client.callTool({ name: 'get-sum', arguments: { a: i, b: k } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
                assert.equal(textOf(sum), `The sum of ${i} and ${k} is ${i + k}.`);
            }
        }));
        const children = childPids(relay.proc.pid);
        assert.equal(children.length, 1, `expected one shared child, found ${children.length}`);
        await Promise.all(clients.map(disconnect));
    });

    test('sampling from the shared child reaches the calling client only', { timeout: TEST_TIMEOUT_MS }, async () => {
        const seen = { asker: 0, bystander: 0 };
        const handler = (who) => (client) => client.setRequestHandler(CreateMessageRequestSchema, async () => {
            seen[who] += 1;
            return { model: `model-of-${who}`, role: 'assistant', content: { type: 'text', text: `reply from ${who}` } };
        });
        const bystander = await connect({ capabilities: { sampling: {} }, setup: handler('bystander') });
        const asker = await connect({ capabilities: { sampling: {} }, setup: handler('asker') });
        const result = await asker.client.callTool(
            { name: 'trigger-sampling-request', arguments: { prompt: 'hello?', maxTokens: 5 } },
            undefined,
            { timeout: REQUEST_TIMEOUT_MS },
        );
        assert.match(textOf(result), /reply from asker/);
        assert.deepEqual(seen, { asker: 1, bystander: 0 });
        await disconnect(asker);
        await disconnect(bystander);
    });
});
