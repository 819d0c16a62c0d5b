// The admin panel, driven as a staff member would: sign in, read the counters, find a user,
// deactivate them (their open socket must close with 4003 and their token stop working),
// delete a message, look at the chat, then put the user back as they were.
import { T, call, check, login, shot, watchConsole } from './lib.mjs';

// The chat of the victim's message: VICTIM_CHAT_ID, else the message's own "chat" field as
// the admin API reports it (message ids are global, so `before=id+1` starts at it).
async function chatOfMessage(env, adminToken) {
  if (env.victimChatId) return env.victimChatId;
  const r = await call(env.base, 'GET', `/api/admin/messages/?before=${env.victimMessageId + 1}&limit=1`, { token: adminToken });
  const m = r.body?.results?.[0];
  check(r.status === 200 && m?.id === env.victimMessageId,
    `cannot find the chat of message ${env.victimMessageId} (${r.status} ${JSON.stringify(r.body)}); set VICTIM_CHAT_ID`);
  return m.chat;
}

// The admin API's view of one message of a chat.
async function adminMessage(env, adminToken, chatId, id) {
  const r = await call(env.base, 'GET', `/api/admin/messages/?chat=${chatId}&before=${id + 1}&limit=5`, { token: adminToken });
  check(r.status === 200, `GET /api/admin/messages/?chat=${chatId} answered ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.results.find((m) => m.id === id);
}

// Opens the victim's user socket in a page of its own and waits until it is open. The page
// records how the socket ends in window.__victimSocket.
async function openVictimSocket(context, env) {
  // Any page of chatd's origin will do; its console is not checked (the browser's own
  // favicon request may fail there).
  const page = await context.newPage();
  await page.goto(`${env.base}/healthz`);
  const url = `${env.base.replace(/^http/, 'ws')}/ws/?token=${encodeURIComponent(env.victimAccess)}`;
  await page.evaluate((wsUrl) => {
    const state = { open: false, closed: false, code: null, reason: null, closedAt: null };
    window.__victimSocket = state;
    const ws = new WebSocket(wsUrl);
    ws.addEventListener('open', () => { state.open = true; });
    ws.addEventListener('close', (ev) => {
      Object.assign(state, { closed: true, code: ev.code, reason: ev.reason, closedAt: Date.now() });
    });
    window.__victimWs = ws;
  }, url);
  await page.waitForFunction(() => window.__victimSocket.open || window.__victimSocket.closed, null, { timeout: T.action });
  const s = await page.evaluate(() => window.__victimSocket);
  check(s.open && !s.closed, `the victim's socket did not open (closed with ${s.code} ${s.reason})`);
  return { page };
}

export async function adminSpec(context, env) {
  const adminToken = await login(env.base, env.adminUsername, env.adminPassword);

  const me = await call(env.base, 'GET', '/api/users/me/', { token: env.victimAccess });
  check(me.status === 200, `VICTIM_ACCESS does not work before the test: GET /api/users/me/ answered ${me.status}`);
  check(me.body.id === env.victimId, `VICTIM_ACCESS belongs to user ${me.body.id}, not VICTIM_ID ${env.victimId}`);
  const victimName = me.body.username;
  const chatId = await chatOfMessage(env, adminToken);
  const before = await adminMessage(env, adminToken, chatId, env.victimMessageId);
  check(before && !before.is_deleted, `message ${env.victimMessageId} must exist, undeleted, in chat ${chatId}`);

  const page = await context.newPage();
  const problems = watchConsole(page, 'admin page');
  const id = (testid) => page.getByTestId(testid);

  // Sign in with the keyboard: Enter submits the form.
  await page.goto(`${env.base}/admin/`);
  await id('login-form').waitFor();
  await shot(page, 'admin-01-login');
  await id('login-username').fill(env.adminUsername);
  await id('login-password').fill(env.adminPassword);
  await id('login-password').press('Enter');
  await id('app').waitFor();
  check((await id('session-user').textContent()).trim() === env.adminUsername, 'the signed-in name is not shown');
  await shot(page, 'admin-02-signed-in');

  // Live counters.
  await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="stat-users_total"]').textContent));
  const total = Number((await id('stat-users_total').textContent()).replace(/\D/g, ''));
  check(total >= 2, `users_total shows ${total}, expected at least the admin and the victim`);
  for (const k of ['users_online', 'sockets', 'chats_total', 'messages_total', 'messages_per_minute']) {
    check(/\d/.test(await id(`stat-${k}`).textContent()), `counter ${k} shows no number`);
  }
  await shot(page, 'admin-03-counters');

  // "/" focuses the search box; search for the victim.
  await id('users-rows').locator('tr').first().waitFor();
  await page.locator('body').press('/');
  check(await id('users-search').evaluate((el) => el === document.activeElement), '"/" did not focus the user search box');
  await page.keyboard.type(victimName);
  await page.keyboard.press('Enter');
  const row = id(`user-row-${env.victimId}`);
  await row.waitFor();
  check((await id(`user-active-${env.victimId}`).textContent()).trim() === 'active', 'the victim is not shown as active');
  await shot(page, 'admin-04-victim-found');

  // The victim is connected before being deactivated.
  const victim = await openVictimSocket(context, env);

  await id(`user-deactivate-${env.victimId}`).click();
  await id('confirm-dialog').waitFor();
  await shot(page, 'admin-05-confirm-deactivate');
  const deactivatedAt = Date.now();
  await id('confirm-ok').click();
  await page.waitForFunction(
    (uid) => document.querySelector(`[data-testid="user-active-${uid}"]`)?.textContent.trim() === 'inactive',
    env.victimId);
  await id(`user-reactivate-${env.victimId}`).waitFor();
  await shot(page, 'admin-06-deactivated');

  const left = Math.max(1, T.socketClose - (Date.now() - deactivatedAt));
  await victim.page.waitForFunction(() => window.__victimSocket.closed, null, { timeout: left })
    .catch(() => { throw new Error(`the victim's socket was still open ${T.socketClose} ms after the deactivation`); });
  const closed = await victim.page.evaluate(() => window.__victimSocket);
  check(closed.code === 4003, `the victim's socket closed with ${closed.code} "${closed.reason}", expected 4003`);
  check(closed.closedAt - deactivatedAt <= T.socketClose, `the socket closed ${closed.closedAt - deactivatedAt} ms after the deactivation`);
  await victim.page.close();

  const after = await call(env.base, 'GET', '/api/users/me/', { token: env.victimAccess });
  check(after.status === 401, `the deactivated victim's token still works: GET /api/users/me/ answered ${after.status}`);

  // Delete the message from the Messages view.
  await id('nav-messages').click();
  const messages = id('view-messages');
  await messages.waitFor();
  await messages.getByTestId('messages-chat').fill(String(chatId));
  await messages.getByTestId('messages-chat').press('Enter');
  const msgRow = messages.getByTestId(`message-row-${env.victimMessageId}`);
  for (let i = 0; i < 20 && !(await msgRow.isVisible()); i++) {
    await page.waitForFunction(
      () => !document.querySelector('[data-testid="view-messages"] [data-testid="messages-rows"]').hasAttribute('aria-busy'));
    if (await msgRow.isVisible()) break;
    const older = messages.getByTestId('messages-older');
    if (!(await older.isVisible())) break;
    await older.click();
  }
  await msgRow.waitFor();
  await shot(page, 'admin-07-messages');
  await messages.getByTestId(`message-delete-${env.victimMessageId}`).click();
  await id('confirm-dialog').waitFor();
  await id('confirm-ok').click();
  await page.waitForFunction(
    (mid) => document.querySelector(`[data-testid="view-messages"] [data-testid="message-row-${mid}"]`)?.dataset.deleted === 'true',
    env.victimMessageId);
  check(/deleted/.test(await messages.getByTestId(`message-state-${env.victimMessageId}`).textContent()), 'the row does not say "deleted"');
  await shot(page, 'admin-08-message-deleted');

  const gone = await adminMessage(env, adminToken, chatId, env.victimMessageId);
  check(gone && gone.is_deleted === true, `the admin API does not show message ${env.victimMessageId} as deleted: ${JSON.stringify(gone)}`);

  // The chat's own page, reached from the message's chat link: members and messages.
  await msgRow.locator(`a[href="#chats/${chatId}"]`).click();
  const chat = id('view-chat');
  await chat.waitFor();
  await chat.getByTestId(`chat-member-${env.victimId}`).waitFor();
  await page.waitForFunction(
    (mid) => document.querySelector(`[data-testid="view-chat"] [data-testid="message-row-${mid}"]`)?.dataset.deleted === 'true'
      || !document.querySelector('[data-testid="view-chat"] [data-testid="messages-older"]').hidden,
    env.victimMessageId);
  await shot(page, 'admin-09-chat');

  // Put the victim back: reactivate, and the staff flag round trip.
  await id('nav-users').click();
  await id(`user-row-${env.victimId}`).waitFor();
  await id(`user-reactivate-${env.victimId}`).click();
  await id(`user-deactivate-${env.victimId}`).waitFor();
  check((await id(`user-active-${env.victimId}`).textContent()).trim() === 'active', 'reactivation is not shown');
  await id(`user-staff-${env.victimId}`).click();
  await id(`user-unstaff-${env.victimId}`).waitFor();
  check((await id(`user-role-${env.victimId}`).textContent()).trim() === 'staff', '"Make staff" is not shown');
  await id(`user-unstaff-${env.victimId}`).click();
  await id(`user-staff-${env.victimId}`).waitFor();
  check((await id(`user-role-${env.victimId}`).textContent()).trim() === 'user', '"Remove staff" is not shown');
  const restored = await call(env.base, 'GET', `/api/admin/users/${env.victimId}/`, { token: adminToken });
  check(restored.status === 200 && restored.body.is_active === true && restored.body.is_staff === false,
    `the victim was not restored: ${restored.status} ${JSON.stringify(restored.body)}`);
  await shot(page, 'admin-10-restored');

  await id('logout').click();
  await id('login-form').waitFor();
  check(await page.evaluate(() => sessionStorage.length === 0), 'tokens are left in sessionStorage after logging out');
  await shot(page, 'admin-11-signed-out');

  check(problems.length === 0, `errors in the browser:\n${problems.join('\n')}`);
  await page.close();
}

// A valid account without staff rights is told so and stays on the login form.
export async function adminSpecNotStaff(context, env, username, password) {
  const page = await context.newPage();
  await page.goto(`${env.base}/admin/`);
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').filter({ hasText: 'not a staff user' }).waitFor();
  check(await page.getByTestId('app').isHidden(), 'the panel opened for a user without staff rights');
  await shot(page, 'admin-12-not-staff');
  await page.close();
}
