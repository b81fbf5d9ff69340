// The headless browser the browser tests drive: Debian's `chromium` ($MCP_RELAY_CHROMIUM
// overrides /usr/bin/chromium) through `playwright-core`, with the flags that work here. When
// either is missing, `missing` says why: the tests skip, unless CI is set, where
// `failInCiWithoutBrowser` registers a failing test instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

export const CHROMIUM = process.env.MCP_RELAY_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export let playwright = null;
export let missing = null;
try {
    playwright = await import('playwright-core');
} catch {
    missing = 'the playwright-core package is not installed (tests/interop: npm install)';
}
if (!fs.existsSync(CHROMIUM)) missing = `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

/** Registers a failing test when CI is set and no browser can run. */
export function failInCiWithoutBrowser() {
    if (missing && process.env.CI) {
        test('a browser is available', () => assert.fail(`${missing} (CI is set, so this is a failure)`));
    }
}

/** A headless Chromium. */
export const launchBrowser = () =>
    playwright.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
