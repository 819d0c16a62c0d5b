// Browser tests of the admin panel (/admin/) and Swagger UI (/api/docs/), in Debian's
// headless chromium driven by playwright-core. Run: `npm run test:browser` (or
// `node tests/browser/run.mjs`) after scripts/install-web.sh. Uses node:test, so it ends with
// node's usual "# pass N / # fail N" summary and exits non-zero when a test fails.
//
// What the caller (the Python harness that starts chatd) must provide, as environment:
//   CHATD_URL          base URL of a running chatd, e.g. http://127.0.0.1:18080 (no path).
//                      It serves /admin/, /api/docs/ (with node_modules/swagger-ui-dist at
//                      /api/docs/static/), /api/schema/, /healthz and the API.
//   ADMIN_USERNAME     an active staff user (is_staff = true) ...
//   ADMIN_PASSWORD     ... and its password. The tests log it in through the UI and through
//                      POST /api/auth/login/ (four successful logins in all).
//   VICTIM_ID          id of another active user, not staff, not superuser.
//   VICTIM_ACCESS      a valid access token of that user, good for the whole run (about a
//                      minute; the default 5-minute lifetime is enough if minted just before).
//                      Its GET /api/users/me/ must answer 200 with id VICTIM_ID when the run
//                      starts; the username is read from there.
//   VICTIM_MESSAGE_ID  id of an undeleted message in a chat the victim is a member of.
// Optional:
//   VICTIM_CHAT_ID     that message's chat; without it, the chat is read from
//                      GET /api/admin/messages/?before=<VICTIM_MESSAGE_ID+1>&limit=1.
//   VICTIM_PASSWORD    the victim's password: adds a check that a non-staff user who signs in
//                      is told "not a staff user" and stays on the login form.
//   CHROMIUM_PATH      default /usr/bin/chromium.
//
// What the run does to the data: the victim is deactivated (their open socket must close
// with code 4003 within 5 s and VICTIM_ACCESS must then get 401), then reactivated, made
// staff and made non-staff again, so they end active and not staff (whether VICTIM_ACCESS
// works again afterwards is not checked). Message VICTIM_MESSAGE_ID ends deleted. Nothing
// else is changed.
//
// Screenshots of every step go to test-artifacts/browser/*.png (and *-failed.png when a
// test fails). Every wait is bounded: 10 s per UI step, 20 s per navigation, 5 s for the
// socket to close, 10 s per REST call, and 2 minutes per test.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { adminSpec, adminSpecNotStaff } from './admin.spec.mjs';
import { docsSpec } from './docs.spec.mjs';
import { call, launchBrowser, login, readEnv, shot } from './lib.mjs';

let env;
try {
  env = readEnv();
} catch (err) {
  console.error(`tests/browser: ${err.message}`);
  process.exit(2);
}
let browser;

before(async () => {
  browser = await launchBrowser(env.chromium);
});

after(async () => {
  await browser?.close();
});

// On failure, a screenshot of every page still open, then the error.
async function withScreenshots(name, body) {
  try {
    await body();
  } catch (err) {
    let i = 0;
    for (const page of browser.context.pages()) {
      await shot(page, `${name}-failed${i ? `-${i}` : ''}`).catch(() => {});
      i++;
    }
    throw err;
  } finally {
    for (const page of browser.context.pages()) await page.close().catch(() => {});
  }
}

test('admin panel: sign in, counters, deactivate a connected user, delete a message', { timeout: 120_000 }, () =>
  withScreenshots('admin', () => adminSpec(browser.context, env)));

test('admin panel: a non-staff user is refused', {
  timeout: 60_000,
  skip: process.env.VICTIM_PASSWORD ? false : 'VICTIM_PASSWORD not set',
}, async () => {
  const token = await login(env.base, env.adminUsername, env.adminPassword);
  const victim = await call(env.base, 'GET', `/api/admin/users/${env.victimId}/`, { token });
  assert.equal(victim.status, 200, `GET /api/admin/users/${env.victimId}/ answered ${victim.status}`);
  await withScreenshots('not-staff', () =>
    adminSpecNotStaff(browser.context, env, victim.body.username, process.env.VICTIM_PASSWORD));
});

test('Swagger UI: authorize and try GET /api/users/me/', { timeout: 120_000 }, () =>
  withScreenshots('docs', () => docsSpec(browser.context, env)));
