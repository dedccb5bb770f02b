// load.mjs - a steady load of many pairs of chat users, each an
// @stomp/stompjs 7 client that behaves like a real chat client (web/app.js)
// under faults, and records everything it did and saw in a History
// (checker.mjs).
//
// Users come in pairs (a, b); a sends to b and b to a, at `rate` messages
// per second in total. Every user is one LoadClient:
//
//   connect   to a random gateway that is up (opts.targets()), subscribe to
//             its recive destination and the status topics (the last
//             SUBSCRIBE with a receipt), then
//               - resend what is unconfirmed (same msgID), and
//               - catch up: init, then sync from its sync key until
//                 `more` is false (its deliveries count as 'catchup', the
//                 later ones as 'live').
//             On any close: reconnect after a jittered backoff (50 ms
//             growing to 2 s), to whichever gateway is up.
//   send      a per-conversation queue with one message in flight (window
//             1, the order-preserving send queue of a chat client): the
//             head is sent, answered 200 -> next; 503 -> resent after
//             200 ms; 429 -> after 1 s; no answer within sendTimeoutMs ->
//             resent with the SAME msgID on the same connection; the
//             connection closes -> resent after reconnect. Definite
//             failures (400 404 409 413 507) are recorded and given up.
//   receive   every MESSAGE is recorded (with its redelivered header),
//             passed to the "app" once per senderId:chatID (the dedupe
//             layer, as web/app.js), "rendered" (a random 0-15 ms), then
//             confirmed with /socket/chat/recive on the same connection,
//             duplicates too (otherwise they would stay pending).
//             dropBeforeConfirm (a probability): instead of confirming,
//             drop the socket at once (a receiver that vanishes between
//             MESSAGE and recive); the message is recorded in `dropped`.
//
// The driver: setup() registers the users, start() connects them all and
// starts the generator, stopGenerating(), drain() waits (bounded) until
// every queue is empty, every confirmed message reached its receiver's app
// and was confirmed by it, and a last init on every connection finds
// nothing pending; close() ends everything.
import crypto from 'node:crypto';
import fs from 'node:fs';

import { Client as StompJsClient } from '@stomp/stompjs';
import { WebSocket, sleep } from '../../integration/lib/harness.mjs';
import { History } from './checker.mjs';
import { newUser, pool } from './util.mjs';

const RETRYABLE_DELAY = { 503: 200, 429: 1000 };
const HARD_FAIL = new Set([400, 404, 409, 413, 507]);

let msgCounter = 0;
function makeMsgId(content) {
  return crypto.createHash('sha1').update(`${content}${Date.now()}#${++msgCounter}#${Math.random()}`).digest('hex');
}

// Code points (not UTF-16 units): a lone surrogate is not UTF-8 (413).
const FILLER = Array.from('abcdefghijklmnopqrstuvwxyz0123456789 起来聊天😀"\\/\n\t<>&\'\u2028');
function makeContent(from, to, seq, [min, max]) {
  const head = `${from}>${to}#${seq} `;
  const n = min + Math.floor(Math.random() * Math.max(1, max - min));
  let s = head;
  while (Buffer.byteLength(s) < n) s += FILLER[Math.floor(Math.random() * FILLER.length)];
  return s;
}

const rnd = (a, b) => a + Math.random() * (b - a);

class LoadClient {
  constructor(driver, user, peer) {
    this.d = driver;
    this.h = driver.history;
    this.user = user;
    this.peer = peer;                 // the user this one sends to
    this.queue = [];                  // send records, unconfirmed, in order
    this.seq = 0;
    this.seen = new Set();            // dedupe: senderId:chatID
    this.rcvConfirmed = new Set();    // chatIDs whose recive answered 200
    this.toConfirm = new Map();       // chatID -> {conn, at} of its last recive, until 200
    this.syncKey = 0;
    this.conn = null;
    this.connects = 0;
    this.failedConnects = 0;
    this.nextConnectAt = 0;
    this.backoff = 50;
    this.credit = Math.random();
    this.stopped = false;
    this.dropped = [];                // {key, at, conn}
    this.probe = null;                // {resolve, count} of a last init
  }

  /* ---- connection --------------------------------------------------- */

