// Interop: the official TypeScript SDK `Client` over `StdioClientTransport` spawns
// `mcp-relay connect <url>` (the stdio bridge, as Claude Desktop / Cursor / VS Code would), and
// the bridge talks to the reference server @modelcontextprotocol/server-everything (pinned),
// started in its own HTTP modes:
//   node <server-everything>/dist/index.js streamableHttp   (PORT=…, POST/GET/DELETE /mcp)
//   node <server-everything>/dist/index.js sse              (PORT=…, GET /sse + POST /message)
//
// Run: node --test tests/interop/bridge_interop.test.mjs   (cargo build first)
// MCP_RELAY_BIN overrides the relay binary (default: <repo>/target/debug/mcp-relay).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { freePort, logDir, relayBin, repoRoot, serverEverythingArgs, withTimeout } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 15_000;
const STEP_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;


/**
 * Start server-everything in `mode` (`streamableHttp` or `sse`) on a free port; resolves once
 * it says it listens. Returns { port, proc, log(), stop() }.
 */
async function startEverything(mode) {
    const port = await freePort();
    const [entry] = serverEverythingArgs();
    fs.mkdirSync(logDir, { recursive: true });
    const logFile = path.join(logDir, `bridge-everything-${mode}.log`);
    const logStream = fs.createWriteStream(logFile);
    const proc = spawn(process.execPath, [entry, mode], {
        cwd: repoRoot,
        detached: true, // own process group: stop() kills it whole
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PORT: String(port), NO_COLOR: '1' },
    });
    const emergencyKill = () => {
        try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    };
    process.on('exit', emergencyKill);
    let text = '';
    const ready = new Promise((resolve, reject) => {
        const onData = (chunk) => {
            text += chunk.toString();
            logStream.write(chunk);
            if (/listening on port|running on port/i.test(text)) resolve();
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.once('exit', (code) => reject(new Error(`server-everything ${mode} exited (${code}): ${text}`)));
    });
    await withTimeout(ready, STEP_TIMEOUT_MS, `server-everything ${mode} listening`);
    return {
        port,
        proc,
        log: () => text,
        async stop() {
            process.off('exit', emergencyKill);
            emergencyKill();
            logStream.end();
        },
    };
}

/**
 * An SDK client whose transport spawns `mcp-relay connect ARGS`; the bridge's stderr is kept.
 * Returns { client, transport, stderr() }.
 */
async function connectBridge(args, { capabilities = {}, setup } = {}) {
    assert.ok(fs.existsSync(relayBin), `relay binary not found at ${relayBin} (cargo build, or set MCP_RELAY_BIN)`);
    const transport = new StdioClientTransport({
        command: relayBin,
        args: ['connect', ...args],
        env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' },
        stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk) => { stderr += chunk.toString(); });
    const client = new Client({ name: 'bridge-interop-host', version: '1.0.0' }, { capabilities });
    if (setup) setup(client);
    await withTimeout(client.connect(transport, { timeout: REQUEST_TIMEOUT_MS }), STEP_TIMEOUT_MS,
        `client.connect over mcp-relay connect ${args.join(' ')}`);
    return { client, transport, stderr: () => stderr };
}

const MODES = [
    { mode: 'streamableHttp', url: (port) => `http://127.0.0.1:${port}/mcp`, extra: [] },
    { mode: 'sse', url: (port) => `http://127.0.0.1:${port}/sse`, extra: ['--transport', 'sse'] },
    // Without --transport: Streamable HTTP is tried on /sse first, then the legacy fallback.
    { mode: 'sse', url: (port) => `http://127.0.0.1:${port}/sse`, extra: [], label: 'sse (auto fallback)' },
];

for (const { mode, url, extra, label } of MODES) {
    describe(`mcp-relay connect → server-everything ${label ?? mode}`, () => {
        let server;
        const open = [];

        before(async () => {
            server = await startEverything(mode);
        });

        after(async () => {
            for (const c of open) {
                try { await c.client.close(); } catch { /* already closed */ }
            }
            await server?.stop();
        });

        async function bridge(opts) {
            const c = await connectBridge([...extra, url(server.port)], opts);
            open.push(c);
            return c;
        }

        test('connect, list tools, call echo', { timeout: TEST_TIMEOUT_MS }, async () => {
            const c = await bridge();
            try {
                const info = c.client.getServerVersion();
                assert.ok(info?.name, `serverInfo: ${JSON.stringify(info)}`);
                const { tools } = await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
                const names = tools.map((t) => t.name);
                assert.ok(names.includes('echo'), names.join(','));
                const result = await c.client.callTool(
                    { name: 'echo', arguments: { message: 'hello through the bridge' } },
                    undefined,
                    { timeout: REQUEST_TIMEOUT_MS },
                );
                assert.equal(result.content[0].text, 'Echo: hello through the bridge');
            } catch (err) {
                err.message += `\n--- bridge stderr ---\n${c.stderr()}`;
                throw err;
            }
        });

        test('list and read a resource', { timeout: TEST_TIMEOUT_MS }, async () => {
            const c = await bridge();
            const { resources } = await c.client.listResources(undefined, { timeout: REQUEST_TIMEOUT_MS });
            assert.ok(resources.length > 0, 'no resources listed');
            const first = resources[0];
            const read = await c.client.readResource({ uri: first.uri }, { timeout: REQUEST_TIMEOUT_MS });
            assert.equal(read.contents[0].uri, first.uri);
            assert.ok((read.contents[0].text ?? read.contents[0].blob ?? '').length > 0);
        });

        test('sampling: the server asks the host through the bridge', { timeout: TEST_TIMEOUT_MS }, async () => {
            const seen = [];
            const c = await bridge({
                capabilities: { sampling: {} },
                setup: (client) => client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
                    seen.push(request.params);
                    return {
                        model: 'bridge-interop-model',
                        role: 'assistant',
                        content: { type: 'text', text: 'sampled reply from the host' },
                        stopReason: 'endTurn',
                    };
                }),
            });
            const { tools } = await c.client.listTools(undefined, { timeout: REQUEST_TIMEOUT_MS });
            assert.ok(tools.some((t) => t.name === 'trigger-sampling-request'),
                'server-everything registers trigger-sampling-request when the client can sample');
            const result = await c.client.callTool(
                { name: 'trigger-sampling-request', arguments: { prompt: 'what is 6 times 7?', maxTokens: 20 } },
                undefined,
                { timeout: REQUEST_TIMEOUT_MS },
            );
            assert.equal(seen.length, 1);
            assert.match(JSON.stringify(seen[0].messages), /6 times 7/);
            assert.match(JSON.stringify(result.content), /sampled reply from the host/);
        });

        test('closing the host ends the bridge', { timeout: TEST_TIMEOUT_MS }, async () => {
            const c = await bridge();
            const pid = c.transport.pid;
            assert.ok(pid, 'bridge pid');
            const exited = new Promise((resolve) => {
                const timer = setInterval(() => {
                    try { process.kill(pid, 0); } catch { clearInterval(timer); resolve(); }
                }, 25);
            });
            await c.client.close();
            await withTimeout(exited, 5_000, 'bridge exit after the host closed');
        });
    });
}
