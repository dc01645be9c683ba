// Drives tessera's Swagger UI (/docs) the way a person would: Debian's
// headless Chromium via playwright-core. Registers a user (POST /users), logs
// in (POST /auth/login), reads the access token from the rendered response,
// authorizes with it (the "bearer" scheme) and calls GET /users/me, then
// checks that the page shows 200 and the username.
//
//   TESSERA_BASE_URL=http://127.0.0.1:8080 node docs.test.mjs
//
// Run by ../browser.sh, which starts the server. Writes
// screenshots/docs.png (also on failure, with the page's console errors).

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const TOTAL_MS = 60_000; // the whole check
const STEP_MS = 15_000; // any one wait or action

const base = (process.env.TESSERA_BASE_URL || '').replace(/\/+$/, '');
if (!base) {
  console.error('ERROR: set TESSERA_BASE_URL, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const shots = resolve(here, 'screenshots');
const screenshot = join(shots, 'docs.png');
mkdirSync(shots, { recursive: true });

const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const username = `docs_${suffix}`;
const email = `docs_${suffix}@example.com`;
const password = `browser check ${suffix}`;

const consoleErrors = [];
const pageErrors = [];
const offsite = [];
let context;
let page;
let profile;

const step = (what) => console.log(`- ${what}`);

/** The `.opblock` of one operation, e.g. opblock('post', '/users'). */
function opblock(method, path) {
  return page.locator(
    `.opblock.opblock-${method}:has(.opblock-summary-path[data-path="${path}"])`,
  );
}

/** Expands an operation, turns on "Try it out", fills the body, executes,
 *  and returns { status, body } as the page renders them. */
async function tryOperation(method, path, body) {
  const block = opblock(method, path);
  await block.waitFor();
  if (!(await block.locator('.opblock-body').isVisible())) {
    await block.locator('.opblock-summary').first().click();
  }
  // The body renders after the click: wait for its toggle ("Try it out", or
  // "Cancel" when already on) instead of counting buttons that may not exist yet.
  const toggle = block.locator('button.try-out__btn');
  await toggle.waitFor();
  if ((await toggle.innerText()).includes('Try it out')) {
    await toggle.click();
  }
  if (body !== undefined) {
    const editor = block.locator('textarea.body-param__text');
    await editor.waitFor();
    await editor.fill(JSON.stringify(body, null, 2));
  }
  await block.locator('button.execute').click();
  const row = block.locator('.live-responses-table .response').first();
  await row.waitFor();
  const status = (await row.locator('.response-col_status').innerText()).trim();
  // The body as rendered (the <pre>, without the "Download" button beside it).
  const rendered = row.locator('.response-col_description .highlight-code pre').first();
  await rendered.waitFor();
  const text = (await rendered.innerText()).trim();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, text, json, block };
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function run() {
  profile = mkdtempSync(join(tmpdir(), 'tessera-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    viewport: { width: 1280, height: 1600 },
    timeout: STEP_MS,
  });
  context.setDefaultTimeout(STEP_MS);
  // Only the service itself may be reached; anything else is refused and
  // reported (nothing but the package registries is reachable anyway).
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${base}/`) || url === base) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => pageErrors.push(String(error)));

  step(`open ${base}/docs`);
  const response = await page.goto(`${base}/docs`, { waitUntil: 'load' });
  check(response && response.status() === 200, `GET /docs answered ${response?.status()}`);
  await page.locator('.swagger-ui .info .title').waitFor();
  const title = (await page.locator('.swagger-ui .info .title').innerText()).trim();
  check(/tessera/i.test(title), `the page's title is ${JSON.stringify(title)}`);

  step(`register ${username} (POST /users)`);
  const created = await tryOperation('post', '/users', { username, email, password });
  check(created.status === '201', `POST /users showed ${created.status}: ${created.text}`);
  check(created.json?.username === username, `POST /users showed ${created.text}`);

  step('log in (POST /auth/login)');
  const login = await tryOperation('post', '/auth/login', { username, password });
  check(login.status === '200', `POST /auth/login showed ${login.status}: ${login.text}`);
  const token = login.json?.access_token;
  check(
    typeof token === 'string' && token.split('.').length === 3,
    `no access_token in the rendered login response: ${login.text}`,
  );
  check(login.json.token_type === 'Bearer', `token_type is ${login.json.token_type}`);

  step('authorize with the access token (scheme "bearer")');
  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.modal-ux');
  await dialog.waitFor();
  const scheme = dialog.locator('.auth-container', {
    has: page.locator('h4', { hasText: /^bearer\b/ }),
  });
  await scheme.locator('input#auth-bearer-value').fill(token);
  await scheme.locator('button.authorize[type="submit"]').click();
  await scheme.locator('h6', { hasText: 'Authorized' }).waitFor();
  // One Close button per security scheme (bearer, drf_token); any closes it.
  await dialog.locator('button.btn-done').first().click();
  await dialog.waitFor({ state: 'detached' });
  check(
    (await page.locator('.auth-wrapper button.authorize.locked').count()) === 1,
    'the Authorize button does not show the locked state',
  );

  step('GET /users/me');
  const me = await tryOperation('get', '/users/me');
  check(me.status === '200', `GET /users/me showed ${me.status}: ${me.text}`);
  check(me.json?.username === username, `GET /users/me showed ${me.text}`);
  check(me.json?.email === email, `GET /users/me showed ${me.text}`);
  const curl = (await me.block.locator('.curl-command').innerText()).replace(/\s+/g, ' ');
  check(curl.includes(`Authorization: Bearer ${token}`), `the curl shown lacks the token: ${curl}`);
  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);

  await me.block.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: false });
}

function report() {
  if (consoleErrors.length) {
    console.log(`console errors (${consoleErrors.length}):`);
    for (const line of consoleErrors) console.log(`  ${line}`);
  }
  if (pageErrors.length) {
    console.log(`uncaught page errors (${pageErrors.length}):`);
    for (const line of pageErrors) console.log(`  ${line}`);
  }
  if (offsite.length) {
    console.log(`refused requests to other origins (${offsite.length}):`);
    for (const url of offsite) console.log(`  ${url}`);
  }
}

async function shutdown() {
  await context?.close().catch(() => {});
  if (profile) rmSync(profile, { recursive: true, force: true });
}

let timer;
const deadline = new Promise((_, reject) => {
  timer = setTimeout(
    () => reject(new Error(`the check did not finish within ${TOTAL_MS / 1000} s`)),
    TOTAL_MS,
  );
});

try {
  await Promise.race([run(), deadline]);
  clearTimeout(timer);
  report();
  console.log(`screenshot: ${screenshot}`);
  console.log(`GET /users/me through Swagger UI showed 200 and ${username}`);
  console.log('docs: 1 passed, 0 failed');
  await shutdown();
  process.exit(0);
} catch (error) {
  clearTimeout(timer);
  console.error(`FAILED: ${error?.stack || error}`);
  if (page) {
    await Promise.race([
      page.screenshot({ path: screenshot, fullPage: true, timeout: 5_000 }).then(
        () => console.error(`screenshot of the failure: ${screenshot}`),
        (e) => console.error(`no screenshot: ${e.message}`),
      ),
      new Promise((r) => setTimeout(r, 6_000)),
    ]);
  }
  report();
  console.log('docs: 0 passed, 1 failed');
  await Promise.race([shutdown(), new Promise((r) => setTimeout(r, 5_000))]);
  process.exit(1);
}
