// chatd web client: plain DOM and ES modules, no framework, no build step. It speaks the
// public API only: REST for loading and for actions whose errors the user must see, and the
// user socket (/ws/) for everything live (see socket.js for reconnecting and resuming).
import {
  ApiError, api, query, rawRequest, describeError, tokens, whenSessionEnds,
} from './api.js';
import {
  avatar, byTestId, clock, dayKey, dayLabel, debounce, drawIcons, fullDate, h, icon, lastSeenText,
  linkified, randomId, shortWhen, showText, textLength,
} from './dom.js';
import { UserSocket } from './socket.js';

const PAGE = 50;                 // messages per history page
const MAX_TEXT = 4096;
const TYPING_EVERY_MS = 3000;    // a typing refresh while the user keeps typing
const TYPING_SHOWN_MS = 6000;    // someone's typing shown this long without a refresh
const SEND_ACK_MS = 8000;        // no acknowledgement on the socket: send through REST
const JUMP_PAGES = 40;           // at most this many older pages to find a message
const PRESENCE_AHEAD = 30;       // private chats whose partner's presence is loaded up front

// ---------------------------------------------------------------- state

const state = {
  me: null,
  chats: new Map(),      // id -> API chat object (+ typing: Map user id -> {name, until})
  users: new Map(),      // id -> public user {id, username, is_online, last_seen}
  views: new Map(),      // chat id -> loaded history (see viewOf)
  marks: new Map(),      // chat id -> {read, delivered}: Map user id -> message id
  outbox: new Map(),     // client_id -> a message being sent
  openId: null,
  ready: false,          // the REST snapshot is loaded; events are applied as they come
  buffered: [],          // events that arrived while a snapshot was loading
  snapshotAt: 0,         // when the newest snapshot's requests started
  needResync: false,     // resync_required seen: reload everything once synced
  readSent: new Map(),   // chat id -> the newest read watermark sent
  editing: null,         // the message being edited
  typingSentAt: 0,
  typingChat: null,
  onFirstOpen: null,     // resolves the wait for the first connection
};

let socket = null;

const el = {};
for (const id of ['auth', 'app', 'chat-list', 'chat-list-empty', 'people-search', 'people-results', 'side-error',
  'no-chat', 'chat', 'chat-title', 'chat-sub', 'messages', 'message-list', 'history-state', 'chat-empty',
  'pinned-bar', 'pinned-label', 'pinned-text', 'pinned-unpin', 'typing', 'composer', 'composer-input',
  'composer-error', 'editing', 'editing-text', 'search-panel', 'search-form', 'search-input', 'search-all',
  'search-results', 'search-error', 'info-panel', 'members', 'add-member', 'add-member-search',
  'add-member-results', 'info-error', 'rename-form', 'rename-input', 'leave-chat', 'delete-chat', 'info-title',
  'message-menu', 'conn-banner', 'conn-text', 'conn-retry', 'toasts']) {
  el[id] = byTestId(id);
}

// ---------------------------------------------------------------- small model helpers

function chatTitle(chat) {
  if (!chat) return '';
  if (chat.type === 'group') return chat.name || 'Unnamed group';
  const other = partnerOf(chat);
  return other ? other.username : 'Private chat';
}

function partnerOf(chat) {
  if (!chat || chat.type !== 'private') return null;
  return chat.members.find((m) => m.id !== state.me.id) || null;
}

function myRole(chat) {
  return chat?.members.find((m) => m.id === state.me.id)?.role || 'member';
}

const isManager = (chat) => chat.type === 'group' && ['owner', 'admin'].includes(myRole(chat));
const canPin = (chat) => chat.type === 'private' || isManager(chat);

function canRemoveMember(chat, member) {
  if (chat.type !== 'group' || member.id === state.me.id || member.role === 'owner') return false;
  const mine = myRole(chat);
  return mine === 'owner' || (mine === 'admin' && member.role === 'member');
}

function activityOf(chat) {
  return chat.last_message?.created_at || chat.created_at || '';
}

function viewOf(chatId) {
  let v = state.views.get(chatId);
  if (!v) {
    v = {
      messages: new Map(), loaded: false, loading: null, hasMore: true, error: '',
      pins: [], pinIndex: 0, pinsLoaded: false, stickBottom: false, flash: null,
    };
    state.views.set(chatId, v);
  }
  return v;
}

function marksOf(chatId) {
  let m = state.marks.get(chatId);
  if (!m) {
    m = { read: new Map(), delivered: new Map() };
    state.marks.set(chatId, m);
  }
  return m;
}

function raise(map, userId, value) {
  if (!userId || !value) return;
  if ((map.get(userId) || 0) < value) map.set(userId, value);
}

const RANK = { sent: 0, delivered: 1, read: 2 };

// The status of one of my messages, from what the server said and the watermarks since.
function statusOf(chatId, m) {
  const chat = state.chats.get(chatId);
  const others = chat ? chat.members.filter((x) => x.id !== state.me.id) : [];
  let computed = 'read';
  if (others.length) {
    const marks = marksOf(chatId);
    let minRead = Infinity;
    let minDelivered = Infinity;
    for (const o of others) {
      const r = marks.read.get(o.id) || 0;
      minRead = Math.min(minRead, r);
      minDelivered = Math.min(minDelivered, Math.max(r, marks.delivered.get(o.id) || 0));
    }
    computed = minRead >= m.id ? 'read' : minDelivered >= m.id ? 'delivered' : 'sent';
  }
  const told = m.status in RANK ? m.status : 'sent';
  return RANK[computed] >= RANK[told] ? computed : told;
}

// What a page of history says about the other members' watermarks.
function learnMarks(chatId, messages) {
  const marks = marksOf(chatId);
  const chat = state.chats.get(chatId);
  if (!chat) return;
  const others = chat.members.filter((x) => x.id !== state.me.id);
  for (const m of messages) {
    if (m.sender_id === state.me.id) {
      if (m.status === 'read') for (const o of others) { raise(marks.read, o.id, m.id); raise(marks.delivered, o.id, m.id); }
      else if (m.status === 'delivered') for (const o of others) raise(marks.delivered, o.id, m.id);
    } else if (m.sender_id) {
      raise(marks.read, m.sender_id, m.id);
      raise(marks.delivered, m.sender_id, m.id);
    }
  }
}

function messageFromEvent(e) {
  return {
    id: e.message_id, chat: e.chat_id, sender_id: e.sender_id, sender: e.sender, text: e.text,
    created_at: e.created_at, edited_at: null, is_edited: false, is_deleted: false,
    forwarded_from: e.forwarded_from ?? null, client_id: e.client_id ?? null, status: 'sent',
  };
}

// ---------------------------------------------------------------- rendering schedule

const dirty = { list: false, view: false, header: false };
let renderQueued = false;

function schedule(...parts) {
  for (const p of parts) dirty[p] = true;
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    if (!state.me) return;
    if (dirty.list) { dirty.list = false; renderChatList(); }
    if (dirty.header) { dirty.header = false; renderHeader(); }
    if (dirty.view) { dirty.view = false; renderMessages(); }
  });
}

// Keeps a keyed list in the order of `items`, re-rendering only items whose version changed.
function reconcile(list, items) {
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  let cursor = list.firstElementChild;
  for (const it of items) {
    let node = existing.get(it.key);
    existing.delete(it.key);
    if (!node || node.dataset.version !== it.version) {
      const fresh = it.render();
      fresh.dataset.key = it.key;
      fresh.dataset.version = it.version;
      if (node) {
        if (node === cursor) cursor = node.nextElementSibling;
        const hadFocus = node.contains(document.activeElement) && document.activeElement !== document.body;
        node.remove();
        node = fresh;
        list.insertBefore(node, cursor);
        if (hadFocus) node.querySelector('button')?.focus();
        continue;
      }
      node = fresh;
    }
    if (node === cursor) cursor = cursor.nextElementSibling;
    else list.insertBefore(node, cursor);
  }
  for (const node of existing.values()) node.remove();
}

// ---------------------------------------------------------------- chat list

function previewOf(chat) {
  const typing = typingNames(chat);
  if (typing) return { text: typing, cls: 'typing-text' };
  const m = chat.last_message;
  if (!m) return { text: chat.type === 'group' ? 'Group created' : 'No messages yet', cls: 'muted' };
  const who = m.sender_id === state.me.id ? 'You: ' : chat.type === 'group' && m.sender ? `${m.sender}: ` : '';
  if (m.is_deleted) return { text: `${who}Message deleted`, cls: 'muted' };
  return { text: `${who}${m.forwarded_from ? 'Forwarded: ' : ''}${m.text}`, cls: '' };
}

