// sockjs.mjs - SockJS helpers for the integration tests (issue #4), next to
// harness.mjs: real sockjs-client 1.x in node, the original Mimi page's
// code over it, @stomp/stompjs 7 over it, and raw HTTP / WebSocket tools
// for the protocol-level tests written from sockjs-protocol-0.3.3.
//
// sockjs-client in node. Its node build has four transports: websocket
// (faye-websocket), xhr-streaming and xhr-polling (its node XHR driver,
// the http module) and eventsource (the `eventsource` package). htmlfile,
// jsonp-polling and the iframe-* transports need a DOM and are disabled
// there; the protocol tests drive htmlfile and jsonp by hand.
//
// One substitution, and why: sockjs-client's node XHR driver writes a
// request body with req.write() + req.end(), so node sends it with
// `Transfer-Encoding: chunked`. libwebsockets 4.1.6 (the server's HTTP
// stack) cannot read chunked request bodies; the gateway now decodes them
// itself on xhr_send (sockjs_protocol.test.mjs), but closes the connection
// after each such send, which no browser would see. A
// browser's XMLHttpRequest always sends Content-Length; BrowserLikeXhr
// below is sockjs-client's own node driver changed only in that (the body
// goes with Content-Length, like a browser's), installed in the module
// cache before sockjs-client loads.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

import {
  WebSocket, ClassicStomp, Mailbox, MimiPage, StompSession, withTimeout,
} from './harness.mjs';

const require = createRequire(import.meta.url);

/* ------------------------------------------------------------------ */
/* sockjs-client, with a browser-like XHR driver                      */
/* ------------------------------------------------------------------ */

/** sockjs-client's lib/transport/driver/xhr.js, sending Content-Length. */
function BrowserLikeXhr(method, url, payload, opts) {
  EventEmitter.call(this);
  const u = new URL(url);
  const headers = { ...((opts && opts.headers) || {}) };
  let body;
  if (payload) {
    body = Buffer.from(payload, 'utf8');
    headers['Content-Length'] = String(body.length);
  }
  const proto = u.protocol === 'https:' ? https : http;
  this.req = proto.request({
    method,
    hostname: u.hostname.replace(/\[|\]/g, ''),
    port: u.port,
    path: u.pathname + u.search,
    headers,
  }, (res) => {
    res.setEncoding('utf8');
    let text = '';
    res.on('data', (chunk) => {
      text += chunk;
      this.emit('chunk', 200, text);
    });
    res.once('end', () => {
      this.emit('finish', res.statusCode, text);
      this.req = null;
    });
  });
  this.req.on('error', (e) => this.emit('finish', 0, e.message));
  this.req.end(body);
}
Object.setPrototypeOf(BrowserLikeXhr.prototype, EventEmitter.prototype);
BrowserLikeXhr.prototype.close = function close() {
  this.removeAllListeners();
  if (this.req) {
    this.req.destroy();
    this.req = null;
  }
};
BrowserLikeXhr.enabled = true;
BrowserLikeXhr.supportsCORS = true;

const driverPath = require.resolve('sockjs-client/lib/transport/driver/xhr.js');
if (!require.cache[driverPath]) {
  require.cache[driverPath] = { id: driverPath, filename: driverPath, loaded: true, exports: BrowserLikeXhr, children: [] };
}
export const SockJS = require('sockjs-client');

/** The transports sockjs-client 1.x offers in node (see the top). */
export const NODE_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

/** {base}/socketServer?srect=TOKEN, as the page builds it. */
export function sockjsUrl(gw, token) {
  return gw.url('/socketServer') + (token ? `?srect=${token}` : '');
}

/* ------------------------------------------------------------------ */
/* the original Mimi page over SockJS (stompjs 2.3.3, Stomp.over)       */
/* ------------------------------------------------------------------ */

/**
 * What the original page does, call for call (PROTOCOL.md appendix), with
 *   var sock = new SockJS(appUrl + "/socketServer?srect=" + token);
 * and one addition a page does not make: the transports whitelist, so a
 * test can force each transport in turn. Only the socket differs from
 * harness.mjs's MimiPage: the page's connect, its subscriptions, ready(),
 * send() and chat() are MimiPage's.
 */
export class SockJSPage extends MimiPage {
  constructor(gw, user, { transport, byUid = false, autoConfirm = true } = {}) {
    super(gw, user, { byUid, autoConfirm, label: 'sockjs page' });
    this.transport = transport;
  }

