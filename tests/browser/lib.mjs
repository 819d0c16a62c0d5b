// Shared by the browser specs: environment, browser launch, screenshots, bounded waits and
// small REST helpers (Node 20's global fetch).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(repoRoot, 'test-artifacts', 'browser');

// Every wait in the specs is bounded by one of these.
export const T = {
  action: 10_000,    // a click, a fill, an element showing up
  navigation: 20_000,
  socketClose: 5_000, // deactivation → the victim's socket is closed
  request: 10_000,   // one REST call from Node
};

export function readEnv() {
  const need = ['CHATD_URL', 'ADMIN_USERNAME', 'ADMIN_PASSWORD', 'VICTIM_ACCESS', 'VICTIM_ID', 'VICTIM_MESSAGE_ID'];
  const missing = need.filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(`missing environment: ${missing.join(', ')} (see the comment at the top of tests/browser/run.mjs)`);
  }
  const e = process.env;
  return {
    base: e.CHATD_URL.replace(/\/+$/, ''),
    adminUsername: e.ADMIN_USERNAME,
    adminPassword: e.ADMIN_PASSWORD,
    victimAccess: e.VICTIM_ACCESS,
    victimId: Number(e.VICTIM_ID),
    victimMessageId: Number(e.VICTIM_MESSAGE_ID),
    victimChatId: e.VICTIM_CHAT_ID ? Number(e.VICTIM_CHAT_ID) : null,
    chromium: e.CHROMIUM_PATH || '/usr/bin/chromium',
  };
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// A browser with a fresh profile (its --user-data-dir), removed by close().
export async function launchBrowser(executablePath) {
  const profile = await mkdtemp(path.join(tmpdir(), 'chatd-browser-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1366, height: 900 },
    timeout: T.navigation,
    acceptDownloads: false,
  });
  context.setDefaultTimeout(T.action);
  context.setDefaultNavigationTimeout(T.navigation);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}

// Page errors and console errors, to be asserted empty at the end of a spec.
export function watchConsole(page, label) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`${label}: uncaught ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${label}: console error: ${msg.text()}`);
  });
  return problems;
}

export async function shot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: T.action });
  return file;
}

// One JSON call to chatd from Node; answers {status, body}.
export async function call(base, method, urlPath, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(base + urlPath, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(T.request),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, body: json };
}

export async function login(base, username, password) {
  const r = await call(base, 'POST', '/api/auth/login/', { body: { username, password } });
  if (r.status !== 200 || !r.body?.access) {
    throw new Error(`login of ${username} answered ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body.access;
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

// One headless chromium for several contexts (each context is a separate user: its own
// cookies, localStorage and network state). close() ends the browser.
export async function launchChromium(executablePath) {
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: T.navigation });
  return {
    browser,
    async newContext() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, acceptDownloads: false });
      context.setDefaultTimeout(T.action);
      context.setDefaultNavigationTimeout(T.navigation);
      return context;
    },
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

// Registers a user through the API; answers {id, username, password, access}.
export async function register(base, username, password) {
  const r = await call(base, 'POST', '/api/auth/register/', {
    body: { username, password, email: `${username}@example.com` },
  });
  if (r.status !== 201) throw new Error(`registering ${username} answered ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.user.id, username, password, access: r.body.access };
}
