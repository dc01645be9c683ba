// The password-reset flow as a person meets it: a user asks for a reset, the
// real mail arrives (aiosmtpd writes it to a Maildir), its link is opened in
// Debian's headless Chromium, a new password is typed into tessera's own
// page and submitted, and the new password then logs in (the old one not).
// JavaScript is disabled in the page: the form must work without it.
//
//   TESSERA_BASE_URL=http://127.0.0.1:8080 TESSERA_MAILDIR=/path/to/maildir node reset.test.mjs
//
// Run by ../browser.sh, which starts the server and the mail sink. Writes
// screenshots/reset.png (also on failure).

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, finish, launch, screenshotPath, step, uniqueSuffix } from './harness.mjs';

const base = (process.env.TESSERA_BASE_URL || '').replace(/\/+$/, '');
const maildir = process.env.TESSERA_MAILDIR || '';
if (!base || !maildir) {
  console.error('ERROR: set TESSERA_BASE_URL and TESSERA_MAILDIR');
  process.exit(2);
}
const screenshot = screenshotPath('reset');

const suffix = uniqueSuffix();
const username = `reset_${suffix}`;
const email = `reset_${suffix}@example.com`;
const oldPassword = `old browser passphrase ${suffix}`;
const newPassword = `new browser passphrase ${suffix}`;

async function api(method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return response.status;
}

/** The reset link of the newest mail to `email`: decoded by Python's own
 *  email package, whatever transfer encoding the mail uses. */
function resetLink() {
  const script = `
import email, email.policy, pathlib, re, sys
found = []
for sub in ("new", "cur"):
    folder = pathlib.Path(sys.argv[1]) / sub
    if folder.is_dir():
        found += sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
links = []
for path in found:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    if sys.argv[2] not in str(message["To"]):
        continue
    text = message.get_body(preferencelist=("plain",)).get_content()
    links += re.findall(r"https?://\\S+/reset-password\\?token=[A-Za-z0-9_-]+", text)
print(links[-1] if links else "")
`;
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (python.startsWith('/') && !existsSync(python)) continue;
    return execFileSync(python, ['-c', script, maildir, email]).toString().trim();
  }
  return '';
}

async function run() {
  step(`register ${username} and ask for a reset`);
  check((await api('POST', '/users', { username, email, password: oldPassword })) === 201, 'registration failed');
  check((await api('POST', '/auth/password-reset', { email })) === 202, 'the reset request was not 202');

  step('wait for the reset mail in the Maildir');
  let link = '';
  for (let i = 0; i < 100 && !link; i++) {
    if (existsSync(join(maildir, 'new')) && readdirSync(join(maildir, 'new')).length) link = resetLink();
    if (!link) await new Promise((r) => setTimeout(r, 200));
  }
  check(link.startsWith(`${base}/reset-password?token=`), `no reset link arrived (got "${link}")`);
  console.log(`  link: ${link.replace(/token=.*/, 'token=…')}`);

  const page = await launch({ javaScriptEnabled: false });

  step('open the link, type the new password twice, submit');
  const opened = await page.goto(link);
  check(opened.status() === 200, `the page answered ${opened.status()}`);
  await page.fill('#new_password', newPassword);
  await page.fill('#confirm_password', newPassword);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  const heading = await page.textContent('h1');
  check(heading.includes('Password changed'), `the page says "${heading}"`);
  await page.screenshot({ path: screenshot, fullPage: true });

  step('the new password logs in, the old one does not');
  check((await api('POST', '/auth/login', { username, password: newPassword })) === 200, 'the new password does not log in');
  check((await api('POST', '/auth/login', { username, password: oldPassword })) === 401, 'the old password still logs in');
}

await finish('reset', screenshot, run);
