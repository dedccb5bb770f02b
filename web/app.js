// chatgate web client: one classic script, no framework.
//
// The wire contract is docs/PROTOCOL.md. What this page adds on top of it:
//  - every outgoing message has a client-made msgID (SHA-1 hex) and shows
//    "sending" until its /user/queue/send/status 200, a red "!" (Resend, with
//    the same msgID) after 10 s or an error code, and a tick once the
//    receiver confirmed it (/user/queue/delivered);
//  - every incoming message is deduped by (senderId, chatID), stored, then
//    confirmed with /socket/chat/recive;
//  - a thread is in the server's order: by the server's time, then id, once
//    a message has them; by send order before that (see "order" below);
//  - everything the page received or sent is kept in IndexedDB, one
//    database per user; the DOM holds the newest part of the open thread
//    and older messages are added as it scrolls up; unread counts are kept
//    per conversation;
//  - an event (a message, a status, a ✓) changes one message and marks it:
//    the DOM work is done once per frame, for the marked messages that are
//    rendered, and storage writes only what changed, so no event costs more
//    in a longer thread;
//  - on every (re)connect: subscribe, init, then sync from this device's
//    sync key until "more" is false, then resend whatever is still
//    unconfirmed, in send order. On a new device, the history that sync
//    brings back already confirmed (redelivered) counts as read;
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
const MAX_CONTENT_BYTES = 16 * 1024;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const WS_FAILS_BEFORE_SOCKJS = 2;
const HEARTBEAT_MS = 10000;
const SILENCE_MS = 16000;          // nothing at all from the server for this long: the connection is gone
const INIT_WAIT_MS = 15000;        // no end of init by then: sync anyway
const PRESENCE_POLL_MS = 15000;    // presence of the open conversation's contact
const PENDING_LEAD_MS = 1500;      // see pendingPt()
const PAGE = 50;                   // older messages added to the DOM at a time
const WINDOW_MAX = 200;            // at the bottom of a thread, at most this many in the DOM
const BURST_KEEP = 50;             // a burst arriving at the bottom: only its newest in the DOM
const PLACE_MAX = 100;             // messages placed in the DOM per frame (the rest next frame)
const LOAD_CHUNK = 2000;           // messages read from IndexedDB per request
const WRITE_CHUNK = 100;           // messages written per IndexedDB transaction

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
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function dayOf(t) {
  const d = new Date(t);
  return d.getFullYear() * 10000 + d.getMonth() * 100 + d.getDate();
}

function sameDay(a, b) {
  return dayOf(a) === dayOf(b);
}

function shortTime(t) {
  return sameDay(t, Date.now()) ? timeFmt.format(t) : dayFmt.format(t);
}

/** The clock and the full date of a time, formatted once per minute
 * (Intl formatting is the dearest part of drawing a message). */
const timeCache = new Map();
function timeText(t) {
  const minute = Math.floor(t / 60000);
  let v = timeCache.get(minute);
  if (!v) {
    if (timeCache.size > 1000) timeCache.clear();
    v = { short: timeFmt.format(t), full: fullFmt.format(t) };
    timeCache.set(minute, v);
  }
  return v;
}

