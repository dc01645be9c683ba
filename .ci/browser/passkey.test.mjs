// Passkeys in a real browser: Debian's headless Chromium with the DevTools
// virtual authenticator (CTAP 2.1, platform, resident keys, user
// verification), through a minimal single-page app (passkey.html) served on
// tessera's own origin. It registers a passkey with a bearer token, signs in
// with it without a username, and checks what tessera and the authenticator
// then hold:
//   - the creation options ask for a discoverable credential for RP id
//     `localhost`, and Chromium's own JSON helpers take them as they are;
//   - the authenticator keeps one resident credential for `localhost`, and
//     tessera lists one passkey with the name given;
//   - the passkey login answers a token pair for that user with
//     amr ["hwk","user"] and aal2, and GET /users/me takes the access token;
//   - the authenticator's signature counter moved, and tessera recorded the use;
//   - the same finish request sent again is refused (single-use ceremony);
//   - an assertion that a page on another origin under the same RP id got
//     from the same authenticator is refused (the client data names that origin);
//   - after DELETE /auth/passkeys/{id}, the authenticator's assertion is refused.
//
//   TESSERA_BASE_URL=http://127.0.0.1:8080 TESSERA_PASSKEY_ORIGIN=http://localhost:8080 node passkey.test.mjs
//
// TESSERA_PASSKEY_ORIGIN must be tessera's `webauthn.origin` (RP id
// `localhost`), served by the same server as TESSERA_BASE_URL. Run by
// ../browser.sh. Writes screenshots/passkey.png (also on failure).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { browser, check, finish, launch, screenshotPath, step, uniqueSuffix } from './harness.mjs';

