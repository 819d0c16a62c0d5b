// chatd admin panel: plain DOM, no framework, no inline code (the page runs under
// Content-Security-Policy default-src 'self'). Data is always inserted as text, never as HTML.
// The DOM helpers and the reading of DRF error bodies are the chat client's (web/app).

import { ApiError, describeError } from '/api.js';
import { byTestId, h, showText } from '/dom.js';

const PAGE_SIZE = 50;
const STATS_EVERY_MS = 5000;
const STORE = { access: 'chatd.admin.access', refresh: 'chatd.admin.refresh', user: 'chatd.admin.user' };

const $ = (sel, root = document) => root.querySelector(sel);

// ---------------------------------------------------------------- DOM helpers

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
});

function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: iso }, dateFmt.format(d));
}

const numberFmt = new Intl.NumberFormat();

// ---------------------------------------------------------------- API

const tokens = {
  get access() { return sessionStorage.getItem(STORE.access); },
  get refresh() { return sessionStorage.getItem(STORE.refresh); },
  set(access, refresh) {
    sessionStorage.setItem(STORE.access, access);
    if (refresh) sessionStorage.setItem(STORE.refresh, refresh);
  },
  clear() { for (const k of Object.values(STORE)) sessionStorage.removeItem(k); },
};

async function rawRequest(method, path, body, access) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (access) headers.Authorization = `Bearer ${access}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' });
  } catch {
    throw new ApiError(0, 'Cannot reach the server.');
  }
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
  }
  return { status: res.status, ok: res.ok, data, retryAfter: res.headers.get('Retry-After') };
}

let refreshing = null;  // one refresh at a time, shared by every call that got a 401

async function refreshAccess() {
  const refresh = tokens.refresh;
  if (!refresh) return false;
  refreshing ??= rawRequest('POST', '/api/auth/refresh/', { refresh })
    .then((r) => {
      if (r.ok && r.data && r.data.access) {
        tokens.set(r.data.access, r.data.refresh);
        return true;
      }
      return false;
    })
    .catch(() => false)
    .finally(() => { refreshing = null; });
  return refreshing;
}

// An authenticated call. A 401 is retried once after refreshing the access token; when that
// fails too, the session is over and the login form comes back.
async function api(method, path, body) {
  let r = await rawRequest(method, path, body, tokens.access);
  if (r.status === 401 && await refreshAccess()) r = await rawRequest(method, path, body, tokens.access);
  if (r.status === 401) {
    endSession('Your session has expired. Please sign in again.');
    throw new ApiError(401, describeError(401, r.data));
  }
  if (!r.ok) throw new ApiError(r.status, describeError(r.status, r.data));
  return r.data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------- confirm dialog

function confirmAction(title, text, okLabel) {
  const dialog = byTestId('confirm-dialog');
  byTestId('confirm-title', dialog).textContent = title;
  byTestId('confirm-text', dialog).textContent = text;
  byTestId('confirm-ok', dialog).textContent = okLabel;
  const back = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      if (back instanceof HTMLElement && back.isConnected) back.focus();
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    byTestId('confirm-cancel', dialog).focus();  // the safe choice is the default one
  });
}

// ---------------------------------------------------------------- session

const state = { me: null, statsTimer: null };

function showLogin(message) {
  stopStats();
  byTestId('app').hidden = true;
  byTestId('nav').hidden = true;
  byTestId('session').hidden = true;
  byTestId('login').hidden = false;
  showText(byTestId('login-error'), message);
  const user = byTestId('login-username');
  (user.value ? byTestId('login-password') : user).focus();
}

function endSession(message) {
  tokens.clear();
  state.me = null;
  showLogin(message);
}

async function startSession() {
  // The stats call doubles as the staff check: 403 means a valid account without staff rights.
  try {
    renderStats(await api('GET', '/api/admin/stats/'));
  } catch (e) {
    if (e.status === 403) endSession('This account is not a staff user.');
    else if (e.status !== 401) endSession(e.message);
    return;
  }
  try {
    state.me = await api('GET', '/api/users/me/');
  } catch {
    state.me = null;
  }
  const name = state.me?.username || sessionStorage.getItem(STORE.user) || '';
  byTestId('session-user').textContent = name;
  byTestId('login').hidden = true;
  byTestId('app').hidden = false;
  byTestId('nav').hidden = false;
  byTestId('session').hidden = false;
  startStats();
  route();
}

async function onLogin(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const username = form.username.value.trim();
  const password = form.password.value;
  const error = byTestId('login-error');
  if (!username || !password) {
    showText(error, 'Enter a username and a password.');
    return;
  }
  const submit = byTestId('login-submit');
  submit.disabled = true;
  showText(error, '');
  try {
    let r;
    try {
      r = await rawRequest('POST', '/api/auth/login/', { username, password });
    } catch (e) {
      showText(error, e.message);
      return;
    }
    if (!r.ok || !r.data?.access) {
      let msg = describeError(r.status, r.data);
      if (r.status === 429 && r.retryAfter) msg += ` Try again in ${r.retryAfter} s.`;
      showText(error, msg);
      byTestId('login-password').select();
      return;
    }
    tokens.set(r.data.access, r.data.refresh);
    sessionStorage.setItem(STORE.user, username);
    form.password.value = '';
    await startSession();
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  const refresh = tokens.refresh;
  if (refresh) rawRequest('POST', '/api/auth/logout/', { refresh }, tokens.access).catch(() => {});
  endSession('You are signed out.');
}

// ---------------------------------------------------------------- live counters

function renderStats(s) {
  for (const dd of document.querySelectorAll('[data-stat]')) {
    const v = s?.[dd.dataset.stat];
    dd.textContent = typeof v === 'number' ? numberFmt.format(Math.round(v * 10) / 10) : '–';
  }
  byTestId('stats-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
  showText(byTestId('stats-error'), '');
}

async function loadStats() {
  if (document.hidden || !tokens.access) return;
  try {
    renderStats(await api('GET', '/api/admin/stats/'));
  } catch (e) {
    if (e.status === 403) endSession('This account is no longer a staff user.');
    else if (e.status !== 401) showText(byTestId('stats-error'), `Counters: ${e.message}`);
  }
}

function startStats() {
  stopStats();
  state.statsTimer = setInterval(loadStats, STATS_EVERY_MS);
}

function stopStats() {
  if (state.statsTimer) clearInterval(state.statsTimer);
  state.statsTimer = null;
}

// ---------------------------------------------------------------- paged tables

// A searchable, paged list backed by a DRF-style {"count","results"} endpoint.
class PagedList {
  constructor(name, endpoint, renderRow, columns) {
    this.name = name;
    this.endpoint = endpoint;
    this.renderRow = renderRow;
    this.columns = columns;
    this.search = '';
    this.offset = 0;
    this.count = 0;
    this.loaded = false;
    this.seq = 0;
    this.rows = byTestId(`${name}-rows`);
    this.error = byTestId(`${name}-error`);
    this.range = byTestId(`${name}-range`);
    this.prev = byTestId(`${name}-prev`);
    this.next = byTestId(`${name}-next`);
    byTestId(`${name}-search-form`).addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.search = ev.currentTarget.search.value.trim();
      this.offset = 0;
      this.load();
    });
    this.prev.addEventListener('click', () => { this.offset = Math.max(0, this.offset - PAGE_SIZE); this.load(); });
    this.next.addEventListener('click', () => { this.offset += PAGE_SIZE; this.load(); });
  }

  async load() {
    const seq = ++this.seq;  // answers to superseded requests are dropped
    this.rows.setAttribute('aria-busy', 'true');
    try {
      const data = await api('GET', this.endpoint + query({ search: this.search, limit: PAGE_SIZE, offset: this.offset }));
      if (seq !== this.seq) return;
      this.count = data.count ?? 0;
      const results = data.results ?? [];
      this.rows.replaceChildren(...results.map((item) => this.renderRow(item)));
      if (!results.length) {
        this.rows.append(h('tr', {}, h('td', { colspan: this.columns, class: 'empty' },
          this.search ? `Nothing matches “${this.search}”.` : 'Nothing here yet.')));
      }
      this.range.textContent = results.length
        ? `${this.offset + 1}–${this.offset + results.length} of ${numberFmt.format(this.count)}`
        : `0 of ${numberFmt.format(this.count)}`;
      this.prev.disabled = this.offset === 0;
      this.next.disabled = !data.next && this.offset + results.length >= this.count;
      showText(this.error, '');
      this.loaded = true;
    } catch (e) {
      if (seq === this.seq) showText(this.error, e.message);
    } finally {
      if (seq === this.seq) this.rows.removeAttribute('aria-busy');
    }
  }
}

// ---------------------------------------------------------------- users

function userStatus(u) {
  return h('span', { class: 'badges' },
    u.is_active ? h('span', { class: 'badge ok', testid: `user-active-${u.id}` }, 'active')
                : h('span', { class: 'badge bad', testid: `user-active-${u.id}` }, 'inactive'),
    u.is_online ? h('span', { class: 'badge live' }, 'online') : null);
}

function userRole(u) {
  if (u.is_superuser) return h('span', { class: 'badge staff', testid: `user-role-${u.id}` }, 'superuser');
  if (u.is_staff) return h('span', { class: 'badge staff', testid: `user-role-${u.id}` }, 'staff');
  return h('span', { class: 'muted', testid: `user-role-${u.id}` }, 'user');
}

function userActions(u) {
  const isSelf = Boolean(state.me) && state.me.id === u.id;
  const why = isSelf ? 'You cannot change your own account here.' : null;
  return h('span', { class: 'actions' },
    u.is_active
      ? h('button', { type: 'button', class: 'danger', testid: `user-deactivate-${u.id}`, disabled: isSelf, title: why,
          onclick: () => changeUser(u, { is_active: false }) }, 'Deactivate')
      : h('button', { type: 'button', testid: `user-reactivate-${u.id}`,
          onclick: () => changeUser(u, { is_active: true }) }, 'Reactivate'),
    u.is_staff
      ? h('button', { type: 'button', testid: `user-unstaff-${u.id}`, disabled: isSelf, title: why,
          onclick: () => changeUser(u, { is_staff: false }) }, 'Remove staff')
      : h('button', { type: 'button', testid: `user-staff-${u.id}`,
          onclick: () => changeUser(u, { is_staff: true }) }, 'Make staff'));
}

function userRow(u) {
  return h('tr', { testid: `user-row-${u.id}`, 'data-username': u.username, class: u.is_active ? null : 'inactive' },
    h('td', { class: 'num' }, u.id),
    h('td', {}, h('button', { type: 'button', class: 'link', testid: `user-open-${u.id}`, onclick: () => openUser(u.id) }, u.username)),
    h('td', {}, u.email || h('span', { class: 'muted' }, '—')),
    h('td', {}, userStatus(u)),
    h('td', {}, userRole(u)),
    h('td', {}, u.is_online ? h('span', { class: 'live-text' }, 'now') : when(u.last_seen)),
    h('td', {}, when(u.date_joined)),
    h('td', {}, userActions(u)));
}

function replaceUserRow(u) {
  const old = byTestId(`user-row-${u.id}`);
  if (old) {
    const row = userRow(u);
    old.replaceWith(row);
    return row;
  }
  return null;
}

async function changeUser(u, patch) {
  const notice = byTestId('users-notice');
  showText(notice, '');
  if (patch.is_active === false) {
    const ok = await confirmAction(`Deactivate ${u.username}?`,
      'They are signed out everywhere at once: open sockets close and their tokens stop working. You can reactivate the account later.',
      'Deactivate');
    if (!ok) return;
  }
  const error = byTestId('users-error');
  try {
    const updated = await api('PATCH', `/api/admin/users/${u.id}/`, patch);
    const row = replaceUserRow(updated);
    showText(error, '');
    const what = 'is_active' in patch
      ? (updated.is_active ? 'reactivated' : 'deactivated')
      : (updated.is_staff ? 'is now staff' : 'is no longer staff');
    showText(notice, `${updated.username} ${what}.`);
    const detail = byTestId('user-detail');
    if (!detail.hidden && detail.dataset.userId === String(updated.id)) renderUserDetail(updated);
    // Keep focus on the row's action cell rather than losing it with the replaced button.
    row?.querySelector('.actions button:not([disabled])')?.focus();
  } catch (e) {
    showText(error, `${u.username}: ${e.message}`);
  }
}

function renderUserDetail(u) {
  const detail = byTestId('user-detail');
  detail.dataset.userId = String(u.id);
  const field = (label, value) => [h('dt', {}, label), h('dd', {}, value)];
  detail.replaceChildren(
    h('div', { class: 'detail-head' },
      h('h2', {}, u.username),
      h('button', { type: 'button', class: 'link', testid: 'user-detail-close', onclick: () => { detail.hidden = true; } }, 'Close')),
    h('dl', {},
      field('ID', u.id), field('Email', u.email || '—'), field('Status', userStatus(u)), field('Role', userRole(u)),
      field('Last seen', u.is_online ? 'online now' : when(u.last_seen)), field('Joined', when(u.date_joined))));
  detail.hidden = false;
}

async function openUser(id) {
  try {
    renderUserDetail(await api('GET', `/api/admin/users/${id}/`));
    byTestId('user-detail').scrollIntoView({ block: 'nearest' });
  } catch (e) {
    showText(byTestId('users-error'), e.message);
  }
}

// ---------------------------------------------------------------- chats

function chatRow(c) {
  const label = c.name || (c.type === 'private' ? 'Private chat' : 'Unnamed group');
  return h('tr', { testid: `chat-row-${c.id}` },
    h('td', { class: 'num' }, c.id),
    h('td', {}, h('a', { href: `#chats/${c.id}`, testid: `chat-open-${c.id}`, class: c.name ? null : 'muted' }, label)),
    h('td', {}, c.type),
    h('td', { class: 'num' }, numberFmt.format(c.member_count ?? 0)),
    h('td', { class: 'num' }, numberFmt.format(c.message_count ?? 0)),
    h('td', { class: 'num' }, c.last_message_id ?? '—'),
    h('td', {}, when(c.created_at)));
}

