// The user socket (/ws/, the access token sent as its subprotocol): one connection for all
// of the user's chats. It keeps the newest `seq` it has seen and, after a dropped
// connection, comes back by itself with `since=` that seq, so the server replays exactly
// what was missed. Without a seq yet (a fresh page that has seen no logged event) it
// reconnects without `since` and the app reloads through REST instead.
import { ApiError, freshAccess } from './api.js';

const PING_EVERY_MS = 25_000;   // our own keep-alive, to notice a dead connection
const PONG_WAIT_MS = 10_000;    // no frame at all this long after a ping: the link is dead
const OPEN_WAIT_MS = 10_000;    // a handshake that takes longer is given up
const STABLE_MS = 5_000;        // open this long: the backoff starts again from the bottom
const BACKOFF_MS = [300, 1000, 2000, 4000, 8000, 15000];

export class UserSocket {
  // onEvent(event): every server event, plus {type: "_open", resumed} when a connection
  // opens. onState(state, detail): "connecting" | "syncing" | "open" | "waiting" |
  // "offline" | "paused" | "stopped"; detail.retryAt (ms) while waiting.
  constructor({ onEvent, onState, onSessionEnd }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onSessionEnd = onSessionEnd;
    this.ws = null;
    this.cursor = null;       // the newest seq seen
    this.state = 'stopped';
    this.attempt = 0;
    this.timers = {};
    this.lastHeard = 0;
    this.failedOpens = 0;
    this.onOnline = () => { if (this.state === 'offline' || this.state === 'waiting') this.connectNow(); };
    this.onOffline = () => {
      // Chromium keeps a socket open for a while after the network goes: drop it now, so
      // what is sent meanwhile is queued and the user sees that they are offline.
      if (this.state === 'stopped' || this.state === 'paused') return;
      this.drop();
      this.setState('offline');
    };
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && this.state === 'open') this.ping();
    };
  }

  get isOpen() { return this.state === 'open' || this.state === 'syncing'; }

  start() {
    if (this.state !== 'stopped') return;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.state = 'idle';
    this.connectNow();
  }

  stop() {
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    document.removeEventListener('visibilitychange', this.onVisible);
    this.drop();
    this.cursor = null;
    this.setState('stopped');
  }

  // Sends one client event; false when there is no open connection.
  send(event) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify(event));
      return true;
    } catch {
      return false;
    }
  }

  // Reconnects at once (the user asked, or the network is back).
  connectNow() {
    if (this.state === 'stopped') return;
    this.clearTimer('retry');
    this.attempt = 0;
    this.connect();
  }

  // Forgets the cursor: the next connection starts fresh (after a REST reload).
  resetCursor() { this.cursor = null; }

  setState(state, detail = {}) {
    this.state = state;
    this.onState(state, detail);
  }

  clearTimer(name) {
    if (this.timers[name]) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
      delete this.timers[name];
    }
  }

  // Closes the current connection without reconnecting (the caller decides what next).
  drop() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, 'client closing'); } catch { /* already closed */ }
    }
  }

  async connect() {
    if (this.state === 'stopped' || this.state === 'paused') return;
    this.drop();
    if (!navigator.onLine) {
      this.setState('offline');
      return;
    }
    this.setState('connecting');
    let token;
    try {
      // After two handshakes that failed before opening, the token may be the reason.
      token = await freshAccess(this.failedOpens >= 2 ? 1e9 : 30);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;  // the session is over
      this.retryLater();
      return;
    }
    if (this.state !== 'connecting') return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    let url = `${proto}://${location.host}/ws/`;
    const resumed = this.cursor !== null;
    if (resumed) url += `?since=${this.cursor}`;
    let ws;
    try {
      // The token goes as the subprotocol pair, not in the URL (?token=, which the server
      // also takes): proxies and servers log URLs.
      ws = new WebSocket(url, ['access_token', token]);
    } catch {
      this.retryLater();
      return;
    }
    this.ws = ws;
    this.timers.open = setTimeout(() => {
      if (this.ws === ws && ws.readyState !== WebSocket.OPEN) {
        this.failedOpens++;
        this.drop();
        this.retryLater();
      }
    }, OPEN_WAIT_MS);
    ws.onopen = () => {
      this.clearTimer('open');
      this.failedOpens = 0;
      this.lastHeard = Date.now();
      this.setState(resumed ? 'syncing' : 'open');
      this.timers.stable = setTimeout(() => { this.attempt = 0; }, STABLE_MS);
      this.timers.ping = setInterval(() => this.ping(), PING_EVERY_MS);
      this.onEvent({ type: '_open', resumed });
    };
    ws.onmessage = (ev) => {
      this.lastHeard = Date.now();
      let event;
      try { event = JSON.parse(ev.data); } catch { return; }
      if (!event || typeof event !== 'object') return;
      if (typeof event.seq === 'number' && (this.cursor === null || event.seq > this.cursor)) this.cursor = event.seq;
      if (event.type === 'synced') {
        if (typeof event.seq === 'number') this.cursor = event.seq;
        this.attempt = 0;
        if (this.state === 'syncing') this.setState('open');
      }
      if (event.type === 'pong') return;
      this.onEvent(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      const wasOpen = this.isOpen;
      this.ws = null;
      for (const name of Object.keys(this.timers)) this.clearTimer(name);
      if (!wasOpen) this.failedOpens++;
      if (ev.code === 4003) {
        // The login session ended elsewhere (logged out, or the account was deactivated).
        this.setState('stopped');
        this.onSessionEnd(ev.reason === 'account deactivated'
          ? 'This account has been deactivated.' : 'You were logged out.');
        return;
      }
      if (ev.code === 1008 && /too many sockets/i.test(ev.reason)) {
        // Opened in too many places: this tab steps aside instead of pushing another out.
        this.setState('paused');
        return;
      }
      if (!navigator.onLine) {
        this.setState('offline');
        return;
      }
      this.retryLater();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  ping() {
    if (!this.send({ type: 'ping' })) return;
    const sentAt = Date.now();
    this.clearTimer('pong');
    this.timers.pong = setTimeout(() => {
      if (this.lastHeard < sentAt && this.ws) {
        // Nothing heard since the ping: the connection is dead even if the browser has not
        // noticed.
        this.drop();
        this.retryLater();
      }
    }, PONG_WAIT_MS);
  }

  retryLater() {
    if (this.state === 'stopped' || this.state === 'paused') return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    const delay = Math.round(base * (1 + Math.random() * 0.3));
    this.clearTimer('retry');
    this.timers.retry = setTimeout(() => {
      delete this.timers.retry;
      this.connect();
    }, delay);
    this.setState('waiting', { retryAt: Date.now() + delay });
  }
}
