// chatgate web client: one ES module, no framework.
//
// The wire contract is PROTOCOL.md. What this page adds on top of it:
//  - every outgoing message has a client-made msgID (SHA-1 hex) and shows
//    "sending" until its /user/queue/send/status 200, a red "!" (Resend, with
//    the same msgID) after 10 s or an error code, and a tick once the
//    receiver confirmed it (/user/queue/delivered);
//  - every incoming message is deduped by (senderId, chatID), rendered,
//    stored, then confirmed with /socket/chat/recive;
//  - on every (re)connect: subscribe, init, then sync from this device's sync
//    key until "more" is false, then resend whatever is still unconfirmed;
//  - reconnects back off exponentially with jitter and say so on screen; the
//    browser's offline event, or no byte from the server for 16 s (it sends
//    a heart-beat every 10 s), shows "Offline" at once;
//  - plain WebSocket by default, SockJS when chosen or when WebSocket keeps
//    failing while the server itself answers HTTP;
//  - the presence of the open conversation's contact: a ✓ or a live message
//    from them shows "online" at once; otherwise GET {base}/api/users/{uid}
//    every 15 s while the conversation is open and the page visible.
// Libraries (copied from node_modules at build time): StompJs, SockJS.
// index.html loads this file as a classic script after them; everything
// here lives in the one function scope below.

(function chatgate() {
'use strict';

/* ------------------------------------------------------------------ */
/* constants and small helpers                                         */
/* ------------------------------------------------------------------ */

const SEND_TIMEOUT_MS = 10000;     // "sending" longer than this turns red
const MAX_PER_CONV = 500;          // messages kept per conversation
const MAX_SEEN = 5000;             // dedupe keys kept
const MAX_CONTENT_BYTES = 16 * 1024;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const WS_FAILS_BEFORE_SOCKJS = 2;
const HEARTBEAT_MS = 10000;
const PRESENCE_POLL_MS = 15000;    // presence of the open conversation's contact
const SILENCE_MS = 16000;          // nothing at all from the server for this long: the connection is gone

/** {base}: the directory this page was loaded from, without the slash. */
const BASE = location.pathname.replace(/\/[^/]*$/, '');
const HTTP_BASE = location.origin + BASE;
const WS_BASE = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + BASE;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

function shortTime(t) {
  return sameDay(t, Date.now()) ? timeFmt.format(t) : dayFmt.format(t);
}

/** A calm colour per name for the avatar circle (white text >= 4.5:1 on each). */
const AVATAR_COLORS = ['#0f766e', '#2f6f9f', '#7a5ea8', '#b45309', '#be185d', '#4d7c0f',
  '#1d4ed8', '#9a3412', '#475569', '#0e7490', '#6d28d9', '#15803d'];
function avatarColor(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLORS[h % AVATAR_COLORS.length];
}

function paintAvatar(node, name) {
  node.textContent = (Array.from(String(name || '?'))[0] || '?').toUpperCase();
  node.style.background = avatarColor(name);
}

/* ------------------------------------------------------------------ */
/* message text: plain text, with http(s) links                        */
/* ------------------------------------------------------------------ */

// Candidates only start with http:// or https:// (so never javascript:,
// data: or anything else), and each must parse as an http(s) URL with a
// host. Everything else stays text nodes: no markup is ever parsed.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`\u00a0\u2028\u2029]+/gi;

/** The link without the sentence's trailing punctuation; a closing
 * bracket stays when the link opened it (Foo_(bar)). */
function trimLink(s) {
  for (;;) {
    const last = s[s.length - 1];
    if ('.,;:!?\'"»’”'.includes(last)) { s = s.slice(0, -1); continue; }
    const open = { ')': '(', ']': '[', '}': '{' }[last];
    if (open && s.split(open).length < s.split(last).length) { s = s.slice(0, -1); continue; }
    return s;
  }
}

function richText(text) {
  const frag = document.createDocumentFragment();
  let at = 0;
  URL_RE.lastIndex = 0;
  for (let m = URL_RE.exec(text); m; m = URL_RE.exec(text)) {
    const raw = trimLink(m[0]);
    let url = null;
    try { url = new URL(raw); } catch { /* not a URL: stays text */ }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) continue;
    if (m.index > at) frag.append(text.slice(at, m.index));
    frag.append(el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', text: raw }));
    at = m.index + raw.length;
    URL_RE.lastIndex = at;
  }
  if (at < text.length) frag.append(text.slice(at));
  return frag;
}

/* ------------------------------------------------------------------ */
/* SHA-1 (msgIDs)                                                      */
/* ------------------------------------------------------------------ */

function toHex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Plain JS SHA-1 for pages served over http:// from a non-local host,
 * where crypto.subtle does not exist (it needs a secure context). */
function sha1Fallback(bytes) {
  const ml = bytes.length;
  const withPad = ((ml + 9 + 63) >> 6) << 6;
  const m = new Uint8Array(withPad);
  m.set(bytes);
  m[ml] = 0x80;
  const dv = new DataView(m.buffer);
  dv.setUint32(withPad - 8, Math.floor(ml / 0x20000000));
  dv.setUint32(withPad - 4, (ml << 3) >>> 0);
  let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476, h4 = 0xc3d2e1f0;
  const w = new Uint32Array(80);
  for (let off = 0; off < withPad; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4;
    for (let i = 0; i < 80; i++) {
      let f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5a827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ed9eba1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdc; }
      else { f = b ^ c ^ d; k = 0xca62c1d6; }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) >>> 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
    }
    h0 = (h0 + a) >>> 0; h1 = (h1 + b) >>> 0; h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0; h4 = (h4 + e) >>> 0;
  }
  const out = new DataView(new ArrayBuffer(20));
  [h0, h1, h2, h3, h4].forEach((v, i) => out.setUint32(i * 4, v));
  return toHex(out.buffer);
}