  tick(now) {
    if (this.stopped) return;
    if (!this.conn && now >= this.nextConnectAt) this.connect();
    const c = this.conn;
    if (!c) return;
    if (c.state === 'connecting' && now > c.deadline) {
      this.h.notes.push(`${this.user.username}: connect to ${c.gwName} timed out`);
      this.drop(c, 'connect timeout');
      return;
    }
    if (c.state !== 'ready') return;
    if (c.catchup === 'done' && this.toConfirm.size && (this.lastReconfirm ?? 0) + 1000 < now) {
      this.lastReconfirm = now;
      this.reconfirm(c, now);
    }
    for (const [, list] of c.outstanding) {
      for (const a of list) {
        if (a.outcome === null && now > a.deadline) {
          a.outcome = 'timeout';
          a.rec.retryAt = now;
        }
      }
    }
    this.pump(now);
  }

  connect() {
    const gws = this.d.targets().filter((g) => g.alive);
    if (!gws.length) {
      this.nextConnectAt = Date.now() + 100;
      return;
    }
    const gw = gws[Math.floor(Math.random() * gws.length)];
    const id = `${this.user.username}#${++this.connects}`;
    const c = {
      id, gwName: `${gw.name}.${gw.generation}`, state: 'connecting', catchup: 'none',
      outstanding: new Map(), deadline: Date.now() + this.d.opts.connectTimeoutMs, client: null, ws: null,
      openedAt: Date.now(), closed: false,
    };
    this.conn = c;
    const url = `${gw.wsUrl('/client')}?srect=${encodeURIComponent(this.user.token)}`;
    const [hbOut, hbIn] = this.d.opts.heartbeat;
    const client = new StompJsClient({
      webSocketFactory: () => {
        c.ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
        c.ws.on('error', () => {});
        c.ws.on('unexpected-response', (req) => { req.destroy(); this.drop(c, 'handshake refused'); });
        return c.ws;
      },
      reconnectDelay: 0,
      heartbeatIncoming: hbIn,
      heartbeatOutgoing: hbOut,
      debug: () => {},
      onConnect: () => this.onConnected(c),
      onStompError: (f) => {
        this.h.notes.push(`${c.id}: ERROR ${f.headers.message} ${f.body}`.slice(0, 300));
        this.drop(c, 'ERROR frame');
      },
      onWebSocketClose: () => this.onClosed(c),
      onWebSocketError: () => {},
    });
    c.client = client;
    client.activate();
  }

  onConnected(c) {
    if (c.closed) return;
    const cl = c.client;
    const u = this.user;
    cl.subscribe(`/user/${u.username}/recive`, (m) => this.onChat(c, m), { id: 'recive' });
    cl.subscribe('/user/queue/send/status', (m) => this.onSendStatus(c, m), { id: 'send-status' });
    cl.subscribe('/user/queue/recive/status', (m) => this.onReciveStatus(c, m), { id: 'recive-status' });
    cl.subscribe('/user/queue/status', (m) => this.h.notes.push(`${c.id} status: ${m.body}`.slice(0, 300)), { id: 'status' });
    const receipt = `ready-${c.id}`;
    cl.watchForReceipt(receipt, () => {
      if (c.closed) return;
      c.state = 'ready';
      this.backoff = 50;
      this.d.connected++;
      c.catchup = 'init';
      this.publish(c, '/socket/chat/init', '');
      this.pump(Date.now());
    });
    cl.subscribe('/user/queue/init/status', (m) => this.onInitStatus(c, m), { id: 'init-status', receipt });
  }

  /** Drops the connection now (no DISCONNECT): a crash of this client. */
  drop(c, why) {
    if (c.closed) return;
    try { c.ws?.terminate(); } catch { /* gone */ }
    try { c.client.deactivate({ force: true }).catch(() => {}); } catch { /* ignore */ }
    this.onClosed(c, why);
  }

  onClosed(c, why = 'closed') {
    if (c.closed) return;
    c.closed = true;
    c.closedAt = Date.now();
    c.why = why;
    if (c.state !== 'ready') this.failedConnects++;
    c.state = 'closed';
    for (const [, list] of c.outstanding) {
      for (const a of list) if (a.outcome === null) a.outcome = 'lost';
    }
    c.outstanding.clear();
    for (const rec of this.queue) rec.retryAt = 0;
    if (this.probe && this.probe.conn === c) { this.probe.resolve(null); this.probe = null; }
    if (this.conn === c) {
      this.conn = null;
      this.nextConnectAt = Date.now() + rnd(this.backoff / 2, this.backoff);
      this.backoff = Math.min(2000, this.backoff * 2);
    }
    try { c.client.deactivate({ force: true }).catch(() => {}); } catch { /* ignore */ }
  }

