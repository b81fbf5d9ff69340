// Interop across protocol eras: a 2026-07-28 client (stateless requests, `server/discover`,
// multi round-trip `input_required` results) and the TypeScript SDK's legacy Client
// (initialize, sessions, server->client requests) use the same `mcp-relay serve` at the same
// time, in front of @modelcontextprotocol/server-everything, a legacy (2025-11-25) stdio
// server. The relay initializes the child itself and turns the child's
// `elicitation/create` / `sampling/createMessage` into `input_required` results for the
// modern client; the legacy client gets them as requests on its session, as always.
//
// The pinned SDK (1.32.2) has no 2026-07-28 client (no `server/discover`, `inputRequests` or
// `inputResponses` in its dist), so the modern client is scripted here: `fetch` with
// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers and the per-request `_meta`
// (protocol version, client capabilities, client info); JSON or SSE answers; on
// `resultType: "input_required"` it answers each `inputRequests` entry by its method and
// retries with a new id, the same params plus `inputResponses` and the exact `requestState`.
//
// Both session modes: per-session (modern requests on the relay's own pool of initialized
// children, each legacy session on its own child) and shared (both eras on one child).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { serverEverythingArgs, startRelay, withTimeout } from './harness.mjs';

const MODERN = '2026-07-28';
const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;
const MAX_ROUNDS = 5;

/** Methods whose `params.name` / `params.uri` travels in `Mcp-Name`. */
const NAMED = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

/** The JSON-RPC messages of a response body, JSON or SSE. */
function messagesOf(contentType, text) {
    if (!contentType.startsWith('text/event-stream')) return text.trim() ? [JSON.parse(text)] : [];
    const out = [];
    for (const event of text.split(/\r?\n\r?\n/)) {
        const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
        if (data.length && data.join('\n').trim()) out.push(JSON.parse(data.join('\n')));
    }
    return out;
}

/** A scripted 2026-07-28 client of `url`. */
function modernClient(url, { capabilities = { sampling: {}, elicitation: {} }, name = 'era-interop-modern' } = {}) {
    let nextId = 1000;
    const meta = {
        'io.modelcontextprotocol/protocolVersion': MODERN,
        'io.modelcontextprotocol/clientCapabilities': capabilities,
        'io.modelcontextprotocol/clientInfo': { name, version: '1.0.0' },
    };

    /** One POST: { status, id, answer (the message with our id), notifications }. */
    async function send(method, params = {}) {
        const id = nextId++;
        const headers = {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': MODERN,
            'mcp-method': method,
        };
        if (NAMED[method]) headers['mcp-name'] = params[NAMED[method]];
        const body = { jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } };
        const res = await fetch(url, {
            method: 'POST',
            headers,
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
        });
        assert.equal(res.headers.get('mcp-session-id'), null, `a modern ${method} must not get a session id`);
        const messages = messagesOf(res.headers.get('content-type') ?? '', await res.text());
        const answer = messages.find((m) => m.id === id && !('method' in m));
        assert.ok(answer, `${method} (HTTP ${res.status}): no answer with id ${id} in ${JSON.stringify(messages)}`);
        return { status: res.status, id, answer, notifications: messages.filter((m) => m !== answer) };
    }

    /**
     * A request taken to completion: every `input_required` round is answered by
     * `answer(method, params, key)` and retried with a new id. Returns the final answer,
     * the rounds seen ({ inputRequests, requestState }) and the ids used.
     */
    async function call(method, params, answer = () => { throw new Error('no input expected'); }) {
        const rounds = [];
        const ids = [];
        let retry = {};
        for (;;) {
            const r = await send(method, { ...params, ...retry });
            ids.push(r.id);
            const result = r.answer.result;
            if (!result || result.resultType !== 'input_required') return { answer: r.answer, status: r.status, rounds, ids };
            assert.ok(rounds.length < MAX_ROUNDS, `more than ${MAX_ROUNDS} input rounds`);
            assert.equal(typeof result.requestState, 'string', 'input_required without a requestState');
            rounds.push({ inputRequests: result.inputRequests, requestState: result.requestState });
            const inputResponses = {};
            for (const [key, req] of Object.entries(result.inputRequests ?? {})) {
                inputResponses[key] = await answer(req.method, req.params ?? {}, key);
            }
            retry = { inputResponses, requestState: result.requestState };
        }
    }

    return { send, call };
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/** The one input request of a round: its key and entry, after checking there is just one. */
function onlyInput(round) {
    const entries = Object.entries(round.inputRequests ?? {});
    assert.equal(entries.length, 1, `expected one input request, got ${JSON.stringify(round.inputRequests)}`);
    return entries[0];
}