async function sha1hex(text) {
  const bytes = new TextEncoder().encode(text);
  if (globalThis.crypto && crypto.subtle) {
    try {
      return toHex(await crypto.subtle.digest('SHA-1', bytes));
    } catch { /* fall through */ }
  }
  return sha1Fallback(bytes);
}

function randomPart() {
  if (globalThis.crypto && crypto.getRandomValues) {
    return toHex(crypto.getRandomValues(new Uint8Array(8)));
  }
  return String(Math.random()).slice(2);
}

/** msgID = SHA-1 hex of (content + Date.now() + random). */
function newMsgId(content) {
  return sha1hex(content + Date.now() + randomPart());
}

/* ------------------------------------------------------------------ */
/* storage                                                             */
/* ------------------------------------------------------------------ */

const NS = `chatgate:${BASE || '/'}`;

const local = {
  get(key, dflt) {
    try {
      const v = localStorage.getItem(key);
      return v == null ? dflt : JSON.parse(v);
    } catch {
      return dflt;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch {
      return false;            // quota or private mode: the page still works
    }
  },
};

const session = {
  load() {
    try { return JSON.parse(sessionStorage.getItem(`${NS}:session`)) || null; } catch { return null; }
  },
  save(s) {
    try { sessionStorage.setItem(`${NS}:session`, JSON.stringify(s)); } catch { /* ignore */ }
  },
  clear() {
    try { sessionStorage.removeItem(`${NS}:session`); } catch { /* ignore */ }
  },
};

const settings = {
  get transport() { return local.get(`${NS}:transport`, 'auto'); },
  set transport(v) { local.set(`${NS}:transport`, v); },
};

/* ------------------------------------------------------------------ */
/* state                                                               */
/* ------------------------------------------------------------------ */

/**
 * me:      {uid, username, token}
 * convs:   Map peerUid -> {uid, username, unread, lastTime, lastText, lastMine, online}
 * threads: Map peerUid -> [message], sorted by time; a message is
 *          {key, mine, msgID, id, content, time, state, error, auto}
 *          state: sending | sent | delivered | failed (mine), received (theirs)
 * mine:    Map msgID -> message (my outgoing ones, for the status topics)
 * seen:    Set of "senderId:chatID" of messages already shown
 */
const S = {
  me: null,
  convs: new Map(),
  threads: new Map(),
  mine: new Map(),
  seen: new Set(),
  seenOrder: [],
  syncKey: 0,
  active: null,
  dirty: new Set(),
  flushTimer: null,
  toConfirm: [],
  needRender: false,
};

function userKey(...parts) {
  return [NS, 'u', S.me.uid, ...parts].join(':');
}

function loadUserData() {
  S.convs = new Map();
  S.threads = new Map();
  S.mine = new Map();
  for (const c of local.get(userKey('convs'), [])) {
    const msgs = local.get(userKey('msgs', c.uid), []);
    // conversations without a message are not kept (earlier versions kept
    // every conversation Find opened)
    if (!msgs.length) continue;
    S.convs.set(c.uid, { ...c, online: undefined });
    for (const m of msgs) {
      if (m.mine) {
        S.mine.set(m.msgID, m);
        m.peer = c.uid;
        if (m.state === 'sending') { m.state = 'failed'; m.auto = true; m.error = 'not confirmed'; }
      }
    }
    S.threads.set(c.uid, msgs);
  }
  S.dirty = new Set();
  S.toConfirm = [];
  S.seenOrder = local.get(userKey('seen'), []);
  S.seen = new Set(S.seenOrder);
  S.syncKey = Number(local.get(userKey('syncKey'), 0)) || 0;
}

function markDirty(uid) {
  S.dirty.add(uid);
  scheduleFlush();
}

function scheduleFlush() {
  if (S.flushTimer) return;
  S.flushTimer = setTimeout(flush, 0);
}

/**
 * Writes what changed, then sends the confirmations of the messages it just
 * wrote: a message is confirmed only once it is on screen and on disk.
 */
function flush() {
  clearTimeout(S.flushTimer);
  S.flushTimer = null;
  if (!S.me) return;
  if (S.needRender) {
    S.needRender = false;
    renderConvList();
    if (S.active != null) renderThread();
    updateTitle();
  }
  for (const uid of S.dirty) {
    const msgs = S.threads.get(uid) || [];
    if (msgs.length > MAX_PER_CONV) msgs.splice(0, msgs.length - MAX_PER_CONV);
    local.set(userKey('msgs', uid), msgs.map(({ peer, timer, renamed, ...m }) => m));
  }
  if (S.dirty.size) {
    local.set(userKey('convs'), [...S.convs.values()].filter((c) => !c.ephemeral)
      .map(({ online, ephemeral, ...c }) => c));
  }
  S.dirty.clear();
  if (S.seenOrder.length > MAX_SEEN) {
    for (const k of S.seenOrder.splice(0, S.seenOrder.length - MAX_SEEN)) S.seen.delete(k);
  }
  local.set(userKey('seen'), S.seenOrder);
  local.set(userKey('syncKey'), S.syncKey);
  const confirm = S.toConfirm.splice(0);
  for (const chatID of confirm) publish('/socket/chat/recive', { msgID: chatID });
}

/* ------------------------------------------------------------------ */
/* HTTP API                                                            */
/* ------------------------------------------------------------------ */

async function api(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(HTTP_BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  let json = null;
  try { json = await res.json(); } catch { /* 204 or not JSON */ }
  return { status: res.status, json };
}

/* ------------------------------------------------------------------ */
/* the connection                                                      */
/* ------------------------------------------------------------------ */

const C = {
  client: null,
  gen: 0,
  connected: false,
  transport: 'websocket',       // of the current attempt
  autoTransport: 'websocket',   // what "auto" uses now
  attempt: 0,                   // failed attempts in a row
  wsFails: 0,                   // WebSocket attempts in a row that never connected
  retryAt: 0,
  retryTimer: null,
  tick: null,
  syncing: false,
  syncRetry: null,
  lastRx: 0,                    // when the server last sent anything (a frame or a heart-beat)
  watchdog: null,
};

function chooseTransport() {
  const t = settings.transport;
  if (t === 'websocket' || t === 'sockjs') return t;
  return C.autoTransport;
}

function connect() {
  if (!S.me) return;
  // A new generation first: dropping the old client closes it at once
  // (its onWebSocketClose may run inside deactivate()), and that close
  // must count as the old one's, not as the new connection's.
  const gen = ++C.gen;
  clearTimeout(C.retryTimer);
  C.retryTimer = null;
  dropClient();
  const transport = chooseTransport();
  const token = encodeURIComponent(S.me.token);
  let everConnected = false;
  C.transport = transport;
  setConn('connecting');

  if (!globalThis.StompJs || (transport === 'sockjs' && !globalThis.SockJS)) {
    toast('The chat library did not load. Reload the page.');
    return;
  }
  const client = new StompJs.Client({
    webSocketFactory: () => {
      const ws = transport === 'sockjs'
        ? new SockJS(`${HTTP_BASE}/socketServer?srect=${token}`)
        : new WebSocket(`${WS_BASE}/client?srect=${token}`, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
      ws.addEventListener('message', () => { if (gen === C.gen) C.lastRx = Date.now(); });
      return ws;
    },
    reconnectDelay: 0,                 // the page schedules reconnects itself
    connectionTimeout: 10000,
    heartbeatIncoming: HEARTBEAT_MS,
    heartbeatOutgoing: HEARTBEAT_MS,
    discardWebsocketOnCommFailure: true,
    debug: () => {},
    onConnect: () => {
      if (gen !== C.gen) return;
      everConnected = true;
      onConnected(client);
    },
    onStompError: (frame) => {
      if (gen !== C.gen) return;
      const msg = frame.headers.message || 'protocol error';
      toast(`Server error: ${msg}`);
    },
    onWebSocketClose: () => {
      if (gen !== C.gen) return;
      onDisconnected(everConnected);
    },
    onWebSocketError: () => {},
  });
  C.client = client;
  client.activate();
}

function dropClient() {
  const old = C.client;
  C.client = null;
  C.connected = false;
  C.syncing = false;
  clearTimeout(C.syncRetry);
  clearInterval(C.watchdog);
  C.watchdog = null;
  if (old) old.deactivate({ force: true }).catch(() => {});
}

/** The connection is gone though no close came (the network went away):
 * show it now and reconnect with the usual backoff. */
function connectionLost() {
  if (!S.me || !C.client) return;
  const was = C.connected;
  C.gen++;
  dropClient();
  onDisconnected(was);
}

function publish(destination, body) {
  if (!C.connected || !C.client || !C.client.connected) return false;
  try {
    C.client.publish({ destination, body: body === '' ? '' : JSON.stringify(body) });
    return true;
  } catch {
    return false;
  }
}

function onConnected(client) {
  C.connected = true;
  C.attempt = 0;
  C.lastRx = Date.now();
  if (C.transport === 'websocket') C.wsFails = 0;
  const me = S.me;
  const handlers = [
    [`/user/${me.username}/recive`, onChat],
    ['/user/queue/status', onStatus],
    ['/user/queue/send/status', onSendStatus],
    ['/user/queue/recive/status', () => {}],
    ['/user/queue/delivered', onDelivered],
    ['/user/queue/init/status', onInitStatus],
  ];
  for (const [dest, fn] of handlers) {
    client.subscribe(dest, (m) => {
      if (client !== C.client || !S.me) return;      // a late frame of an old connection
      let body;
      try { body = JSON.parse(m.body); } catch { return; }
      fn(body, m);
    });
  }
  publish('/socket/chat/init', '');
  startSync();
  C.watchdog = setInterval(() => {
    if (C.connected && Date.now() - C.lastRx > SILENCE_MS) connectionLost();
  }, 2000);
  setConn('online');
  // Whatever is still unconfirmed goes again, with the same msgID.
  let resent = 0;
  for (const m of S.mine.values()) {
    if (m.state === 'sending' || (m.state === 'failed' && m.auto)) {
      transmit(m);
      resent++;
    }
  }
  if (resent) {
    renderThread();
    renderConvList();
  }
  refreshPresence();
}

function onDisconnected(everConnected) {
  C.connected = false;
  C.syncing = false;
  clearInterval(C.watchdog);
  C.watchdog = null;
  if (!S.me) return;
  C.attempt = everConnected ? 1 : C.attempt + 1;
  scheduleReconnect();
  if (navigator.onLine !== false) probe(everConnected);
}

/** After a failed attempt: is the token still good, is HTTP reachable? */
async function probe(everConnected) {
  const transport = C.transport;
  let httpOk = false;
  try {
    const r = await api('GET', `/api/users/${encodeURIComponent(S.me.username)}`, undefined, S.me.token);
    if (!S.me) return;
    if (r.status === 401) {
      logout('Your session has ended. Please log in again.', { remote: false });
      return;
    }
    httpOk = r.status < 500;
  } catch { /* server unreachable */ }
  // The server answers HTTP but WebSocket never connects: something on the
  // way (a proxy) drops WebSockets. "Automatic" then tries SockJS.
  if (!everConnected && httpOk && transport === 'websocket') {
    if (++C.wsFails >= WS_FAILS_BEFORE_SOCKJS && settings.transport === 'auto') {
      C.autoTransport = 'sockjs';
      updateSettingsInfo();
    }
  }
}

function scheduleReconnect() {
  clearTimeout(C.retryTimer);
  const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, C.attempt - 1));
  const delay = Math.round(exp / 2 + Math.random() * exp / 2);      // jitter: 50-100 %
  C.retryAt = Date.now() + delay;
  C.retryTimer = setTimeout(connect, delay);
  setConn('offline');
}

function retryNow() {
  if (!S.me || C.connected) return;
  C.attempt = Math.max(0, C.attempt - 1);
  connect();
}

function startSync() {
  C.syncing = true;
  publish('/socket/chat/sync', { syncKey: S.syncKey });
}

/* ------------------------------------------------------------------ */
/* incoming frames                                                     */
/* ------------------------------------------------------------------ */

function onChat(c, frame) {
  if (!c || typeof c.chatID !== 'string') return;
  const key = `${c.senderId}:${c.chatID}`;
  const selfEcho = c.senderId === S.me.uid && S.mine.has(c.chatID);
  if (!S.seen.has(key) && !selfEcho) {
    S.seen.add(key);
    S.seenOrder.push(key);
    const peer = c.senderId === S.me.uid ? c.reciverId : c.senderId;
    const conv = ensureConv(peer, c.senderId === S.me.uid ? c.reciver : c.sender);
    conv.ephemeral = false;
    const msg = {
      key: `in:${key}`, mine: false, msgID: c.chatID, id: c.id,
      content: String(c.content ?? ''), time: Number(c.time) || Date.now(), state: 'received',
    };
    insertMessage(peer, msg);
    const visible = S.active === peer && document.visibilityState === 'visible' && threadOnScreen();
    if (!visible) conv.unread = (conv.unread || 0) + 1;
    touchConv(conv, msg);
    if (!visible) announce(`New message from ${conv.username}`);
    // a live push (not a pending message init or sync found): they just sent it
    if (frame?.headers?.redelivered !== 'true' && !C.syncing && c.senderId !== S.me.uid) setOnline(conv, true);
    S.needRender = true;
  }
  // Confirm every copy (a redelivery needs its confirmation too), right
  // after the message is rendered and written: flush() does the three in
  // that order, once for a whole batch (an init or sync brings many).
  S.toConfirm.push(c.chatID);
  scheduleFlush();
}

function onSendStatus(st) {
  const m = S.mine.get(st.msgID);
  if (!m) return;
  clearTimeout(m.timer);
  if (st.code === 200) {
    m.id = st.id;
    if (st.time) m.time = st.time;
    if (m.state !== 'delivered') m.state = 'sent';
    m.error = undefined;
    m.auto = undefined;
    resort(m.peer);
  } else if (st.code === 409 && !m.renamed) {
    // The msgID is pending for this receiver from someone else: make a new one.
    m.renamed = true;
    renameAndResend(m);
    return;
  } else {
    m.state = 'failed';
    m.auto = undefined;
    m.error = `${st.code} ${st.content || st.status || ''}`.trim();
  }
  changed(m);
}

async function renameAndResend(m) {
  const old = m.msgID;
  m.msgID = await newMsgId(m.content);
  S.mine.delete(old);
  S.mine.set(m.msgID, m);
  m.key = `out:${m.msgID}`;
  const node = rendered.get(`out:${old}`);
  if (node) { rendered.delete(`out:${old}`); node.remove(); }
  transmit(m);
  changed(m);
}

function onDelivered(d) {
  const m = S.mine.get(d.msgID);
  if (!m) return;
  clearTimeout(m.timer);
  if (d.id && !m.id) m.id = d.id;
  m.state = 'delivered';
  m.error = undefined;
  m.auto = undefined;
  changed(m);
  // their page confirmed it just now: they are online
  const conv = S.convs.get(m.peer);
  if (conv) setOnline(conv, true);
}

function onInitStatus(st) {
  if (!('more' in st)) return;          // the end of init; sync answers carry "more"
  if (typeof st.syncKey === 'number' && st.syncKey > S.syncKey) S.syncKey = st.syncKey;
  scheduleFlush();                      // the key is written after the messages
  if (st.more) publish('/socket/chat/sync', { syncKey: S.syncKey });
  else C.syncing = false;
}

function onStatus(st) {
  const text = String(st.content || '');
  if (/^sync/i.test(text) && C.connected) {
    // The store was unavailable: try the sync again a little later.
    clearTimeout(C.syncRetry);
    C.syncRetry = setTimeout(() => { if (C.connected) startSync(); }, 3000);
    return;
  }
  if (/^init/i.test(text) && C.connected) {
    clearTimeout(C.syncRetry);
    C.syncRetry = setTimeout(() => { if (C.connected) publish('/socket/chat/init', ''); }, 3000);
    return;
  }
  if (st.code && st.code !== 200) toast(`Server: ${st.code} ${text}`);
}

/* ------------------------------------------------------------------ */
/* conversations and messages                                          */
/* ------------------------------------------------------------------ */

function ensureConv(uid, username) {
  let c = S.convs.get(uid);
  if (!c) {
    c = { uid, username: username || `#${uid}`, unread: 0, lastTime: 0, lastText: '', lastMine: false };
    S.convs.set(uid, c);
    S.threads.set(uid, []);
  } else if (username && c.username !== username) {
    c.username = username;
  }
  markDirty(uid);
  return c;
}

/** A conversation opened by Find and left without a message goes away. */
function dropIfEmpty(uid) {
  const c = S.convs.get(uid);
  if (!c || !c.ephemeral || (S.threads.get(uid) || []).length) return;
  S.convs.delete(uid);
  S.threads.delete(uid);
}

function touchConv(conv, msg) {
  if (msg.time >= (conv.lastTime || 0)) {
    conv.lastTime = msg.time;
    conv.lastText = msg.content;
    conv.lastMine = msg.mine;
  }
  markDirty(conv.uid);
}

/** Inserts msg keeping the thread ordered by time (stable). */
function insertMessage(peer, msg) {
  const list = S.threads.get(peer) || [];
  let i = list.length;
  while (i > 0 && list[i - 1].time > msg.time) i--;
  list.splice(i, 0, msg);
  S.threads.set(peer, list);
  markDirty(peer);
}

function resort(peer) {
  const list = S.threads.get(peer);
  if (list) list.sort((a, b) => a.time - b.time);
}

function changed(m) {
  markDirty(m.peer);
  if (m.mine && m.state !== 'sending') flush();
  if (S.active === m.peer) renderThread();
  renderConvList();
}

async function sendText(text) {
  const peer = S.active;
  const conv = S.convs.get(peer);
  if (!conv) return;
  conv.ephemeral = false;
  const msgID = await newMsgId(text);
  const m = {
    key: `out:${msgID}`, mine: true, msgID, id: undefined, content: text,
    time: Date.now(), state: 'sending', peer,
  };
  S.mine.set(msgID, m);
  insertMessage(peer, m);
  touchConv(conv, m);
  flush();                       // on disk before it leaves
  renderThread({ scroll: true });
  renderConvList();
  transmit(m);
}

/** (Re)sends m with its msgID; it turns red unless answered in time. */
function transmit(m) {
  clearTimeout(m.timer);
  m.state = 'sending';
  m.error = undefined;
  publish('/socket/chat/send', { msgID: m.msgID, reciverId: m.peer, content: m.content });
  m.timer = setTimeout(() => {
    if (m.state !== 'sending') return;
    m.state = 'failed';
    m.auto = true;               // unanswered: retried by itself on reconnect
    m.error = C.connected ? 'no answer from the server' : 'offline';
    changed(m);
  }, SEND_TIMEOUT_MS);
}

function resend(msgID) {
  const m = S.mine.get(msgID);
  if (!m || m.state !== 'failed') return;
  transmit(m);
  changed(m);
}

/* ------------------------------------------------------------------ */
/* presence of the open conversation's contact                         */
/* ------------------------------------------------------------------ */

const P = { timer: null, busy: false };

function setOnline(conv, online) {
  if (conv.online === online) return;
  conv.online = online;
  if (conv.uid === S.active) renderThreadSub();
}

/** Asks now, then every PRESENCE_POLL_MS while the conversation is open,
 * the page visible and connected. A ✓ or a live message from the contact
 * sets it in between (setOnline). */
async function refreshPresence() {
  clearTimeout(P.timer);
  P.timer = null;
  const uid = S.active;
  if (uid == null || !S.me || !C.connected || document.visibilityState !== 'visible' || P.busy) return;
  P.busy = true;
  try {
    const r = await api('GET', `/api/users/${uid}`, undefined, S.me.token);
    const conv = S.convs.get(uid);
    if (r.status === 200 && r.json && conv) {
      setOnline(conv, !!r.json.online);
      if (r.json.username && r.json.username !== conv.username) {
        conv.username = r.json.username;
        markDirty(uid);
        renderConvList();
        if (S.active === uid) {
          $('thread-title').textContent = conv.username;
          paintAvatar($('thread-avatar'), conv.username);
        }
      }
    }
  } catch { /* offline: the connection state says so */ }
  P.busy = false;
  if (S.active != null && S.me) {
    clearTimeout(P.timer);
    P.timer = setTimeout(refreshPresence, PRESENCE_POLL_MS);
  }
}

/* ------------------------------------------------------------------ */
/* rendering                                                           */
/* ------------------------------------------------------------------ */

const rendered = new Map();       // message key -> <li>
let renderedPeer = null;

function threadOnScreen() {
  return !document.body.classList.contains('narrow') || document.body.classList.contains('show-thread');
}

function renderConvList() {
  const list = $('conv-list');
  const convs = [...S.convs.values()].sort((a, b) => (b.lastTime || 0) - (a.lastTime || 0));
  $('conv-empty').hidden = convs.length > 0;
  const focusedUid = document.activeElement?.closest?.('#conv-list')
    ? document.activeElement.dataset.uid : null;
  const frag = document.createDocumentFragment();
  for (const c of convs) {
    const msgs = S.threads.get(c.uid) || [];
    const failed = msgs.some((m) => m.mine && m.state === 'failed');
    const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' });
    paintAvatar(avatar, c.username);
    const preview = c.lastText ? (c.lastMine ? `You: ${c.lastText}` : c.lastText) : 'No messages yet';
    const btn = el('button', {
      type: 'button',
      class: c.unread ? 'conv has-unread' : 'conv',
      dataset: { uid: String(c.uid) },
      'aria-current': S.active === c.uid ? 'true' : null,
      onclick: () => openConv(c.uid, { focusComposer: true }),
    },
    avatar,
    el('span', { class: 'conv-main' },
      el('span', { class: 'conv-top' },
        el('span', { class: 'conv-name', text: c.username }),
        c.lastTime ? el('time', { class: 'conv-time', datetime: new Date(c.lastTime).toISOString(), text: shortTime(c.lastTime) }) : null),
      el('span', { class: 'conv-bottom' },
        failed ? el('span', { class: 'conv-failed', text: '!', title: 'A message was not sent' }) : null,
        failed ? el('span', { class: 'sr-only', text: 'Not sent. ' }) : null,
        el('span', { class: 'conv-preview', text: preview }),
        c.unread ? el('span', { class: 'badge', text: c.unread > 99 ? '99+' : String(c.unread) }) : null,
        c.unread ? el('span', { class: 'sr-only', text: `, ${c.unread} unread` }) : null)));
    frag.append(el('li', {}, btn));
  }
  list.replaceChildren(frag);
  if (focusedUid) list.querySelector(`button[data-uid="${focusedUid}"]`)?.focus();
}

function stateNode(m) {
  switch (m.state) {
    case 'sending':
      return el('span', { class: 'st st-sending', role: 'img', 'aria-label': 'sending', title: 'Sending' });
    case 'sent':
      return el('span', { class: 'st st-sent', text: 'Sent' });
    case 'delivered':
      return el('span', { class: 'st st-delivered', role: 'img', 'aria-label': 'delivered', title: 'Delivered', text: '✓' });
    case 'failed':
      return el('span', { class: 'st st-failed', text: 'Not sent' });
    default:
      return null;
  }
}

function messageNode(m) {
  const conv = S.convs.get(m.peer ?? S.active);
  const who = m.mine ? 'You' : (conv ? conv.username : 'They');
  const li = el('li', { class: `msg ${m.mine ? 'out' : 'in'}` });
  const bubble = el('div', { class: 'bubble' });
  bubble.append(richText(m.content));
  li.append(
    el('span', { class: 'sr-only', text: `${who}: ` }),
    bubble);
  li.append(el('div', { class: 'meta' }));
  return li;
}

function updateMessageNode(li, m) {
  li.dataset.msgid = m.msgID;
  li.dataset.state = m.state;
  li.classList.toggle('failed', m.state === 'failed');
  const meta = li.querySelector('.meta');
  const parts = [el('time', { datetime: new Date(m.time).toISOString(), title: fullFmt.format(m.time), text: timeFmt.format(m.time) })];
  const st = stateNode(m);
  if (st) parts.push(st);
  meta.replaceChildren(...parts);
  let btn = li.querySelector('.resend');
  if (m.state === 'failed') {
    if (!btn) {
      btn = el('button', {
        type: 'button', class: 'resend', 'aria-label': 'Resend',
        onclick: () => resend(li.dataset.msgid),
      }, el('span', { 'aria-hidden': 'true', text: '!' }));
      li.insertBefore(btn, li.querySelector('.bubble'));
    }
    btn.title = `Not sent (${m.error || 'error'}). Resend`;
  } else if (btn) {
    const hadFocus = btn === document.activeElement;
    btn.remove();
    if (hadFocus) $('composer-input').focus();
  }
}

function renderThread({ scroll = false } = {}) {
  const ol = $('messages');
  const peer = S.active;
  if (renderedPeer !== peer) {
    rendered.clear();
    ol.replaceChildren();
    renderedPeer = peer;
    scroll = true;
  }
  if (peer == null) return;
  const box = $('message-log');
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const msgs = S.threads.get(peer) || [];
  const keep = new Set(msgs.map((m) => m.key));
  for (const [k, node] of rendered) {
    if (!keep.has(k)) { node.remove(); rendered.delete(k); }
  }
  // Insert new nodes in place; existing ones are not moved (a live region
  // would announce them again).
  let prev = null;
  let prevTime = 0;
  for (const m of msgs) {
    let li = rendered.get(m.key);
    if (!li) {
      li = messageNode(m);
      rendered.set(m.key, li);
      const next = prev ? prev.nextElementSibling : ol.firstElementChild;
      ol.insertBefore(li, next);
    } else if (prev ? li.previousElementSibling !== prev : li !== ol.firstElementChild) {
      const next = prev ? prev.nextElementSibling : ol.firstElementChild;
      ol.insertBefore(li, next);
    }
    li.classList.toggle('new-day', !prevTime || !sameDay(prevTime, m.time));
    if (!prevTime || !sameDay(prevTime, m.time)) li.dataset.day = dayLabel(m.time);
    else delete li.dataset.day;
    updateMessageNode(li, m);
    prev = li;
    prevTime = m.time;
  }
  if (scroll || nearBottom) box.scrollTop = box.scrollHeight;
}

function dayLabel(t) {
  if (sameDay(t, Date.now())) return 'Today';
  if (sameDay(t, Date.now() - 86400000)) return 'Yesterday';
  return new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' }).format(t);
}

function openConv(uid, { focusComposer = false } = {}) {
  const conv = S.convs.get(uid);
  if (!conv) return;
  const prev = S.active;
  S.active = uid;
  if (prev !== uid && prev != null) dropIfEmpty(prev);
  conv.unread = 0;
  markDirty(uid);
  $('thread-empty').hidden = true;
  $('thread-view').hidden = false;
  $('thread-title').textContent = conv.username;
  paintAvatar($('thread-avatar'), conv.username);
  document.body.classList.add('show-thread');
  renderThread({ scroll: true });
  renderConvList();
  renderThreadSub();
  updateTitle();
  if (focusComposer) $('composer-input').focus({ preventScroll: true });
  refreshPresence();
}

function closeThread() {
  document.body.classList.remove('show-thread');
  const uid = S.active;
  if (document.body.classList.contains('narrow')) {
    S.active = null;
    clearTimeout(P.timer);
    $('thread-view').hidden = true;
    $('thread-empty').hidden = false;
    renderedPeer = undefined;
    if (uid != null) dropIfEmpty(uid);
    renderConvList();
    if (uid != null) {
      const btn = document.querySelector(`#conv-list button[data-uid="${uid}"]`);
      if (btn) btn.focus();
      else $('find-input').focus();
    }
  }
}

function renderThreadSub() {
  const sub = $('thread-sub');
  if (!C.connected) {
    const left = Math.max(0, Math.ceil((C.retryAt - Date.now()) / 1000));
    sub.textContent = $('conn').dataset.state !== 'offline' ? 'Connecting…'
      : navigator.onLine === false ? 'Offline · no network' : `Offline · retrying in ${left} s`;
    sub.dataset.tone = 'warn';
    return;
  }
  const conv = S.convs.get(S.active);
  delete sub.dataset.tone;
  sub.textContent = conv?.online === true ? 'online' : conv?.online === false ? 'offline' : '';
}

function updateTitle() {
  let n = 0;
  for (const c of S.convs.values()) n += c.unread || 0;
  document.title = n ? `(${n}) chatgate` : 'chatgate';
}

/* ------------------------------------------------------------------ */
/* connection state on screen                                          */
/* ------------------------------------------------------------------ */

const TRANSPORT_NAMES = { websocket: 'WebSocket', sockjs: 'SockJS' };

function setConn(state) {
  const box = $('conn');
  box.dataset.state = state;
  box.dataset.transport = C.transport;
  const text = $('conn-text');
  const label = state === 'online' ? `Online · ${TRANSPORT_NAMES[C.transport]}`
    : state === 'connecting' ? 'Connecting…' : 'Offline';
  if (text.textContent !== label) text.textContent = label;
  $('conn-banner').hidden = state !== 'offline';
  clearInterval(C.tick);
  C.tick = null;
  if (state === 'offline') {
    const upd = () => {
      const s = Math.max(0, Math.ceil((C.retryAt - Date.now()) / 1000));
      $('conn-countdown').textContent = navigator.onLine === false
        ? 'No network connection. Reconnecting when it is back.'
        : `Can't reach the server. Retrying in ${s} s`;
      renderThreadSub();
    };
    upd();
    C.tick = setInterval(upd, 500);
  } else {
    $('conn-countdown').textContent = '';
  }
  renderThreadSub();
  updateSettingsInfo();
}

function updateSettingsInfo() {
  const info = $('settings-info');
  if (!info) return;
  const t = TRANSPORT_NAMES[C.transport] || C.transport;
  info.textContent = C.connected ? `Connected over ${t}.` : `Not connected (last try: ${t}).`;
}

let toastTimer = null;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

function announce(text) {
  const a = $('announcer');
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 50);
}