  publish(c, destination, body) {
    try {
      c.client.publish({ destination, body: typeof body === 'string' ? body : JSON.stringify(body) });
      return true;
    } catch {
      this.drop(c, 'publish failed');
      return false;
    }
  }

  /* ---- sending ------------------------------------------------------- */

  enqueue() {
    const seq = ++this.seq;
    const content = makeContent(this.user.uid, this.peer.uid, seq, this.d.opts.contentBytes);
    const msgID = makeMsgId(content);
    const rec = this.h.addSend({ from: this.user.uid, fromName: this.user.username, to: this.peer.uid, msgID, content, seq });
    rec.retryAt = 0;
    this.queue.push(rec);
    this.d.bySendId.set(msgID, rec);
  }

  pump(now) {
    const c = this.conn;
    if (!c || c.state !== 'ready') return;
    const w = Math.min(this.d.opts.window, this.queue.length);
    for (let i = 0; i < w; i++) {
      const rec = this.queue[i];
      const list = c.outstanding.get(rec.msgID);
      const waiting = list && list.some((a) => a.outcome === null);
      if (waiting || now < rec.retryAt) continue;
      const a = this.h.addAttempt(rec, c.id, now);
      a.deadline = now + this.d.opts.sendTimeoutMs;
      a.rec = rec;
      if (list) list.push(a); else c.outstanding.set(rec.msgID, [a]);
      rec.retryAt = Infinity;
      if (!this.publish(c, '/socket/chat/send', { msgID: rec.msgID, reciverId: this.peer.uid, content: rec.content })) return;
    }
  }

  onSendStatus(c, m) {
    const now = Date.now();
    let j;
    try { j = JSON.parse(m.body); } catch { return; }
    const list = c.outstanding.get(j.msgID);
    const rec = this.d.bySendId.get(j.msgID);
    if (!rec || !list || !list.length) {
      this.h.notes.push(`${c.id}: unmatched send/status ${m.body}`.slice(0, 300));
      return;
    }
    const a = list.shift();
    if (!list.length) c.outstanding.delete(j.msgID);
    this.h.answer(rec, a, j, now);
    const head = this.queue.indexOf(rec);
    if (j.code === 200) {
      if (head >= 0) this.queue.splice(head, 1);
    } else if (HARD_FAIL.has(j.code)) {
      if (!rec.confirmed) {
        rec.failed = { code: j.code, at: now, content: j.content };
        if (head >= 0) this.queue.splice(head, 1);
      }
    } else if (head >= 0 && !(list.length && list.some((x) => x.outcome === null))) {
      rec.retryAt = now + (RETRYABLE_DELAY[j.code] ?? 500);
    }
    this.pump(now);
  }

  /* ---- receiving ----------------------------------------------------- */

  onChat(c, m) {
    const now = Date.now();
    let j;
    try { j = JSON.parse(m.body); } catch { j = {}; }
    const d = {
      rcv: this.user.uid, conn: c.id, at: now, chatID: j.chatID, id: j.id, sender: j.sender,
      senderId: j.senderId, reciverId: j.reciverId, content: j.content, time: j.time,
      redelivered: m.headers.redelivered === 'true', phase: c.catchup === 'done' ? 'live' : 'catchup',
    };
    this.h.addDelivery(d);
    if (Number.isSafeInteger(j.id) && j.id > this.syncKey) this.syncKey = j.id;
    const key = `${j.senderId}:${j.chatID}`;
    if (!this.seen.has(key)) {
      this.seen.add(key);
      this.h.addApp(this.user.uid, d);
      this.d.onAppDelivery(this, d);
    }
    const p = this.d.opts.dropBeforeConfirm;
    if (p > 0 && !this.stopped && this.d.generating && Math.random() < p) {
      this.dropped.push({ key, chatID: j.chatID, id: j.id, at: now, conn: c.id });
      this.drop(c, 'dropped before recive (fault)');
      return;
    }
    if (!this.rcvConfirmed.has(j.chatID) && !this.toConfirm.has(j.chatID)) this.toConfirm.set(j.chatID, { conn: null, at: 0 });
    const [r0, r1] = this.d.opts.renderMs;
    setTimeout(() => this.confirm(c, j.chatID), rnd(r0, r1));
  }

  /** /socket/chat/recive on c (if usable); remembered until answered 200. */
  confirm(c, chatID) {
    if (c.closed || c.state !== 'ready' || this.rcvConfirmed.has(chatID)) return;
    const t = this.toConfirm.get(chatID);
    if (t) { t.conn = c.id; t.at = Date.now(); }
    this.publish(c, '/socket/chat/recive', { msgID: chatID });
  }

