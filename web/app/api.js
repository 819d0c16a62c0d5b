// REST calls of the chat client: the token pair in localStorage (so a reload stays signed
// in), one refresh at a time, and DRF error bodies turned into readable text.

const STORE = { access: 'chatd.access', refresh: 'chatd.refresh', skew: 'chatd.skew' };

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }

  // {"field": ["message", ...]} of a validation error, else {}.
  get fields() {
    const out = {};
    if (this.status !== 400 || !this.body || typeof this.body !== 'object' || Array.isArray(this.body)) return out;
    for (const [k, v] of Object.entries(this.body)) {
      if (k === 'detail') continue;
      out[k] = Array.isArray(v) ? v.join(' ') : String(v);
    }
    return out;
  }
}

// DRF error bodies: {"detail": "..."} or {"field": ["...", ...], ...}.
// `retryAfter`: a 429's Retry-After, in seconds, for when the body does not say it (DRF's
// throttle detail does: "Expected available in N seconds.").
export function describeError(status, body, retryAfter) {
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    if (typeof body.detail === 'string') return body.detail;
    const parts = [];
    for (const [field, msgs] of Object.entries(body)) {
      const text = Array.isArray(msgs) ? msgs.join(' ') : typeof msgs === 'string' ? msgs : '';
      if (text) parts.push(field === 'non_field_errors' ? text : `${field}: ${text}`);
    }
    if (parts.length) return parts.join(' · ');
  }
  if (Array.isArray(body) && body.every((m) => typeof m === 'string')) return body.join(' ');
  if (status === 0) return 'Cannot reach the server.';
  if (status === 429) return retryAfter ? `Too many requests, try again in ${retryAfter} s.` : 'Too many requests, try again later.';
  if (status >= 500) return `The server failed (HTTP ${status}).`;
  return `Request failed (HTTP ${status}).`;
}

function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export const tokens = {
  get access() { return localStorage.getItem(STORE.access); },
  get refresh() { return localStorage.getItem(STORE.refresh); },
  // Seconds the server's clock is ahead of ours (from the newest token's "iat").
  get skew() { return Number(localStorage.getItem(STORE.skew)) || 0; },
  set(access, refresh) {
    localStorage.setItem(STORE.access, access);
    if (refresh) localStorage.setItem(STORE.refresh, refresh);
    const iat = claimsOf(access)?.iat;
    if (typeof iat === 'number') localStorage.setItem(STORE.skew, String(Math.round(iat - Date.now() / 1000)));
  },
  clear() { for (const k of Object.values(STORE)) localStorage.removeItem(k); },
  isRefreshKey(key) { return key === STORE.refresh; },
};

// Seconds until the access token expires by the server's clock (negative when it has);
// null when unreadable.
export function accessExpiresIn() {
  const t = tokens.access;
  const exp = t ? claimsOf(t)?.exp : null;
  return typeof exp === 'number' ? exp - (Date.now() / 1000 + tokens.skew) : null;
}

// `timeoutMs`: given up after that long (as when the server cannot be reached).
export async function rawRequest(method, path, body, access, timeoutMs) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (access) headers.Authorization = `Bearer ${access}`;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: timeoutMs && AbortSignal.timeout ? AbortSignal.timeout(timeoutMs) : undefined,
    });
  } catch {
    throw new ApiError(0, describeError(0, null));
  }
  let data = null;
  if (res.status !== 204 && res.status !== 205) {
    let text = '';
    try {
      text = await res.text();
    } catch {
      throw new ApiError(0, describeError(0, null));  // cut off (or timed out) mid-answer
    }
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
  }
  return { status: res.status, ok: res.ok, data, retryAfter: res.headers.get('Retry-After') };
}

let refreshing = null;  // one refresh at a time, shared by every caller
let onSessionEnd = () => {};

export function whenSessionEnds(callback) {
  onSessionEnd = callback;
}

// A new access token from the refresh token. True when it worked; false when the session is
// over (the refresh token is refused); throws ApiError(0) when the server cannot be reached.
// Tabs share the tokens. With rotation (ROTATE_REFRESH_TOKENS) a refresh token works once, so
// two tabs refreshing with the same one at once would see one of them refused and end the
// session: they take turns (a Web Lock, where the browser has them), and a tab whose turn
// comes after another tab's refresh takes that one's tokens.
export function refreshAccess() {
  refreshing ??= (async () => {
    const seen = tokens.refresh;
    const turn = () => refreshOnce(seen);
    return navigator.locks ? navigator.locks.request('chatd-token-refresh', turn) : turn();
  })().finally(() => { refreshing = null; });
  return refreshing;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function refreshOnce(seen) {
  const used = tokens.refresh;
  if (!used) return false;
  if (used !== seen) return true;  // another tab refreshed while this one waited its turn
  // Bounded: every tab's refresh waits for this one.
  const r = await rawRequest('POST', '/api/auth/refresh/', { refresh: used }, undefined, 15000);
  if (r.ok && r.data?.access) {
    tokens.set(r.data.access, r.data.refresh);
    return true;
  }
  if (r.status === 401 || r.status === 400) {
    // Refused: another tab (one without the lock, or whose tokens reached this one late)
    // may have rotated the token. Its new tokens are stored, the access token first, by
    // the time the new refresh token shows: wait a little for that, and take them.
    for (let i = 0; i < 20 && tokens.refresh === used; i++) await sleep(100);
    return Boolean(tokens.refresh && tokens.refresh !== used);
  }
  throw new ApiError(r.status, describeError(r.status, r.data), r.data);
}

// An access token good for at least `margin` more seconds (refreshed when needed).
export async function freshAccess(margin = 30) {
  const left = accessExpiresIn();
  if (left !== null && left > margin) return tokens.access;
  if (!(await refreshAccess())) {
    onSessionEnd('Your session has ended. Please log in again.');
    throw new ApiError(401, 'Your session has ended.');
  }
  return tokens.access;
}

// An authenticated call. A 401 is retried once after a refresh; when that fails too, the
// session is over.
export async function api(method, path, body) {
  let access = tokens.access;
  if (!access) {
    onSessionEnd('Please log in.');
    throw new ApiError(401, 'Not signed in.');
  }
  if ((accessExpiresIn() ?? 1) <= 5) access = await freshAccess();
  let r = await rawRequest(method, path, body, access);
  if (r.status === 401) {
    if (!(await refreshAccess())) {
      onSessionEnd('Your session has ended. Please log in again.');
      throw new ApiError(401, describeError(401, r.data), r.data);
    }
    r = await rawRequest(method, path, body, tokens.access);
    if (r.status === 401) {
      onSessionEnd('Your session has ended. Please log in again.');
      throw new ApiError(401, describeError(401, r.data), r.data);
    }
  }
  if (!r.ok) {
    throw new ApiError(r.status, describeError(r.status, r.data, r.retryAfter), r.data);
  }
  return r.data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined && v !== false) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}