function dayLabel(t) {
  if (sameDay(t, Date.now())) return 'Today';
  if (sameDay(t, Date.now() - 86400000)) return 'Yesterday';
  return weekdayFmt.format(t);
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

/** SHA-1 in plain JS, synchronous: a msgID exists the moment Send is
 * pressed, so messages leave in the order they were written (the async
 * crypto.subtle digests could finish in another order). 16 KiB, the
 * longest message, takes well under a millisecond. */
function sha1(bytes) {
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

function randomPart() {
  if (globalThis.crypto && crypto.getRandomValues) {
    return toHex(crypto.getRandomValues(new Uint8Array(8)));
  }
  return String(Math.random()).slice(2);
}

/** msgID = SHA-1 hex of (content + Date.now() + random). */
function newMsgId(content) {
  return sha1(new TextEncoder().encode(content + Date.now() + randomPart()));
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
  remove(key) {
    try { localStorage.removeItem(key); } catch { /* ignore */ }
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

/**
 * IndexedDB, one database per user ("chatgate:{base}:u:{uid}"):
 *   msgs   keyPath "key": one record per message (toRecord below)
 *   convs  keyPath "uid": {uid, username, unread}
 *   meta   "syncKey"
 * Without IndexedDB (some private modes) the page keeps everything in
 * memory only, as long as it is open.
 */
function openDb(name) {
  return new Promise((resolve) => {
    let req;
    try {
      if (!globalThis.indexedDB) { resolve(null); return; }
      req = indexedDB.open(name, 1);
    } catch {
      resolve(null);
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('msgs')) db.createObjectStore('msgs', { keyPath: 'key' });
      if (!db.objectStoreNames.contains('convs')) db.createObjectStore('convs', { keyPath: 'uid' });
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => resolve(null);
  });
}

function idbRequest(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Everything stored for this user: IndexedDB, plus what earlier versions
 * of this page kept in localStorage (imported once, then removed). */
async function readUserData(me) {
  const data = { db: await openDb(`${NS}:u:${me.uid}`), convs: [], msgs: [], syncKey: 0, old: null };
  if (data.db) {
    try {
      const tx = data.db.transaction(['convs', 'meta'], 'readonly');
      const [convs, key] = await Promise.all([
        idbRequest(tx.objectStore('convs').getAll()),
        idbRequest(tx.objectStore('meta').get('syncKey')),
      ]);
      data.convs = convs;
      data.syncKey = Number(key) || 0;
      // in chunks: each request's answer is its own short task
      for (let after = null; ;) {
        const range = after === null ? null : IDBKeyRange.lowerBound(after, true);
        const part = await idbRequest(data.db.transaction('msgs', 'readonly').objectStore('msgs').getAll(range, LOAD_CHUNK));
        for (const r of part) data.msgs.push(r);
        if (part.length < LOAD_CHUNK) break;
        after = part[part.length - 1].key;
      }
    } catch {
      data.convs = [];
      data.msgs = [];
      data.syncKey = 0;
    }
  }
  data.old = readOldStorage(me);
  return data;
}

function oldKey(uid, ...parts) {
  return [NS, 'u', uid, ...parts].join(':');
}

/** The localStorage layout of earlier versions: convs, msgs:<peer> (the
 * last 500 of each), seen, syncKey. */
function readOldStorage(me) {
  const convs = local.get(oldKey(me.uid, 'convs'), null);
  if (!Array.isArray(convs)) return null;
  const msgs = [];
  for (const c of convs) {
    for (const m of local.get(oldKey(me.uid, 'msgs', c.uid), [])) {
      msgs.push({ ...m, peer: c.uid, pt: Number(m.time) || 0 });
    }
  }
  return {
    convs: convs.map((c) => ({ uid: c.uid, username: c.username, unread: c.unread || 0 })),
    msgs,
    syncKey: Number(local.get(oldKey(me.uid, 'syncKey'), 0)) || 0,
  };
}

function dropOldStorage(me, old) {
  for (const c of old.convs) local.remove(oldKey(me.uid, 'msgs', c.uid));
  for (const k of ['convs', 'seen', 'syncKey']) local.remove(oldKey(me.uid, k));
}

/* ------------------------------------------------------------------ */
/* state                                                               */
/* ------------------------------------------------------------------ */

/**
 * me:      {uid, username, token}
 * convs:   Map peerUid -> conv {uid, username, unread, failed, online,
 *          ephemeral, since}; failed counts its red messages; online is
 *          the last known presence; ephemeral: opened by Find, no message
 *          yet (never stored, gone once left)
 * threads: Map peerUid -> [message], in order (cmp)
 * byKey:   Map key -> message, every message (dedupe: "in:<sender>:<chatID>"
 *          for received ones, "out:<msgID>" for mine)
 * mine:    Map msgID -> message, mine (for the status topics)
 * A message: {key, peer, mine, msgID, id, content, time, pt, rk, seq, state,
 *          error, auto, timer}; state: sending | sent | delivered | failed
 *          (mine), received (theirs).
 */
const S = {
  me: null,
  db: null,
  convs: new Map(),
  threads: new Map(),
  byKey: new Map(),
  mine: new Map(),
  syncKey: 0,
  seq: 1,
  skew: 0,                  // server clock - this clock, ms (from recent server times)
  serverTime: 0,            // the latest server time seen
  fresh: false,             // a device with nothing stored: sync brings history
  active: null,
  // what the next write stores, and what waits for it
  dirtyMsgs: new Set(),
  deadKeys: new Set(),
  dirtyConvs: new Set(),
  metaDirty: false,
  toConfirm: [],
  toTransmit: [],
  persistTimer: null,
  txTail: Promise.resolve(),
  dropOld: null,
  // what the next frame shows
  listDirty: false,
  announce: new Map(),      // conv -> new messages not on screen
};

function newConv(uid, username, unread = 0) {
  return { uid, username: username || `#${uid}`, unread, failed: 0, online: undefined, ephemeral: false, since: Date.now() };
}

function threadOf(peer) {
  let t = S.threads.get(peer);
  if (!t) {
    t = [];
    S.threads.set(peer, t);
  }
  return t;
}

/* ------------------------------------------------------------------ */
/* order                                                               */
/* ------------------------------------------------------------------ */

// A thread is ordered by (pt, rk, id, seq):
//  - pt: the server's time of the message (received ones, and mine once
//    send/status answered); before that, mine get pendingPt() at Send;
//  - rk: 0 theirs, 1 mine with a server id, 2 mine without (at one
//    millisecond: theirs, then mine in id order, then mine not yet stored);
//  - id: the server's id (ids grow per receiver, and one sender's messages
//    to one receiver keep their send order; the gateway stores a batch of
//    sends under one clock reading, so ties in pt are common);
//  - seq: this device's counter, in send or arrival order.
// The key of a message changes only through rekey(), which moves it.

function rankOf(m) {
  return m.mine ? (m.id ? 1 : 2) : 0;
}

function cmp(a, b) {
  return (a.pt - b.pt) || (a.rk - b.rk) || (a.rk < 2 ? (a.id || 0) - (b.id || 0) : 0) || (a.seq - b.seq);
}

/** Where m goes: after every message not greater than it. */
function upperBound(list, m) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(list[mid], m) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of m in list (binary search on its key), or -1. */
function indexOfMsg(list, m) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const c = cmp(list[mid], m);
    if (c < 0) lo = mid + 1;
    else if (c > 0) hi = mid;
    else return list[mid] === m ? mid : list.indexOf(m);
  }
  return list.indexOf(m);
}

/** A time for a message of mine not yet stored: after everything in the
 * thread, and a little ahead of the server's clock, so that its own
 * send/status (the server's time, a round trip later) moves it up a
 * little or not at all, never below the next ones still on their way. */
function pendingPt(list) {
  const tail = list[list.length - 1];
  return Math.max(tail ? tail.pt : 0, Date.now() + S.skew + PENDING_LEAD_MS);
}

function noteServerTime(t) {
  if (t >= S.serverTime) {         // a retry's answer carries its first, older time
    S.serverTime = t;
    S.skew = t - Date.now();
  }
}

/* ------------------------------------------------------------------ */
/* the model: every change marks what it touched                       */
/* ------------------------------------------------------------------ */

function addMessage(m) {
  m.rk = rankOf(m);
  const list = threadOf(m.peer);
  const i = upperBound(list, m);
  list.splice(i, 0, m);
  S.byKey.set(m.key, m);
  if (m.mine) S.mine.set(m.msgID, m);
  if (m.state === 'failed') failedDelta(m.peer, 1);
  inserted(m.peer, list, i);
  saveMsg(m);
}

/** Changes the order key of m (mutate sets pt or id) and moves it. */
function rekey(m, mutate) {
  const list = threadOf(m.peer);
  const i = indexOfMsg(list, m);
  if (i >= 0) {
    list.splice(i, 1);
    removed(m.peer, list, i, m);
  }
  mutate();
  m.rk = rankOf(m);
  const j = upperBound(list, m);
  list.splice(j, 0, m);
  inserted(m.peer, list, j);
  saveMsg(m);
}

function inserted(peer, list, i) {
  if (peer === R.peer) {
    if (i < R.lo) R.lo++;
    else {
      R.touched.add(list[i]);
      if (i + 1 < list.length) R.relabel.add(list[i + 1]);
    }
    scheduleFrame();
  }
  if (i === list.length - 1) listChanged();
}

function removed(peer, list, i, m) {
  if (peer === R.peer) {
    if (i < R.lo) R.lo--;
    else {
      R.touched.add(m);
      if (i < list.length) R.relabel.add(list[i]);
    }
    scheduleFrame();
  }
  if (i === list.length) listChanged();
}

function setState(m, state) {
  if (m.state === state) return;
  if (m.state === 'failed') failedDelta(m.peer, -1);
  if (state === 'failed') failedDelta(m.peer, 1);
  m.state = state;
  changedMsg(m);
}

/** m's state, error or id changed: redraw it (if rendered) and store it. */
function changedMsg(m) {
  if (m.peer === R.peer) {
    R.dirty.add(m);
    scheduleFrame();
  }
  saveMsg(m);
}

function failedDelta(peer, d) {
  const c = S.convs.get(peer);
  if (c) {
    c.failed = Math.max(0, c.failed + d);
    listChanged();
  }
}

function listChanged() {
  S.listDirty = true;
  scheduleFrame();
}

function ensureConv(uid, username) {
  let c = S.convs.get(uid);
  if (!c) {
    c = newConv(uid, username);
    S.convs.set(uid, c);
    threadOf(uid);
    listChanged();
  } else if (username && c.username !== username) {
    c.username = username;
    saveConv(c);
    listChanged();
  }
  return c;
}

/** A conversation opened by Find and left without a message goes away. */
function dropIfEmpty(uid) {
  const c = S.convs.get(uid);
  if (!c || !c.ephemeral || threadOf(uid).length) return;
  S.convs.delete(uid);
  S.threads.delete(uid);
  listChanged();
}

function markRead(conv) {
  if (!conv.unread) return;
  conv.unread = 0;
  saveConv(conv);
  listChanged();
}

/* ------------------------------------------------------------------ */
/* persistence                                                         */
/* ------------------------------------------------------------------ */

function toRecord(m) {
  return {
    key: m.key, peer: m.peer, mine: m.mine, msgID: m.msgID, id: m.id, content: m.content,
    time: m.time, pt: m.pt, seq: m.seq, state: m.state, error: m.error, auto: m.auto,
  };
}

function fromRecord(r) {
  if (!r || typeof r.key !== 'string' || typeof r.msgID !== 'string' || r.peer == null) return null;
  const m = {
    key: r.key, peer: Number(r.peer), mine: !!r.mine, msgID: r.msgID, id: Number(r.id) || undefined,
    content: String(r.content ?? ''), time: Number(r.time) || 0, pt: Number(r.pt ?? r.time) || 0,
    seq: Number(r.seq) || 0, state: r.state || (r.mine ? 'failed' : 'received'),
    error: r.error, auto: r.auto,
  };
  m.rk = rankOf(m);
  return m;
}

function saveMsg(m) {
  S.dirtyMsgs.add(m);
  schedulePersist();
}

function saveConv(c) {
  if (!c.ephemeral) {
    S.dirtyConvs.add(c.uid);
    schedulePersist();
  }
}

function schedulePersist() {
  if (!S.persistTimer) S.persistTimer = setTimeout(persist, 0);
}

/**
 * Writes what changed in one transaction. The confirmations of received
 * messages and the first transmission of new ones wait for it: a message
 * is confirmed only once it is stored, and leaves only once it is. The
 * sync key is written with the messages it covers.
 */
function persist() {
  clearTimeout(S.persistTimer);
  S.persistTimer = null;
  if (!S.me) return;
  // At most WRITE_CHUNK messages per transaction (each task stays short);
  // the rest goes in the next one, right after.
  const msgs = [];
  for (const m of S.dirtyMsgs) {
    if (msgs.length === WRITE_CHUNK) break;
    msgs.push(m);
  }
  for (const m of msgs) S.dirtyMsgs.delete(m);
  const more = S.dirtyMsgs.size > 0;
  const dead = [...S.deadKeys];
  const convs = [...S.dirtyConvs].map((uid) => S.convs.get(uid)).filter((c) => c && !c.ephemeral);
  // the sync key covers every message before it: written with the last chunk
  const meta = S.metaDirty && !more;
  // what waits for this write: the confirmations and first transmissions
  // of the messages it stores (or stored before)
  const stored = (x) => !x.m || !S.dirtyMsgs.has(x.m);
  const confirms = S.toConfirm.filter(stored);
  const transmits = S.toTransmit.filter((m) => !S.dirtyMsgs.has(m));
  S.toConfirm = more ? S.toConfirm.filter((x) => !stored(x)) : [];
  S.toTransmit = more ? S.toTransmit.filter((m) => S.dirtyMsgs.has(m)) : [];
  const dropOld = more ? null : S.dropOld;
  const me = S.me;
  S.deadKeys.clear();
  S.dirtyConvs.clear();
  if (meta) S.metaDirty = false;
  if (dropOld) S.dropOld = null;
  if (more) schedulePersist();

  let written = Promise.resolve(false);
  if (S.db && (msgs.length || dead.length || convs.length || meta)) {
    written = new Promise((resolve) => {
      try {
        const tx = S.db.transaction(['msgs', 'convs', 'meta'], 'readwrite');
        const ms = tx.objectStore('msgs');
        for (const k of dead) ms.delete(k);
        for (const m of msgs) if (S.byKey.get(m.key) === m) ms.put(toRecord(m));
        const cs = tx.objectStore('convs');
        for (const c of convs) cs.put({ uid: c.uid, username: c.username, unread: c.unread });
        if (meta) tx.objectStore('meta').put(S.syncKey, 'syncKey');
        tx.oncomplete = () => resolve(true);
        tx.onabort = () => resolve(false);
      } catch {
        resolve(false);
      }
    });
  }
  // in order with the writes before it, even when this one wrote nothing
  S.txTail = Promise.all([S.txTail, written]).then(([, ok]) => {
    if (ok && dropOld) dropOldStorage(me, dropOld);
    if (S.me !== me) return;
    for (const x of confirms) publish('/socket/chat/recive', { msgID: x.chatID });
    for (const m of transmits) if (m.state === 'sending' && !m.timer) transmit(m);
  });
}

/** Takes in what readUserData found. */
function adoptUserData(data) {
  S.db = data.db;
  S.convs = new Map();
  S.threads = new Map();
  S.byKey = new Map();
  S.mine = new Map();
  S.dirtyMsgs = new Set();
  S.deadKeys = new Set();
  S.dirtyConvs = new Set();
  S.toConfirm = [];
  S.toTransmit = [];
  S.announce = new Map();
  S.metaDirty = false;
  S.dropOld = null;
  S.skew = 0;
  S.serverTime = 0;
  S.syncKey = data.syncKey;
  for (const c of data.convs) S.convs.set(c.uid, newConv(c.uid, c.username, c.unread || 0));
  S.seq = 1 + data.msgs.reduce((mx, r) => Math.max(mx, Number(r.seq) || 0), 0);

  const take = (r) => {
    const m = fromRecord(r);
    if (!m || S.byKey.has(m.key)) return null;
    if (!m.seq) m.seq = S.seq++;
    if (!S.convs.has(m.peer)) S.convs.set(m.peer, newConv(m.peer));
    if (m.mine) {
      // it was on its way when the page went away: sent again on connect
      if (m.state === 'sending') { m.state = 'failed'; m.auto = true; m.error = 'not confirmed'; }
      S.mine.set(m.msgID, m);
    }
    if (m.state === 'failed') S.convs.get(m.peer).failed++;
    S.byKey.set(m.key, m);
    threadOf(m.peer).push(m);
    return m;
  };
  for (const r of data.msgs) take(r);
  if (data.old) {
    // an earlier version's localStorage: into IndexedDB, then removed
    for (const c of data.old.convs) {
      if (!S.convs.has(c.uid)) S.convs.set(c.uid, newConv(c.uid, c.username, c.unread));
      S.dirtyConvs.add(c.uid);
    }
    for (const r of data.old.msgs) {
      const m = take({ ...r, seq: 0 });
      if (m) S.dirtyMsgs.add(m);
    }
    S.syncKey = Math.max(S.syncKey, data.old.syncKey);
    S.metaDirty = true;
    if (S.db) S.dropOld = data.old;
  }
  for (const list of S.threads.values()) list.sort(cmp);
  // conversations without a message are not kept (earlier versions kept
  // every conversation Find opened)
  for (const uid of [...S.convs.keys()]) {
    if (!threadOf(uid).length) {
      S.convs.delete(uid);
      S.threads.delete(uid);
    }
  }
  S.fresh = S.syncKey === 0 && S.byKey.size === 0;
  if (S.dirtyMsgs.size || S.dirtyConvs.size || S.metaDirty) schedulePersist();
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
  gen: 0,                       // the current attempt; callbacks of older ones are ignored
  connected: false,
  transport: 'websocket',       // of the current attempt
  autoTransport: 'websocket',   // what "auto" uses now
  attempt: 0,                   // failed attempts in a row
  wsFails: 0,                   // WebSocket attempts in a row that never connected
  retryAt: 0,
  retryTimer: null,
  tick: null,
  phase: 'idle',                // init -> sync -> live, per connection
  syncRetry: null,
  initWait: null,
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
  C.phase = 'idle';
  clearTimeout(C.syncRetry);
  clearTimeout(C.initWait);
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
      fn(body, m.headers);
    });
  }
  // First what is pending (unconfirmed: new to every device), then the
  // history from this device's sync key.
  C.phase = 'init';
  publish('/socket/chat/init', '');
  C.initWait = setTimeout(() => { if (C.phase === 'init') startSync(); }, INIT_WAIT_MS);
  C.watchdog = setInterval(() => {
    if (C.connected && Date.now() - C.lastRx > SILENCE_MS) connectionLost();
  }, 2000);
  setConn('online');
  // Whatever is still unconfirmed goes again, with the same msgID, in the
  // order it was written.
  const again = [];
  for (const m of S.mine.values()) {
    if (m.state === 'sending' || (m.state === 'failed' && m.auto)) again.push(m);
  }
  again.sort(cmp);
  for (const m of again) transmit(m);
  refreshPresence();
}