  open(timeout = 15000) {
    const uname = this.user.username;
    const token = this.user.token;
    const appUrl = this.gw.url('');
    const p = new Promise((resolve, reject) => {
      // --- the page's code -------------------------------------------
      const sock = new SockJS(appUrl + '/socketServer?srect=' + token, null,
        this.transport ? { transports: [this.transport] } : {});
      this.sock = sock;
      sock.addEventListener('close', (e) => {
        this.closeInfo = { code: e.code, reason: e.reason, at: Date.now() };
        this._onClosed(this.closeInfo);
        reject(new Error(`SockJS closed before CONNECTED: ${e.code} ${e.reason}`));
      });
      const stomp = ClassicStomp.over(sock);
      stomp.debug = null;
      this._pageConnect(stomp, uname, resolve, reject);
      // ------------------------------------------------------------------
    });
    return withTimeout(p, timeout, `SockJS page over ${this.transport}`);
  }

  /** The transport sockjs-client ended up using. */
  get transportUsed() { return this.sock?.transport; }

  /** The page's stomp.disconnect(): DISCONNECT, then close the SockJS. */
  async close() {
    if (this.closeInfo) return;
    this.stomp.disconnect(() => {});
    await withTimeout(this.closed, 5000, 'page close').catch(() => {});
  }

  async terminate() {
    if (this.closeInfo) return;
    try { this.stomp._cleanUp(); } catch { /* ignore */ }
    try { this.sock.close(); } catch { /* ignore */ }
    await withTimeout(this.closed, 3000, 'terminate').catch(() => {});
  }
}

/* ------------------------------------------------------------------ */
/* @stomp/stompjs 7 over SockJS                                        */
/* ------------------------------------------------------------------ */

/**
 * harness.mjs's StompSession with `webSocketFactory: () => new SockJS(url)`
 * instead of a ws WebSocket (opts.transport forces one transport). All of
 * StompSession's helpers (chat, confirm, init, mailboxes) work unchanged.
 */
export class SockJSStompSession extends StompSession {
  _transport() {
    const o = this.opts;
    const url = sockjsUrl(this.gw, this.user?.token);
    const factory = () => {
      this.ws = new SockJS(url, null, o.transport ? { transports: [o.transport] } : {});
      return this.ws;
    };
    return { factory, connectHeaders: { ...(o.connectHeaders || {}) } };
  }

  connect() {
    return withTimeout(super.connect(), 15000,
      `@stomp/stompjs over SockJS ${this.opts.transport || ''}`);
  }
}

/** Connects a SockJSStompSession and tracks it in the Env for teardown. */
export async function sockjsStomp(gw, user, opts = {}) {
  const s = new SockJSStompSession(gw, user, opts);
  gw.env.track(s);
  await s.connect();
  return s;
}

/** Opens a SockJSPage and tracks it in the Env for teardown. */
export async function sockjsPage(gw, user, opts = {}) {
  const p = new SockJSPage(gw, user, opts);
  gw.env.track(p);
  await p.open();
  return p;
}

/* ------------------------------------------------------------------ */
/* raw HTTP and WebSocket, for the protocol tests                      */
/* ------------------------------------------------------------------ */

/** A fresh session URL part: /{server}/{session}. */
export function sessionPath(server = '000') {
  return `/${server}/${crypto.randomBytes(6).toString('hex')}`;
}

/**
 * One request, the whole answer: {status, headers, text}. Bodies are sent
 * with Content-Length (like a browser); opts.chunked sends the body with
 * Transfer-Encoding: chunked instead.
 */
export function request(url, { method = 'GET', headers = {}, body, chunked = false, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    if (buf !== undefined && !chunked && h['Content-Length'] === undefined) h['Content-Length'] = String(buf.length);
    const req = http.request(url, { method, headers: h, agent: false, timeout });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', () => {});
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    if (buf !== undefined && chunked) { req.write(buf); req.end(); } else req.end(buf);
  });
}

export const post = (url, body, headers = {}) => request(url, { method: 'POST', body, headers });

/**
 * A long-lived response read as it arrives (xhr_streaming, eventsource,
 * htmlfile, a held xhr poll). Each 'data' event is one item in `chunks`;
 * `text` is everything so far; waitText(re) waits until the text matches.
 */
