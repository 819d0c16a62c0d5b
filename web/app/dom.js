// DOM and formatting helpers. Text from the server is always inserted as text, never as
// HTML (the page runs under Content-Security-Policy default-src 'self').

export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function showText(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

// Text with its http(s) links as links (everything else stays text). A link ends at a
// bidi control and is isolated from the text around it (dir), so that an override cannot
// make it show another address than the one it opens.
const BIDI = '\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
const LINK = new RegExp(`\\bhttps?://[^\\s<>"'${BIDI}]+[^\\s<>"'.,;:!?)\\]${BIDI}]`, 'gi');
export function linkified(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(LINK)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer', dir: 'ltr' }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dateFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

export const clock = (iso) => (iso ? timeFmt.format(new Date(iso)) : '');
export const fullDate = (iso) => (iso ? fullFmt.format(new Date(iso)) : '');
export const dayKey = (iso) => startOfDay(new Date(iso));

export function dayLabel(iso) {
  const d = new Date(iso);
  const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days < 7) return dayFmt.format(d);
  return dateFmt.format(d);
}

// For the chat list: a time today, a weekday this week, else a date.
export function shortWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86_400_000);
  if (days === 0) return timeFmt.format(d);
  if (days < 7) return new Intl.DateTimeFormat(undefined, { weekday: 'short' }).format(d);
  return new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' }).format(d);
}

export function lastSeenText(user) {
  if (!user) return '';
  if (user.is_online) return 'online';
  if (!user.last_seen) return 'offline';
  const d = new Date(user.last_seen);
  const minutes = Math.round((Date.now() - d.getTime()) / 60_000);
  if (minutes < 1) return 'last seen just now';
  if (minutes < 60) return `last seen ${minutes} min ago`;
  const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86_400_000);
  if (days === 0) return `last seen at ${timeFmt.format(d)}`;
  if (days === 1) return `last seen yesterday at ${timeFmt.format(d)}`;
  return `last seen ${dateFmt.format(d)}`;
}

// A stable hue for a name, for avatars.
export function hueOf(name) {
  let x = 0;
  for (const ch of name || '?') x = (x * 31 + ch.codePointAt(0)) % 360;
  return x;
}

export function avatar(name, { online = null, testid = null } = {}) {
  const el = h('span', { class: 'avatar', 'aria-hidden': 'true', testid },
    (name || '?').slice(0, 1).toUpperCase());
  el.style.setProperty('--hue', String(hueOf(name)));
  if (online !== null) el.append(h('span', { class: `dot${online ? ' on' : ''}`, 'data-online': online ? 'true' : 'false' }));
  return el;
}

// A client_id for optimistic sends: random, URL-safe, and available outside secure contexts.
export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'c' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Characters as the server counts them (code points), after trimming.
export function textLength(text) {
  return [...text.trim()].length;
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// Line icons (24×24, stroked with the text colour): no icon font, no emoji font needed.
const ICONS = {
  plus: ['M12 5v14', 'M5 12h14'],
  search: ['M10.5 4a6.5 6.5 0 1 1 0 13a6.5 6.5 0 1 1 0-13z', 'M20 20l-4.8-4.8'],
  info: ['M12 3a9 9 0 1 1 0 18a9 9 0 1 1 0-18z', 'M12 11v6', 'M12 7.5v.01'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  back: ['M15 5l-7 7 7 7'],
  pin: ['M9 3h6', 'M10 3l-.5 7L6 13v2h12v-2l-3.5-3-.5-7', 'M12 15v6'],
  clock: ['M12 4a8 8 0 1 1 0 16a8 8 0 1 1 0-16z', 'M12 8v4l3 2'],
  more: ['M5 12h.01', 'M12 12h.01', 'M19 12h.01'],
  forward: ['M14 5l6 6-6 6', 'M20 11H10a6 6 0 0 0-6 6v2'],
  alert: ['M12 3a9 9 0 1 1 0 18a9 9 0 1 1 0-18z', 'M12 7v6', 'M12 16.5v.01'],
};

export function icon(name, cls = 'i') {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  for (const d of ICONS[name]) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

// Static markup names its icons with data-icon="name": they are drawn here.
export function drawIcons(root = document) {
  for (const slot of root.querySelectorAll('[data-icon]')) {
    slot.replaceWith(icon(slot.dataset.icon, slot.className || 'i'));
  }
}