  /** As web/app.js: confirmations not yet answered are sent again (after a
   * reconnect's catch-up, or 5 s without an answer); confirming twice is 200. */
  reconfirm(c, now) {
    for (const [chatID, t] of this.toConfirm) {
      if (t.conn !== c.id || now - t.at > 5000) this.confirm(c, chatID);
    }
  }

  onReciveStatus(c, m) {
    let j;
    try { j = JSON.parse(m.body); } catch { return; }
    if (j.code === 200) {
      this.rcvConfirmed.add(j.msgID);
      this.toConfirm.delete(j.msgID);
    } else this.h.notes.push(`${c.id}: recive/status ${m.body}`.slice(0, 300));
  }

  onInitStatus(c, m) {
    let j;
    try { j = JSON.parse(m.body); } catch { return; }
    if (this.probe && this.probe.conn === c && c.catchup === 'probe') {
      c.catchup = 'done';
      const p = this.probe;
      this.probe = null;
      p.resolve(j.count);
      return;
    }
    if (c.catchup === 'done') {
      // not asked for: the gateway re-read the pending inbox by itself
      // (session.c cg_session_resync, after a store outage)
      this.h.resyncs.push({ conn: c.id, at: Date.now(), count: j.count });
      return;
    }
    if (c.catchup === 'init') {
      c.catchup = 'sync';
      this.publish(c, '/socket/chat/sync', { syncKey: this.syncKey });
    } else if (c.catchup === 'sync') {
      if (Number.isSafeInteger(j.syncKey) && j.syncKey > this.syncKey) this.syncKey = j.syncKey;
      if (j.more) this.publish(c, '/socket/chat/sync', { syncKey: this.syncKey });
      else {
        c.catchup = 'done';
        this.reconfirm(c, Date.now());
      }
    }
  }

  /** One more init on the current connection: resolves its count (null if it closed). */
  async probeInit(timeout = 10000) {
    const c = this.conn;
    if (!c || c.state !== 'ready' || c.catchup !== 'done' || this.probe) return null;
    const p = new Promise((resolve) => { this.probe = { conn: c, resolve }; });
    c.catchup = 'probe';
    this.publish(c, '/socket/chat/init', '');
    let timer;
    const t = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeout); });
    const r = await Promise.race([p, t]);
    clearTimeout(timer);
    if (r === null && this.probe?.conn === c) { this.probe = null; if (c.catchup === 'probe') c.catchup = 'done'; }
    return r;
  }

  async close() {
    this.stopped = true;
    const c = this.conn;
    if (c) {
      try { await Promise.race([c.client.deactivate(), sleep(3000)]); } catch { /* ignore */ }
      this.drop(c, 'test end');
    }
  }
}

export class LoadDriver {
  /**
   * opts: name, pairs (20), rate (total messages/s, 100), window (1),
   * sendTimeoutMs (4000), connectTimeoutMs (8000), contentBytes ([24, 240]),
   * renderMs ([0, 15]), heartbeat ([10000, 10000]), dropBeforeConfirm (0),
   * targets: () => [Gateway] (the gateways clients may connect to),
   * users: prefix of user names.
   */
  constructor(env, opts = {}) {
    this.env = env;
    this.opts = {
      name: 'load', pairs: 20, rate: 100, window: 1, sendTimeoutMs: 4000, connectTimeoutMs: 8000,
      contentBytes: [24, 240], renderMs: [0, 15], heartbeat: [10000, 10000], dropBeforeConfirm: 0,
      targets: () => env.gateways, users: 'ld', ...opts,
    };
    this.targets = this.opts.targets;
    this.history = new History(this.opts.name);
    this.clients = [];
    this.bySendId = new Map();
    this.generating = false;
    this.connected = 0;
    this.appListeners = [];
    this.timer = null;
    env.track?.(this);                // torn down with the Env, also when a test fails
  }

  /** Env teardown (harness Env.closeClients). */
  terminate() { return this.close(); }

  /** Registers 2 x pairs users through gw and pairs them up. */
  async setup(gw = this.targets()[0]) {
    const n = this.opts.pairs * 2;
    const users = await pool(8, [...Array(n).keys()], (i) => newUser(gw, `${this.opts.users}${i}`));
    for (let i = 0; i < n; i += 2) {
      const a = users[i];
      const b = users[i + 1];
      this.clients.push(new LoadClient(this, a, b), new LoadClient(this, b, a));
    }
    return this;
  }