function onDisconnected(everConnected) {
  C.connected = false;
  C.phase = 'idle';
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
  clearTimeout(C.initWait);
  C.phase = 'sync';
  publish('/socket/chat/sync', { syncKey: S.syncKey });
}

/* ------------------------------------------------------------------ */
/* incoming frames                                                     */
/* ------------------------------------------------------------------ */

function onChat(c, headers) {
  if (!c || typeof c.chatID !== 'string') return;
  const fromMe = c.senderId === S.me.uid;
  const key = `in:${c.senderId}:${c.chatID}`;
  const selfEcho = fromMe && S.mine.has(c.chatID);
  let stored = null;
  if (!S.byKey.has(key) && !selfEcho) {
    const redelivered = headers?.redelivered === 'true';
    const peer = fromMe ? c.reciverId : c.senderId;
    const conv = ensureConv(peer, fromMe ? c.reciver : c.sender);
    const time = Number(c.time) || Date.now();
    const msg = {
      key, peer, mine: false, msgID: c.chatID, id: Number(c.id) || undefined,
      content: String(c.content ?? ''), time, pt: time, seq: S.seq++, state: 'received',
    };
    conv.ephemeral = false;
    addMessage(msg);
    stored = msg;
    // A new device's first sync brings back the history; what another
    // device already confirmed (redelivered) was seen there. What is
    // still pending came with init, before, and is unread.
    const history = S.fresh && C.phase === 'sync' && redelivered;
    const visible = S.active === peer && document.visibilityState === 'visible' && threadOnScreen();
    if (!visible && !history) {
      conv.unread = (conv.unread || 0) + 1;
      S.announce.set(conv, (S.announce.get(conv) || 0) + 1);
    }
    if (!redelivered && C.phase === 'live') {
      // a live push, not a pending message init or sync found
      noteServerTime(time);
      if (!fromMe) setOnline(conv, true);        // they just sent it
    }
    saveConv(conv);
    listChanged();
  }
  // Confirm every copy (a redelivery needs its confirmation too), once
  // the message is stored: persist() sends them after its write, once for
  // a whole batch (an init or sync brings many).
  if (!stored) stored = S.byKey.get(key) || (selfEcho ? S.mine.get(c.chatID) : null);
  S.toConfirm.push({ chatID: c.chatID, m: stored });
  schedulePersist();
}