/* ------------------------------------------------------------------ */
/* screens and forms                                                   */
/* ------------------------------------------------------------------ */

function showLogin(message = '') {
  $('chat-screen').hidden = true;
  $('login-screen').hidden = false;
  $('login-error').textContent = message;
  document.title = 'chatgate';
  $('login-name').focus();
}

function showChat() {
  $('login-screen').hidden = true;
  $('chat-screen').hidden = false;
  $('me-name').textContent = S.me.username;
  paintAvatar($('me-avatar'), S.me.username);
  S.active = null;
  renderedPeer = undefined;
  $('thread-view').hidden = true;
  $('thread-empty').hidden = false;
  document.body.classList.remove('show-thread');
  renderConvList();
  updateTitle();
  // where a user starts: finding a conversation
  $('find-input').focus({ preventScroll: true });
}

function startSession(me) {
  S.me = me;
  loadUserData();
  showChat();
  C.attempt = 0;
  C.wsFails = 0;
  C.autoTransport = 'websocket';
  connect();
}

async function logout(message = '', { remote = true } = {}) {
  const me = S.me;
  flush();
  for (const m of S.mine.values()) clearTimeout(m.timer);
  S.me = null;
  clearTimeout(C.retryTimer);
  clearInterval(C.tick);
  clearTimeout(P.timer);
  C.gen++;
  dropClient();
  session.clear();
  if ($('settings').open) $('settings').close();
  showLogin(message);
  if (remote && me) {
    try { await api('POST', '/api/logout', undefined, me.token); } catch { /* offline */ }
  }
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;

async function onLoginSubmit(ev) {
  ev.preventDefault();
  const register = ev.submitter?.value === 'register';
  const username = $('login-name').value.trim();
  const password = $('login-password').value;
  const err = $('login-error');
  err.textContent = '';
  if (!NAME_RE.test(username)) {
    err.textContent = 'A username is 1–32 letters, digits, "_", "." or "-".';
    $('login-name').focus();
    return;
  }
  if (password.length < 8) {
    err.textContent = 'The password has at least 8 characters.';
    $('login-password').focus();
    return;
  }
  const buttons = [...$('login-form').querySelectorAll('button')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    if (register) {
      const r = await api('POST', '/api/register', { username, password });
      if (r.status === 409) { err.textContent = `The name "${username}" is taken. Log in, or pick another.`; return; }
      if (r.status !== 201) { err.textContent = r.json?.error || `Could not create the account (HTTP ${r.status}).`; return; }
    }
    const l = await api('POST', '/api/login', { username, password });
    if (l.status === 401) { err.textContent = 'Wrong username or password.'; return; }
    if (l.status !== 200 || !l.json?.token) { err.textContent = l.json?.error || `Could not log in (HTTP ${l.status}).`; return; }
    const me = { uid: l.json.uid, username: l.json.username, token: l.json.token };
    session.save(me);
    $('login-password').value = '';
    startSession(me);
  } catch {
    err.textContent = 'The server cannot be reached. Try again in a moment.';
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function onFindSubmit(ev) {
  ev.preventDefault();
  const input = $('find-input');
  const q = input.value.trim();
  const err = $('find-error');
  err.textContent = '';
  if (!q) { input.focus(); return; }
  if (!NAME_RE.test(q)) { err.textContent = 'Type a username or a uid.'; return; }
  try {
    const r = await api('GET', `/api/users/${encodeURIComponent(q)}`, undefined, S.me.token);
    if (r.status === 401) { logout('Your session has ended. Please log in again.', { remote: false }); return; }
    if (r.status === 404) { err.textContent = `Nobody is called "${q}".`; return; }
    if (r.status !== 200 || !r.json) { err.textContent = r.json?.error || `Search failed (HTTP ${r.status}).`; return; }
    const u = r.json;
    const isNew = !S.convs.has(u.uid);
    const conv = ensureConv(u.uid, u.username);
    // listed while open; stored, and kept, once it has a message
    if (isNew) conv.ephemeral = true;
    conv.online = !!u.online;
    if (!conv.lastTime) conv.lastTime = Date.now();
    flush();
    input.value = '';
    openConv(u.uid, { focusComposer: true });
  } catch {
    err.textContent = 'The server cannot be reached.';
  }
}

function onComposerSubmit(ev) {
  ev.preventDefault();
  const ta = $('composer-input');
  const text = ta.value;
  if (!text.trim()) return;
  if (utf8Length(text) > MAX_CONTENT_BYTES) {
    toast('That message is too long (16 KiB at most).');
    return;
  }
  ta.value = '';
  autoGrow();
  sendText(text);
}

function autoGrow() {
  const ta = $('composer-input');
  ta.style.height = 'auto';
  ta.style.height = `${Math.min(ta.scrollHeight, 160)}px`;
}

function bindSettings() {
  for (const sel of document.querySelectorAll('select[data-setting="transport"]')) {
    sel.value = settings.transport;
    sel.addEventListener('change', () => {
      settings.transport = sel.value;
      for (const other of document.querySelectorAll('select[data-setting="transport"]')) other.value = sel.value;
      C.autoTransport = 'websocket';
      C.wsFails = 0;
      if (S.me) { C.attempt = 0; connect(); }
    });
  }
}

function watchWidth() {
  const mq = matchMedia('(max-width: 720px)');
  const apply = () => document.body.classList.toggle('narrow', mq.matches);
  apply();
  mq.addEventListener('change', apply);
}

/** Resolves once the DOM is parsed and style.css applies (index.html adds
 * both the stylesheet and this script from JS; neither waits for the other). */
function ready() {
  const dom = document.readyState === 'loading'
    ? new Promise((r) => document.addEventListener('DOMContentLoaded', r, { once: true }))
    : Promise.resolve();
  return dom.then(() => {
    const link = document.querySelector('link[rel="stylesheet"]');
    if (!link || link.sheet) return undefined;
    return new Promise((r) => {
      link.addEventListener('load', r, { once: true });
      link.addEventListener('error', r, { once: true });
      setTimeout(r, 3000);
    });
  });
}

function init() {
  watchWidth();
  bindSettings();
  $('login-form').addEventListener('submit', onLoginSubmit);
  $('find-form').addEventListener('submit', onFindSubmit);
  $('composer').addEventListener('submit', onComposerSubmit);
  const ta = $('composer-input');
  ta.addEventListener('input', autoGrow);
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('back-btn').addEventListener('click', closeThread);
  $('retry-btn').addEventListener('click', retryNow);
  $('settings-btn').addEventListener('click', () => { updateSettingsInfo(); $('settings').showModal(); });
  $('logout-btn').addEventListener('click', () => logout());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('show-thread') && !$('settings').open) closeThread();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !S.me) return;
    if (!C.connected && C.retryTimer) retryNow();
    const conv = S.convs.get(S.active);
    if (conv && conv.unread && threadOnScreen()) { conv.unread = 0; markDirty(conv.uid); renderConvList(); updateTitle(); }
    refreshPresence();
  });
  // The network is gone: say so now (the heart-beats would take 20-30 s),
  // and try again the moment it is back.
  addEventListener('offline', () => {
    if (!S.me) return;
    if (C.client) connectionLost();
    else setConn('offline');
  });
  addEventListener('online', () => { if (S.me && !C.connected) retryNow(); });
  addEventListener('pagehide', flush);

  const me = session.load();
  if (me && me.token && me.username && me.uid) startSession(me);
  else showLogin();
}

ready().then(init);
})();