  onAppDelivery(client, d) {
    for (const f of this.appListeners) f(client, d);
  }

  /** Connects every client (bounded), then starts the tick loop and the generator. */
  async start({ generate = true, timeout = 30000 } = {}) {
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      const dt = (now - last) / 1000;
      last = now;
      if (this.generating) {
        const per = this.opts.rate / this.clients.length;
        for (const c of this.clients) {
          c.credit += per * dt;
          while (c.credit >= 1) { c.credit -= 1; c.enqueue(); }
        }
      }
      for (const c of this.clients) c.tick(now);
    }, 20);
    const end = Date.now() + timeout;
    while (this.clients.some((c) => !c.conn || c.conn.state !== 'ready' || c.conn.catchup !== 'done')) {
      if (Date.now() > end) {
        const bad = this.clients.filter((c) => !c.conn || c.conn.state !== 'ready').length;
        throw new Error(`load ${this.opts.name}: ${bad} of ${this.clients.length} clients not connected after ${timeout} ms; notes: ${this.history.notes.slice(-5).join(' | ')}`);
      }
      await sleep(50);
    }
    this.startedAt = Date.now();
    if (generate) this.generating = true;
    return this;
  }

  stopGenerating() {
    this.generating = false;
    this.stoppedAt = Date.now();
  }

  /** What still keeps drain() waiting (empty when drained). */
  pendingWork() {
    const w = { queued: 0, undelivered: 0, unconfirmedByReceiver: 0, down: 0, catchingUp: 0 };
    const byUid = new Map(this.clients.map((c) => [c.user.uid, c]));
    for (const c of this.clients) {
      w.queued += c.queue.length;
      if (!c.conn || c.conn.state !== 'ready') w.down++;
      else if (c.conn.catchup !== 'done') w.catchingUp++;
    }
    for (const s of this.history.sends.values()) {
      if (!s.confirmed) continue;
      const r = byUid.get(s.to);
      if (!r) continue;
      if (!r.seen.has(`${s.from}:${s.msgID}`)) w.undelivered++;
      else if (!r.rcvConfirmed.has(s.msgID)) w.unconfirmedByReceiver++;
    }
    return w;
  }

  /**
   * Waits (at most `timeout` ms) until nothing is queued, every confirmed
   * message reached its receiver's app and was confirmed there, and one
   * last init on every connection finds nothing pending.
   * Returns {ok, waitedMs, pending, leftovers}.
   */
  async drain({ timeout = 60000 } = {}) {
    const t0 = Date.now();
    const end = t0 + timeout;
    let w;
    for (;;) {
      w = this.pendingWork();
      const busy = w.queued + w.undelivered + w.unconfirmedByReceiver + w.down + w.catchingUp;
      if (busy === 0) {
        const counts = await Promise.all(this.clients.map((c) => c.probeInit()));
        if (counts.every((n) => n === 0)) return { ok: true, waitedMs: Date.now() - t0, pending: w, leftovers: 0 };
        w.leftovers = counts.filter((n) => n !== 0).length;
      }
      if (Date.now() > end) {
        return { ok: false, waitedMs: Date.now() - t0, pending: w, leftovers: w.leftovers ?? null };
      }
      await sleep(100);
    }
  }

  /** Stops the loop and closes every client. */
  async close() {
    this.generating = false;
    await Promise.all(this.clients.map((c) => c.close()));
    clearInterval(this.timer);
  }

  /** Writes the whole history as JSON lines (evidence for a failed check). */
  dump(file) {
    const h = this.history;
    const out = [];
    for (const s of h.sends.values()) out.push(JSON.stringify({ t: 'send', ...s, attempts: s.attempts.map(({ rec, ...a }) => a) }));
    for (const d of h.deliveries) out.push(JSON.stringify({ t: 'delivery', ...d }));
    for (const f of h.faults) out.push(JSON.stringify({ t: 'fault', ...f }));
    for (const n of h.notes) out.push(JSON.stringify({ t: 'note', n }));
    fs.writeFileSync(file, `${out.join('\n')}\n`);
    return file;
  }

  stats() {
    const c = this.clients;
    return {
      users: c.length,
      connects: c.reduce((n, x) => n + x.connects, 0),
      failedConnects: c.reduce((n, x) => n + x.failedConnects, 0),
      dropped: c.reduce((n, x) => n + x.dropped.length, 0),
    };
  }

  get loadLabel() {
    return `${this.opts.pairs} pairs, ${this.opts.rate} msg/s`;
  }
}
