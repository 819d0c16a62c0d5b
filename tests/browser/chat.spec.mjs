// The chat client at / driven by two users in two browser contexts (separate storage and
// network), as people would use it: register and log in, start a private chat by username,
// see typing, ticks, edits and deletions arrive on the other side, pin, go offline and come
// back, lose the socket and resume, make a group, forward, search and page through history.
// Each step asserts what the *other* user sees. Screenshots of both sides go to
// test-artifacts/browser/chat-*.png.
import { ARTIFACTS, T, call, check, login, register, shot } from './lib.mjs';
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';

const PASSWORD = 'correct-horse-battery-1';
const HISTORY = 130;  // messages seeded into one chat, more than two pages of 50

const rand = () => Math.random().toString(36).slice(2, 8);
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Polls `probe` until it answers true; fails with `what` (and the last value) after `ms`.
async function eventually(what, probe, ms = T.action) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// One user's page, with the selectors the steps use.
function actor(page, name) {
  const id = (t) => page.getByTestId(t);
  const self = {
    page, name, id,
    chatItem: (title) => page.locator(`[data-testid="chat-item"][data-title="${title}"]`),
    // The message bubbles whose whole text is `text` (pending copies included).
    messages: (text) => page.locator('[data-testid="message"]').filter({
      has: page.getByTestId('message-text').filter({ hasText: new RegExp(`^${escapeRe(text)}$`) }),
    }),
    async count(text) { return self.messages(text).count(); },
    async exactlyOnce(text, ms) {
      await eventually(`${name} shows “${text}” exactly once`, async () => {
        const n = await self.count(text);
        return n === 1 || n;
      }, ms);
    },
    async send(text) {
      await id('composer-input').fill(text);
      await id('composer-input').press('Enter');
      // Stored: the optimistic copy has given way to the message with its id.
      await eventually(`${name}'s “${text}” is stored`, async () => {
        const m = self.messages(text);
        return (await m.count()) === 1 && (await m.first().getAttribute('data-id')) !== null;
      });
    },
    async status(text) {
      return self.messages(text).first().getByTestId('message-status').getAttribute('data-status');
    },
    async action(text, action) {
      const m = self.messages(text).first();
      await m.hover();
      await m.getByTestId('message-actions').click();
      await id(action).click();
    },
    async openChat(title) {
      await self.chatItem(title).click();
      await eventually(`${name} opens “${title}”`, async () => (await id('chat-title').textContent()) === title);
    },
    async conn() { return page.evaluate(() => document.body.dataset.conn); },
    async ids() {
      return page.locator('[data-testid="message"][data-id]').evaluateAll((els) => els.map((e) => e.dataset.id));
    },
  };
  return self;
}

async function noDuplicateIds(user) {
  const ids = await user.ids();
  const dupes = ids.filter((x, i) => ids.indexOf(x) !== i);
  check(dupes.length === 0, `${user.name} shows messages twice: ids ${dupes.join(', ')}`);
}

async function both(ctx, name) {
  await shot(ctx.a.page, `chat-${name}-a`);
  await shot(ctx.b.page, `chat-${name}-b`);
}

