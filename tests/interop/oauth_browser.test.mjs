// A real browser on the relay's own authorization server: headless Chromium (Debian's
// `chromium`, driven by `playwright-core` with `executablePath`) loads the authorization URL of
// a client registered over HTTP, logs in and approves with the keyboard only (Tab, typing,
// Enter), and lands on the client's loopback redirect URI, served here by node:http, with a
// code that the token endpoint then exchanges. It also checks that the pages log no console
// errors and that the login page labels its inputs.
//
// Run: cargo build && node --test tests/interop/oauth_browser.test.mjs
// Skipped (unless CI is set: then it fails) when /usr/bin/chromium ($MCP_RELAY_CHROMIUM
// overrides it) or the playwright-core package is missing.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import { failInCiWithoutBrowser, launchBrowser, missing } from './browser.mjs';
import { relayBin, withTimeout } from './harness.mjs';
import { STEP_TIMEOUT_MS, freePort, jwtClaims, randomPassword, startAuthRelay } from './oauth_server_driver.mjs';

const USER = 'carol';
const PASSWORD = randomPassword();

failInCiWithoutBrowser();

/** The client's redirect URI: a loopback server that records what arrives. */
async function startCallback() {
    const hits = [];
    const server = http.createServer((req, res) => {
        hits.push(new URL(req.url, 'http://127.0.0.1'));
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><html lang="en"><title>Signed in</title><p>You can close this window.</p></html>');
    });
    const port = await freePort();
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { hits, uri: `http://127.0.0.1:${port}/callback`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** Presses Tab until the focused element matches `selector` (at most 20 times). */
async function tabTo(page, selector) {
    for (let i = 0; i < 20; i++) {
        if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
        await page.keyboard.press('Tab');
    }
    assert.fail(`Tab never reached ${selector}`);
}

/** Presses Enter and waits for the browser to reach a URL matching `url`; else says where it is. */
async function enterTo(page, url) {
    try {
        await Promise.all([page.waitForURL(url), page.keyboard.press('Enter')]);
    } catch (err) {
        const text = await page.locator('body').innerText().catch(() => '');
        err.message += `\nthe browser is at ${page.url()}: ${text.slice(0, 500)}`;
        throw err;
    }
}

describe('built-in authorization server: headless Chromium, keyboard only', { skip: missing && !process.env.CI ? missing : false }, () => {
    let relay;
    let callback;
    let browser;
    before(async () => {
        if (missing) return;
        relay = await startAuthRelay({
            name: 'oauth-browser',
            users: [{ name: USER, password: PASSWORD, roles: ['viewer'] }],
            child: [relayBin, 'demo-server'],
        });
        callback = await startCallback();
        browser = await launchBrowser();
    });
    after(async () => {
        if (browser) await browser.close();
        if (callback) await callback.close();
        if (relay) await relay.stop();
    });

    test('authorize → login → consent → the redirect URI with a code; labels; no console errors', { timeout: 90_000 }, async (t) => {
        if (missing) return t.skip(missing);
        const reg = await fetch(`${relay.issuer}/oauth/register`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ client_name: 'Browser Test Client', redirect_uris: [callback.uri], token_endpoint_auth_method: 'none' }),
        });
        const client = await reg.json();
        assert.equal(reg.status, 201, JSON.stringify(client));
        const verifier = crypto.randomBytes(32).toString('base64url');
        const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
        const state = crypto.randomBytes(9).toString('hex');
        const resource = `${relay.issuer}/mcp`;
        const authorize = new URL(`${relay.issuer}/oauth/authorize`);
        for (const [k, v] of Object.entries({
            response_type: 'code', client_id: client.client_id, redirect_uri: callback.uri,
            code_challenge: challenge, code_challenge_method: 'S256', state, resource, scope: 'mcp',
        })) authorize.searchParams.set(k, v);

        const context = await browser.newContext();
        const page = await context.newPage();
        const problems = [];
        page.on('console', (m) => { if (m.type() === 'error') problems.push(`console at ${page.url()}: ${m.text()}`); });
        page.on('pageerror', (e) => problems.push(`page error at ${page.url()}: ${e.message}`));
        context.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });
        page.setDefaultTimeout(STEP_TIMEOUT_MS);

        // The login page: every visible input has a label, and the keyboard alone signs in.
        const res = await page.goto(authorize.href);
        assert.equal(res.status(), 200);
        assert.equal(await page.locator('h1').innerText(), 'Sign in');
        const unlabelled = await page.$$eval('input:not([type=hidden])', (inputs) =>
            inputs.filter((i) => i.labels.length === 0 && !i.getAttribute('aria-label')).map((i) => i.name));
        assert.deepEqual(unlabelled, [], 'inputs without a label');
        assert.equal(await page.getByLabel('User name').count(), 1);
        assert.equal(await page.getByLabel('Password').count(), 1);
        await tabTo(page, 'input#username');
        await page.keyboard.type(USER);
        await tabTo(page, 'input#password');
        await page.keyboard.type(PASSWORD);
        await enterTo(page, /\/oauth\/consent\?/);

        // The consent page: Tab to Allow, Enter; the browser lands on the redirect URI.
        assert.equal(await page.locator('h1').innerText(), 'Allow access?');
        assert.match(await page.locator('main').innerText(), /Browser Test Client/);
        await tabTo(page, 'button[value=approve]');
        await enterTo(page, (u) => u.href.startsWith(callback.uri));
        const landed = new URL(page.url());
        assert.equal(landed.origin + landed.pathname, callback.uri);
        const code = landed.searchParams.get('code');
        assert.ok(code, `no code in ${landed.href}`);
        assert.equal(landed.searchParams.get('state'), state);
        assert.equal(landed.searchParams.get('iss'), relay.issuer);
        const loads = callback.hits.filter((u) => u.pathname === '/callback'); // not /favicon.ico
        assert.equal(loads.length, 1, 'the redirect URI was loaded once');
        assert.equal(loads[0].searchParams.get('code'), code);
        assert.deepEqual(problems, [], 'console errors on the pages');
        await context.close();

        // The code is real: the token endpoint exchanges it.
        const tok = await withTimeout(fetch(`${relay.issuer}/oauth/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
                grant_type: 'authorization_code', code, client_id: client.client_id,
                redirect_uri: callback.uri, code_verifier: verifier, resource,
            }).toString(),
        }), STEP_TIMEOUT_MS, 'token exchange');
        const tokens = await tok.json();
        assert.equal(tok.status, 200, JSON.stringify(tokens));
        assert.equal(jwtClaims(tokens.access_token).sub, USER);
    });
});