const base = (process.env.TESSERA_BASE_URL || '').replace(/\/+$/, '');
const origin = (process.env.TESSERA_PASSKEY_ORIGIN || '').replace(/\/+$/, '');
if (!base || !origin) {
  console.error('ERROR: set TESSERA_BASE_URL and TESSERA_PASSKEY_ORIGIN');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const screenshot = screenshotPath('passkey');
const pageUrl = `${origin}/passkey-check`;
// Another origin under the same RP id (`localhost`, another port): a page
// there gets assertions for tessera's passkeys from the same authenticator.
// Nothing listens there; the test serves the page itself.
const otherOrigin = (() => {
  const url = new URL(origin);
  url.port = String(url.port === '65535' ? 1024 : Number(url.port || 80) + 1);
  return url.origin;
})();
const otherPageUrl = `${otherOrigin}/passkey-check`;
const pageHtml = readFileSync(join(here, 'passkey.html'), 'utf8');

const suffix = uniqueSuffix();
const username = `passkey_${suffix}`;
const password = `passkey browser passphrase ${suffix}`;
const passkeyName = 'Chromium virtual authenticator';
const show = (value) => JSON.stringify(value);

async function api(method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

async function credentialsOf(cdp, authenticatorId) {
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  return credentials;
}

async function run() {
  step(`register ${username} and log in with the password`);
  const created = await api('POST', '/users', { username, email: `${username}@example.com`, password });
  check(created.status === 201, `registration answered ${created.status} ${show(created.body)}`);
  const login = await api('POST', '/auth/login', { username, password });
  check(login.status === 200, `the password login answered ${login.status} ${show(login.body)}`);
  const passwordToken = login.body.access_token;
  check(claimsOf(passwordToken).aal === 'aal1', 'a password login is not aal1');

  // `localhost` is a secure context over plain HTTP and a valid RP id;
  // pin it to the IPv4 loopback tessera listens on.
  const page = await launch({}, ['--host-resolver-rules=MAP localhost 127.0.0.1']);
  page.on('console', (message) => console.log(`  [page] ${message.text()}`));
  await page.route(otherPageUrl, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: pageHtml }));
  await page.route(pageUrl, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: pageHtml }));

  step(`open the test page on ${origin} and attach a virtual authenticator`);
  await page.goto(pageUrl);
  check(await page.evaluate(() => window.isSecureContext), `${origin} is not a secure context`);
  check(await page.evaluate(() => typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'),
    'this Chromium lacks the WebAuthn Level 3 JSON helpers');
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      ctap2Version: 'ctap2_1',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  step('register a passkey from the page (bearer token of the password login)');
  const registered = await page.evaluate(([token, name]) => window.registerPasskey(token, name), [passwordToken, passkeyName]);
  check(registered.status === 201, `registration ${registered.step} answered ${registered.status} ${show(registered.body)}`);
  check(registered.body.name === passkeyName, `the passkey is named ${show(registered.body.name)}`);
  check(registered.options.rp.id === 'localhost', `the options name RP id ${show(registered.options.rp.id)}`);
  check(registered.options.authenticatorSelection?.residentKey === 'required',
    `the options do not require a discoverable credential: ${show(registered.options.authenticatorSelection)}`);
  let held = await credentialsOf(cdp, authenticatorId);
  check(held.length === 1, `the authenticator holds ${held.length} credentials`);
  check(held[0].isResidentCredential === true, 'the credential is not resident (discoverable)');
  check(held[0].rpId === 'localhost', `the credential is for RP id ${show(held[0].rpId)}`);
  const signCountAfterRegistration = held[0].signCount;

  const listed = await api('GET', '/auth/passkeys', undefined, passwordToken);
  check(listed.status === 200 && listed.body.length === 1, `GET /auth/passkeys answered ${listed.status} ${show(listed.body)}`);
  check(listed.body[0].id === registered.body.id && listed.body[0].last_used_at === null,
    `the listed passkey is ${show(listed.body[0])}`);

  step('sign in with the passkey, no username typed');
  const signedIn = await page.evaluate(() => window.signInWithPasskey());
  check(signedIn.status === 200, `passkey login ${signedIn.step} answered ${signedIn.status} ${show(signedIn.body)}`);
  check(signedIn.options.rpId === 'localhost', `the request options name RP id ${show(signedIn.options.rpId)}`);
  check(!signedIn.options.allowCredentials?.length, 'the request options list credentials (the login is meant to be discoverable)');
  check(typeof signedIn.body.refresh_token === 'string', 'the passkey login gave no refresh token');
  const claims = claimsOf(signedIn.body.access_token);
  check(claims.sub === created.body.id, `the token is for ${show(claims.sub)}, not ${show(created.body.id)}`);
  check(show(claims.amr) === show(['hwk', 'user']), `amr is ${show(claims.amr)}`);
  check(claims.aal === 'aal2', `aal is ${show(claims.aal)}`);
  const me = await api('GET', '/users/me', undefined, signedIn.body.access_token);
  check(me.status === 200 && me.body.username === username, `GET /users/me answered ${me.status} ${show(me.body)}`);
  console.log(`  token for ${me.body.username}: amr ${show(claims.amr)}, ${claims.aal}`);

  held = await credentialsOf(cdp, authenticatorId);
  check(held[0].signCount > signCountAfterRegistration,
    `the signature counter did not move (${signCountAfterRegistration} -> ${held[0].signCount})`);
  const used = await api('GET', '/auth/passkeys', undefined, passwordToken);
  check(used.body[0].last_used_at !== null, 'tessera did not record the passkey\'s use');

  step('the same finish request, sent again, is refused');
  const replayed = await page.evaluate((request) => window.replayLogin(request), signedIn.request);
  check(replayed.status === 401 && replayed.body.code === 'invalid_credentials',
    `the replay answered ${replayed.status} ${show(replayed.body)}`);

  step(`an assertion made on another origin (${otherOrigin}, same RP id) is refused`);
  await page.goto(otherPageUrl);
  const foreignStart = await api('POST', '/auth/passkeys/login/start');
  check(foreignStart.status === 200, `login/start answered ${foreignStart.status}`);
  const foreign = await page.evaluate((options) => window.assertion(options), foreignStart.body.publicKey);
  const relayed = await api('POST', '/auth/passkeys/login/finish', { ceremony_id: foreignStart.body.ceremony_id, credential: foreign });
  check(relayed.status === 401 && relayed.body.code === 'invalid_credentials',
    `an assertion from ${otherOrigin} answered ${relayed.status} ${show(relayed.body)}`);
  const clientData = JSON.parse(Buffer.from(foreign.response.clientDataJSON, 'base64url').toString('utf8'));
  check(clientData.origin === otherOrigin, `the browser signed for origin ${show(clientData.origin)}`);
  await page.goto(pageUrl);

  step('after the passkey is deleted, its assertion is refused');
  const deleted = await api('DELETE', `/auth/passkeys/${registered.body.id}`, undefined, passwordToken);
  check(deleted.status === 204, `DELETE answered ${deleted.status}`);
  const afterDelete = await page.evaluate(() => window.signInWithPasskey());
  check(afterDelete.step === 'finish', `the browser did not produce an assertion: ${show(afterDelete)}`);
  check(afterDelete.status === 401 && afterDelete.body.code === 'invalid_credentials',
    `a deleted passkey's login answered ${afterDelete.status} ${show(afterDelete.body)}`);

  await page.screenshot({ path: screenshot, fullPage: true });
}

await finish('passkey', screenshot, run);