// The steps, in order; each takes the shared context that `setup` made.
export const steps = [
  ['register, stay logged in across a reload, log out, log in', async (ctx) => {
    const { env, a, b, users } = ctx;
    await a.page.goto(`${env.base}/`);
    await a.id('login-form').waitFor();
    await shot(a.page, 'chat-01-login');
    await a.id('tab-register').click();
    await a.id('register-username').fill(users.a.username);
    await a.id('register-email').fill(`${users.a.username}@example.com`);
    // An all-digit password is refused by the server; its DRF message is shown by the field.
    await a.id('register-password').fill('12345678');
    await a.id('register-submit').click();
    const fieldError = a.page.locator('[data-field="password"]');
    await eventually('the password field error is shown', async () => ((await fieldError.textContent()) || '').length > 0);
    await shot(a.page, 'chat-02-register-error');
    await a.id('register-password').fill(users.a.password);
    await a.id('register-password').press('Enter');
    await a.id('app').waitFor();
    check((await a.id('me-name').textContent()) === users.a.username, 'the registered name is not shown');
    await a.id('chat-list-empty').waitFor();
    await shot(a.page, 'chat-03-registered');

    // A reload keeps the session (refresh token in localStorage).
    check(await a.page.evaluate(() => Boolean(localStorage.getItem('chatd.refresh'))), 'no refresh token in localStorage');
    await a.page.reload();
    await a.id('app').waitFor();
    check((await a.id('me-name').textContent()) === users.a.username, 'the session did not survive a reload');

    // Log out: back to the form, tokens gone. A wrong password shows the server's message.
    await a.id('logout').click();
    await a.id('login-form').waitFor();
    check(!(await a.page.evaluate(() => localStorage.getItem('chatd.refresh'))), 'the refresh token survived logging out');
    await a.id('login-username').fill(users.a.username);
    await a.id('login-password').fill('not-the-password');
    await a.id('login-password').press('Enter');
    await a.id('login-error').waitFor();
    check(/credentials|password|account/i.test(await a.id('login-error').textContent()), 'no error for a wrong password');
    await a.id('login-password').fill(users.a.password);
    await a.id('login-password').press('Enter');
    await a.id('app').waitFor();

    await b.page.goto(`${env.base}/`);
    await b.id('login-username').fill(users.b.username);
    await b.id('login-password').fill(users.b.password);
    await b.id('login-submit').click();
    await b.id('app').waitFor();
    for (const u of [a, b]) await eventually(`${u.name}'s socket is open`, async () => (await u.conn()) === 'open');
    const me = await call(env.base, 'GET', '/api/users/me/', { token: await login(env.base, users.a.username, users.a.password) });
    users.a.id = me.body.id;
  }],

  ['private chat by username: live list, unread badge, online dot, typing, ticks', async (ctx) => {
    const { a, b, users } = ctx;
    await a.id('people-search').fill(users.b.username.slice(0, -1));
    await a.page.locator(`[data-testid="person"][data-username="${users.b.username}"]`).click();
    await eventually('A opens the chat with B', async () => (await a.id('chat-title').textContent()) === users.b.username);
    await eventually('A sees B online', async () => (await a.id('chat-sub').textContent()) === 'online');

    await a.send('Hello B');
    // B's socket received it, B has not read it: delivered.
    await eventually('A’s tick turns to delivered', async () => (await a.status('Hello B')) === 'delivered');
    const item = b.chatItem(users.a.username);
    await item.waitFor();
    await eventually('B’s list shows the last message', async () => (await item.getByTestId('chat-last').textContent()) === 'Hello B');
    await eventually('B’s unread badge shows 1', async () => (await item.getByTestId('unread-badge').textContent().catch(() => null)) === '1');
    check(await item.locator('.dot').getAttribute('data-online') === 'true', 'B does not see A online');
    ctx.privateChatId = Number(await item.getAttribute('data-chat-id'));
    await both(ctx, '04-first-message');

    await b.openChat(users.a.username);
    await b.exactlyOnce('Hello B');
    await eventually('A’s tick turns to read', async () => (await a.status('Hello B')) === 'read');
    await eventually('B’s badge is gone', async () => (await item.getByTestId('unread-badge').count()) === 0);

    // Typing shows on the other side, and goes once the message is sent.
    await b.id('composer-input').pressSequentially('Hi A', { delay: 20 });
    await eventually('A sees B typing', async () => /typing/.test(await a.id('typing').textContent()));
    await shot(a.page, 'chat-05-typing-a');
    await b.id('composer-input').press('Enter');
    await a.exactlyOnce('Hi A');
    await eventually('the typing line clears', async () => (await a.id('typing').textContent()) === '');
    await b.exactlyOnce('Hi A');
    await eventually('B’s “Hi A” is read by A', async () => (await b.status('Hi A')) === 'read');
    await both(ctx, '06-read');

    // A link ends at a bidi control and is isolated from the text around it, so that what
    // it shows is where it goes (U+202E would show "…/exe.png" for "…/gnp.exe").
    await a.send('see https://evil.example/\u202Egnp.exe');
    const link = b.page.locator('[data-testid="message"] a[href^="https://evil.example/"]').last();
    await link.waitFor();
    const href = await link.getAttribute('href');
    check(href === 'https://evil.example/', `the link goes to ${JSON.stringify(href)}`);
    check(await link.getAttribute('dir') === 'ltr', 'the link is not isolated from the text around it');
  }],

  ['edit (Esc cancels), delete for everyone, delete for me, pin and unpin', async (ctx) => {
    const { a, b } = ctx;
    await a.action('Hello B', 'action-edit');
    await a.id('editing').waitFor();
    check(await a.id('composer-input').inputValue() === 'Hello B', 'editing does not start from the text');
    await a.id('composer-input').press('Escape');
    await a.id('editing').waitFor({ state: 'hidden' });
    check(await a.id('composer-input').inputValue() === '', 'Esc left the text in the composer');

    await a.action('Hello B', 'action-edit');
    await a.id('composer-input').fill('Hello B, edited');
    await a.id('composer-input').press('Enter');
    await b.exactlyOnce('Hello B, edited');
    check(await b.messages('Hello B, edited').getByTestId('message-edited').count() === 1, 'B does not see the “edited” mark');
    check(await b.count('Hello B') === 0, 'B still shows the old text');

    await a.send('This will be deleted');
    await b.exactlyOnce('This will be deleted');
    await a.action('This will be deleted', 'action-delete');
    await a.id('delete-for-everyone').click();
    await eventually('B sees the message deleted', async () =>
      (await b.count('This will be deleted')) === 0
      && (await b.page.locator('[data-testid="message"][data-deleted="true"]').count()) === 1);
    check((await b.page.locator('[data-deleted="true"] [data-testid="message-text"]').textContent()) === 'This message was deleted',
      'the deleted message is not marked as such for B');
    await both(ctx, '07-edit-delete');

    await b.action('Hi A', 'action-delete');
    await b.id('delete-for-me').click();
    await eventually('“Hi A” is gone for B', async () => (await b.count('Hi A')) === 0);
    await new Promise((r) => setTimeout(r, 300));
    check(await a.count('Hi A') === 1, 'deleting for me removed the message for A too');

    await a.action('Hello B, edited', 'action-pin');
    await b.id('pinned-bar').waitFor();
    await eventually('B’s pinned bar shows the message', async () => (await b.id('pinned-text').textContent()) === 'Hello B, edited');
    await a.id('pinned-bar').waitFor();
    await both(ctx, '08-pinned');
    await b.id('pinned-unpin').click();
    await a.id('pinned-bar').waitFor({ state: 'hidden' });
    await b.id('pinned-bar').waitFor({ state: 'hidden' });
  }],

  ['offline and back: what was sent meanwhile shows exactly once, both ways', async (ctx) => {
    const { a, b } = ctx;
    const sockets = [];
    b.page.on('websocket', (ws) => sockets.push(ws.url()));
    await b.page.context().setOffline(true);
    await eventually('B knows it is offline', async () => (await b.conn()) === 'offline');
    await b.id('conn-banner').waitFor();

    for (let i = 1; i <= 3; i++) await a.send(`While you were away ${i}`);
    await b.id('composer-input').fill('Sent while offline');
    await b.id('composer-input').press('Enter');
    await b.page.locator('[data-testid="message"][data-pending="queued"]').waitFor();
    await shot(b.page, 'chat-09-offline-b');
    check(await b.count('While you were away 1') === 0, 'B received a message while offline');

    await b.page.context().setOffline(false);
    await eventually('B is connected again', async () => (await b.conn()) === 'open', T.navigation);
    check(sockets.some((u) => /[?&]since=\d+/.test(u)), `B did not resume with since= (${sockets.join(', ')})`);
    // The token travels as the subprotocol, never in a URL a log would keep.
    check(sockets.every((u) => !u.includes('token=')), `a socket URL carries the token (${sockets.join(', ')})`);
    for (let i = 1; i <= 3; i++) await b.exactlyOnce(`While you were away ${i}`);
    await a.exactlyOnce('Sent while offline');
    // A message sent after the reconnect arrives after everything before it: counts are final.
    await a.send('After the reconnect');
    await b.exactlyOnce('After the reconnect');
    for (let i = 1; i <= 3; i++) check(await b.count(`While you were away ${i}`) === 1, `B shows “While you were away ${i}” twice`);
    check(await b.count('Sent while offline') === 1, 'B shows its offline message twice');
    check(await b.page.locator('[data-testid="message"][data-pending]').count() === 0, 'B still has a pending message');
    check(await a.count('Sent while offline') === 1, 'A shows B’s offline message twice');
    await noDuplicateIds(a);
    await noDuplicateIds(b);
    await both(ctx, '10-back-online');
  }],

  ['a dropped socket comes back by itself and resumes with since=', async (ctx) => {
    const { a, b, drop } = ctx;
    check(drop.current, 'A’s socket does not go through the test route');
    const before = drop.urls.length;
    drop.hold = true;  // new connections are refused until released
    await drop.current.close({ code: 4000, reason: 'dropped by the test' });
    await eventually('A notices the dropped socket', async () => (await a.conn()) !== 'open');
    await b.send('Sent during the drop 1');
    await b.send('Sent during the drop 2');
    await shot(a.page, 'chat-11-dropped-a');
    drop.hold = false;
    await eventually('A is connected again', async () => (await a.conn()) === 'open', T.navigation);
    const resumed = drop.urls.slice(before);
    check(resumed.length > 0 && resumed.every((u) => /[?&]since=\d+/.test(u)), `A did not resume with since= (${resumed.join(', ')})`);
    await a.exactlyOnce('Sent during the drop 1');
    await a.exactlyOnce('Sent during the drop 2');
    await b.send('After the drop');
    await a.exactlyOnce('After the drop');
    check(await a.count('Sent during the drop 1') === 1 && await a.count('Sent during the drop 2') === 1, 'A shows a message twice');
    await noDuplicateIds(a);
  }],

  ['resync_required: the client reloads through REST, then resumes', async (ctx) => {
    const { env, a, b, drop, users } = ctx;
    drop.hold = true;
    await drop.current.close({ code: 4000, reason: 'dropped by the test' });
    await eventually('A notices the dropped socket', async () => (await a.conn()) !== 'open');
    await b.send('Only REST can tell A about this');
    // The next connection says the log no longer reaches back far enough; it carries no
    // events, so only a reload through REST can show B's message.
    const events = await call(env.base, 'GET', '/api/events/?since=0&limit=1000', { token: await login(env.base, users.a.username, users.a.password) });
    check(events.status === 200, `GET /api/events/ answered ${events.status}`);
    drop.resyncTo = events.body.seq;
    drop.hold = false;
    await eventually('A is “connected” to the resyncing socket', async () => (await a.conn()) === 'open', T.navigation);
    await a.exactlyOnce('Only REST can tell A about this');
    // Back to the real server, resuming from the seq the resync gave.
    const before = drop.urls.length;
    await drop.current.close({ code: 4000, reason: 'back to the server' });
    await eventually('A is connected again', async () => (await a.conn()) === 'open' && drop.urls.length > before, T.navigation);
    const next = drop.urls[before] || '';
    check(new RegExp(`[?&]since=${events.body.seq}(&|$)`).test(next), `A did not resume from the resync's seq ${events.body.seq} (${next})`);
    await b.send('After the resync');
    await a.exactlyOnce('After the resync');
    check(await a.count('Only REST can tell A about this') === 1, 'A shows the message twice after the resync');
    await noDuplicateIds(a);
  }],

  ['a group: create, add and remove a member, forward into it, search, older pages', async (ctx) => {
    const { env, a, b, users } = ctx;
    // C writes a long history to A while A watches the list.
    const c = users.c;
    const pc = await call(env.base, 'POST', '/api/chats/', { token: c.access, body: { type: 'private', member_ids: [users.a.id] } });
    check(pc.status === 201, `C could not start a chat with A: ${pc.status} ${JSON.stringify(pc.body)}`);
    ctx.historyChatId = pc.body.id;
    for (let i = 1; i <= HISTORY; i++) {
      const r = await call(env.base, 'POST', '/api/messages/', { token: c.access, body: { chat: pc.body.id, text: `history ${String(i).padStart(3, '0')}` } });
      check(r.status === 201, `seeding message ${i} answered ${r.status}`);
    }
    const cItem = a.chatItem(c.username);
    await eventually('A’s list shows C’s chat with its unread count', async () =>
      (await cItem.getByTestId('unread-badge').textContent().catch(() => null)) === '99+');

    // The group, made with the dialog.
    const groupName = `Weekend plans ${rand()}`;
    ctx.groupName = groupName;
    await a.id('new-group').click();
    await a.id('group-name').fill(groupName);
    await a.id('group-member-search').fill(users.b.username);
    await a.page.locator(`[data-testid="group-pick"][data-username="${users.b.username}"]`).click();
    await a.id('group-chip').waitFor();
    await shot(a.page, 'chat-12-new-group');
    await a.id('group-create').click();
    await eventually('A opens the new group', async () => (await a.id('chat-title').textContent()) === groupName);
    await b.chatItem(groupName).waitFor();
    ctx.groupId = Number(await b.chatItem(groupName).getAttribute('data-chat-id'));
    await b.openChat(groupName);

    // Members: A adds C, B sees C join; A removes C, B sees C go.
    await a.id('info-toggle').click();
    await a.id('add-member-search').fill(c.username);
    await a.page.locator(`[data-testid="add-member-pick"][data-username="${c.username}"]`).click();
    await a.page.locator(`[data-testid="member"][data-username="${c.username}"]`).waitFor();
    await b.id('info-toggle').click();
    await b.page.locator(`[data-testid="member"][data-username="${c.username}"]`).waitFor();
    await eventually('B’s header counts three members', async () => /^3 members/.test(await b.id('chat-sub').textContent()));
    await both(ctx, '13-group-members');
    await a.page.locator(`[data-testid="member"][data-username="${c.username}"] [data-testid="member-remove"]`).click();
    await a.id('confirm-ok').click();
    await b.page.locator(`[data-testid="member"][data-username="${c.username}"]`).waitFor({ state: 'detached' });
    await eventually('B’s header counts two members', async () => /^2 members/.test(await b.id('chat-sub').textContent()));
    await a.id('info-close').click();
    await b.id('info-close').click();

    // Forward A's message from the private chat into the group.
    await a.openChat(users.b.username);
    await a.action('Hello B, edited', 'action-forward');
    await a.page.locator(`[data-testid="forward-target"][data-title="${groupName}"]`).click();
    await a.id('toast-ok').waitFor();
    await b.exactlyOnce('Hello B, edited');
    check(await b.messages('Hello B, edited').getByTestId('message-forwarded').count() === 1, 'B does not see the message as forwarded');
    await both(ctx, '14-forwarded');

    // Search across all chats finds the original and the copy.
    await a.id('search-toggle').click();
    await a.id('search-all').check();
    await a.id('search-input').fill('edited');
    await a.id('search-input').press('Enter');
    await eventually('search finds the message in both chats', async () => (await a.page.getByTestId('search-result').count()) === 2);

    // In C's chat: search finds an old message; opening it loads older pages to reach it.
    await a.openChat(c.username);
    await a.exactlyOnce(`history ${HISTORY}`);
    await eventually('A has read C’s messages', async () => (await cItem.getByTestId('unread-badge').count()) === 0);
    // Taken to the top (Home, the scrollbar), the view keeps the message that was at the
    // top in place while the older page lands above it. It used to keep the day's
    // separator in place, which stays first, so the view jumped a page up, and at the very
    // top no further scroll event came to load the next one.
    const toTop = () => a.page.evaluate(() => {
      const box = document.querySelector('[data-testid="messages"]');
      box.scrollTop = 0;
      const first = box.querySelector('[data-testid="message"][data-id]');
      return { n: box.querySelectorAll('[data-testid="message"][data-id]').length, number: Number(first.querySelector('[data-testid="message-text"]').textContent.slice(-3)) };
    });
    const topOfView = () => a.page.evaluate(() => {
      const box = document.querySelector('[data-testid="messages"]');
      const top = box.getBoundingClientRect().top;
      const shown = [...box.querySelectorAll('[data-testid="message"][data-id]')];
      const first = shown.find((m) => m.getBoundingClientRect().bottom > top + 2);
      return { n: shown.length, number: Number(first.querySelector('[data-testid="message-text"]').textContent.slice(-3)) };
    });
    const atTop = await toTop();
    await eventually('an older page loads at the top', async () => (await topOfView()).n > atTop.n);
    const landed = await topOfView();
    check(Math.abs(landed.number - atTop.number) <= 2,
      `the view jumped from message ${atTop.number} to ${landed.number} as ${landed.n - atTop.n} older ones loaded`);
    await a.id('search-toggle').click();
    await a.id('search-all').uncheck();
    await a.id('search-input').fill('history 007');
    await a.id('search-input').press('Enter');
    const hit = a.page.getByTestId('search-result').first();
    await hit.waitFor();
    check(await a.page.getByTestId('search-result').count() === 1, 'searching one chat found other messages too');
    await hit.click();
    await a.messages('history 007').waitFor();
    await a.page.locator('[data-testid="message"].flash').waitFor();
    check(await a.messages('history 007').isVisible(), 'the found message is not scrolled into view');
    await shot(a.page, 'chat-15-search-jump');
    await a.id('search-close').click();

    // Older pages on scroll, up to the beginning: every message once.
    for (let i = 0; i < 6 && (await a.id('history-state').getAttribute('data-state')) !== 'start'; i++) {
      await a.page.evaluate(() => { document.querySelector('[data-testid="messages"]').scrollTop = 0; });
      await new Promise((r) => setTimeout(r, 300));
    }
    await eventually('A reached the beginning of the history', async () => (await a.id('history-state').getAttribute('data-state')) === 'start');
    const shown = await a.ids();
    check(shown.length === HISTORY, `A shows ${shown.length} messages of C's ${HISTORY}`);
    await noDuplicateIds(a);
    await shot(a.page, 'chat-16-history-start');
  }],
];