for (const mode of ['per-session', 'shared']) {
    describe(`2026-07-28 client and SDK legacy client, one relay (${mode}) -> server-everything`, () => {
        let relay;
        let modern;
        const legacyClients = [];

        before(async () => {
            const extraArgs = mode === 'shared' ? ['--session-mode', 'shared'] : [];
            relay = await startRelay({ name: `era-interop-${mode}`, child: [process.execPath, ...serverEverythingArgs()], extraArgs });
            modern = modernClient(relay.url);
        });

        after(async () => {
            for (const { client, transport } of legacyClients) {
                await withTimeout(transport.terminateSession(), 5_000, 'terminateSession').catch(() => {});
                await withTimeout(client.close(), 5_000, 'client.close').catch(() => {});
            }
            if (relay) {
                const exit = await relay.stop();
                process.stderr.write(`relay stopped (${JSON.stringify(exit)}); log: ${relay.logFile}\n`);
            }
        });

        /** A fresh SDK legacy client with sampling and elicitation handlers. */
        async function legacyClient({ onSample, onElicit }) {
            const client = new Client({ name: 'era-interop-legacy', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: { form: {} } } });
            client.setRequestHandler(CreateMessageRequestSchema, async (req) => onSample(req.params));
            client.setRequestHandler(ElicitRequestSchema, async (req) => onElicit(req.params));
            const transport = new StreamableHTTPClientTransport(new URL(relay.url));
            await withTimeout(client.connect(transport, { timeout: STEP_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'legacy client.connect');
            legacyClients.push({ client, transport });
            return client;
        }

        test('server/discover is answered from the child\'s initialize', { timeout: TEST_TIMEOUT_MS }, async () => {
            const { status, answer } = await modern.send('server/discover');
            assert.equal(status, 200);
            const r = answer.result;
            assert.ok(r, `server/discover failed: ${JSON.stringify(answer)}`);
            assert.equal(r.serverInfo?.name, 'mcp-servers/everything');
            assert.ok(r.supportedVersions.includes(MODERN), `supportedVersions: ${JSON.stringify(r.supportedVersions)}`);
            assert.ok(r.supportedVersions.includes('2025-11-25'), 'legacy sessions are served on the same path');
            assert.ok(r.capabilities?.tools, 'the child\'s capabilities were lost');
        });

        test('tools/list and a plain tools/call (echo)', { timeout: TEST_TIMEOUT_MS }, async () => {
            const list = await modern.call('tools/list', {});
            const names = list.answer.result.tools.map((t) => t.name);
            // The conditional tools exist only if the relay declared sampling and elicitation
            // when it initialized the child.
            for (const n of ['echo', 'trigger-elicitation-request', 'trigger-sampling-request']) {
                assert.ok(names.includes(n), `tools/list lacks ${n}: ${names.join(', ')}`);
            }
            const message = 'stateless through the relay: ünïcödé ✓';
            const { answer, rounds } = await modern.call('tools/call', { name: 'echo', arguments: { message } });
            assert.equal(rounds.length, 0);
            assert.notEqual(answer.result.isError, true);
            assert.equal(textOf(answer.result), `Echo: ${message}`);
            assert.ok([undefined, 'complete'].includes(answer.result.resultType), `resultType ${answer.result.resultType}`);
        });

        test('an elicitation round: input_required, retry with inputResponses, the answer reaches the tool', { timeout: TEST_TIMEOUT_MS }, async () => {
            const seen = [];
            const { answer, rounds, ids } = await modern.call('tools/call', { name: 'trigger-elicitation-request', arguments: {} }, (method, params) => {
                seen.push({ method, params });
                assert.equal(method, 'elicitation/create');
                return { action: 'accept', content: { name: 'Ada Modern', check: true, integer: 17 } };
            });
            assert.equal(rounds.length, 1, 'exactly one input round');
            const [key, req] = onlyInput(rounds[0]);
            assert.ok(key.length > 0);
            assert.equal(req.method, 'elicitation/create');
            assert.equal(req.params.message, 'Please provide inputs for the following fields:');
            assert.deepEqual(req.params.requestedSchema.required, ['name']);
            assert.equal(seen.length, 1);
            assert.notEqual(ids[0], ids[1], 'the retry must use a new id');
            const text = textOf(answer.result);
            assert.match(text, /User provided the requested information/);
            assert.match(text, /- Name: Ada Modern/);
            assert.match(text, /- Agreed to terms: true/);
            assert.match(text, /- Favorite Integer: 17/);
        });

        test('a sampling round: the child\'s sampling/createMessage is answered by the modern client', { timeout: TEST_TIMEOUT_MS }, async () => {
            const prompt = 'what is 6 times 7, asked statelessly?';
            const { answer, rounds } = await modern.call('tools/call', { name: 'trigger-sampling-request', arguments: { prompt, maxTokens: 21 } }, (method) => {
                assert.equal(method, 'sampling/createMessage');
                return { role: 'assistant', model: 'era-interop-model', content: { type: 'text', text: 'forty-two, from 2026-07-28' }, stopReason: 'endTurn' };
            });
            assert.equal(rounds.length, 1);
            const [, req] = onlyInput(rounds[0]);
            assert.equal(req.params.maxTokens, 21);
            assert.equal(req.params.systemPrompt, 'You are a helpful test server.');
            assert.equal(req.params.messages[0].content.text, `Resource trigger-sampling-request context: ${prompt}`);
            const text = textOf(answer.result);
            assert.match(text, /^LLM sampling result:/);
            assert.match(text, /forty-two, from 2026-07-28/);
            assert.match(text, /era-interop-model/);
        });

        test('an altered requestState is refused (-32602); the exact one then completes the call', { timeout: TEST_TIMEOUT_MS }, async () => {
            const first = await modern.send('tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'tamper', maxTokens: 5 } });
            const r = first.answer.result;
            assert.equal(r?.resultType, 'input_required', JSON.stringify(first.answer));
            const [key] = onlyInput(r);
            const inputResponses = { [key]: { role: 'assistant', model: 'm', content: { type: 'text', text: 'not tampered' } } };
            const s = r.requestState;
            const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
            const bad = await modern.send('tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'tamper', maxTokens: 5 }, inputResponses, requestState: flipped });
            assert.equal(bad.answer.error?.code, -32602, `altered state: ${JSON.stringify(bad.answer)}`);
            const good = await modern.send('tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'tamper', maxTokens: 5 }, inputResponses, requestState: s });
            assert.match(textOf(good.answer.result), /not tampered/);
        });

        test('elicitation the client did not declare is refused to the child; no round is asked', { timeout: TEST_TIMEOUT_MS }, async () => {
            const bare = modernClient(relay.url, { capabilities: { sampling: {} }, name: 'era-interop-no-elicitation' });
            const { answer, rounds } = await bare.call('tools/call', { name: 'trigger-elicitation-request', arguments: {} });
            assert.equal(rounds.length, 0, 'a client without elicitation must never be asked for it');
            // The relay answers the child's elicitation/create -32601, as a client without the
            // capability would. The request then ends with -32021 if the round closes first, or
            // with the child's own answer to the refusal (server-everything reports it as a
            // tool error at once).
            if (answer.error) {
                assert.equal(answer.error.code, -32021, JSON.stringify(answer));
                assert.ok('elicitation' in (answer.error.data?.requiredCapabilities ?? {}), JSON.stringify(answer.error));
            } else {
                assert.equal(answer.result.isError, true, JSON.stringify(answer));
                assert.match(textOf(answer.result), /did not declare the elicitation capability/);
            }
        });

        // The child gives no link between its own requests and the call they serve, so the
        // relay can tell them apart only while one call is in flight on a child (PROTOCOL.md
        // §5.4; with two, it refuses the child's request). In per-session mode the legacy
        // session has a child of its own, so one call of each era runs at the same time; in
        // shared mode every call goes to the one child, so they take turns, both clients
        // connected throughout.
        test('both eras side by side: each client gets the rounds meant for it', { timeout: TEST_TIMEOUT_MS }, async () => {
            const legacySeen = { sample: [], elicit: [] };
            const legacy = await legacyClient({
                onSample: (p) => {
                    legacySeen.sample.push(p);
                    return { role: 'assistant', model: 'legacy-model', content: { type: 'text', text: 'sampled over a session' }, stopReason: 'endTurn' };
                },
                onElicit: (p) => {
                    legacySeen.elicit.push(p);
                    return { action: 'accept', content: { name: 'Lee Legacy', integer: 3 } };
                },
            });
            const modernSample = (m) => {
                assert.equal(m, 'sampling/createMessage');
                return { role: 'assistant', model: 'modern-model', content: { type: 'text', text: 'sampled by input_required' }, stopReason: 'endTurn' };
            };
            const modernElicit = (m) => {
                assert.equal(m, 'elicitation/create');
                return { action: 'accept', content: { name: 'Mo Modern', integer: 99 } };
            };
            const opts = { timeout: STEP_TIMEOUT_MS };
            const calls = {
                ls: () => legacy.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'legacy prompt', maxTokens: 11 } }, undefined, opts),
                le: () => legacy.callTool({ name: 'trigger-elicitation-request', arguments: {} }, undefined, opts),
                ms: () => modern.call('tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'modern prompt', maxTokens: 12 } }, modernSample),
                me: () => modern.call('tools/call', { name: 'trigger-elicitation-request', arguments: {} }, modernElicit),
            };
            const got = {};
            for (const pair of [['ls', 'me'], ['le', 'ms']]) {
                if (mode === 'per-session') {
                    const both = await withTimeout(Promise.all(pair.map((k) => calls[k]())), STEP_TIMEOUT_MS, `${pair} at the same time`);
                    pair.forEach((k, i) => { got[k] = both[i]; });
                } else {
                    for (const k of pair) got[k] = await withTimeout(calls[k](), STEP_TIMEOUT_MS, k);
                }
            }
            const { ls, le, ms, me } = got;
            assert.equal(legacySeen.sample.length, 1, `the legacy client must see only its own sampling request: ${JSON.stringify(legacySeen.sample)}`);
            assert.equal(legacySeen.sample[0].maxTokens, 11);
            assert.equal(legacySeen.elicit.length, 1, `the legacy client must see only its own elicitation: ${legacySeen.elicit.length}`);
            assert.match(textOf(ls), /sampled over a session/);
            assert.match(textOf(le), /- Name: Lee Legacy/);
            assert.match(textOf(le), /- Favorite Integer: 3/);
            assert.equal(ms.rounds.length, 1, `modern sampling: ${JSON.stringify(ms.answer)}`);
            assert.equal(onlyInput(ms.rounds[0])[1].params.maxTokens, 12);
            assert.match(textOf(ms.answer.result), /sampled by input_required/);
            assert.doesNotMatch(textOf(ms.answer.result), /sampled over a session/);
            assert.equal(me.rounds.length, 1, `modern elicitation: ${JSON.stringify(me.answer)}`);
            assert.match(textOf(me.answer.result), /- Name: Mo Modern/);
            assert.match(textOf(me.answer.result), /- Favorite Integer: 99/);
            // The legacy client still speaks its own era on its session.
            const echo = await legacy.callTool({ name: 'echo', arguments: { message: 'legacy echo' } }, undefined, opts);
            assert.equal(textOf(echo), 'Echo: legacy echo');
        });
    });
}
