// Interop: the official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
// package.json) talks MCP Streamable HTTP to `mcp-relay serve`, whose stdio child is the
// bundled demo server, `mcp-relay demo-server` (the README's first command).
//
// Run: node --test tests/interop/demo_interop.test.mjs   (scripts/setup-node-tools.sh first)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

import { relayBin, startRelay, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000;
const STEP_TIMEOUT_MS = 20_000;
const opts = { timeout: REQUEST_TIMEOUT_MS };

let relay;
let client;
let transport;

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const call = (name, args) => client.callTool({ name, arguments: args }, undefined, opts);

describe('TypeScript SDK client -> mcp-relay serve -> mcp-relay demo-server', () => {
    before(async () => {
        relay = await startRelay({ name: 'demo-interop', child: [relayBin, 'demo-server'] });
        client = new Client({ name: 'mcp-relay-demo-interop', version: '1.0.0' });
        transport = new StreamableHTTPClientTransport(new URL(relay.url));
        await withTimeout(client.connect(transport, opts), STEP_TIMEOUT_MS, 'client.connect');
    });

    after(async () => {
        try { await withTimeout(transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
        try { await withTimeout(client.close(), 5_000, 'client.close'); } catch { /* best effort */ }
        if (relay) await relay.stop();
    });

    test('initialize and tools/list: the demo tools with object input schemas', async () => {
        assert.equal(client.getServerVersion()?.name, 'mcp-relay-demo');
        assert.equal(transport.protocolVersion, '2025-11-25');
        const { tools } = await client.listTools(undefined, opts);
        assert.deepEqual(tools.map((t) => t.name), ['time', 'echo', 'kv_set', 'kv_get', 'kv_list', 'kv_delete']);
        for (const t of tools) assert.equal(t.inputSchema.type, 'object', t.name);
    });

    test('echo, the key/value round trip, and the time', async () => {
        assert.equal(textOf(await call('echo', { text: 'hello, SDK' })), 'hello, SDK');
        assert.equal((await call('kv_set', { key: 'lang', value: 'TypeScript' })).isError, false);
        assert.equal(textOf(await call('kv_get', { key: 'lang' })), 'TypeScript');
        assert.match(textOf(await call('kv_list', {})), /lang \(10 bytes\)/);
        const time = textOf(await call('time', { offset: '-03:00' }));
        const unix = Number(/^Unix: (\d+)$/m.exec(time)?.[1]);
        assert.ok(Math.abs(unix - Date.now() / 1000) < 300, time);
        assert.match(time, /^At -03:00: /m);
        assert.equal(textOf(await call('kv_delete', { key: 'lang' })), 'deleted `lang`');
    });

    test('bad input is a tool error; an unknown tool is InvalidParams', async () => {
        const missing = await call('kv_get', { key: 'lang' });
        assert.equal(missing.isError, true);
        assert.equal(textOf(missing), 'no key `lang`');
        await assert.rejects(call('no_such_tool', {}), (err) => err instanceof McpError && err.code === ErrorCode.InvalidParams);
    });

    test('the prompt and the store resource', async () => {
        const { prompts } = await client.listPrompts(undefined, opts);
        assert.deepEqual(prompts.map((p) => p.name), ['remember']);
        const prompt = await client.getPrompt({ name: 'remember', arguments: { fact: 'tea at five' } }, opts);
        assert.match(prompt.messages[0].content.text, /tea at five$/);
        await call('kv_set', { key: 'tea', value: '17:00' });
        const read = await client.readResource({ uri: 'demo://kv' }, opts);
        assert.deepEqual(JSON.parse(read.contents[0].text), { tea: '17:00' });
    });
});
