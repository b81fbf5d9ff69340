// Interop with several servers behind one relay: the official TypeScript SDK client
// (@modelcontextprotocol/sdk, pinned) against `mcp-relay serve --config FILE` whose
// `[servers.NAME]` tables run three real stdio servers of different kinds, and a fourth whose
// lists come in pages (none of the three paginates):
//
//   echo        target/debug/mcp-relay-fixture echo
//   conf        target/debug/mcp-relay-fixture conformance
//   everything  node <server-everything>/dist/index.js stdio   (the pinned reference server)
//   pages       node tests/interop/paging_server.mjs           (tools, prompts, resources: 3 pages)
//
// Each server is reached on its own path (/servers/NAME/mcp, names as the server gives them)
// and through the aggregate on the main path (/mcp, one session, tools and prompts named
// NAME__tool, resources under their own URIs): list, call, progress, sampling, resource read
// and subscription, `list_changed` after a server's tools change, pagination over the union.
//
// Run: node --test tests/interop/servers_interop.test.mjs (cargo build, scripts/setup-node-tools.sh)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
    CreateMessageRequestSchema,
    ListRootsRequestSchema,
    ResourceUpdatedNotificationSchema,
    ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { fixtureBin, serverEverythingArgs, sleep, startRelayWithConfig, tomlArray, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000; // per SDK request
const STEP_TIMEOUT_MS = 20_000; // guard around every other await
const TEST_TIMEOUT_MS = 60_000; // node:test per-test limit
const SEP = '__'; // the aggregate's default separator

// A static document of server-everything (its docs/ directory, listed as resources).
const require = createRequire(import.meta.url);
const everythingDocs = path.join(path.dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'docs');
const EVERYTHING_DOC = 'architecture.md';
const EVERYTHING_DOC_URI = `demo://resource/static/document/${EVERYTHING_DOC}`;
const PAGING_SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'paging_server.mjs');

/**
 * The servers and what each is asked, by its own tool names: `call` and `read` every server,
 * `progress`, `sampling`, `touch` (a resource update for a subscribed URI) and `change` (a
 * tool list change) where the server has them; `pages`: how many pages its lists take.
 */
const SERVERS = {
    echo: {
        command: [fixtureBin, 'echo'],
        serverInfo: 'mcp-relay-fixture',
        tools: ['echo', 'progress', 'sample', 'notify', 'touch'],
        call: { name: 'echo', arguments: { text: 'hello from echo ✓' }, text: 'hello from echo ✓' },
        progress: { name: 'progress', arguments: { steps: 3, interval_ms: 30 }, expect: [[1, 3], [2, 3], [3, 3]] },
        sampling: { name: 'sample', arguments: {}, asks: 'hi' }, // the fixture's own question
        read: { uri: 'file:///public/readme.txt', text: 'hello from the public readme' },
        // the fixture emits notifications/resources/updated when `touch` names a subscribed URI
        touch: { uri: 'file:///public/readme.txt', name: 'touch', arguments: { uri: 'file:///public/readme.txt' }, updates: 1 },
        // `notify` emits notifications/tools/list_changed (the list itself stays the same)
        change: { name: 'notify', arguments: {} },
    },
    conf: {
        command: [fixtureBin, 'conformance'],
        serverInfo: 'mcp-relay-fixture-conformance',
        tools: ['test_simple_text', 'test_tool_with_progress', 'test_sampling', 'test_dynamic_tool'],
        call: { name: 'test_simple_text', arguments: {}, text: 'This is a simple text response for testing.' },
        progress: { name: 'test_tool_with_progress', arguments: {}, expect: [[0, 100], [50, 100], [100, 100]] },
        sampling: { name: 'test_sampling', arguments: { prompt: 'conf asks: 6 x 7?' }, asks: 'conf asks: 6 x 7?' },
        read: { uri: 'test://static-text', text: 'This is the content of the static text resource.' },
        // `test_dynamic_tool` really adds a tool, then emits notifications/tools/list_changed
        change: { name: 'test_dynamic_tool', arguments: {}, added: 'test_dynamic_tool_added', addedText: 'Dynamic tool called' },
    },
    everything: {
        command: [process.execPath, ...serverEverythingArgs()],
        serverInfo: 'mcp-servers/everything',
        tools: ['echo', 'get-sum', 'trigger-long-running-operation', 'trigger-sampling-request', 'toggle-subscriber-updates'],
        call: { name: 'echo', arguments: { message: 'hello from everything ✓' }, text: 'Echo: hello from everything ✓' },
        progress: { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 }, expect: [[1, 3], [2, 3], [3, 3]] },
        sampling: {
            name: 'trigger-sampling-request',
            arguments: { prompt: 'everything asks: 2 + 2?', maxTokens: 20 },
            // server-everything wraps the prompt in its question
            asks: 'Resource trigger-sampling-request context: everything asks: 2 + 2?',
        },
        read: { uri: EVERYTHING_DOC_URI, text: fs.readFileSync(path.join(everythingDocs, EVERYTHING_DOC), 'utf8') },
        // one update at once, then one every 5 s with no request in flight (GET stream)
        touch: { uri: EVERYTHING_DOC_URI, name: 'toggle-subscriber-updates', arguments: {}, updates: 2, stop: true },
    },
    pages: {
        command: [process.execPath, PAGING_SERVER],
        serverInfo: 'paging-server',
        tools: ['paged_1', 'paged_5'],
        pages: 3,
        // a tool and a resource listed on the last page only
        call: { name: 'paged_5', arguments: {}, text: 'called paged_5' },
        read: { uri: 'paging://item/5', text: 'contents of paging://item/5' },
    },
};
const NAMES = Object.keys(SERVERS);