async function openChat(id) {
  const view = byTestId('view-chat');
  const error = byTestId('chat-error', view);
  showText(error, '');
  byTestId('chat-title', view).textContent = `Chat ${id}`;
  byTestId('chat-meta', view).textContent = '';
  byTestId('chat-members', view).replaceChildren();
  chatMessages.setChat(id);
  try {
    const c = await api('GET', `/api/admin/chats/${id}/`);
    byTestId('chat-title', view).textContent = c.name || (c.type === 'private' ? `Private chat ${c.id}` : `Group ${c.id}`);
    byTestId('chat-meta', view).textContent =
      `#${c.id} · ${c.type} · ${c.member_count ?? c.members?.length ?? 0} members · ${numberFmt.format(c.message_count ?? 0)} messages · created ${c.created_at ? dateFmt.format(new Date(c.created_at)) : '?'}`;
    byTestId('chat-members', view).replaceChildren(...(c.members ?? []).map((m) =>
      h('li', { testid: `chat-member-${m.id}` }, m.username, ' ', h('span', { class: `badge role-${m.role}` }, m.role))));
  } catch (e) {
    showText(error, e.message);
  }
}

// ---------------------------------------------------------------- messages

// A newest-first message list with "older" paging through `before`. With a fixed chat it
// is a chat's history; without, it searches every chat.
class MessageList {
  constructor(host, { fixedChat = false } = {}) {
    host.append(document.getElementById('message-list').content.cloneNode(true));
    this.host = host;
    this.fixedChat = fixedChat;
    this.chat = '';
    this.q = '';
    this.items = 0;
    this.seq = 0;
    this.rows = byTestId('messages-rows', host);
    this.error = byTestId('messages-error', host);
    this.older = byTestId('messages-older', host);
    this.countEl = byTestId('messages-count', host);
    this.form = host.querySelector('[data-role="filters"]');
    if (fixedChat) host.querySelector('[data-role="chat-filter"]').hidden = true;
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!fixedChat) this.chat = this.form.chat.value.trim();
      this.q = this.form.q.value.trim();
      this.load(false);
    });
    this.older.addEventListener('click', () => this.load(true));
  }

  setChat(id) {
    this.chat = String(id);
    this.q = '';
    this.form.q.value = '';
    if (!this.fixedChat) this.form.chat.value = this.chat;
    this.load(false);
  }

  async load(more) {
    const seq = ++this.seq;
    const before = more ? this.oldestId : '';
    this.rows.setAttribute('aria-busy', 'true');
    this.older.disabled = true;
    try {
      const data = await api('GET', '/api/admin/messages/' + query({ chat: this.chat, q: this.q, before, limit: PAGE_SIZE }));
      if (seq !== this.seq) return;
      const results = data.results ?? [];
      if (!more) {
        this.rows.replaceChildren();
        this.items = 0;
      }
      this.rows.append(...results.map((m) => this.row(m)));
      this.items += results.length;
      if (results.length) this.oldestId = results[results.length - 1].id;
      if (!this.items) {
        this.rows.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' },
          this.q ? `No message matches “${this.q}”.` : 'No messages.')));
      }
      this.countEl.textContent = this.items ? `${numberFmt.format(this.items)} shown${data.has_more ? ', more are older' : ''}` : '';
      this.older.hidden = !data.has_more;
      showText(this.error, '');
    } catch (e) {
      if (seq === this.seq) showText(this.error, e.message);
    } finally {
      if (seq === this.seq) {
        this.rows.removeAttribute('aria-busy');
        this.older.disabled = false;
      }
    }
  }

  row(m) {
    const flags = [];
    if (m.is_deleted) flags.push(h('span', { class: 'badge bad' }, 'deleted'));
    if (m.is_edited) flags.push(h('span', { class: 'badge', title: m.edited_at || '' }, 'edited'));
    if (m.forwarded_from) flags.push(h('span', { class: 'badge', title: `forwarded from message ${m.forwarded_from}` }, 'forwarded'));
    if (m.status && !m.is_deleted) flags.push(h('span', { class: 'muted' }, m.status));
    const text = m.is_deleted && !m.text ? h('span', { class: 'muted' }, '(deleted)') : m.text;
    return h('tr', { testid: `message-row-${m.id}`, 'data-deleted': m.is_deleted ? 'true' : 'false', class: m.is_deleted ? 'deleted' : null },
      h('td', { class: 'num' }, m.id),
      h('td', { class: 'num' }, this.fixedChat ? m.chat : h('a', { href: `#chats/${m.chat}` }, m.chat)),
      h('td', {}, m.sender ?? `#${m.sender_id}`),
      h('td', { class: 'text' }, text),
      h('td', {}, when(m.created_at)),
      h('td', { testid: `message-state-${m.id}` }, h('span', { class: 'badges' }, flags)),
      h('td', {}, m.is_deleted ? null
        : h('button', { type: 'button', class: 'danger', testid: `message-delete-${m.id}`, onclick: () => this.remove(m) }, 'Delete')));
  }

  async remove(m) {
    const text = m.text || '';
    const preview = text.length > 120 ? `${text.slice(0, 120)}…` : text;
    const ok = await confirmAction(`Delete message ${m.id}?`,
      `“${preview}” from ${m.sender ?? `user ${m.sender_id}`} is deleted for every member of chat ${m.chat}.`, 'Delete');
    if (!ok) return;
    try {
      await api('DELETE', `/api/admin/messages/${m.id}/`);
      const old = byTestId(`message-row-${m.id}`, this.rows);
      const row = this.row({ ...m, is_deleted: true, text: '' });  // as the server now has it
      old?.replaceWith(row);
      row.querySelector('td').setAttribute('tabindex', '-1');
      row.querySelector('td').focus();
      showText(this.error, '');
    } catch (e) {
      showText(this.error, `Message ${m.id}: ${e.message}`);
    }
  }
}