// Users and browser contexts for the steps. A is registered through the page; B and C
// through the API.
export async function setup(env, chromium) {
  const tag = rand();
  const users = {
    a: { username: `ann_${tag}`, password: PASSWORD },
    b: await register(env.base, `bob_${tag}`, PASSWORD),
    c: await register(env.base, `cy_${tag}`, PASSWORD),
  };
  const ctxA = await chromium.newContext();
  const ctxB = await chromium.newContext();
  // A's sockets pass through the test, which can drop one, hold new ones back, or answer
  // one itself with {"type":"resync_required"} as a server does when `since` is too old.
  const drop = { hold: false, resyncTo: null, current: null, urls: [] };
  await ctxA.routeWebSocket(/\/ws\//, (ws) => {
    drop.urls.push(ws.url());
    if (drop.hold) {
      ws.close({ code: 4001, reason: 'held back by the test' }).catch(() => {});
      return;
    }
    drop.current = ws;
    if (drop.resyncTo !== null) {
      ws.send(JSON.stringify({ type: 'resync_required' }));
      ws.send(JSON.stringify({ type: 'synced', seq: drop.resyncTo }));
      drop.resyncTo = null;
      return;
    }
    ws.connectToServer();
  });
  const a = actor(await ctxA.newPage(), 'A');
  const b = actor(await ctxB.newPage(), 'B');
  return { env, users, a, b, drop, contexts: [ctxA, ctxB] };
}

// What the run did, for the harness to check from the server's side.
export async function writeSummary(ctx, file) {
  const summary = {
    users: Object.fromEntries(Object.entries(ctx.users).map(([k, u]) => [k, { username: u.username, password: u.password }])),
    private_chat_id: ctx.privateChatId ?? null,
    group_id: ctx.groupId ?? null,
    group_name: ctx.groupName ?? null,
    history_chat_id: ctx.historyChatId ?? null,
    history_size: HISTORY,
  };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(summary, null, 2));
}

export { ARTIFACTS };