const CONFIG = NAMES.map((n) => `[servers.${n}]\ncommand = ${tomlArray(SERVERS[n].command)}\n`).join('\n');

let relay;
let failed = false;
const openClients = new Set();

/** A test whose failure also prints the relay's recent log lines (once, at the end). */
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

const serverPath = (name) => `/servers/${name}/mcp`;
const urlOf = (p) => new URL(p, relay.url);

/**
 * Connect a fresh SDK client (fresh session) to `p` (`/mcp` or `/servers/NAME/mcp`). It
 * declares sampling and roots (server-everything registers its sampling tool only then),
 * answers sampling with `reply to: <the prompt>` and records list_changed and
 * resources/updated notifications.
 */
async function connect(p) {
    const client = new Client({ name: 'mcp-relay-servers-interop', version: '1.0.0' }, { capabilities: { sampling: {}, roots: { listChanged: true } } });
    const entry = { client, path: p, sampled: [], listChanged: [], updates: [], wake: () => {} };
    const poke = () => entry.wake();
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
        const asked = request.params.messages.map((m) => m.content?.text ?? '').join(' ');
        entry.sampled.push(asked);
        poke();
        return { model: 'servers-interop-model', role: 'assistant', content: { type: 'text', text: `reply to: ${asked}` }, stopReason: 'endTurn' };
    });
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { entry.listChanged.push(Date.now()); poke(); });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { entry.updates.push(n.params.uri); poke(); });
    const transport = new StreamableHTTPClientTransport(urlOf(p));
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, `connect ${p}`);
    entry.transport = transport;
    openClients.add(entry);
    return entry;
}

