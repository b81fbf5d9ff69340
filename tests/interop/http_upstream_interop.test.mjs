// Interop, remote HTTP upstreams: `mcp-relay serve --upstream http://…` in front of the reference
// server @modelcontextprotocol/server-everything (pinned) running on its own port, reached
//   - over Streamable HTTP (`dist/index.js streamableHttp`, `POST|GET|DELETE /mcp`), and
//   - over legacy HTTP+SSE (`dist/index.js sse`, `GET /sse` + `POST /message`) through the
//     relay's automatic fallback (its `POST /sse` is refused, so the relay opens `GET /sse`).
// The client is the official TypeScript SDK's StreamableHTTPClientTransport talking to the relay.
//
// Run: cargo build && node --test tests/interop/http_upstream_interop.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { freePort, serverEverythingArgs, sleep, startRelay, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000; // per SDK request (the SDK's own timer)
const STEP_TIMEOUT_MS = 20_000; // guard around every other await
const TEST_TIMEOUT_MS = 60_000; // node:test per-test limit

/** A free TCP port on 127.0.0.1 (server-everything only takes a port number, from PORT). */

/** Start server-everything in `mode` (streamableHttp | sse); resolves once it listens. */
async function startEverything(mode) {
    const port = await freePort();
    const [entry] = serverEverythingArgs();
    const proc = spawn(process.execPath, [entry, mode], {
        env: { ...process.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = [];
    let onLine = () => {};
    for (const stream of [proc.stdout, proc.stderr]) {
        stream.setEncoding('utf8');
        stream.on('data', (chunk) => {
            for (const line of chunk.split('\n')) {
                if (!line) continue;
                lines.push(line);
                if (lines.length > 2000) lines.shift();
                onLine(line);
            }
        });
    }
    const kill = () => { try { proc.kill('SIGKILL'); } catch { /* gone */ } };
    process.on('exit', kill);
    // streamableHttp: "... listening on port N"; sse: "Server is running on port N".
    await withTimeout(new Promise((resolve, reject) => {
        onLine = (line) => { if (line.includes(`port ${port}`)) resolve(); };
        proc.on('exit', (code) => reject(new Error(`server-everything ${mode} exited (${code}): ${lines.join('\n')}`)));
    }), STEP_TIMEOUT_MS, `server-everything ${mode} to listen on ${port}`);
    return {
        port,
        lines,
        stop: () => { process.off('exit', kill); kill(); },
    };
}

/** Poll `fn` until true (or fail after STEP_TIMEOUT_MS). */
async function eventually(what, fn) {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (Date.now() < deadline) {
        if (await fn()) return;
        await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
}

const textOf = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/** One SDK client on the relay, with a sampling handler that answers `reply`. */
async function connect(relay, reply, seen = []) {
    const client = new Client({ name: 'mcp-relay-http-upstream-interop', version: '1.0.0' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
        seen.push(request.params);
        return { model: 'interop-test-model', role: 'assistant', content: { type: 'text', text: reply }, stopReason: 'endTurn' };
    });
    const transport = new StreamableHTTPClientTransport(new URL(relay.url));
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS, 'client.connect (initialize)');
    return { client, transport };
}

async function disconnect({ client, transport }) {
    try { await withTimeout(transport.terminateSession(), 5_000, 'terminateSession'); } catch { /* best effort */ }
    try { await withTimeout(client.close(), 5_000, 'client.close'); } catch { /* best effort */ }
}

for (const { mode, path, reached } of [
    { mode: 'streamableHttp', path: '/mcp', reached: 'transport="streamable_http"' },
    { mode: 'sse', path: '/sse', reached: 'transport="sse"' },
]) {
    describe(`TypeScript SDK client -> mcp-relay serve --upstream http://…${path} -> server-everything ${mode}`, () => {
        let server;
        let relay;
        let failed = false;

        function rtest(name, fn) {
            test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
                try {
                    await fn();
                } catch (err) {
                    failed = true;
                    throw err;
                }
            });
        }

        before(async () => {
            server = await startEverything(mode);
            relay = await startRelay({
                name: `http-upstream-${mode}`,
                child: [],
                extraArgs: ['--upstream', `http://127.0.0.1:${server.port}${path}`],
            });
        });

        after(async () => {
            if (relay) {
                const exit = await relay.stop();
                if (failed) {
                    process.stderr.write(`\n--- relay log tail (full log: ${relay.logFile}) ---\n${relay.tail(80)}\n`);
                    process.stderr.write(`--- server-everything ${mode} ---\n${server.lines.slice(-40).join('\n')}\n`);
                }
                process.stderr.write(`relay stopped (${JSON.stringify(exit)}); log: ${relay.logFile}\n`);
            }
            server?.stop();
        });

        rtest('initialize and tools/call echo through the remote server', async () => {
            const c = await connect(relay, 'unused');
            assert.equal(c.client.getServerVersion()?.name, 'mcp-servers/everything');
            assert.ok(c.transport.sessionId, 'relay returned no Mcp-Session-Id');
            const message = 'over a remote upstream: ünïcödé ✓ 🚀';
            const result = await c.client.callTool({ name: 'echo', arguments: { message } }, undefined, { timeout: REQUEST_TIMEOUT_MS });
            assert.notEqual(result.isError, true);
            assert.equal(textOf(result), `Echo: ${message}`);
            assert.ok(relay.lines.some((l) => l.includes(reached)), `the relay did not connect with ${reached}`);
            await disconnect(c);
        });

        rtest('sampling/createMessage from the remote server reaches the client and back', async () => {
            const seen = [];
            const c = await connect(relay, 'sampled reply through a remote upstream', seen);
            const result = await c.client.callTool(
                { name: 'trigger-sampling-request', arguments: { prompt: 'what is 6 times 7?', maxTokens: 20 } },
                undefined,
                { timeout: REQUEST_TIMEOUT_MS },
            );
            assert.equal(seen.length, 1, 'the sampling handler should run exactly once');
            assert.equal(seen[0].maxTokens, 20);
            assert.match(textOf(result), /sampled reply through a remote upstream/);
            await disconnect(c);
        });

        rtest('ending the client session ends the remote session', async () => {
            const c = await connect(relay, 'unused');
            await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
            await disconnect(c);
            // streamableHttp: the relay sent DELETE; sse: the relay closed the GET stream.
            const ended = mode === 'sse' ? 'Client Disconnected' : 'session termination request';
            await eventually(`server-everything to log "${ended}"`, () => server.lines.some((l) => l.includes(ended)));
        });

        rtest('the relay logged no failed upstream connection', async () => {
            assert.ok(!relay.lines.some((l) => l.includes('upstream connection failed')), relay.tail(40));
        });
    });
}
