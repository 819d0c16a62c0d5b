// Browser tests of the chat client at / (chat.spec.mjs), in Debian's headless chromium
// driven by playwright-core: two users in two browser contexts. Run:
//   CHATD_URL=http://127.0.0.1:8000 node tests/browser/chat.mjs
// (tests/integration/test_web_client.py starts a chatd and does this). Uses node:test, so
// it ends with node's "# pass N / # fail N" summary and exits non-zero when a step fails.
//
// Environment:
//   CHATD_URL       base URL of a running chatd (no path) that serves the client at /.
//                   Registration must not be throttled (the default): the run registers
//                   three users, with random names.
//   CHROMIUM_PATH   default /usr/bin/chromium.
//   RESULT_FILE     optional: where to write what the run did (users, chat ids) as JSON,
//                   for the caller to check from the server's side.
//
// The steps share two pages and run in order; after a failure the rest are skipped. Every
// wait is bounded (10 s per UI step, 20 s to reconnect, 10 s per REST call) and each step
// has a 60-second limit. Screenshots go to test-artifacts/browser/chat-*.png (and
// chat-failed-*.png when a step fails).
import { after, before, test } from 'node:test';
import { launchChromium, shot } from './lib.mjs';
import { setup, steps, writeSummary } from './chat.spec.mjs';

const base = (process.env.CHATD_URL || '').replace(/\/+$/, '');
if (!base) {
  console.error('tests/browser/chat.mjs: set CHATD_URL (see the comment at the top)');
  process.exit(2);
}
const env = { base, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };

// Network errors the browser itself logs while a step takes the network away, and the
// 4xx answers the steps provoke on purpose (a wrong password, an all-digit one): not faults
// of the page.
const EXPECTED_CONSOLE = [/^Failed to load resource/, /^WebSocket connection to .* failed/];

let chromium;
let ctx;
let failed = false;
const problems = [];

before(async () => {
  chromium = await launchChromium(env.chromium);
  ctx = await setup(env, chromium);
  for (const user of [ctx.a, ctx.b]) {
    user.page.on('pageerror', (err) => problems.push(`${user.name}: uncaught ${err.message}`));
    user.page.on('console', (msg) => {
      if (msg.type() !== 'error' || EXPECTED_CONSOLE.some((re) => re.test(msg.text()))) return;
      problems.push(`${user.name}: console error: ${msg.text()}`);
    });
  }
});

after(async () => {
  if (ctx && process.env.RESULT_FILE) await writeSummary(ctx, process.env.RESULT_FILE).catch(() => {});
  await chromium?.close();
});

for (const [name, run] of steps) {
  test(name, { timeout: 60_000 }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await run(ctx);
    } catch (err) {
      failed = true;
      await shot(ctx.a.page, `chat-failed-${steps.findIndex(([n]) => n === name) + 1}-a`).catch(() => {});
      await shot(ctx.b.page, `chat-failed-${steps.findIndex(([n]) => n === name) + 1}-b`).catch(() => {});
      throw err;
    }
  });
}

test('no uncaught errors or console errors in either page', () => {
  if (problems.length) throw new Error(problems.join('\n'));
});