/** End the session politely (DELETE), then close the client. Never throws. */
async function disconnect(entry) {
    openClients.delete(entry);
    try { await withTimeout(entry.transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
    try { await withTimeout(entry.client.close(), 5_000, 'client.close'); } catch { /* best effort */ }
}

/** Wait until `cond()` holds (woken by the client's handlers), or fail saying `what`. */
async function until(entry, cond, what, ms = 10_000) {
    const deadline = Date.now() + ms;
    while (!cond() && Date.now() < deadline) {
        await Promise.race([new Promise((r) => { entry.wake = r; }), sleep(250)]);
    }
    assert.ok(cond(), `${what} (waited ${ms} ms)`);
}

/** Retry `fn` until it stops throwing (lists that settle after initialize), at most `ms`. */
async function eventually(fn, ms = 5_000) {
    const deadline = Date.now() + ms;
    for (;;) {
        try {
            return await fn();
        } catch (err) {
            if (Date.now() > deadline) throw err;
            await sleep(200);
        }
    }
}

const LISTS = {
    tools: { call: 'listTools', key: 'tools', id: (x) => x.name },
    prompts: { call: 'listPrompts', key: 'prompts', id: (x) => x.name },
    resources: { call: 'listResources', key: 'resources', id: (x) => x.uri },
    resourceTemplates: { call: 'listResourceTemplates', key: 'resourceTemplates', id: (x) => x.uriTemplate },
};

/** Every page of a list, following nextCursor until it is absent: { items, ids, pages, cursors }. */
async function listAll(entry, kind) {
    const { call, key, id } = LISTS[kind];
    const items = [];
    const cursors = [];
    let cursor;
    let pages = 0;
    do {
        const page = await entry.client[call](cursor === undefined ? {} : { cursor }, { timeout: REQUEST_TIMEOUT_MS });
        pages += 1;
        items.push(...page[key]);
        if (page.nextCursor !== undefined) {
            assert.equal(typeof page.nextCursor, 'string', `${kind}: nextCursor must be a string`);
            assert.notEqual(page.nextCursor, cursor, `${kind}: the same cursor came back (endless pagination)`);
        }
        cursor = page.nextCursor;
        if (cursor !== undefined) cursors.push(cursor);
        assert.ok(pages <= 100, `${kind}: more than 100 pages`);
    } while (cursor !== undefined);
    const ids = items.map(id);
    assert.equal(new Set(ids).size, ids.length, `${kind}: an item came twice over the pages: ${ids.join(', ')}`);
    return { items, ids, pages, cursors };
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
const sorted = (xs) => [...xs].sort();

async function call(entry, name, args, extra = {}) {
    return entry.client.callTool({ name, arguments: args }, undefined, { timeout: REQUEST_TIMEOUT_MS, ...extra });
}

// === What every server does, asked by `as(server, tool)` (bare on a server's own path,
// prefixed on the aggregate) ===

async function checkCall(entry, server, as) {
    const { name, arguments: args, text } = SERVERS[server].call;
    const result = await call(entry, as(server, name), args);
    assert.notEqual(result.isError, true, `${server}: ${name} failed: ${JSON.stringify(result)}`);
    assert.equal(textOf(result), text, `${server}: ${name}`);
}

async function checkProgress(entry, server, as) {
    const { name, arguments: args, expect } = SERVERS[server].progress;
    const seen = [];
    const result = await call(entry, as(server, name), args, { onprogress: (p) => seen.push([p.progress, p.total]) });
    assert.notEqual(result.isError, true, `${server}: ${name} failed: ${JSON.stringify(result)}`);
    assert.deepEqual(seen, expect, `${server}: progress of ${name}`);
}

async function checkSampling(entry, server, as) {
    const { name, arguments: args, asks } = SERVERS[server].sampling;
    const result = await call(entry, as(server, name), args);
    assert.ok(entry.sampled.includes(asks), `${server}: the client saw no sampling request "${asks}": ${JSON.stringify(entry.sampled)}`);
    // the server's result quotes the client's answer to its own question, not another's
    const escaped = `reply to: ${asks}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(textOf(result), new RegExp(`${escaped}("|$)`), `${server}: ${name}`);
}

async function checkRead(entry, server) {
    const { uri, text } = SERVERS[server].read;
    const result = await entry.client.readResource({ uri }, { timeout: REQUEST_TIMEOUT_MS });
    assert.equal(result.contents.length, 1, `${server}: ${uri}`);
    assert.equal(result.contents[0].uri, uri);
    assert.equal(result.contents[0].text, text, `${server}: contents of ${uri}`);
}

async function checkSubscription(entry, server, as) {
    const { uri, name, arguments: args, updates, stop } = SERVERS[server].touch;
    await entry.client.subscribeResource({ uri }, { timeout: REQUEST_TIMEOUT_MS });
    const before = entry.updates.length;
    const mine = () => entry.updates.slice(before).filter((u) => u === uri).length;
    await call(entry, as(server, name), args);
    await until(entry, () => mine() >= updates, `${server}: expected ${updates} notifications/resources/updated for ${uri}, got ${JSON.stringify(entry.updates.slice(before))}`, 15_000);
    assert.deepEqual(entry.updates.slice(before).filter((u) => u !== uri), [], `${server}: updates for URIs never subscribed`);
    if (stop) await call(entry, as(server, name), args);
    await entry.client.unsubscribeResource({ uri }, { timeout: REQUEST_TIMEOUT_MS });
}

async function checkListChanged(entry, server, as) {
    const { name, arguments: args, added, addedText } = SERVERS[server].change;
    const before = entry.listChanged.length;
    await call(entry, as(server, name), args);
    await until(entry, () => entry.listChanged.length > before, `${server}: no notifications/tools/list_changed after ${name}`);
    if (added) {
        const { ids } = await listAll(entry, 'tools');
        assert.ok(ids.includes(as(server, added)), `${server}: ${as(server, added)} not listed after the change: ${ids.join(', ')}`);
        assert.equal(textOf(await call(entry, as(server, added), {})), addedText);
    }
}

const bare = (_server, tool) => tool;
const prefixed = (server, tool) => `${server}${SEP}${tool}`;

describe('TypeScript SDK client -> mcp-relay serve --config ([servers]) -> fixture echo, fixture conformance, server-everything, a paginating server', () => {
    before(async () => {
        relay = await startRelayWithConfig({ name: 'servers-interop', config: CONFIG });
    });

    after(async () => {
        for (const entry of [...openClients]) await disconnect(entry);
        if (relay) {
            const exit = await relay.stop();
            if (failed) {
                process.stderr.write(`\n--- relay log tail (full log: ${relay.logFile}) ---\n${relay.tail(120)}\n`);
            }
            process.stderr.write(`relay stopped (${JSON.stringify(exit)}); log: ${relay.logFile}\n`);
        }
    });

    for (const server of NAMES) {
        const s = SERVERS[server];
        describe(`per-server path /servers/${server}/mcp`, () => {
            rtest(`${server}: initialize, tools/list (every page) and a call`, async () => {
                const c = await connect(serverPath(server));
                assert.ok(c.transport.sessionId, 'no Mcp-Session-Id');
                assert.equal(c.client.getServerVersion()?.name, s.serverInfo);
                const { ids } = await eventually(async () => {
                    const list = await listAll(c, 'tools');
                    for (const t of s.tools) assert.ok(list.ids.includes(t), `tools/list lacks ${t}: ${list.ids.join(', ')}`);
                    return list;
                });
                assert.ok(ids.every((t) => !t.startsWith(`${server}${SEP}`)), `names on a server's own path are bare: ${ids.join(', ')}`);
                if (s.pages) {
                    for (const kind of ['tools', 'prompts', 'resources']) {
                        const list = await listAll(c, kind);
                        assert.equal(list.pages, s.pages, `${kind} pages`);
                        assert.deepEqual(list.cursors, ['2', '4'], `${kind}: the server's own cursors pass untouched`);
                    }
                }
                await checkCall(c, server, bare);
                await disconnect(c);
            });

            if (s.progress) {
                rtest(`${server}: progress notifications`, async () => {
                    const c = await connect(serverPath(server));
                    await checkProgress(c, server, bare);
                    await disconnect(c);
                });
            }

            if (s.sampling) {
                rtest(`${server}: sampling/createMessage answered by the client`, async () => {
                    const c = await connect(serverPath(server));
                    // (server-everything registers its sampling tool just after initialize)
                    await eventually(() => checkSampling(c, server, bare));
                    await disconnect(c);
                });
            }

            rtest(`${server}: resources/read${s.touch ? ', subscribe and notifications/resources/updated' : ''}`, async () => {
                const c = await connect(serverPath(server));
                await checkRead(c, server);
                if (s.touch) await checkSubscription(c, server, bare);
                await disconnect(c);
            });

            if (s.change) {
                rtest(`${server}: notifications/tools/list_changed after ${s.change.name}`, async () => {
                    const c = await connect(serverPath(server));
                    await checkListChanged(c, server, bare);
                    await disconnect(c);
                });
            }
        });
    }

    rtest('an unknown server name is 404', async () => {
        const res = await fetch(urlOf(serverPath('nope')), {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
            signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
        });
        await res.body?.cancel();
        assert.equal(res.status, 404);
    });

    describe('the aggregate /mcp', () => {
        rtest('initialize: the union of capabilities, instructions naming every server', async () => {
            const c = await connect('/mcp');
            assert.ok(c.transport.sessionId, 'no Mcp-Session-Id');
            const caps = c.client.getServerCapabilities();
            assert.ok(caps?.tools, `no tools capability: ${JSON.stringify(caps)}`);
            assert.ok(caps?.prompts, `no prompts capability: ${JSON.stringify(caps)}`);
            assert.equal(caps?.resources?.subscribe, true, `resources.subscribe lost: ${JSON.stringify(caps)}`);
            const instructions = c.client.getInstructions() ?? '';
            for (const n of NAMES) assert.match(instructions, new RegExp(`\\b${n}\\b`), `instructions do not name ${n}: ${instructions}`);
            await disconnect(c);
        });

        rtest('tools, prompts, resources and templates: every page of the union is every server\'s list', async (t) => {
            const agg = await connect('/mcp');
            const own = {};
            for (const n of NAMES) own[n] = await connect(serverPath(n));
            const expectUnion = async (kind, name) => eventually(async () => {
                const union = await listAll(agg, kind);
                const want = [];
                for (const n of NAMES) want.push(...(await listAll(own[n], kind)).ids.map((id) => name(n, id)));
                assert.deepEqual(sorted(union.ids), sorted(want), `${kind} of the aggregate`);
                t.diagnostic(`${kind}: ${union.ids.length} over ${union.pages} page(s)`);
                return union;
            });
            // `pages` lists in three pages: the union takes more than one, under the aggregate's
            // own cursor (never a server's bare cursor)
            const paged = (union, kind) => {
                assert.ok(union.pages > 1, `${kind}: the union came in one page although a server paginates`);
                for (const c of union.cursors) assert.ok(!['2', '4'].includes(c), `${kind}: a server's own cursor leaked: ${c}`);
            };
            paged(await expectUnion('tools', prefixed), 'tools');
            paged(await expectUnion('prompts', prefixed), 'prompts');
            const resources = await expectUnion('resources', bare);
            paged(resources, 'resources');
            // server-everything's whole list, and the fixtures' resources, under their own URIs
            const docs = fs.readdirSync(everythingDocs).map((f) => `demo://resource/static/document/${encodeURIComponent(f)}`);
            for (const uri of [...docs, 'file:///public/readme.txt', 'test://static-text', 'paging://item/5']) {
                assert.ok(resources.ids.includes(uri), `the union lacks ${uri}`);
            }
            await expectUnion('resourceTemplates', bare);
            const greet = await agg.client.getPrompt({ name: prefixed('echo', 'greet') }, { timeout: REQUEST_TIMEOUT_MS });
            assert.equal(greet.messages[0].content.text, 'prompt greet');
            const simple = await agg.client.getPrompt({ name: prefixed('conf', 'test_simple_prompt') }, { timeout: REQUEST_TIMEOUT_MS });
            assert.equal(simple.messages[0].content.text, 'This is a simple prompt for testing.');
            const last = await agg.client.getPrompt({ name: prefixed('pages', 'paged_prompt_5') }, { timeout: REQUEST_TIMEOUT_MS });
            assert.equal(last.messages[0].content.text, 'prompt paged_prompt_5');
            for (const c of [agg, ...Object.values(own)]) await disconnect(c);
        });

        rtest('tools/call reaches every server by its prefixed name, concurrently', async () => {
            const c = await connect('/mcp');
            await eventually(() => Promise.all(NAMES.map((n) => checkCall(c, n, prefixed))));
            const sums = await Promise.all([1, 2, 3, 4].map((i) => call(c, prefixed('everything', 'get-sum'), { a: i, b: 10 })));
            sums.forEach((r, i) => assert.equal(textOf(r), `The sum of ${i + 1} and 10 is ${i + 11}.`));
            await disconnect(c);
        });

        rtest('progress from every server, concurrently, each to its own call', async () => {
            const c = await connect('/mcp');
            await Promise.all(NAMES.filter((n) => SERVERS[n].progress).map((n) => checkProgress(c, n, prefixed)));
            await disconnect(c);
        });

        rtest('sampling/createMessage from every server reaches the client, each answer back to its asker', async () => {
            const c = await connect('/mcp');
            await eventually(() => checkSampling(c, 'everything', prefixed)); // registered after initialize
            await Promise.all(NAMES.filter((n) => SERVERS[n].sampling).map((n) => checkSampling(c, n, prefixed)));
            await disconnect(c);
        });

        rtest('resources/read is routed by URI (listed and templated); subscriptions get their updates', async () => {
            const c = await connect('/mcp');
            for (const n of NAMES) await checkRead(c, n);
            const templated = await c.client.readResource({ uri: 'demo://resource/dynamic/text/7' }, { timeout: REQUEST_TIMEOUT_MS });
            assert.match(templated.contents[0].text, /^Resource 7: This is a plaintext resource/);
            const conf = await c.client.readResource({ uri: 'test://template/42/data' }, { timeout: REQUEST_TIMEOUT_MS });
            assert.match(conf.contents[0].text, /42/);
            await checkSubscription(c, 'echo', prefixed);
            await checkSubscription(c, 'everything', prefixed);
            await disconnect(c);
        });

        rtest('notifications/tools/list_changed when a server\'s tools change; the new tool is listed and callable', async () => {
            const c = await connect('/mcp');
            // let the list settle first (server-everything adds tools after initialize)
            await eventually(async () => {
                const { ids } = await listAll(c, 'tools');
                assert.ok(ids.includes(prefixed('everything', 'trigger-sampling-request')), ids.join(', '));
            });
            await sleep(300);
            const { ids } = await listAll(c, 'tools');
            assert.ok(!ids.includes(prefixed('conf', 'test_dynamic_tool_added')), 'the dynamic tool is listed before it was added');
            await checkListChanged(c, 'conf', prefixed);
            await checkListChanged(c, 'echo', prefixed);
            await disconnect(c);
        });
    });
});