export class HttpStream {
  constructor(url, { method = 'POST', headers = {} } = {}) {
    this.url = url;
    this.text = '';
    this.chunks = new Mailbox(`stream ${url}`);
    this.endedAt = null;
    this.ended = new Promise((resolve) => { this._onEnd = resolve; });
    this.response = new Promise((resolve, reject) => {
      this.req = http.request(url, { method, headers, agent: false });
      this.req.on('response', (res) => {
        this.status = res.statusCode;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (c) => { this.text += c; this.chunks.push(c); });
        res.on('error', () => {});
        res.on('close', () => { this.endedAt = Date.now(); this._onEnd(this.text); });
        resolve(res);
      });
      this.req.on('error', (e) => { this.endedAt = Date.now(); this._onEnd(this.text); reject(e); });
      this.req.end();
    });
    this.response.catch(() => {});     // abort() is expected; see ended
  }

  /** Waits until the whole text so far matches re (or pred(text)). */
  async waitText(re, timeout = 5000) {
    const test = typeof re === 'function' ? re : (t) => re.test(t);
    const end = Date.now() + timeout;
    while (!test(this.text)) {
      if (this.endedAt) throw new Error(`stream ${this.url} ended; text: ${JSON.stringify(this.text.slice(-300))}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re} on ${this.url}; text: ${JSON.stringify(this.text.slice(-300))}`);
      await this.chunks.waitFor(() => true, left, { since: this.chunks.items.length }).catch(() => {});
    }
    return this.text;
  }

  /** Drops the connection (a client that vanishes). */
  abort() { this.req.destroy(); }
}

/**
 * A raw HTTP exchange on a fresh TCP connection: writes `head` (and body),
 * reads until the server closes or `until(buf)` says enough. Used for
 * HTTP/1.0 and for looking at the exact bytes (chunked framing).
 */
export function rawHttp(port, head, { body = '', until = null, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let closed = false;
    const timer = setTimeout(() => { sock.destroy(); resolve({ buf, closed: false, timedOut: true }); }, timeout);
    sock.on('connect', () => sock.write(head + body));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (until && until(buf)) { clearTimeout(timer); sock.destroy(); resolve({ buf, closed: false }); }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => { closed = true; clearTimeout(timer); resolve({ buf, closed }); });
  });
}

/** Splits a raw HTTP/1.1 response into status line, headers and body. */
export function splitHead(buf) {
  const s = buf.toString('latin1');
  const i = s.indexOf('\r\n\r\n');
  const lines = s.slice(0, i).split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const k = l.slice(0, l.indexOf(':')).trim().toLowerCase();
    headers[k] = l.slice(l.indexOf(':') + 1).trim();
  }
  return { statusLine: lines[0], headers, body: buf.subarray(Buffer.byteLength(s.slice(0, i + 4), 'latin1')) };
}

/** Decodes an HTTP/1.1 chunked body: {chunks: [Buffer], complete}. */
export function dechunk(body) {
  const chunks = [];
  let pos = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', pos);
    if (eol < 0) return { chunks, complete: false };
    const n = parseInt(body.subarray(pos, eol).toString('latin1'), 16);
    if (Number.isNaN(n)) throw new Error(`bad chunk size at ${pos}`);
    if (n === 0) return { chunks, complete: true };
    if (body.length < eol + 2 + n + 2) return { chunks, complete: false };
    chunks.push(body.subarray(eol + 2, eol + 2 + n));
    pos = eol + 2 + n + 2;
  }
}

/**
 * A WebSocket to a SockJS URL; every message goes to `messages`.
 * Rejects with {status} when the upgrade is refused.
 */
export function wsOpen(url, { origin, protocols = [], headers = {} } = {}) {
  const h = { ...headers };
  if (origin !== undefined) h.Origin = origin;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers: h, perMessageDeflate: false });
    ws.messages = new Mailbox(`ws ${url}`);
    ws.closeInfo = null;
    ws.closed = new Promise((r) => { ws._onClosed = r; });
    ws.on('unexpected-response', (req, res) => {
      reject(Object.assign(new Error(`upgrade refused: HTTP ${res.statusCode}`), { status: res.statusCode }));
      req.destroy();
    });
    ws.on('error', (e) => reject(e));
    ws.on('message', (d) => ws.messages.push(d.toString('utf8')));
    ws.on('close', (code, reason) => {
      ws.closeInfo = { code, reason: reason.toString() };
      ws._onClosed(ws.closeInfo);
    });
    ws.on('open', () => resolve(ws));
  });
}

/** STOMP CONNECT as a SockJS message payload (a JSON array of one string). */
export function stompFrame(command, headers = {}, body = '') {
  let s = command + '\n';
  for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
  return s + '\n' + body + '\0';
}

/** Reads "chatgate_sessions N" and the connections gauges from /metrics. */
export async function metrics(gw) {
  const r = await request(gw.metricsUrl());
  const out = { sessions: null, connections: {}, text: r.text };
  for (const line of r.text.split('\n')) {
    let m = /^chatgate_sessions (\d+)/.exec(line);
    if (m) out.sessions = Number(m[1]);
    m = /^chatgate_connections\{transport="([^"]+)"\} (\d+)/.exec(line);
    if (m) out.connections[m[1]] = Number(m[2]);
  }
  return out;
}