function onSendStatus(st) {
  const m = S.mine.get(st.msgID);
  if (!m) return;
  clearTimeout(m.timer);
  m.timer = null;
  if (st.code === 200) {
    const t = Number(st.time);
    const id = Number(st.id) || m.id;
    if (t) noteServerTime(t);
    m.error = undefined;
    m.auto = undefined;
    if (id !== m.id || (t && t !== m.pt)) {
      rekey(m, () => {
        m.id = id;
        if (t) { m.pt = t; m.time = t; }
      });
    }
    if (m.state !== 'delivered') setState(m, 'sent');
    changedMsg(m);
  } else if (st.code === 409 && !m.renamed) {
    // The msgID is pending for this receiver from someone else: make a new one.
    renameAndResend(m);
  } else {
    m.auto = undefined;
    m.error = `${st.code} ${st.content || st.status || ''}`.trim();
    setState(m, 'failed');
    changedMsg(m);
  }
}

function renameAndResend(m) {
  S.mine.delete(m.msgID);
  S.byKey.delete(m.key);
  S.deadKeys.add(m.key);
  m.renamed = true;
  m.msgID = newMsgId(m.content);
  m.key = `out:${m.msgID}`;
  S.mine.set(m.msgID, m);
  S.byKey.set(m.key, m);
  transmit(m);
  changedMsg(m);
}