function renderChatList() {
  const chats = [...state.chats.values()].sort((a, b) => (activityOf(a) < activityOf(b) ? 1 : activityOf(a) > activityOf(b) ? -1 : b.id - a.id));
  el['chat-list-empty'].hidden = chats.length > 0;
  const unread = chats.reduce((n, c) => n + (c.unread_count || 0), 0);
  const open = state.chats.get(state.openId);
  document.title = `${unread ? `(${unread}) ` : ''}${open ? `${chatTitle(open)} · ` : ''}chatd`;
  reconcile(el['chat-list'], chats.map((chat) => {
    const partner = partnerOf(chat);
    const online = partner ? Boolean(state.users.get(partner.id)?.is_online) : null;
    const p = previewOf(chat);
    const unread = chat.unread_count || 0;
    const active = chat.id === state.openId;
    const title = chatTitle(chat);
    const mine = chat.last_message && chat.last_message.sender_id === state.me.id && !chat.last_message.is_deleted
      && p.cls !== 'typing-text' ? statusOf(chat.id, chat.last_message) : '';
    const version = JSON.stringify([title, online, p, unread, active, activityOf(chat), mine, chat.type]);
    return {
      key: `c${chat.id}`,
      version,
      render: () => h('li', {},
        h('button', {
          type: 'button', class: `chat-item${active ? ' active' : ''}`, testid: 'chat-item',
          'data-chat-id': chat.id, 'data-title': title, 'aria-current': active ? 'true' : null,
          onclick: () => { location.hash = `#/chat/${chat.id}`; },
        },
        avatar(title, { online }),
        h('span', { class: 'ci-main' },
          h('span', { class: 'ci-top' },
            h('span', { class: 'ci-name', testid: 'chat-name' }, chat.type === 'group' ? h('span', { class: 'group-mark', 'aria-label': 'group' }, '#') : null, title),
            h('span', { class: 'ci-time muted small' }, shortWhen(chat.last_message?.created_at))),
          h('span', { class: 'ci-bottom' },
            mine ? ticks(mine, 'chat-last-status') : null,
            h('span', { class: `ci-last ${p.cls}`, testid: 'chat-last' }, p.text),
            unread ? h('span', { class: 'badge', testid: 'unread-badge', 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : unread) : null)))),
    };
  }));
}

function ticks(status, testid = 'message-status') {
  const label = { sending: 'Sending', queued: 'Waiting for connection', failed: 'Not sent', sent: 'Sent', delivered: 'Delivered', read: 'Read' }[status];
  const mark = { sending: icon('clock'), queued: icon('clock'), failed: icon('alert'), sent: '✓', delivered: '✓✓', read: '✓✓' }[status];
  return h('span', { class: `ticks ${status}`, testid, 'data-status': status, title: label, 'aria-label': label }, mark);
}

// ---------------------------------------------------------------- the open chat: header

function typingNames(chat) {
  if (!chat.typing) return '';
  const now = Date.now();
  const names = [];
  for (const [uid, t] of chat.typing) {
    if (t.until < now) chat.typing.delete(uid);
    else names.push(t.name);
  }
  if (!names.length) return '';
  if (chat.type === 'private') return 'typing…';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

function renderHeader() {
  const chat = state.chats.get(state.openId);
  if (!chat) return;
  el['chat-title'].textContent = chatTitle(chat);
  let sub;
  const partner = partnerOf(chat);
  if (partner) {
    const u = state.users.get(partner.id);
    sub = lastSeenText(u) || ' ';
    el['chat-sub'].dataset.online = u?.is_online ? 'true' : 'false';
  } else {
    const online = chat.members.filter((m) => m.id !== state.me.id && state.users.get(m.id)?.is_online).length;
    sub = `${chat.members.length} member${chat.members.length === 1 ? '' : 's'}${online ? `, ${online} online` : ''}`;
    delete el['chat-sub'].dataset.online;
  }
  el['chat-sub'].textContent = sub;
  const typing = typingNames(chat);
  el.typing.textContent = typing ? (chat.type === 'private' ? `${chatTitle(chat)} is typing…` : typing) : '';
  renderPinned();
  if (!el['info-panel'].hidden) renderInfo();
}

// ---------------------------------------------------------------- the open chat: messages

function renderMessages() {
  const chatId = state.openId;
  const chat = state.chats.get(chatId);
  if (!chat) return;
  const v = viewOf(chatId);
  const box = el.messages;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  // The message at the top of the view stays where it is while older pages come in above
  // it. A message, not a day's separator: prepending that day's older messages keeps the
  // separator first, so anchored on it the view would jump down a whole page.
  let anchor = null;
  let anchorTop = 0;
  if (!atBottom && !v.stickBottom) {
    const top = box.getBoundingClientRect().top;
    for (const li of el['message-list'].children) {
      if (!li.dataset.key?.startsWith('m')) continue;
      const rect = li.getBoundingClientRect();
      if (rect.bottom > top) {
        anchor = li;
        anchorTop = rect.top;
        break;
      }
    }
  }

  const items = [];
  let lastDay = null;
  let prevSender = null;
  const addDay = (iso) => {
    const k = dayKey(iso);
    if (k !== lastDay) {
      lastDay = k;
      prevSender = null;
      const label = dayLabel(iso);
      items.push({ key: `d${k}`, version: label, render: () => h('li', { class: 'day', role: 'separator' }, h('span', {}, label)) });
    }
  };
  const ids = [...v.messages.keys()].sort((a, b) => a - b);
  const group = chat.type === 'group';
  const pinned = new Set(chat.pinned_message_ids || []);
  for (const id of ids) {
    const m = v.messages.get(id);
    addDay(m.created_at);
    const mine = m.sender_id === state.me.id;
    const status = mine && !m.is_deleted ? statusOf(chatId, m) : '';
    const showSender = group && !mine && prevSender !== m.sender_id;
    prevSender = m.sender_id;
    const flash = v.flash === id;
    const version = JSON.stringify([m.text, m.is_deleted, m.edited_at, status, pinned.has(id), showSender, flash]);
    items.push({ key: `m${id}`, version, render: () => messageItem(chat, m, { mine, status, showSender, pinned: pinned.has(id), flash }) });
  }
  const pending = [...state.outbox.values()].filter((o) => o.chat === chatId).sort((a, b) => a.seq - b.seq);
  for (const o of pending) {
    addDay(o.created_at);
    prevSender = state.me.id;
    items.push({
      key: `p${o.client_id}`, version: JSON.stringify([o.state, o.error]),
      render: () => pendingItem(o),
    });
  }
  reconcile(el['message-list'], items);
  el['chat-empty'].hidden = !(v.loaded && ids.length === 0 && pending.length === 0);
  const hs = byTestId('history-state');
  if (v.error) {
    hs.replaceChildren(h('span', { class: 'error' }, v.error), ' ', h('button', { type: 'button', class: 'link', onclick: () => loadOlder(chatId) }, 'Retry'));
  } else if (v.loading) {
    hs.textContent = 'Loading…';
  } else if (v.loaded && !v.hasMore && ids.length) {
    hs.textContent = 'This is the beginning of the conversation.';
  } else if (v.loaded && v.hasMore) {
    hs.replaceChildren(h('button', { type: 'button', class: 'link', onclick: () => loadOlder(chatId) }, 'Load older messages'));
  } else {
    hs.textContent = '';
  }
  hs.dataset.state = v.error ? 'error' : v.loading ? 'loading' : v.hasMore ? 'more' : 'start';

  if (v.stickBottom || atBottom) {
    box.scrollTop = box.scrollHeight;
    v.stickBottom = false;
  } else if (anchor) {
    // By its key: a message whose content changed was rendered anew.
    const now = el['message-list'].querySelector(`[data-key="${anchor.dataset.key}"]`);
    if (now) box.scrollTop += now.getBoundingClientRect().top - anchorTop;
  }
  // Still at the top (a short history that does not fill the view, or a jump to the top
  // with Home or the scrollbar): older pages come without waiting for a scroll event, which
  // a wheel turned at the very top does not fire.
  if (v.loaded && v.hasMore && !v.loading && !v.error && box.scrollTop < 150) loadOlder(chatId);
  markRead(chatId);
}

function messageItem(chat, m, { mine, status, showSender, pinned, flash }) {
  const li = h('li', {
    class: `msg ${mine ? 'mine' : 'theirs'}${m.is_deleted ? ' deleted' : ''}${flash ? ' flash' : ''}`,
    testid: 'message', 'data-id': m.id, 'data-sender': m.sender || '', 'data-deleted': m.is_deleted ? 'true' : 'false',
  });
  const bubble = h('div', { class: 'bubble' });
  if (showSender) bubble.append(h('div', { class: 'sender', testid: 'message-sender' }, m.sender || 'deleted user'));
  if (m.forwarded_from && !m.is_deleted) bubble.append(h('div', { class: 'fwd small', testid: 'message-forwarded' }, icon('forward'), ' Forwarded message'));
  if (m.is_deleted) bubble.append(h('div', { class: 'text muted', testid: 'message-text' }, 'This message was deleted'));
  else bubble.append(h('div', { class: 'text', testid: 'message-text', dir: 'auto' }, linkified(m.text)));
  bubble.append(h('div', { class: 'meta small' },
    pinned ? h('span', { class: 'pin-flag', title: 'Pinned', testid: 'message-pinned' }, icon('pin')) : null,
    m.is_edited && !m.is_deleted ? h('span', { class: 'edited', testid: 'message-edited', title: fullDate(m.edited_at) }, 'edited') : null,
    h('time', { datetime: m.created_at, title: fullDate(m.created_at) }, clock(m.created_at)),
    status ? ticks(status) : null));
  li.append(bubble);
  if (!m.is_deleted || mine || isManager(chat)) {
    li.append(h('button', {
      type: 'button', class: 'more', testid: 'message-actions', 'aria-label': 'Message actions', 'aria-haspopup': 'menu',
      onclick: (ev) => openMenu(ev.currentTarget, chat, m),
    }, icon('more')));
  }
  return li;
}

function pendingItem(o) {
  const li = h('li', { class: `msg mine pending${o.state === 'failed' ? ' failed' : ''}`, testid: 'message', 'data-client-id': o.client_id, 'data-pending': o.state });
  const bubble = h('div', { class: 'bubble' },
    h('div', { class: 'text', testid: 'message-text', dir: 'auto' }, linkified(o.text)),
    h('div', { class: 'meta small' }, h('time', { datetime: o.created_at }, clock(o.created_at)), ticks(o.state)));
  li.append(bubble);
  if (o.state === 'failed') {
    li.append(h('div', { class: 'failed-note small', role: 'alert' },
      h('span', { class: 'error' }, `Not sent: ${o.error || 'unknown error'}`), ' ',
      h('button', { type: 'button', class: 'link', testid: 'message-retry', onclick: () => { o.state = 'queued'; o.error = ''; trySend(o); } }, 'Retry'), ' ',
      h('button', { type: 'button', class: 'link', testid: 'message-discard', onclick: () => { state.outbox.delete(o.client_id); schedule('view'); } }, 'Discard')));
  }
  return li;
}

// ---------------------------------------------------------------- pinned bar

async function loadPins(chatId) {
  const v = viewOf(chatId);
  try {
    const pins = await api('GET', `/api/pinned/${query({ chat: chatId })}`);
    pins.sort((a, b) => (a.pinned_at < b.pinned_at ? 1 : -1));
    v.pins = pins;
    v.pinsLoaded = true;
    if (v.pinIndex >= pins.length) v.pinIndex = 0;
  } catch (e) {
    if (e.status === 404) return;
    toast(`Pinned messages: ${e.message}`, 'error');
  }
  if (chatId === state.openId) schedule('header');
}

function renderPinned() {
  const chat = state.chats.get(state.openId);
  const v = viewOf(state.openId);
  const ids = new Set(chat.pinned_message_ids || []);
  const pins = v.pins.filter((p) => ids.has(p.message.id));
  el['pinned-bar'].hidden = pins.length === 0;
  if (!pins.length) return;
  const i = Math.min(v.pinIndex, pins.length - 1);
  const p = pins[i];
  const live = v.messages.get(p.message.id) || p.message;
  el['pinned-label'].textContent = pins.length > 1 ? `Pinned ${i + 1} of ${pins.length}` : 'Pinned message';
  el['pinned-text'].textContent = live.is_deleted ? 'Deleted message' : live.text;
  el['pinned-bar'].dataset.messageId = String(p.message.id);
  el['pinned-unpin'].hidden = !canPin(chat);
}

// ---------------------------------------------------------------- loading history

// The newest page. With `reset` (a reload after a resync) the history is replaced; otherwise
// messages that arrived live while the page was loading are kept.
function loadNewest(chatId, { reset = false } = {}) {
  const v = viewOf(chatId);
  if (v.loading) return v.loading;
  v.error = '';
  v.loading = (async () => {
    try {
      const page = await api('GET', `/api/messages/${query({ chat: chatId, limit: PAGE })}`);
      const fresh = new Map(page.results.map((m) => [m.id, m]));
      const newestFetched = page.results.length ? Math.max(...fresh.keys()) : 0;
      if (!reset) for (const [id, m] of v.messages) if (id > newestFetched) fresh.set(id, m);
      v.messages = fresh;
      v.hasMore = page.has_more;
      v.loaded = true;
      v.stickBottom = true;
      learnMarks(chatId, page.results);
    } catch (e) {
      v.error = e.message;
    } finally {
      v.loading = null;
    }
    if (chatId === state.openId) schedule('view', 'list');
  })();
  schedule('view');
  return v.loading;
}

function loadOlder(chatId) {
  const v = viewOf(chatId);
  if (v.loading) return v.loading;
  if (!v.loaded) return loadNewest(chatId);
  if (!v.hasMore) return Promise.resolve();
  const oldest = v.messages.size ? Math.min(...v.messages.keys()) : '';
  v.error = '';
  v.loading = (async () => {
    try {
      const page = await api('GET', `/api/messages/${query({ chat: chatId, before: oldest, limit: PAGE })}`);
      for (const m of page.results) if (!v.messages.has(m.id)) v.messages.set(m.id, m);
      v.hasMore = page.has_more;
      learnMarks(chatId, page.results);
    } catch (e) {
      v.error = e.message;
    } finally {
      v.loading = null;
    }
    if (chatId === state.openId) schedule('view');
  })();
  schedule('view');
  return v.loading;
}

// ---------------------------------------------------------------- opening a chat

function route() {
  if (!state.me || !state.ready) return;
  const m = /^#\/chat\/(\d+)$/.exec(location.hash);
  const id = m ? Number(m[1]) : null;
  if (id && state.chats.has(id)) openChat(id);
  else {
    if (id) history.replaceState(null, '', location.pathname);
    closeChat();
  }
}

function openChat(id) {
  const changed = state.openId !== id;
  if (changed) stopTyping();
  if (changed && state.editing) cancelEdit();
  state.openId = id;
  el['no-chat'].hidden = true;
  el.chat.hidden = false;
  el.app.classList.add('chat-open');
  const v = viewOf(id);
  if (changed) {
    el['message-list'].replaceChildren();
    showText(el['composer-error'], '');
    el['search-panel'].hidden = true;
    el['info-panel'].hidden = true;
    v.stickBottom = true;
    const chat = state.chats.get(id);
    fetchPresence(chat.members.map((x) => x.id));
    if (window.matchMedia('(min-width: 720px)').matches) el['composer-input'].focus();
  }
  if (!v.loaded && !v.loading) loadNewest(id);
  if (!v.pinsLoaded || changed) loadPins(id);
  schedule('list', 'header', 'view');
}

function closeChat() {
  stopTyping();
  if (state.editing) cancelEdit();
  state.openId = null;
  el.chat.hidden = true;
  el['no-chat'].hidden = false;
  el.app.classList.remove('chat-open');
  document.title = 'chatd';
  schedule('list');
}

// ---------------------------------------------------------------- read receipts

function atBottom() {
  const box = el.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function markRead(chatId) {
  if (chatId !== state.openId || document.visibilityState !== 'visible' || !atBottom()) return;
  const chat = state.chats.get(chatId);
  const v = state.views.get(chatId);
  if (!chat || !v || !v.loaded || !v.messages.size) return;
  const newest = Math.max(...v.messages.keys());
  const already = Math.max(chat.last_read_message_id || 0, state.readSent.get(chatId) || 0);
  if (newest <= already && !chat.unread_count) return;
  if (newest <= (state.readSent.get(chatId) || 0)) return;
  state.readSent.set(chatId, newest);
  chat.last_read_message_id = Math.max(chat.last_read_message_id || 0, newest);
  chat.unread_count = 0;
  schedule('list');
  if (!socket?.send({ type: 'read', chat_id: chatId, last_read_message_id: newest })) {
    api('POST', `/api/chats/${chatId}/read/`, { last_read_message_id: newest })
      .then((r) => { chat.unread_count = r.unread_count; schedule('list'); })
      .catch(() => { state.readSent.delete(chatId); });
  }
}

// ---------------------------------------------------------------- sending

let outboxSeq = 0;

function sendMessage(text) {
  const chatId = state.openId;
  const entry = { client_id: randomId(), chat: chatId, text, created_at: new Date().toISOString(), state: 'queued', error: '', seq: ++outboxSeq, timer: null };
  state.outbox.set(entry.client_id, entry);
  viewOf(chatId).stickBottom = true;
  trySend(entry);
  schedule('view');
}

function trySend(entry) {
  clearTimeout(entry.timer);
  if (socket?.state === 'open' && socket.send({ type: 'message', chat_id: entry.chat, text: entry.text, client_id: entry.client_id })) {
    entry.state = 'sending';
    entry.timer = setTimeout(() => sendViaRest(entry), SEND_ACK_MS);
  } else {
    entry.state = 'queued';
  }
  schedule('view');
}

async function sendViaRest(entry) {
  clearTimeout(entry.timer);
  if (!state.outbox.has(entry.client_id)) return;
  entry.state = 'sending';
  try {
    const m = await api('POST', '/api/messages/', { chat: entry.chat, text: entry.text, client_id: entry.client_id });
    acknowledge(m);
  } catch (e) {
    if (!state.outbox.has(entry.client_id)) return;
    if (e.status === 0 || e.status >= 500) {
      entry.state = 'queued';  // sent again once the connection is back
    } else {
      entry.state = 'failed';
      entry.error = e.message;
    }
    schedule('view');
  }
}

function flushOutbox() {
  for (const entry of [...state.outbox.values()].sort((a, b) => a.seq - b.seq)) {
    if (entry.state === 'queued' || entry.state === 'sending') trySend(entry);
  }
}

// A message of mine is stored: its pending copy gives way to it.
function acknowledge(m) {
  const entry = m.client_id ? state.outbox.get(m.client_id) : null;
  if (entry) {
    clearTimeout(entry.timer);
    state.outbox.delete(m.client_id);
  }
  addMessage(m);
}

function addMessage(m) {
  const chat = state.chats.get(m.chat);
  if (!chat) {
    refreshChat(m.chat);
    return;
  }
  // Kept even while the history is loading: the page may have been read before it.
  const v = state.views.get(m.chat);
  if (v && (v.loaded || v.loading) && !v.messages.has(m.id)) v.messages.set(m.id, m);
  if (!chat.last_message || chat.last_message.id <= m.id) chat.last_message = m;
  const marks = marksOf(m.chat);
  if (m.sender_id && m.sender_id !== state.me.id) {
    raise(marks.read, m.sender_id, m.id);
    raise(marks.delivered, m.sender_id, m.id);
    chat.typing?.delete(m.sender_id);
  } else if (m.sender_id === state.me.id) {
    chat.last_read_message_id = Math.max(chat.last_read_message_id || 0, m.id);
  }
  schedule('list');
  if (m.chat === state.openId) schedule('view', 'header');
}

// ---------------------------------------------------------------- typing (mine)

function noteTyping() {
  const chatId = state.openId;
  if (!chatId || state.editing) return;
  const now = Date.now();
  if (!el['composer-input'].value.trim()) {
    stopTyping();
    return;
  }
  if (state.typingChat === chatId && now - state.typingSentAt < TYPING_EVERY_MS) return;
  if (socket?.send({ type: 'typing', chat_id: chatId, is_typing: true })) {
    state.typingChat = chatId;
    state.typingSentAt = now;
  }
}

function stopTyping() {
  if (state.typingChat) socket?.send({ type: 'typing', chat_id: state.typingChat, is_typing: false });
  state.typingChat = null;
  state.typingSentAt = 0;
}

// ---------------------------------------------------------------- composer

function resizeComposer() {
  const t = el['composer-input'];
  t.style.height = 'auto';
  t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
}

async function onComposerSubmit(ev) {
  ev.preventDefault();
  const input = el['composer-input'];
  const text = input.value;
  const n = textLength(text);
  if (!n) {
    // Sending nothing does nothing; an edit cannot leave a message empty.
    if (state.editing) showText(el['composer-error'], 'A message cannot be empty: delete it instead.');
    return;
  }
  if (n > MAX_TEXT) {
    showText(el['composer-error'], `A message has at most ${MAX_TEXT} characters (this one has ${n}).`);
    return;
  }
  showText(el['composer-error'], '');
  if (state.editing) {
    await saveEdit(text.trim());
    return;
  }
  stopTyping();
  sendMessage(text.trim());
  input.value = '';
  resizeComposer();
}

function onComposerKey(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    el.composer.requestSubmit();
  } else if (ev.key === 'Escape' && state.editing) {
    ev.preventDefault();
    cancelEdit();
  } else if (ev.key === 'ArrowUp' && !el['composer-input'].value && !state.editing) {
    // Up in an empty composer edits my newest message, as in most messengers.
    const v = state.views.get(state.openId);
    if (!v) return;
    const mine = [...v.messages.values()].filter((m) => m.sender_id === state.me.id && !m.is_deleted);
    if (mine.length) {
      ev.preventDefault();
      startEdit(mine.reduce((a, b) => (a.id > b.id ? a : b)));
    }
  }
}

function startEdit(m) {
  state.editing = m;
  stopTyping();
  el.editing.hidden = false;
  el['editing-text'].textContent = m.text.length > 80 ? `${m.text.slice(0, 80)}…` : m.text;
  const input = el['composer-input'];
  input.value = m.text;
  byTestId('composer-send').textContent = 'Save';
  resizeComposer();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function cancelEdit() {
  state.editing = null;
  el.editing.hidden = true;
  el['composer-input'].value = '';
  byTestId('composer-send').textContent = 'Send';
  showText(el['composer-error'], '');
  resizeComposer();
}

async function saveEdit(text) {
  const m = state.editing;
  if (text === m.text) {
    cancelEdit();
    return;
  }
  try {
    const updated = await api('PATCH', `/api/messages/${m.id}/`, { text });
    applyEdit(updated.chat, updated.id, updated.text, updated.edited_at);
    cancelEdit();
    el['composer-input'].focus();
  } catch (e) {
    showText(el['composer-error'], e.message);
  }
}

// ---------------------------------------------------------------- message actions

let menuFor = null;

function openMenu(button, chat, m) {
  const menu = el['message-menu'];
  if (menuFor && menuFor.button === button) {
    closeMenu();
    return;
  }
  const mine = m.sender_id === state.me.id;
  const items = [];
  const item = (label, testid, action, cls = '') => items.push(h('button', {
    type: 'button', role: 'menuitem', class: cls, testid,
    onclick: () => { closeMenu(); action(); },
  }, label));
  if (!m.is_deleted) {
    if (mine) item('Edit', 'action-edit', () => startEdit(m));
    if (canPin(chat)) {
      if ((chat.pinned_message_ids || []).includes(m.id)) item('Unpin', 'action-unpin', () => unpinMessage(chat.id, m.id));
      else item('Pin', 'action-pin', () => pinMessage(m));
    }
    item('Forward', 'action-forward', () => openForward(m));
  }
  item('Delete…', 'action-delete', () => deleteMessage(chat, m), 'danger');
  menu.replaceChildren(...items);
  menu.hidden = false;
  const r = button.getBoundingClientRect();
  const mw = menu.offsetWidth;
  const mh = menu.offsetHeight;
  menu.style.left = `${Math.max(8, Math.min(window.innerWidth - mw - 8, mine ? r.right - mw : r.left))}px`;
  menu.style.top = `${r.bottom + mh + 8 > window.innerHeight ? Math.max(8, r.top - mh - 4) : r.bottom + 4}px`;
  menuFor = { button };
  button.setAttribute('aria-expanded', 'true');
  items[0]?.focus();
}

function closeMenu({ restoreFocus = false } = {}) {
  if (!menuFor) return;
  el['message-menu'].hidden = true;
  menuFor.button.removeAttribute('aria-expanded');
  if (restoreFocus && menuFor.button.isConnected) menuFor.button.focus();
  menuFor = null;
}

function onMenuKey(ev) {
  const buttons = [...el['message-menu'].querySelectorAll('button')];
  const i = buttons.indexOf(document.activeElement);
  if (ev.key === 'ArrowDown') { ev.preventDefault(); buttons[(i + 1) % buttons.length]?.focus(); }
  if (ev.key === 'ArrowUp') { ev.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length]?.focus(); }
  if (ev.key === 'Escape' || ev.key === 'Tab') { ev.preventDefault(); closeMenu({ restoreFocus: true }); }
}

async function deleteMessage(chat, m) {
  const mine = m.sender_id === state.me.id;
  const forEveryone = !m.is_deleted && (mine || isManager(chat));
  const choices = [{ value: 'me', label: 'Delete for me', testid: 'delete-for-me', cls: forEveryone ? '' : 'danger' }];
  if (forEveryone) choices.push({ value: 'all', label: 'Delete for everyone', testid: 'delete-for-everyone', cls: 'danger' });
  const preview = m.is_deleted ? 'This deleted message' : `“${m.text.length > 100 ? `${m.text.slice(0, 100)}…` : m.text}”`;
  const choice = await choose('Delete message?',
    forEveryone ? `${preview} can be deleted for you only, or for every member of the chat.` : `${preview} will be hidden for you.`,
    choices);
  if (!choice) return;
  try {
    await api('DELETE', `/api/messages/${m.id}/${choice === 'me' ? '?for=me' : ''}`);
    if (choice === 'me') applyHide(m.chat, m.id);
    else applyDelete(m.chat, m.id);
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function pinMessage(m) {
  try {
    await api('POST', '/api/pinned/', { message_id: m.id });
    const chat = state.chats.get(m.chat);
    if (chat && !chat.pinned_message_ids.includes(m.id)) chat.pinned_message_ids.push(m.id);
    viewOf(m.chat).pinIndex = 0;
    await loadPins(m.chat);
    schedule('view');
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function unpinMessage(chatId, messageId) {
  const v = viewOf(chatId);
  let pin = v.pins.find((p) => p.message.id === messageId);
  try {
    if (!pin) {
      await loadPins(chatId);
      pin = v.pins.find((p) => p.message.id === messageId);
    }
    if (pin) await api('DELETE', `/api/pinned/${pin.id}/`);
    applyUnpin(chatId, messageId);
  } catch (e) {
    if (e.status === 404) applyUnpin(chatId, messageId);
    else toast(e.message, 'error');
  }
}

// ---------------------------------------------------------------- forwarding

let forwarding = null;

function openForward(m) {
  forwarding = m;
  const dialog = byTestId('forward-dialog');
  byTestId('forward-preview', dialog).textContent = m.text.length > 140 ? `${m.text.slice(0, 140)}…` : m.text;
  showText(byTestId('forward-error', dialog), '');
  const chats = [...state.chats.values()].sort((a, b) => (activityOf(a) < activityOf(b) ? 1 : -1));
  byTestId('forward-targets', dialog).replaceChildren(...chats.map((c) => h('li', {},
    h('button', { type: 'button', class: 'pick', testid: 'forward-target', 'data-chat-id': c.id, 'data-title': chatTitle(c), onclick: () => forwardTo(c) },
      avatar(chatTitle(c)), h('span', {}, chatTitle(c)),
      c.id === m.chat ? h('span', { class: 'muted small' }, ' (this chat)') : null))));
  dialog.showModal();
  dialog.querySelector('.pick')?.focus();
}

async function forwardTo(target) {
  const dialog = byTestId('forward-dialog');
  try {
    const m = await api('POST', `/api/messages/${forwarding.id}/forward/`, { target_chat_id: target.id });
    dialog.close();
    addMessage(m);
    toast(`Forwarded to ${chatTitle(target)}.`, 'ok', { label: 'Open', action: () => { location.hash = `#/chat/${target.id}`; } });
  } catch (e) {
    showText(byTestId('forward-error', dialog), e.message);
  }
}

// ---------------------------------------------------------------- jumping to a message

async function jumpTo(chatId, messageId) {
  if (state.openId !== chatId) location.hash = `#/chat/${chatId}`;
  const v = viewOf(chatId);
  for (let i = 0; i < JUMP_PAGES && !v.messages.has(messageId); i++) {
    if (!v.loaded) await loadNewest(chatId);
    else if (v.hasMore) await loadOlder(chatId);
    else break;
    if (v.error) break;
  }
  if (!v.messages.has(messageId)) {
    toast('That message is no longer in the history.', 'error');
    return;
  }
  v.flash = messageId;
  schedule('view');
  await new Promise((r) => setTimeout(r, 0));
  const node = el['message-list'].querySelector(`[data-key="m${messageId}"]`);
  node?.scrollIntoView({ block: 'center' });
  setTimeout(() => {
    if (v.flash === messageId) {
      v.flash = null;
      schedule('view');
    }
  }, 1600);
}

// ---------------------------------------------------------------- search

async function onSearch(ev) {
  ev.preventDefault();
  const q = el['search-input'].value.trim();
  const all = el['search-all'].checked;
  const out = el['search-results'];
  showText(el['search-error'], '');
  if (!q) {
    out.replaceChildren();
    return;
  }
  out.setAttribute('aria-busy', 'true');
  try {
    const r = await api('GET', `/api/messages/search/${query({ q, chat: all ? '' : state.openId, limit: 50 })}`);
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    out.replaceChildren(...r.results.map((m) => {
      const chat = state.chats.get(m.chat);
      return h('li', {},
        h('button', { type: 'button', class: 'result', testid: 'search-result', 'data-id': m.id, onclick: () => jumpTo(m.chat, m.id) },
          h('span', { class: 'result-head small' },
            h('strong', {}, m.sender_id === state.me.id ? 'You' : m.sender || ''),
            all && chat ? h('span', { class: 'muted' }, ` in ${chatTitle(chat)}`) : null,
            h('span', { class: 'muted' }, ` · ${shortWhen(m.created_at)}`)),
          h('span', { class: 'result-text' }, highlighted(m.text, words))));
    }));
    if (!r.results.length) out.append(h('li', { class: 'muted small empty-results', testid: 'search-empty' }, `Nothing found for “${q}”.`));
  } catch (e) {
    showText(el['search-error'], e.message);
  } finally {
    out.removeAttribute('aria-busy');
  }
}

// The text with the words searched for (and longer words they begin) marked.
function highlighted(text, words) {
  if (!words.length) return [text];
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const re = new RegExp(`(${escaped.join('|')})`, 'giu');
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(h('mark', {}, m[0]));
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

// ---------------------------------------------------------------- chat info, members

function renderInfo() {
  const chat = state.chats.get(state.openId);
  if (!chat) return;
  const group = chat.type === 'group';
  el['info-title'].textContent = group ? 'Group info' : 'Chat info';
  el['rename-form'].hidden = !isManager(chat);
  if (document.activeElement !== el['rename-input']) el['rename-input'].value = chat.name || '';
  const roleOrder = { owner: 0, admin: 1, member: 2 };
  const members = [...chat.members].sort((a, b) => (roleOrder[a.role] - roleOrder[b.role]) || a.username.localeCompare(b.username));
  byTestId('members-heading').textContent = `${members.length} member${members.length === 1 ? '' : 's'}`;
  reconcile(el.members, members.map((m) => {
    const u = state.users.get(m.id);
    const online = m.id === state.me.id ? true : Boolean(u?.is_online);
    const removable = canRemoveMember(chat, m);
    return {
      key: `u${m.id}`,
      version: JSON.stringify([m.username, m.role, online, removable, group]),
      render: () => h('li', { class: 'member', testid: 'member', 'data-user-id': m.id, 'data-username': m.username },
        avatar(m.username, { online }),
        h('span', { class: 'member-name' }, m.username, m.id === state.me.id ? h('span', { class: 'muted' }, ' (you)') : null),
        group && m.role !== 'member' ? h('span', { class: `role ${m.role}` }, m.role) : null,
        removable ? h('button', {
          type: 'button', class: 'icon small', testid: 'member-remove', 'aria-label': `Remove ${m.username}`, title: `Remove ${m.username}`,
          onclick: () => removeMember(chat, m),
        }, icon('close')) : null),
    };
  }));
  el['add-member'].hidden = !isManager(chat);
  byTestId('leave-chat').hidden = !group;
  byTestId('delete-chat').hidden = group ? myRole(chat) !== 'owner' : false;
}

async function removeMember(chat, m) {
  const ok = await choose(`Remove ${m.username}?`, `${m.username} will no longer see new messages of “${chatTitle(chat)}”.`,
    [{ value: 'ok', label: 'Remove', testid: 'confirm-ok', cls: 'danger' }]);
  if (!ok) return;
  try {
    await api('DELETE', `/api/chats/${chat.id}/members/${m.id}/`);
    chat.members = chat.members.filter((x) => x.id !== m.id);
    schedule('header');
  } catch (e) {
    showText(el['info-error'], e.message);
  }
}

async function addMember(user) {
  const chat = state.chats.get(state.openId);
  showText(el['info-error'], '');
  try {
    await api('POST', `/api/chats/${chat.id}/members/`, { user_id: user.id });
    if (!chat.members.some((x) => x.id === user.id)) chat.members.push({ id: user.id, username: user.username, role: 'member' });
    state.users.set(user.id, user);
    const v = state.views.get(chat.id);
    if (v?.messages.size) {
      const newest = Math.max(...v.messages.keys());
      raise(marksOf(chat.id).read, user.id, newest);
      raise(marksOf(chat.id).delivered, user.id, newest);
    }
    el['add-member-search'].value = '';
    el['add-member-results'].replaceChildren();
    schedule('header', 'view');
  } catch (e) {
    showText(el['info-error'], e.message);
  }
}

async function leaveOrDelete(kind) {
  const chat = state.chats.get(state.openId);
  if (!chat) return;
  const title = chatTitle(chat);
  const leave = kind === 'leave';
  const ok = await choose(leave ? `Leave “${title}”?` : `Delete “${title}”?`,
    leave ? 'You will no longer receive its messages.' : 'The chat and its messages are deleted for every member.',
    [{ value: 'ok', label: leave ? 'Leave' : 'Delete', testid: 'confirm-ok', cls: 'danger' }]);
  if (!ok) return;
  try {
    if (leave) await api('DELETE', `/api/chats/${chat.id}/members/${state.me.id}/`);
    else await api('DELETE', `/api/chats/${chat.id}/`);
    dropChat(chat.id);
  } catch (e) {
    showText(el['info-error'], e.message);
  }
}

async function onRename(ev) {
  ev.preventDefault();
  const chat = state.chats.get(state.openId);
  const name = el['rename-input'].value.trim();
  if (!name || name === chat.name) return;
  try {
    const updated = await api('PATCH', `/api/chats/${chat.id}/`, { name });
    mergeChat(updated);
    toast('Group renamed.', 'ok');
  } catch (e) {
    showText(el['info-error'], e.message);
  }
}

// ---------------------------------------------------------------- people search

async function searchUsers(q, limit = 8) {
  const r = await api('GET', `/api/users/${query({ search: q, limit })}`);
  const users = (r.results || []).filter((u) => u.id !== state.me.id);
  for (const u of users) state.users.set(u.id, { ...state.users.get(u.id), ...u });
  return users;
}

function userPick(u, onPick, testid) {
  return h('li', {}, h('button', { type: 'button', class: 'pick', testid, 'data-username': u.username, onclick: () => onPick(u) },
    avatar(u.username, { online: Boolean(u.is_online) }),
    h('span', { class: 'pick-main' }, h('span', {}, u.username), h('span', { class: 'muted small' }, lastSeenText(u)))));
}

const onPeopleInput = debounce(async () => {
  const q = el['people-search'].value.trim();
  const out = el['people-results'];
  showText(el['side-error'], '');
  if (!q) {
    out.hidden = true;
    out.replaceChildren();
    return;
  }
  try {
    const users = await searchUsers(q);
    if (el['people-search'].value.trim() !== q) return;
    out.replaceChildren(h('p', { class: 'muted small pad' }, users.length ? 'People' : `Nobody found for “${q}”.`),
      h('ul', { class: 'picker', role: 'list' }, users.map((u) => userPick(u, startPrivate, 'person'))));
    out.hidden = false;
  } catch (e) {
    showText(el['side-error'], e.message);
  }
}, 200);

async function startPrivate(user) {
  try {
    const chat = await api('POST', '/api/chats/', { type: 'private', member_ids: [user.id] });
    mergeChat(chat);
    el['people-search'].value = '';
    el['people-results'].hidden = true;
    location.hash = `#/chat/${chat.id}`;
    fetchPresence([user.id]);
  } catch (e) {
    showText(el['side-error'], e.message);
  }
}

// ---------------------------------------------------------------- new group

const group = { chosen: new Map() };

function openGroupDialog() {
  const dialog = byTestId('group-dialog');
  const form = byTestId('group-form');
  form.reset();
  group.chosen.clear();
  renderChosen();
  byTestId('group-member-results').replaceChildren();
  showText(byTestId('group-error'), '');
  dialog.showModal();
  byTestId('group-name').focus();
}

function renderChosen() {
  byTestId('group-chosen').replaceChildren(...[...group.chosen.values()].map((u) => h('li', { class: 'chip', testid: 'group-chip' },
    u.username, h('button', { type: 'button', class: 'icon small', 'aria-label': `Remove ${u.username}`, onclick: () => { group.chosen.delete(u.id); renderChosen(); } }, icon('close')))));
}

const onGroupSearch = debounce(async () => {
  const input = byTestId('group-member-search');
  const q = input.value.trim();
  const out = byTestId('group-member-results');
  if (!q) {
    out.replaceChildren();
    return;
  }
  try {
    const users = await searchUsers(q, 6);
    if (input.value.trim() !== q) return;
    out.replaceChildren(...users.map((u) => userPick(u, (picked) => {
      group.chosen.set(picked.id, picked);
      renderChosen();
      input.value = '';
      out.replaceChildren();
      input.focus();
    }, 'group-pick')));
  } catch (e) {
    showText(byTestId('group-error'), e.message);
  }
}, 200);

async function onGroupSubmit(ev) {
  const dialog = byTestId('group-dialog');
  const submitter = ev.submitter;
  if (submitter?.value !== 'ok') return;  // Cancel closes the dialog
  ev.preventDefault();
  const name = byTestId('group-name').value.trim();
  if (!name) {
    showText(byTestId('group-error'), 'Give the group a name.');
    byTestId('group-name').focus();
    return;
  }
  try {
    const chat = await api('POST', '/api/chats/', { type: 'group', name, member_ids: [...group.chosen.keys()] });
    mergeChat(chat);
    dialog.close();
    location.hash = `#/chat/${chat.id}`;
  } catch (e) {
    showText(byTestId('group-error'), e.message);
  }
}

// ---------------------------------------------------------------- dialogs and toasts

function choose(title, text, choices) {
  const dialog = byTestId('confirm-dialog');
  byTestId('confirm-title', dialog).textContent = title;
  byTestId('confirm-text', dialog).textContent = text;
  const actions = dialog.querySelector('.actions');
  actions.replaceChildren(h('button', { value: 'cancel', testid: 'confirm-cancel' }, 'Cancel'),
    ...choices.map((c) => h('button', { value: c.value, class: c.cls || '', testid: c.testid }, c.label)));
  const back = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const v = dialog.returnValue;
      resolve(v && v !== 'cancel' ? v : null);
      if (back instanceof HTMLElement && back.isConnected) back.focus();
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    byTestId('confirm-cancel', dialog).focus();
  });
}

function toast(text, kind = 'info', action = null) {
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', testid: `toast-${kind}` }, h('span', {}, text));
  if (action) t.append(h('button', { type: 'button', class: 'link', onclick: () => { action.action(); t.remove(); } }, action.label));
  t.append(h('button', { type: 'button', class: 'icon small', 'aria-label': 'Dismiss', onclick: () => t.remove() }, icon('close')));
  el.toasts.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// ---------------------------------------------------------------- chats from the server

// A chat object from REST, or the shared one of an event (without last_message,
// unread_count and last_read_message_id: ours are kept).
function mergeChat(c) {
  const old = state.chats.get(c.id);
  const chat = old ? Object.assign(old, c) : { ...c };
  chat.pinned_message_ids ||= [];
  chat.typing ||= new Map();
  chat.unread_count ??= 0;
  state.chats.set(c.id, chat);
  schedule('list');
  if (c.id === state.openId) schedule('header', 'view');
  return chat;
}

const refreshing = new Map();

// One chat again from REST (after membership changes, or a chat not known yet).
function refreshChat(chatId) {
  if (refreshing.has(chatId)) return refreshing.get(chatId);
  const p = api('GET', `/api/chats/${chatId}/`)
    .then((c) => {
      const chat = mergeChat(c);
      const partner = partnerOf(chat);
      if (partner) fetchPresence([partner.id]);
    })
    .catch((e) => { if (e.status === 404) dropChat(chatId); })
    .finally(() => refreshing.delete(chatId));
  refreshing.set(chatId, p);
  return p;
}

function dropChat(chatId, notice = '') {
  const chat = state.chats.get(chatId);
  state.chats.delete(chatId);
  state.views.delete(chatId);
  state.marks.delete(chatId);
  for (const [cid, o] of state.outbox) if (o.chat === chatId) state.outbox.delete(cid);
  if (state.openId === chatId) {
    history.replaceState(null, '', location.pathname);
    closeChat();
    if (notice && chat) toast(notice.replace('{title}', chatTitle(chat)), 'info');
  }
  schedule('list');
}

// Presence of these users, from REST (user_status events keep it current afterwards).
async function fetchPresence(ids, force = false) {
  // At most 50 at a time: a large group's presence fills in as user_status events come.
  const want = [...new Set(ids)].filter((id) => id !== state.me.id && (force || !state.users.has(id))).slice(0, 50);
  for (let i = 0; i < want.length; i += 6) {
    await Promise.all(want.slice(i, i + 6).map((id) => api('GET', `/api/users/${id}/`)
      .then((u) => state.users.set(u.id, u))
      .catch(() => {})));
  }
  if (want.length) schedule('list', 'header');
}

// Everything from REST: the chat list, presence, the open chat's newest page, its pins.
async function loadSnapshot({ full }) {
  state.ready = false;
  state.snapshotAt = Date.now();
  try {
    const chats = await api('GET', '/api/chats/');
    const seen = new Set();
    for (const c of chats) {
      seen.add(c.id);
      mergeChat(c);
    }
    for (const id of [...state.chats.keys()]) if (!seen.has(id)) dropChat(id, '“{title}” is no longer available.');
    // The server's read watermarks are the truth now: a read lost with a connection is sent again.
    state.readSent.clear();
    if (full) {
      // Histories may have changed in ways no event told us: load them again when opened.
      for (const id of [...state.views.keys()]) if (id !== state.openId) state.views.delete(id);
      if (state.openId && state.chats.has(state.openId)) {
        await Promise.all([loadNewest(state.openId, { reset: true }), loadPins(state.openId)]);
      }
    }
    // Presence of the people of the most recent private chats; others' when opened.
    const partners = [...state.chats.values()].sort((x, y) => (activityOf(x) < activityOf(y) ? 1 : -1))
      .map(partnerOf).filter(Boolean).slice(0, PRESENCE_AHEAD).map((p) => p.id);
    await fetchPresence(partners, true);
    showText(el['side-error'], '');
  } catch (e) {
    if (e.status !== 401) showText(el['side-error'], `Could not load your chats: ${e.message}`);
  } finally {
    state.ready = true;
    drainBuffered();
  }
}

function drainBuffered() {
  const events = state.buffered;
  state.buffered = [];
  for (const ev of events) {
    // An unread count from before the snapshot was asked for is older than it.
    if (ev.type === 'unread' && ev._at < state.snapshotAt) continue;
    applyEvent(ev);
  }
  route();
}

// ---------------------------------------------------------------- live events

function onSocketEvent(ev) {
  ev._at = Date.now();
  if (ev.type === '_open' && state.onFirstOpen) {
    state.onFirstOpen();
    state.onFirstOpen = null;
  }
  if (!state.ready) {
    state.buffered.push(ev);
    return;
  }
  applyEvent(ev);
}

function applyEvent(ev) {
  const chat = ev.chat_id ? state.chats.get(ev.chat_id) : null;
  switch (ev.type) {
    case '_open':
      if (!ev.resumed) {
        // A fresh connection (no seq to resume from): what happened before it opened comes
        // from REST, unless the snapshot was asked for after the socket opened.
        if (ev._at > state.snapshotAt) loadSnapshot({ full: true }).then(flushOutbox);
        else flushOutbox();
      }
      break;
    case 'synced':
      if (state.needResync) {
        state.needResync = false;
        loadSnapshot({ full: true }).then(flushOutbox);
      } else {
        // Counts and presence are not replayed: ask for them again.
        loadSnapshot({ full: false }).then(flushOutbox);
      }
      break;
    case 'resync_required':
      state.needResync = true;
      break;
    case 'message': {
      const m = messageFromEvent(ev);
      if (m.client_id && state.outbox.has(m.client_id)) acknowledge(m);
      else addMessage(m);
      break;
    }
    case 'edit':
      applyEdit(ev.chat_id, ev.message_id, ev.text, ev.edited_at);
      break;
    case 'delete':
      if (ev.for_me) applyHide(ev.chat_id, ev.message_id);
      else applyDelete(ev.chat_id, ev.message_id);
      break;
    case 'read':
    case 'delivered': {
      if (!chat) break;
      const value = ev.type === 'read' ? ev.last_read_message_id : ev.last_delivered_message_id;
      if (ev.user_id === state.me.id) {
        if (ev.type === 'read') chat.last_read_message_id = Math.max(chat.last_read_message_id || 0, value);
        break;
      }
      const marks = marksOf(ev.chat_id);
      raise(marks.delivered, ev.user_id, value);
      if (ev.type === 'read') raise(marks.read, ev.user_id, value);
      schedule('list');
      if (ev.chat_id === state.openId) schedule('view');
      break;
    }
    case 'unread':
      if (chat) {
        chat.unread_count = ev.unread_count;
        const v = state.views.get(ev.chat_id);
        const newest = v?.messages.size ? Math.max(...v.messages.keys()) : 0;
        // A count from before our read of everything shown is on its way out: the server
        // sends the new one once it has the read.
        if (ev.chat_id === state.openId && newest && (state.readSent.get(ev.chat_id) || 0) >= newest
          && (chat.last_message?.id || 0) <= newest) chat.unread_count = 0;
        schedule('list');
        if (ev.chat_id === state.openId) markRead(ev.chat_id);
      }
      break;
    case 'typing':
      if (!chat || ev.user_id === state.me.id) break;
      if (ev.is_typing) chat.typing.set(ev.user_id, { name: ev.username, until: Date.now() + TYPING_SHOWN_MS });
      else chat.typing.delete(ev.user_id);
      schedule('list');
      if (ev.chat_id === state.openId) schedule('header');
      setTimeout(() => schedule('list', 'header'), TYPING_SHOWN_MS + 50);
      break;
    case 'user_status': {
      const u = state.users.get(ev.user_id) || { id: ev.user_id, username: '' };
      u.is_online = ev.is_online;
      if (ev.last_seen) u.last_seen = ev.last_seen;
      state.users.set(ev.user_id, u);
      schedule('list', 'header');
      break;
    }
    case 'pin':
      if (!chat) break;
      if (!chat.pinned_message_ids.includes(ev.message_id)) chat.pinned_message_ids.push(ev.message_id);
      viewOf(ev.chat_id).pinIndex = 0;
      if (ev.chat_id === state.openId) loadPins(ev.chat_id);
      else viewOf(ev.chat_id).pinsLoaded = false;
      schedule('view', 'header');
      break;
    case 'unpin':
      applyUnpin(ev.chat_id, ev.message_id);
      break;
    case 'chat_created':
      if (ev.chat) mergeChat(ev.chat);
      refreshChat(ev.chat_id);
      break;
    case 'chat_updated':
      if (ev.chat && chat) mergeChat(ev.chat);
      else refreshChat(ev.chat_id);
      break;
    case 'chat_deleted':
      dropChat(ev.chat_id, '“{title}” was deleted.');
      break;
    case 'member_added':
    case 'member_updated':
      if (ev.type === 'member_added' && chat) {
        const v = state.views.get(ev.chat_id);
        const newest = v?.messages.size ? Math.max(...v.messages.keys()) : chat.last_message?.id || 0;
        raise(marksOf(ev.chat_id).read, ev.user_id, newest);
        raise(marksOf(ev.chat_id).delivered, ev.user_id, newest);
      }
      refreshChat(ev.chat_id);
      break;
    case 'member_removed':
      if (ev.user_id === state.me.id) dropChat(ev.chat_id, 'You are no longer a member of “{title}”.');
      else if (chat) {
        chat.members = chat.members.filter((x) => x.id !== ev.user_id);
        marksOf(ev.chat_id).read.delete(ev.user_id);
        marksOf(ev.chat_id).delivered.delete(ev.user_id);
        schedule('list', 'header', 'view');
      }
      break;
    case 'error':
      onSocketError(ev);
      break;
    default:
      break;
  }
}

function onSocketError(ev) {
  if (ev.request_type === 'message') {
    // Which message failed is not said: REST answers for each one in flight, exactly.
    for (const o of state.outbox.values()) if (o.state === 'sending') sendViaRest(o);
    return;
  }
  if (ev.request_type === 'typing' || ev.request_type === 'read') return;
  toast(ev.detail || 'The server refused that.', 'error');
}

function applyEdit(chatId, id, text, editedAt) {
  const chat = state.chats.get(chatId);
  const m = state.views.get(chatId)?.messages.get(id);
  for (const target of [m, chat?.last_message?.id === id ? chat.last_message : null]) {
    if (!target) continue;
    target.text = text;
    target.edited_at = editedAt;
    target.is_edited = true;
  }
  for (const p of state.views.get(chatId)?.pins || []) if (p.message.id === id) p.message.text = text;
  schedule('list');
  if (chatId === state.openId) schedule('view', 'header');
}

function applyDelete(chatId, id) {
  const chat = state.chats.get(chatId);
  const m = state.views.get(chatId)?.messages.get(id);
  for (const target of [m, chat?.last_message?.id === id ? chat.last_message : null]) {
    if (!target) continue;
    target.text = '';
    target.is_deleted = true;
  }
  if (state.editing?.id === id) cancelEdit();
  schedule('list');
  if (chatId === state.openId) schedule('view', 'header');
}

function applyHide(chatId, id) {
  const chat = state.chats.get(chatId);
  state.views.get(chatId)?.messages.delete(id);
  if (state.editing?.id === id) cancelEdit();
  // The chat's last message may be another one now: the server knows which.
  if (chat?.last_message?.id === id) refreshChat(chatId);
  schedule('list');
  if (chatId === state.openId) schedule('view');
}

function applyUnpin(chatId, messageId) {
  const chat = state.chats.get(chatId);
  if (!chat) return;
  chat.pinned_message_ids = chat.pinned_message_ids.filter((x) => x !== messageId);
  const v = viewOf(chatId);
  v.pins = v.pins.filter((p) => p.message.id !== messageId);
  if (chatId === state.openId) schedule('view', 'header');
}

// ---------------------------------------------------------------- connection banner

let bannerTimer = null;

function onSocketState(s, detail) {
  document.body.dataset.conn = s;
  const banner = el['conn-banner'];
  const text = el['conn-text'];
  const retry = el['conn-retry'];
  clearInterval(bannerTimer);
  banner.dataset.state = s;
  retry.hidden = true;
  switch (s) {
    case 'open':
      banner.hidden = true;
      break;
    case 'connecting':
      banner.hidden = false;
      text.textContent = 'Connecting…';
      break;
    case 'syncing':
      banner.hidden = false;
      text.textContent = 'Catching up…';
      break;
    case 'waiting': {
      banner.hidden = false;
      retry.hidden = false;
      const tick = () => {
        const left = Math.max(0, Math.ceil((detail.retryAt - Date.now()) / 1000));
        text.textContent = left > 0 ? `Connection lost. Reconnecting in ${left} s…` : 'Reconnecting…';
      };
      tick();
      bannerTimer = setInterval(tick, 1000);
      break;
    }
    case 'offline':
      banner.hidden = false;
      text.textContent = 'You are offline. Messages you send now go out when the connection is back.';
      break;
    case 'paused':
      banner.hidden = false;
      retry.hidden = false;
      text.textContent = 'This account is connected in too many places; this tab is paused.';
      break;
    default:
      banner.hidden = true;
  }
  // Pending sends wait in the outbox while disconnected.
  if (s !== 'open') {
    for (const o of state.outbox.values()) {
      if (o.state === 'sending') {
        clearTimeout(o.timer);
        o.state = 'queued';
      }
    }
    schedule('view');
  }
}

// ---------------------------------------------------------------- session

function showAuth(message = '', kind = 'notice') {
  el.auth.hidden = false;
  el.app.hidden = true;
  el['conn-banner'].hidden = true;
  const notice = byTestId('auth-notice');
  notice.className = kind === 'error' ? 'error' : 'notice';
  showText(notice, message);
  selectTab('login');
}

function selectTab(which) {
  for (const t of ['login', 'register']) {
    byTestId(`tab-${t}`).setAttribute('aria-selected', t === which ? 'true' : 'false');
    byTestId(`${t}-form`).hidden = t !== which;
  }
  const form = byTestId(`${which}-form`);
  const first = [...form.querySelectorAll('input')].find((i) => !i.value) || form.querySelector('input');
  first?.focus();
}

function endSession(message) {
  if (!state.me && el.app.hidden) {
    tokens.clear();
    showAuth(message);
    return;
  }
  socket?.stop();
  socket = null;
  tokens.clear();
  for (const o of state.outbox.values()) clearTimeout(o.timer);
  Object.assign(state, {
    me: null, chats: new Map(), users: new Map(), views: new Map(), marks: new Map(), outbox: new Map(),
    openId: null, ready: false, buffered: [], needResync: false, readSent: new Map(), editing: null,
  });
  el['chat-list'].replaceChildren();
  el['message-list'].replaceChildren();
  el.chat.hidden = true;
  el['no-chat'].hidden = false;
  el.app.classList.remove('chat-open');
  document.title = 'chatd';
  history.replaceState(null, '', location.pathname);
  showAuth(message);
}

async function startSession() {
  let me;
  try {
    me = await api('GET', '/api/users/me/');
  } catch (e) {
    if (e.status === 401) return;  // endSession has shown the login form
    showAuth(`Cannot load your account: ${e.message}`, 'error');
    // Try again shortly: the server may be restarting.
    setTimeout(() => { if (!state.me && tokens.refresh) startSession(); }, 3000);
    return;
  }
  state.me = me;
  el.auth.hidden = true;
  el.app.hidden = false;
  byTestId('me-name').textContent = me.username;
  byTestId('me-avatar').replaceWith(avatar(me.username, { testid: 'me-avatar' }));
  const firstOpen = new Promise((resolve) => { state.onFirstOpen = resolve; });
  socket = new UserSocket({ onEvent: onSocketEvent, onState: onSocketState, onSessionEnd: endSession });
  socket.start();
  // The snapshot is asked for once the socket listens (or after a moment without it), so
  // nothing falls between the two.
  await Promise.race([firstOpen, new Promise((r) => setTimeout(r, 3000))]);
  if (state.me !== me) return;
  await loadSnapshot({ full: true });
}

async function onLogin(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const username = form.username.value.trim();
  const password = form.password.value;
  const error = byTestId('login-error');
  if (!username || !password) {
    showText(error, 'Enter your username and password.');
    return;
  }
  const submit = byTestId('login-submit');
  submit.disabled = true;
  showText(error, '');
  try {
    const r = await rawRequest('POST', '/api/auth/login/', { username, password });
    if (!r.ok || !r.data?.access) {
      showText(error, describeError(r.status, r.data, r.retryAfter));
      form.password.select();
      return;
    }
    tokens.set(r.data.access, r.data.refresh);
    form.reset();
    showText(byTestId('auth-notice'), '');
    await startSession();
  } catch (e) {
    showText(error, e.message);
  } finally {
    submit.disabled = false;
  }
}

async function onRegister(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const body = { username: form.username.value.trim(), email: form.email.value.trim(), password: form.password.value };
  const error = byTestId('register-error');
  for (const f of form.querySelectorAll('.field-error')) f.textContent = '';
  showText(error, '');
  const local = {};
  if (!body.username) local.username = 'Choose a username.';
  if (!body.email) local.email = 'Enter your email address.';
  if (body.password.length < 8) local.password = 'Use at least 8 characters.';
  if (Object.keys(local).length) {
    for (const [k, v] of Object.entries(local)) form.querySelector(`[data-field="${k}"]`).textContent = v;
    form.querySelector(`[name="${Object.keys(local)[0]}"]`).focus();
    return;
  }
  const submit = byTestId('register-submit');
  submit.disabled = true;
  try {
    const r = await rawRequest('POST', '/api/auth/register/', body);
    if (!r.ok || !r.data?.access) {
      const e = new ApiError(r.status, describeError(r.status, r.data), r.data);
      const fields = e.fields;
      let shown = false;
      for (const [k, v] of Object.entries(fields)) {
        const slot = form.querySelector(`[data-field="${k}"]`);
        if (slot) { slot.textContent = v; shown = true; }
      }
      if (!shown) showText(error, e.message);
      const first = Object.keys(fields).find((k) => form.querySelector(`[name="${k}"]`));
      if (first) form.querySelector(`[name="${first}"]`).focus();
      return;
    }
    tokens.set(r.data.access, r.data.refresh);
    form.reset();
    await startSession();
  } catch (e) {
    showText(error, e.message);
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  const refresh = tokens.refresh;
  const access = tokens.access;
  endSession('You are logged out.');
  if (refresh) await rawRequest('POST', '/api/auth/logout/', { refresh }, access).catch(() => {});
}

// ---------------------------------------------------------------- wiring

function onGlobalKey(ev) {
  if (ev.key !== 'Escape') return;
  if (menuFor) { closeMenu({ restoreFocus: true }); return; }
  if (document.querySelector('dialog[open]')) return;  // the dialog closes itself
  if (state.editing) { cancelEdit(); return; }
  if (!el['search-panel'].hidden) { el['search-panel'].hidden = true; byTestId('search-toggle').focus(); return; }
  if (!el['info-panel'].hidden) { el['info-panel'].hidden = true; byTestId('info-toggle').focus(); return; }
  if (!el['people-results'].hidden) { el['people-search'].value = ''; el['people-results'].hidden = true; }
}

function init() {
  drawIcons();
  whenSessionEnds(endSession);
  byTestId('login-form').addEventListener('submit', onLogin);
  byTestId('register-form').addEventListener('submit', onRegister);
  byTestId('tab-login').addEventListener('click', () => selectTab('login'));
  byTestId('tab-register').addEventListener('click', () => selectTab('register'));
  byTestId('logout').addEventListener('click', onLogout);
  byTestId('new-group').addEventListener('click', openGroupDialog);
  byTestId('group-form').addEventListener('submit', onGroupSubmit);
  byTestId('group-member-search').addEventListener('input', onGroupSearch);
  byTestId('group-name').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {  // the form's first button is Cancel: Enter means Create
      ev.preventDefault();
      byTestId('group-form').requestSubmit(byTestId('group-create'));
    }
  });
  byTestId('group-member-search').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {  // Enter picks the first match rather than submitting
      ev.preventDefault();
      byTestId('group-member-results').querySelector('button')?.click();
    }
  });
  el['people-search'].addEventListener('input', onPeopleInput);
  el['people-search'].addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      el['people-results'].querySelector('button')?.click();
    }
  });
  el.composer.addEventListener('submit', onComposerSubmit);
  el['composer-input'].addEventListener('keydown', onComposerKey);
  el['composer-input'].addEventListener('input', () => { resizeComposer(); noteTyping(); });
  el['composer-input'].addEventListener('blur', () => stopTyping());
  byTestId('edit-cancel').addEventListener('click', () => { cancelEdit(); el['composer-input'].focus(); });
  byTestId('chat-back').addEventListener('click', () => { history.pushState(null, '', location.pathname); closeChat(); });
  byTestId('search-toggle').addEventListener('click', () => {
    el['info-panel'].hidden = true;
    el['search-panel'].hidden = !el['search-panel'].hidden;
    if (!el['search-panel'].hidden) el['search-input'].focus();
  });
  byTestId('search-close').addEventListener('click', () => { el['search-panel'].hidden = true; });
  el['search-form'].addEventListener('submit', onSearch);
  el['search-all'].addEventListener('change', () => { if (el['search-input'].value.trim()) el['search-form'].requestSubmit(); });
  byTestId('info-toggle').addEventListener('click', () => {
    el['search-panel'].hidden = true;
    el['info-panel'].hidden = !el['info-panel'].hidden;
    showText(el['info-error'], '');
    if (!el['info-panel'].hidden) {
      const chat = state.chats.get(state.openId);
      fetchPresence(chat.members.map((m) => m.id));
      renderInfo();
    }
  });
  byTestId('info-close').addEventListener('click', () => { el['info-panel'].hidden = true; });
  el['rename-form'].addEventListener('submit', onRename);
  el['add-member-search'].addEventListener('input', debounce(async () => {
    const q = el['add-member-search'].value.trim();
    const out = el['add-member-results'];
    if (!q) { out.replaceChildren(); return; }
    try {
      const chat = state.chats.get(state.openId);
      const users = (await searchUsers(q, 6)).filter((u) => !chat.members.some((m) => m.id === u.id));
      if (el['add-member-search'].value.trim() !== q) return;
      out.replaceChildren(...users.map((u) => userPick(u, addMember, 'add-member-pick')));
      if (!users.length) out.append(h('li', { class: 'muted small' }, 'Nobody else found.'));
    } catch (e) {
      showText(el['info-error'], e.message);
    }
  }, 200));
  byTestId('leave-chat').addEventListener('click', () => leaveOrDelete('leave'));
  byTestId('delete-chat').addEventListener('click', () => leaveOrDelete('delete'));
  byTestId('pinned-open').addEventListener('click', () => {
    const v = viewOf(state.openId);
    const id = Number(el['pinned-bar'].dataset.messageId);
    if (v.pins.length > 1) v.pinIndex = (v.pinIndex + 1) % v.pins.length;
    jumpTo(state.openId, id);
  });
  el['pinned-unpin'].addEventListener('click', () => unpinMessage(state.openId, Number(el['pinned-bar'].dataset.messageId)));
  el.messages.addEventListener('scroll', () => {
    if (el.messages.scrollTop < 150 && state.openId) loadOlder(state.openId);
    if (state.openId) markRead(state.openId);
    if (menuFor) closeMenu();
  }, { passive: true });
  el['message-menu'].addEventListener('keydown', onMenuKey);
  document.addEventListener('click', (ev) => {
    if (menuFor && !el['message-menu'].contains(ev.target) && !menuFor.button.contains(ev.target)) closeMenu();
  });
  document.addEventListener('keydown', onGlobalKey);
  document.addEventListener('visibilitychange', () => { if (state.openId) markRead(state.openId); });
  el['conn-retry'].addEventListener('click', () => {
    if (socket?.state === 'paused') socket.state = 'idle';
    socket?.connectNow();
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => closeMenu());
  // Logged out in another tab: this one follows.
  window.addEventListener('storage', (ev) => {
    if (tokens.isRefreshKey(ev.key) && !ev.newValue && state.me) endSession('You were logged out in another tab.');
  });
  if (tokens.refresh) {
    startSession();
  } else {
    tokens.clear();
    showAuth();
  }
}

init();