// ---------------------------------------------------------------- routing

let users;
let chats;
let messages;
let chatMessages;

// #users, #chats, #chats/ID, #messages, #messages?chat=ID
function route() {
  if (byTestId('app').hidden) return;
  const hash = location.hash.replace(/^#/, '') || 'users';
  const [path, qs] = hash.split('?');
  const [section, id] = path.split('/');
  let view = ['users', 'chats', 'messages'].includes(section) ? section : 'users';
  if (view === 'chats' && /^\d+$/.test(id || '')) view = 'chat';
  for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== view;
  for (const a of document.querySelectorAll('.tabs a')) {
    const current = a.dataset.view === view || (view === 'chat' && a.dataset.view === 'chats');
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view === 'users' && !users.loaded) users.load();
  if (view === 'chats' && !chats.loaded) chats.load();
  if (view === 'chat') openChat(id);
  if (view === 'messages') {
    const chat = new URLSearchParams(qs || '').get('chat');
    if (chat) messages.setChat(chat);
    else if (!messages.loadedOnce) {
      messages.loadedOnce = true;
      messages.load(false);
    }
  }
}

// "/" focuses the search box of the current view, as on most sites with a search box.
function onKey(ev) {
  if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  if (byTestId('app').hidden || byTestId('confirm-dialog').open) return;
  const view = [...document.querySelectorAll('.view')].find((v) => !v.hidden);
  const box = view?.querySelector('[data-search]');
  if (box) {
    ev.preventDefault();
    box.focus();
    box.select();
  }
}

function init() {
  users = new PagedList('users', '/api/admin/users/', userRow, 8);
  chats = new PagedList('chats', '/api/admin/chats/', chatRow, 7);
  messages = new MessageList(byTestId('messages'));
  chatMessages = new MessageList(byTestId('chat-messages'), { fixedChat: true });
  byTestId('login-form').addEventListener('submit', onLogin);
  byTestId('logout').addEventListener('click', onLogout);
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', onKey);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && state.statsTimer) loadStats(); });
  if (tokens.access) startSession();
  else showLogin('');
}

init();