function onDelivered(d) {
  const m = S.mine.get(d.msgID);
  if (!m) return;
  clearTimeout(m.timer);
  m.timer = null;
  const id = Number(d.id);
  if (id && !m.id) rekey(m, () => { m.id = id; });
  m.error = undefined;
  m.auto = undefined;
  setState(m, 'delivered');
  // their page confirmed it just now: they are online
  const conv = S.convs.get(m.peer);
  if (conv) setOnline(conv, true);
}

function onInitStatus(st) {
  if (st.code && st.code !== 200) {
    // init or sync did not reach its end (also told on /user/queue/status,
    // which retries it): after a failed init, sync anyway
    if (C.phase === 'init') startSync();
    return;
  }
  if (!('more' in st)) {                 // the end of an init; sync answers carry "more"
    if (C.phase === 'init') startSync();
    return;
  }
  if (typeof st.syncKey === 'number' && st.syncKey > S.syncKey) {
    S.syncKey = st.syncKey;
    S.metaDirty = true;                  // written with the messages before it
    schedulePersist();
  }
  if (st.more) publish('/socket/chat/sync', { syncKey: S.syncKey });
  else if (C.phase === 'sync') {
    C.phase = 'live';
    S.fresh = false;
  }
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
/* sending                                                             */
/* ------------------------------------------------------------------ */

function sendText(text) {
  const peer = S.active;
  const conv = S.convs.get(peer);
  if (!conv) return;
  const msgID = newMsgId(text);
  const now = Date.now();
  const m = {
    key: `out:${msgID}`, peer, mine: true, msgID, id: undefined, content: text,
    time: now, pt: pendingPt(threadOf(peer)), seq: S.seq++, state: 'sending',
  };
  conv.ephemeral = false;
  saveConv(conv);
  addMessage(m);
  R.toBottom = true;
  // on disk before it leaves: persist() transmits it after its write
  S.toTransmit.push(m);
  schedulePersist();
}

/** (Re)sends m with its msgID; it turns red unless answered in time. */
function transmit(m) {
  clearTimeout(m.timer);
  m.error = undefined;
  setState(m, 'sending');
  publish('/socket/chat/send', { msgID: m.msgID, reciverId: m.peer, content: m.content });
  m.timer = setTimeout(() => {
    m.timer = null;
    if (m.state !== 'sending') return;
    m.auto = true;               // unanswered: retried by itself on reconnect
    m.error = C.connected ? 'no answer from the server' : 'offline';
    setState(m, 'failed');
  }, SEND_TIMEOUT_MS);
}

function resend(msgID) {
  const m = S.mine.get(msgID);
  if (!m || m.state !== 'failed') return;
  transmit(m);
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
        saveConv(conv);
        listChanged();
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
/* rendering: once per frame, only what was marked                     */
/* ------------------------------------------------------------------ */

/**
 * The open thread's DOM: the messages from index lo of its list to the
 * end, each with its <li> in nodes. touched: messages added, moved or gone
 * (placed or removed in the next frame); relabel: messages whose day
 * separator may change; dirty: messages whose state or time changed.
 */
const R = {
  peer: null,
  lo: 0,
  nodes: new Map(),
  touched: new Set(),
  relabel: new Set(),
  dirty: new Set(),
  toBottom: false,
};

let frameReq = 0;
let frameTimer = 0;

/** One run per frame (a timer too: hidden pages get no frames, and
 * their model and confirmations must not wait for one). */
function scheduleFrame() {
  if (frameReq || frameTimer) return;
  frameReq = requestAnimationFrame(runFrame);
  frameTimer = setTimeout(runFrame, 100);
}

function runFrame() {
  cancelAnimationFrame(frameReq);
  clearTimeout(frameTimer);
  frameReq = 0;
  frameTimer = 0;
  if (!S.me) return;
  if (R.peer != null) renderThreadChanges();
  if (S.listDirty) {
    S.listDirty = false;
    renderConvList();
    updateTitle();
  }
  if (S.announce.size) {
    const parts = [...S.announce].map(([c, n]) => (n > 1 ? `${n} new messages from ${c.username}` : `New message from ${c.username}`));
    S.announce.clear();
    announce(parts.join('. '));
  }
}

function threadOnScreen() {
  return !document.body.classList.contains('narrow') || document.body.classList.contains('show-thread');
}

function renderConvList() {
  const list = $('conv-list');
  const lastOf = (c) => { const t = threadOf(c.uid); return t[t.length - 1]; };
  const convs = [...S.convs.values()].map((c) => ({ c, last: lastOf(c) }))
    .sort((a, b) => (b.last ? b.last.pt : b.c.since) - (a.last ? a.last.pt : a.c.since));
  $('conv-empty').hidden = convs.length > 0;
  const focusedUid = document.activeElement?.closest?.('#conv-list')
    ? document.activeElement.dataset.uid : null;
  const frag = document.createDocumentFragment();
  for (const { c, last } of convs) {
    const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' });
    paintAvatar(avatar, c.username);
    const preview = last ? (last.mine ? `You: ${last.content}` : last.content) : 'No messages yet';
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
        last ? el('time', { class: 'conv-time', datetime: new Date(last.time).toISOString(), text: shortTime(last.time) }) : null),
      el('span', { class: 'conv-bottom' },
        c.failed ? el('span', { class: 'conv-failed', text: '!', title: 'A message was not sent' }) : null,
        c.failed ? el('span', { class: 'sr-only', text: 'Not sent. ' }) : null,
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
  const conv = S.convs.get(m.peer);
  const who = m.mine ? 'You' : (conv ? conv.username : 'They');
  const bubble = el('div', { class: 'bubble' });
  bubble.append(richText(m.content));
  const time = el('time');
  const li = el('li', { class: `msg ${m.mine ? 'out' : 'in'}` },
    el('span', { class: 'sr-only', text: `${who}: ` }),
    bubble,
    el('div', { class: 'meta' }, time));
  li.cg = { time, st: null, btn: null, shownTime: null, shownState: null, shownError: null };
  return li;
}

/** The time, state and Resend button of m's <li>: only what changed (a ✓
 * replaces one small span). */
function updateMessageNode(li, m) {
  const v = li.cg;
  if (li.dataset.msgid !== m.msgID) li.dataset.msgid = m.msgID;
  if (v.shownTime !== m.time) {
    v.shownTime = m.time;
    const tt = timeText(m.time);
    v.time.dateTime = new Date(m.time).toISOString();
    v.time.title = tt.full;
    v.time.textContent = tt.short;
  }
  if (v.shownState !== m.state) {
    v.shownState = m.state;
    li.dataset.state = m.state;
    li.classList.toggle('failed', m.state === 'failed');
    const st = stateNode(m);
    if (v.st) v.st.remove();
    v.st = st;
    if (st) v.time.after(st);
  }
  if (m.state === 'failed') {
    if (!v.btn) {
      v.btn = el('button', {
        type: 'button', class: 'resend', 'aria-label': 'Resend',
        onclick: () => resend(li.dataset.msgid),
      }, el('span', { 'aria-hidden': 'true', text: '!' }));
      li.insertBefore(v.btn, li.querySelector('.bubble'));
      v.shownError = undefined;
    }
    if (v.shownError !== m.error) {
      v.shownError = m.error;
      v.btn.title = `Not sent (${m.error || 'error'}). Resend`;
    }
  } else if (v.btn) {
    const hadFocus = v.btn === document.activeElement;
    v.btn.remove();
    v.btn = null;
    if (hadFocus) $('composer-input').focus();
  }
}

/** The day separator above list[i]. */
function labelNode(li, list, i) {
  const m = list[i];
  const prev = list[i - 1];
  const first = !prev || !sameDay(prev.time, m.time);
  li.classList.toggle('new-day', first);
  if (first) li.dataset.day = dayLabel(m.time);
  else delete li.dataset.day;
}

function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

/** Renders the open thread from scratch: its newest messages (and every
 * unread one, up to a few pages). */
function showThread(uid) {
  const ol = $('messages');
  R.peer = uid;
  R.nodes.clear();
  R.touched.clear();
  R.relabel.clear();
  R.dirty.clear();
  const list = threadOf(uid);
  const conv = S.convs.get(uid);
  const want = Math.min(4 * PAGE, Math.max(PAGE, (conv?.unread || 0) + 10));
  R.lo = Math.max(0, list.length - want);
  const frag = document.createDocumentFragment();
  for (let i = R.lo; i < list.length; i++) frag.append(placeNew(list, i));
  ol.replaceChildren(frag);
  updateOlderButton();
  const box = $('message-log');
  box.scrollTop = box.scrollHeight;
  // fill the view: older messages until it scrolls
  while (R.lo > 0 && box.clientHeight > 0 && box.scrollHeight <= box.clientHeight) loadOlder();
}

function placeNew(list, i) {
  const m = list[i];
  let li = R.nodes.get(m);
  if (!li) {
    li = messageNode(m);
    R.nodes.set(m, li);
  }
  labelNode(li, list, i);
  updateMessageNode(li, m);
  return li;
}

function hideThread() {
  R.peer = null;
  R.nodes.clear();
  R.touched.clear();
  R.relabel.clear();
  R.dirty.clear();
  $('messages').replaceChildren();
}

/** What changed in the open thread since the last frame. */
function renderThreadChanges() {
  if (!R.touched.size && !R.relabel.size && !R.dirty.size && !R.toBottom) return;
  const box = $('message-log');
  const ol = $('messages');
  const stick = nearBottom(box) || R.toBottom;
  const list = threadOf(R.peer);
  if (stick) {
    // At the bottom the DOM keeps the newest messages only: the oldest go
    // before new ones are placed, and of a burst only its newest are drawn
    // (the rest is above the view, and loads on scroll like any older one).
    let fresh = 0;
    for (const m of R.touched) if (!R.nodes.has(m)) fresh++;
    let to = R.lo;
    if (fresh > BURST_KEEP) to = Math.max(to, list.length - BURST_KEEP);
    if (list.length - to > WINDOW_MAX) to = list.length - PAGE;
    for (let i = R.lo; i < to; i++) {
      const li = R.nodes.get(list[i]);
      if (li) { li.remove(); R.nodes.delete(list[i]); }
    }
    R.lo = Math.max(R.lo, to);
  }
  const place = [];
  for (const m of R.touched) {
    const i = m.peer === R.peer ? indexOfMsg(list, m) : -1;
    if (i >= R.lo) {
      place.push(i);
    } else {
      const li = R.nodes.get(m);
      if (li) { li.remove(); R.nodes.delete(m); }
    }
  }
  // From the end: each goes right before its successor, which is either
  // untouched (already in place) or placed just before. A frame places at
  // most PLACE_MAX; the older rest stays marked for the next frame.
  place.sort((a, b) => b - a);
  const later = place.length > PLACE_MAX ? place.splice(PLACE_MAX).map((i) => list[i]) : [];
  for (const i of place) {
    const li = placeNew(list, i);
    let next = null;
    for (let j = i + 1; j < list.length && !next; j++) next = R.nodes.get(list[j]) || null;
    if (li.parentNode !== ol || li.nextElementSibling !== next) ol.insertBefore(li, next);
  }
  for (const m of R.relabel) {
    const li = R.nodes.get(m);
    if (li) {
      const i = indexOfMsg(list, m);
      if (i >= 0) labelNode(li, list, i);
    }
  }
  for (const m of R.dirty) {
    const li = R.nodes.get(m);
    if (li) updateMessageNode(li, m);
  }
  R.touched.clear();
  R.relabel.clear();
  R.dirty.clear();
  if (later.length) {
    for (const m of later) R.touched.add(m);
    scheduleFrame();
  }
  updateOlderButton();
  if (stick) box.scrollTop = box.scrollHeight;
  R.toBottom = false;
}

/** Adds the PAGE messages before the rendered ones, above them, keeping
 * the reader's place. */
function loadOlder() {
  if (R.peer == null || R.lo === 0) return;
  const box = $('message-log');
  const ol = $('messages');
  const list = threadOf(R.peer);
  const from = Math.max(0, R.lo - PAGE);
  const frag = document.createDocumentFragment();
  for (let i = from; i < R.lo; i++) frag.append(placeNew(list, i));
  const fromBottom = box.scrollHeight - box.scrollTop;
  ol.insertBefore(frag, ol.firstElementChild);
  R.lo = from;
  updateOlderButton();
  box.scrollTop = box.scrollHeight - fromBottom;
}

function updateOlderButton() {
  const btn = $('older-btn');
  const hide = R.peer == null || R.lo === 0;
  if (btn.hidden === hide) return;
  // the whole thread is shown: a keyboard user stays in the log
  if (hide && btn === document.activeElement) $('message-log').focus({ preventScroll: true });
  btn.hidden = hide;
}

let olderPending = false;
function onLogScroll() {
  const box = $('message-log');
  if (olderPending || R.lo === 0 || box.scrollTop > 300) return;
  olderPending = true;
  requestAnimationFrame(() => {
    olderPending = false;
    if (box.scrollTop <= 300) loadOlder();
  });
}

function openConv(uid, { focusComposer = false } = {}) {
  const conv = S.convs.get(uid);
  if (!conv) return;
  const prev = S.active;
  S.active = uid;
  if (prev !== uid && prev != null) dropIfEmpty(prev);
  const visible = document.visibilityState === 'visible';
  $('thread-empty').hidden = true;
  $('thread-view').hidden = false;
  $('thread-title').textContent = conv.username;
  paintAvatar($('thread-avatar'), conv.username);
  document.body.classList.add('show-thread');
  if (prev !== uid || R.peer !== uid) showThread(uid);
  if (visible) markRead(conv);
  listChanged();
  runFrame();
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
    hideThread();
    if (uid != null) dropIfEmpty(uid);
    listChanged();
    runFrame();
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
  const title = n ? `(${n}) chatgate` : 'chatgate';
  if (document.title !== title) document.title = title;
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
  hideThread();
  $('thread-view').hidden = true;
  $('thread-empty').hidden = false;
  document.body.classList.remove('show-thread');
  renderConvList();
  updateTitle();
  // where a user starts: finding a conversation
  $('find-input').focus({ preventScroll: true });
}

async function startSession(me) {
  S.me = me;
  const data = await readUserData(me);
  if (S.me !== me) {             // logged out meanwhile
    data.db?.close();
    return;
  }
  adoptUserData(data);
  showChat();
  C.attempt = 0;
  C.wsFails = 0;
  C.autoTransport = 'websocket';
  connect();
}

async function logout(message = '', { remote = true } = {}) {
  const me = S.me;
  if (me) persist();
  for (const m of S.mine.values()) clearTimeout(m.timer);
  S.me = null;
  clearTimeout(C.retryTimer);
  clearInterval(C.tick);
  clearTimeout(P.timer);
  C.gen++;
  dropClient();
  const db = S.db;
  S.db = null;
  if (db) S.txTail.then(() => db.close());
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
  let me = null;
  try {
    if (register) {
      const r = await api('POST', '/api/register', { username, password });
      if (r.status === 409) { err.textContent = `The name "${username}" is taken. Log in, or pick another.`; return; }
      if (r.status !== 201) { err.textContent = r.json?.error || `Could not create the account (HTTP ${r.status}).`; return; }
    }
    const l = await api('POST', '/api/login', { username, password });
    if (l.status === 401) { err.textContent = 'Wrong username or password.'; return; }
    if (l.status !== 200 || !l.json?.token) { err.textContent = l.json?.error || `Could not log in (HTTP ${l.status}).`; return; }
    me = { uid: l.json.uid, username: l.json.username, token: l.json.token };
    session.save(me);
    $('login-password').value = '';
  } catch {
    err.textContent = 'The server cannot be reached. Try again in a moment.';
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
  if (me) await startSession(me);
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
    // the draft stays, to be shortened
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
  $('message-log').addEventListener('scroll', onLogScroll, { passive: true });
  $('older-btn').addEventListener('click', loadOlder);
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
    if (conv && threadOnScreen()) markRead(conv);
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
  addEventListener('pagehide', () => { if (S.me) persist(); });

  const me = session.load();
  if (me && me.token && me.username && me.uid) startSession(me);
  else showLogin();
}

ready().then(init);
})();
