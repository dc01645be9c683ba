// What the single-flow browser checks (reset, passkey) share: the
// step/check output, Debian's headless Chromium in a throwaway profile, and
// the pass/fail ending with a screenshot (also on failure).

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const STEP_MS = 15_000;

export const step = (what) => console.log(`- ${what}`);
export const check = (condition, message) => {
  if (!condition) throw new Error(message);
};

/** A fresh suffix for usernames and addresses. */
export const uniqueSuffix = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

/** screenshots/NAME.png next to this file (the folder is made). */
export function screenshotPath(name) {
  const shots = resolve(dirname(fileURLToPath(import.meta.url)), 'screenshots');
  mkdirSync(shots, { recursive: true });
  return join(shots, `${name}.png`);
}

/** The browser of one check; `launch` fills it, `finish` closes it. */
export const browser = { context: undefined, page: undefined, profile: undefined };

/** Headless Chromium in a new profile; `options` and `args` are added. */
export async function launch(options = {}, args = []) {
  browser.profile = mkdtempSync(join(tmpdir(), 'tessera-chromium-'));
  browser.context = await chromium.launchPersistentContext(browser.profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic', ...args],
    timeout: STEP_MS,
    ...options,
  });
  browser.context.setDefaultTimeout(STEP_MS);
  browser.page = browser.context.pages()[0] || (await browser.context.newPage());
  return browser.page;
}

/** Runs the check NAME, prints its verdict, screenshots, and exits. */
export async function finish(name, screenshot, run) {
  try {
    await run();
    console.log(`screenshot: ${screenshot}`);
    console.log(`${name}: 1 passed, 0 failed`);
    await browser.context?.close().catch(() => {});
    if (browser.profile) rmSync(browser.profile, { recursive: true, force: true });
    process.exit(0);
  } catch (error) {
    console.error(`FAILED: ${error?.stack || error}`);
    if (browser.page) await browser.page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    console.log(`${name}: 0 passed, 1 failed`);
    await browser.context?.close().catch(() => {});
    process.exit(1);
  }
}
