// SockJS 0.3.3 conformance at the wire (issue #4, PROTOCOL.md section 2),
// raw HTTP and WebSocket against the real binary. Each group follows a
// class of sockjs-protocol-0.3.3.py (the executable spec) where it applies
// to a STOMP gateway: there is no echo service here, so what the spec
// checks with echoed messages is checked with STOMP answers (CONNECTED,
// RECEIPT, ERROR) and chat messages.
//
// Gateways (all on one Redis):
//   main   --sockjs-heartbeat-ms 500 --sockjs-disconnect-ms 1000
//          --sockjs-stream-bytes 4096 (the spec's test-server limit)
//   jsonp  the same with --sockjs-jsonp true
//   stop   defaults; stopped with SIGTERM by the shutdown test
//
// ASSUMPTIONS (where the spec leaves room or does not apply):
// - A refused Origin on /info and OPTIONS gets an answer without any
//   Access-Control-Allow-Origin (never reflected); on session transports
//   it is 403. No Origin gets "*"; "null" is an origin like any other (not
//   in the default allow-list, so 403).
// - /iframe.html is 404: only iframe-based transports need it, and it
//   would load sockjs.js from a CDN into our origin (see sockjs_route.c).
// - A poll whose client vanished is noticed when the next frame or
//   heartbeat is written, or when the next receiving request of its
//   session arrives, not at once (lws 4.1 does not read mid-request).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  useEnv, until, sleep, withTimeout, httpRequest, loopbackAddress,
} from './lib/harness.mjs';
import {
  request, post, HttpStream, rawHttp, splitHead, dechunk, wsOpen, stompFrame, sessionPath,
} from './lib/sockjs.mjs';

const T = { timeout: 30000 };
const NO_CACHE = 'no-store, no-cache, must-revalidate, max-age=0';
const GOOD_ORIGIN = 'http://localhost:3000';   // loopback: in the default allow-list
const BAD_ORIGIN = 'http://evil.example';
const GO_AWAY = 'c[3000,"Go away!"]';
const ANOTHER = 'c[2010,"Another connection still open"]';
const PRELUDE = 'h'.repeat(2048) + '\n';

const ct = (r) => (r.headers['content-type'] || '').replace(/ /g, '');

const CONNECT = stompFrame('CONNECT', { 'accept-version': '1.2', host: 'x', 'heart-beat': '0,0' });

/** The STOMP frames of an a[...] frame (null for o, h, c). */
function aFrames(frame) {
  return frame.startsWith('a[') ? JSON.parse(frame.slice(1)) : null;
}

/** An xhr-polling client by hand: /{server}/{session}/xhr and xhr_send. */
class Xhr {
  constructor(gw, { token, sp = sessionPath(), headers = {} } = {}) {
    this.base = gw.url('/socketServer') + sp;
    this.q = token ? `?srect=${encodeURIComponent(token)}` : '';
    this.headers = headers;
  }

  async poll() {
    const r = await request(`${this.base}/xhr${this.q}`, { method: 'POST', headers: this.headers });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.text.endsWith('\n'), JSON.stringify(r.text));
    return r.text.slice(0, -1);
  }

  /** Polls until a frame other than h arrives. */
  async next(timeout = 8000) {
    const end = Date.now() + timeout;
    for (;;) {
      const f = await this.poll();
      if (f !== 'h') return f;
      if (Date.now() > end) throw new Error('only heartbeats');
    }
  }

  /** Polls until a STOMP frame matching re arrives; returns it. */
  async stomp(re, timeout = 8000) {
    const end = Date.now() + timeout;
    for (;;) {
      const f = await this.next(timeout);
      const fr = aFrames(f);
      assert.ok(fr, `expected a[...], got ${f}`);
      const hit = fr.find((x) => re.test(x));
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`no frame matching ${re}`);
    }
  }

  send(frames, headers = {}) {
    return request(`${this.base}/xhr_send${this.q}`, {
      method: 'POST', body: JSON.stringify(frames), headers: { ...this.headers, ...headers },
    });
  }

  sendRaw(body, headers = {}) {
    return request(`${this.base}/xhr_send${this.q}`, { method: 'POST', body, headers: { ...this.headers, ...headers } });
  }

  /** o, CONNECT, CONNECTED. */
  async open() {
    assert.equal(await this.poll(), 'o');
    assert.equal((await this.send([CONNECT])).status, 204);
    return this.stomp(/^CONNECTED\n/);
  }
}

describe('SockJS 0.3.3 protocol', () => {
  const h = useEnv('sockjs_protocol', {
    gatewayArgs: ['--sockjs-heartbeat-ms', '500', '--sockjs-disconnect-ms', '1000',
      '--sockjs-stream-bytes', '4096'],
  });
  let gw, jp, user, base;
  before(async () => {
    gw = h.env.gw;
    jp = await h.env.startGateway(['--sockjs-jsonp', 'true', '--sockjs-heartbeat-ms', '500',
      '--sockjs-disconnect-ms', '1000', '--sockjs-stream-bytes', '4096'], { name: 'jsonp' });
    user = await gw.newUser('sj');
    base = gw.url('/socketServer');
  });

  /* ---------------------------------------------------------------- */
  describe('greeting and static URLs', () => {
    it('the base URL with and without a slash greets', T, async () => {
      for (const u of [base, `${base}/`]) {
        const r = await request(u);
        assert.equal(r.status, 200);
        assert.equal(ct(r), 'text/plain;charset=UTF-8');
        assert.equal(r.text, 'Welcome to SockJS!\n');
        assert.equal(r.headers['set-cookie'], undefined);
      }
    });

    it('other simple URLs are 404', T, async () => {
      // '//' and '///' too (sockjs-protocol-0.3.3 test_notFound): lws
      // folds them into '/', the greeting, unless the gateway saw the raw
      // path (a connection's first request: PROTOCOL.md section 1.2).
      for (const s of ['/a', '/a.html', '//', '///', '/a/a', '/a/a/', '/a/', '/iframe.html', '/iframe-1.0.html',
        '/info/', '/websocketx', '//info', '/a//xhr']) {
        assert.equal((await request(base + s)).status, 404, s);
      }
    });

    it('session URLs need non-empty ids without dots, and exactly three parts', T, async () => {
      for (const s of ['/a./a', '/a/a.', '/./.', '/a', '/a/b/c']) {
        assert.equal((await request(`${base}${s}/xhr`)).status, 404, `GET ${s}/xhr`);
        assert.equal((await post(`${base}${s}/xhr`, '')).status, 404, `POST ${s}/xhr`);
      }
    });

    it('any other server and session id is accepted', T, async () => {
      for (const s of ['/a/a', '/_/_', '/1/1', '/abcdefgh_i-j/abcdefg_i-j']) {
        const r = await post(`${base}${s}${Math.random().toString(36).slice(2, 6)}/xhr`, '');
        assert.equal(r.status, 200, s);
        assert.equal(r.text, 'o\n');
      }
    });
  });

  /* ---------------------------------------------------------------- */
  describe('/info', () => {
    it('answers capabilities, uncached, with entropy', T, async () => {
      const r = await request(`${base}/info`);
      assert.equal(r.status, 200);
      assert.equal(ct(r), 'application/json;charset=UTF-8');
      assert.equal(r.headers['cache-control'], NO_CACHE);
      assert.equal(r.headers.expires, undefined);
      assert.equal(r.headers['last-modified'], undefined);
      assert.equal(r.headers['set-cookie'], undefined);
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-credentials'], undefined);
      const j = JSON.parse(r.text);
      assert.equal(j.websocket, true);
      assert.equal(j.cookie_needed, false);
      assert.deepEqual(j.origins, ['*:*']);
      assert.ok(Number.isInteger(j.entropy) && j.entropy >= 0 && j.entropy < 2 ** 32);
      const j2 = JSON.parse((await request(`${base}/info`)).text);
      assert.notEqual(j2.entropy, j.entropy);
    });

    it('reflects an allowed Origin with credentials, never a refused one', T, async () => {
      let r = await request(`${base}/info`, { headers: { Origin: GOOD_ORIGIN } });
      assert.equal(r.headers['access-control-allow-origin'], GOOD_ORIGIN);
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      for (const o of [BAD_ORIGIN, 'null', 'http://localhost:3000.evil.example']) {
        r = await request(`${base}/info`, { headers: { Origin: o } });
        assert.equal(r.status, 200);
        assert.equal(r.headers['access-control-allow-origin'], undefined, o);
        assert.equal(r.headers['access-control-allow-credentials'], undefined, o);
      }
    });

    it('OPTIONS is a cacheable preflight for OPTIONS, GET', T, async () => {
      const r = await request(`${base}/info`, {
        method: 'OPTIONS',
        headers: { Origin: GOOD_ORIGIN, 'Access-Control-Request-Method': 'GET' },
      });
      assert.ok(r.status === 204 || r.status === 200);
      assert.match(r.headers['cache-control'], /public/);
      assert.match(r.headers['cache-control'], /max-age=[1-9][0-9]{6}/);
      assert.ok(r.headers.expires);
      assert.ok(Number(r.headers['access-control-max-age']) > 1000000);
      for (const m of ['OPTIONS', 'GET']) assert.ok(r.headers['access-control-allow-methods'].includes(m));
      assert.equal(r.text, '');
      assert.equal(r.headers['access-control-allow-origin'], GOOD_ORIGIN);
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      const bad = await request(`${base}/info`, { method: 'OPTIONS', headers: { Origin: BAD_ORIGIN } });
      assert.equal(bad.headers['access-control-allow-origin'], undefined);
    });
  });

  /* ---------------------------------------------------------------- */
  describe('xhr polling', () => {
    it('open, send, poll: framing, content types, CORS, no caching', T, async () => {
      const sp = sessionPath();
      const u = `${base}${sp}`;
      const q = `?srect=${user.token}`;
      let r = await request(`${u}/xhr${q}`, { method: 'POST', headers: { Origin: GOOD_ORIGIN } });
      assert.equal(r.status, 200);
      assert.equal(r.text, 'o\n');
      assert.equal(ct(r), 'application/javascript;charset=UTF-8');
      assert.equal(r.headers['access-control-allow-origin'], GOOD_ORIGIN);
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      assert.equal(r.headers['cache-control'], NO_CACHE);
      assert.equal(r.headers['set-cookie'], undefined);

      r = await request(`${u}/xhr_send${q}`, { method: 'POST', body: JSON.stringify([CONNECT]), headers: { Origin: GOOD_ORIGIN } });
      assert.equal(r.status, 204);
      assert.equal(r.text, '');
      assert.equal(ct(r), 'text/plain;charset=UTF-8');
      assert.equal(r.headers['access-control-allow-origin'], GOOD_ORIGIN);
      assert.equal(r.headers['cache-control'], NO_CACHE);

      r = await request(`${u}/xhr${q}`, { method: 'POST' });
      assert.equal(r.headers['access-control-allow-origin'], '*', 'no Origin: *');
      const fr = aFrames(r.text.trim());
      assert.ok(fr && fr[0].startsWith('CONNECTED\n'), r.text);
      assert.match(fr[0], /\nuser-name:sj_/);
      assert.ok(fr[0].endsWith('\0'));
    });

    it('the token of the base URL is accepted on the transport URL (no CONNECT credentials)', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      const connected = await c.open();
      assert.match(connected, new RegExp(`user-name:${user.username}`));
    });

    it('xhr_send to an unknown session is 404', T, async () => {
      const r = await post(`${base}${sessionPath()}/xhr_send`, '["x"]');
      assert.equal(r.status, 404);
    });

    it('payload errors: 500 with the exact texts, and the session lives on', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      assert.equal(await c.poll(), 'o');
      let r = await c.sendRaw('["x');
      assert.equal(r.status, 500);
      assert.equal(r.text, 'Broken JSON encoding.');
      r = await c.sendRaw('');
      assert.equal(r.status, 500);
      assert.equal(r.text, 'Payload expected.');
      for (const bad of ['[1]', '{"a":"b"}', '["a"]x', '["\\x"]', '["a\nb"]']) {
        r = await c.sendRaw(bad);
        assert.equal(r.status, 500, bad);
        assert.equal(r.text, 'Broken JSON encoding.', bad);
      }
      r = await c.send([CONNECT]);
      assert.equal(r.status, 204);
      await c.stomp(/^CONNECTED\n/);
    });

    it('any request Content-Type is accepted; several messages reach the session in order', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      const types = ['text/plain', 'T', 'application/json', 'application/xml', '',
        'application/json; charset=utf-8', 'text/xml; charset=utf-8', 'text/xml'];
      let i = 0;
      for (const t of types) {
        const r = await c.send([stompFrame('SUBSCRIBE', { id: `s${i}`, destination: '/user/queue/status', receipt: `r${i}` })],
          { 'Content-Type': t });
        assert.equal(r.status, 204, `Content-Type ${t}`);
        i++;
      }
      const got = [];
      while (got.length < types.length) {
        const fr = aFrames(await c.next());
        for (const f of fr) got.push(/receipt-id:(r\d+)/.exec(f)[1]);
      }
      assert.deepEqual(got, types.map((_, k) => `r${k}`));
    });

    it('a chunked xhr_send body is decoded (sockjs-client from Node sends one), strictly', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      const sub = JSON.stringify([stompFrame('SUBSCRIBE', { id: 'ch', destination: '/user/queue/status', receipt: 'chunked' })]);
      let r = await request(`${c.base}/xhr_send${c.q}`, { method: 'POST', body: sub, chunked: true });
      assert.equal(r.status, 204, r.text);
      assert.equal(r.headers.connection, 'close');
      await c.stomp(/receipt-id:chunked/);
      // by hand: several chunks, upper-case hex, leading zeros
      const url = new URL(`${c.base}/xhr_send${c.q}`);
      const head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n`;
      const body = JSON.stringify([stompFrame('SUBSCRIBE', { id: 'c2', destination: '/user/queue/status', receipt: 'two' })]);
      const a = body.slice(0, 20), b = body.slice(20);
      let raw = await rawHttp(gw.port, head, {
        body: `${Buffer.byteLength(a).toString(16).toUpperCase()}\r\n${a}\r\n00${Buffer.byteLength(b).toString(16)}\r\n${b}\r\n0\r\n\r\n` });
      assert.match(splitHead(raw.buf).statusLine, /^HTTP\/1\.1 204 /);
      await c.stomp(/receipt-id:two/);
      // broken framing: 400; over 1 MiB: 413; both closed
      for (const [bad, status] of [['5\r\n["x"]\n0\r\n\r\n', 400], ['5;x=y\r\n["x"]\r\n0\r\n\r\n', 400],
        ['zz\r\n', 400], ['0\r\nTrailer: x\r\n\r\n', 400], [`100001\r\n${'x'.repeat(64)}`, 413]]) {
        raw = await rawHttp(gw.port, head, { body: bad });
        const sh = splitHead(raw.buf);
        assert.match(sh.statusLine, new RegExp(`^HTTP/1\\.1 ${status} `), JSON.stringify(bad));
        assert.equal(sh.headers.connection, 'close');
        assert.ok(raw.closed, 'closed');
      }
      // Transfer-Encoding together with Content-Length, or on a poll: 411 as before
      raw = await rawHttp(gw.port, head.replace('\r\n\r\n', '\r\nContent-Length: 12\r\n\r\n'), { body: '5\r\n["x"]\r\n0\r\n\r\n' });
      assert.match(splitHead(raw.buf).statusLine, /^HTTP\/1\.1 411 /);
      r = await request(`${c.base}/xhr${c.q}`, { method: 'POST', body: '', chunked: true });
      assert.equal(r.status, 411);
    });

    it('an xhr_send body over 1 MiB is 413, answered from the headers alone', T, async () => {
      // The gateway refuses on the declared length, before reading any of
      // the body, and then closes the connection (http_api.test.mjs
      // "HTTP framing"). So the client here waits for that answer instead
      // of writing the 1 MiB first: a client still writing when the
      // server closes may see EPIPE or a reset instead of the answer.
      const c = new Xhr(gw);
      assert.equal(await c.poll(), 'o');
      const body = `["${'x'.repeat(1024 * 1024)}"]`;
      const url = new URL(`${c.base}/xhr_send`);
      const head = `POST ${url.pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
      const r = await rawHttp(gw.port, head, { timeout: 5000 });
      assert.ok(!r.timedOut, 'answered without the body');
      const { statusLine, headers } = splitHead(r.buf);
      assert.match(statusLine, /^HTTP\/1\.1 413 /);
      assert.equal(headers.connection, 'close');
      assert.ok(r.closed, 'and the connection is closed');
    });

    it('a second concurrent poll gets c[2010] and ends; the first goes on', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      const first = request(`${c.base}/xhr${c.q}`, { method: 'POST' });
      await sleep(100);
      const r2 = await post(`${c.base}/xhr${c.q}`, '');
      assert.equal(r2.status, 200);
      assert.equal(r2.text, `${ANOTHER}\n`);
      const r1 = await first;
      assert.equal(r1.text, 'h\n', 'the first poll is still the receiver');
    });

    it('after a client aborts its poll or stream, the next receiver gets c[1002], not c[2010]', T, async () => {
      // default heartbeat (25 s): nothing is written to the aborted
      // receiver before the next one arrives
      const g = await h.env.startGateway([], { name: 'abort' });
      const u = await g.newUser('ab');
      for (const t of ['xhr', 'xhr_streaming']) {
        const c = new Xhr(g, { token: u.token });
        await c.open();
        const held = new HttpStream(`${c.base}/${t}${c.q}`);
        if (t === 'xhr') await sleep(200); else await held.waitText(/^h{2048}\n$/);
        held.abort();
        await sleep(200);
        const r = await request(`${c.base}/xhr${c.q}`, { method: 'POST' });
        assert.equal(r.status, 200);
        assert.notEqual(r.text, `${ANOTHER}\n`, `${t}: the aborted receiver still holds the session`);
        assert.equal(r.text, 'c[1002,"Connection interrupted"]\n', t);
      }
      await h.env.stopGateway(g);
    });

    it('an open poll gets a heartbeat h every sockjs_heartbeat_ms (500 ms here)', T, async () => {
      const c = new Xhr(gw);
      assert.equal(await c.poll(), 'o');
      const t0 = Date.now();
      assert.equal(await c.poll(), 'h');
      const dt = Date.now() - t0;
      assert.ok(dt >= 300 && dt < 3000, `heartbeat after ${dt} ms`);
    });

    it('a session without a poll ends after sockjs_disconnect_ms (1000 ms here)', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      await sleep(1600);
      assert.equal((await c.send(['x'])).status, 404, 'the session is gone');
      assert.equal(await c.poll(), 'o', 'the id starts a new session');
    });

    it('frames queued while no poll is open come in one a[...] with the next poll', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      // three receipts, answered while no poll is open
      const frames = [0, 1, 2].map((k) => stompFrame('SUBSCRIBE', { id: `q${k}`, destination: '/user/queue/status', receipt: `q${k}` }));
      assert.equal((await c.send(frames)).status, 204);
      await sleep(200);
      const fr = aFrames(await c.next());
      assert.equal(fr.length, 3, JSON.stringify(fr));
    });
  });

  /* ---------------------------------------------------------------- */
  describe('closing', () => {
    it('after DISCONNECT and its RECEIPT: c[3000,"Go away!"], to every later poll, until reaped', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      assert.equal((await c.send([stompFrame('DISCONNECT', { receipt: 'bye' })])).status, 204);
      await c.stomp(/^RECEIPT\nreceipt-id:bye/);
      assert.equal(await c.poll(), GO_AWAY);
      assert.equal(await c.poll(), GO_AWAY);
      assert.equal((await c.send(['x'])).status, 204, 'a closed session drops what it is sent');
      await sleep(1600);
      assert.equal(await c.poll(), 'o', 'reaped: the id is new again');
    });

    it('after an ERROR frame: c[3000,"Go away!"]', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      await c.send([stompFrame('NOSUCHCOMMAND')]);
      await c.stomp(/^ERROR\n/);
      assert.equal(await c.poll(), GO_AWAY);
    });

    it('a CONNECT without a valid token answers ERROR, then c[3000]', T, async () => {
      const c = new Xhr(gw);
      assert.equal(await c.poll(), 'o');
      await c.send([CONNECT]);
      const err = await c.stomp(/^ERROR\n/);
      assert.match(err, /401/);
      assert.equal(await c.poll(), GO_AWAY);
    });

    it('streaming: the closing stream ends with c[3000]; a new one gets prelude, c[3000], end', T, async () => {
      const sp = sessionPath();
      const s1 = new HttpStream(`${base}${sp}/xhr_streaming?srect=${user.token}`);
      await s1.waitText(/^h{2048}\no\n$/);
      await post(`${base}${sp}/xhr_send?srect=${user.token}`, JSON.stringify([CONNECT]));
      await s1.waitText(/a\["CONNECTED/);
      await post(`${base}${sp}/xhr_send?srect=${user.token}`, JSON.stringify([stompFrame('DISCONNECT', { receipt: 'x' })]));
      await s1.waitText(/c\[3000,"Go away!"\]\n$/);
      await withTimeout(s1.ended, 3000, 'first stream ends');
      const s2 = new HttpStream(`${base}${sp}/xhr_streaming?srect=${user.token}`);
      await withTimeout(s2.ended, 3000, 'second stream ends');
      assert.equal(s2.text, `${PRELUDE}${GO_AWAY}\n`);
    });

    it('a second streaming receiver gets the prelude and c[2010], and ends', T, async () => {
      const sp = sessionPath();
      const s1 = new HttpStream(`${base}${sp}/xhr_streaming`);
      await s1.waitText(/o\n$/);
      const s2 = new HttpStream(`${base}${sp}/xhr_streaming`);
      await withTimeout(s2.ended, 3000, 'second stream ends');
      assert.equal(s2.text, `${PRELUDE}${ANOTHER}\n`);
      assert.equal(s1.endedAt, null, 'the first stream goes on');
      s1.abort();
    });

    it('at SIGTERM an open stream gets c[3000,"Go away!"] and the gateway exits 0', T, async () => {
      const g = await h.env.startGateway([], { name: 'stop' });
      const u = await g.newUser('stop');
      const sp = sessionPath();
      const b = g.url('/socketServer');
      const s = new HttpStream(`${b}${sp}/xhr_streaming?srect=${u.token}`);
      await s.waitText(/o\n$/);
      await post(`${b}${sp}/xhr_send?srect=${u.token}`, JSON.stringify([CONNECT]));
      await s.waitText(/a\["CONNECTED/);
      const ws = await wsOpen(g.wsUrl(`/socketServer${sessionPath()}/websocket?srect=${u.token}`));
      await ws.messages.waitFor((m) => m === 'o');
      ws.send(JSON.stringify([CONNECT]));
      await ws.messages.waitFor((m) => m.startsWith('a["CONNECTED'));
      const stopped = h.env.stopGateway(g);
      await s.waitText(/c\[3000,"Go away!"\]\n$/, 10000);
      await ws.messages.waitFor((m) => m === GO_AWAY, 10000, { what: 'the websocket close frame' });
      await stopped;
    });
  });

  /* ---------------------------------------------------------------- */
  describe('xhr_streaming and eventsource', () => {
    it('xhr_streaming: headers, 2 KiB prelude, o, frames each ending in \\n', T, async () => {
      const sp = sessionPath();
      const s = new HttpStream(`${base}${sp}/xhr_streaming?srect=${user.token}`, { headers: { Origin: GOOD_ORIGIN } });
      await s.response;
      assert.equal(s.status, 200);
      assert.equal(ct(s), 'application/javascript;charset=UTF-8');
      assert.equal(s.headers['cache-control'], NO_CACHE);
      assert.equal(s.headers['access-control-allow-origin'], GOOD_ORIGIN);
      assert.equal(s.headers['content-length'], undefined);
      await s.waitText((t) => t.length >= 2051);
      assert.equal(s.text.slice(0, 2049), PRELUDE);
      assert.equal(s.text.slice(2049), 'o\n');
      assert.equal((await post(`${base}${sp}/xhr_send?srect=${user.token}`, JSON.stringify([CONNECT]))).status, 204);
      await s.waitText(/o\na\["CONNECTED[^\n]*"\]\n$/);
      await s.waitText(/\nh\n$/, 3000);   // heartbeats on the stream too
      s.abort();
    });

    it('xhr_streaming: the response is closed after sockjs_stream_bytes (4096 here)', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      const s = new HttpStream(`${c.base}/xhr_streaming${c.q}`);
      await s.waitText(/o\n$/);
      await c.send([CONNECT]);
      await s.waitText(/CONNECTED/);
      // RECEIPTs with 600-byte ids: ~640 bytes of frames each.
      for (let k = 0; k < 8 && !s.endedAt; k++) {
        await c.send([stompFrame('SUBSCRIBE', { id: `l${k}`, destination: '/user/queue/status', receipt: `${k}`.padEnd(600, 'x') })]);
        await sleep(30);
      }
      await withTimeout(s.ended, 3000, 'stream closed at the limit');
      const body = s.text.slice(2049);
      assert.ok(body.length >= 4096 && body.length < 4096 + 800, `streamed ${body.length} bytes`);
      // The session lives on with the next receiver.
      await c.send([stompFrame('SUBSCRIBE', { id: 'after', destination: '/user/queue/status', receipt: 'after' })]);
      await c.stomp(/receipt-id:after/);
    });

    it('eventsource: text/event-stream, \\r\\n prelude, data: frames, and the byte limit', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      const s = new HttpStream(`${c.base}/eventsource${c.q}`, { method: 'GET' });
      await s.response;
      assert.equal(s.status, 200);
      assert.equal(s.headers['content-type'], 'text/event-stream', 'exactly, no charset (issue 13)');
      assert.equal(s.headers['cache-control'], NO_CACHE);
      await s.waitText(/^\r\ndata: o\r\n\r\n$/);
      await c.send([CONNECT]);
      await s.waitText(/data: a\["CONNECTED[^\r\n]*"\]\r\n\r\n$/);
      for (let k = 0; k < 8 && !s.endedAt; k++) {
        await c.send([stompFrame('SUBSCRIBE', { id: `e${k}`, destination: '/user/queue/status', receipt: `${k}`.padEnd(600, 'y') })]);
        await sleep(30);
      }
      await withTimeout(s.ended, 3000, 'eventsource closed at the limit');
      for (const ev of s.text.slice(2).split('\r\n\r\n').filter(Boolean)) {
        assert.match(ev, /^data: [oha]/, JSON.stringify(ev.slice(0, 40)));
      }
    });

    it('HTTP/1.1: the stream is chunked (prelude and o each a chunk) and ends with the last chunk', T, async () => {
      const sp = sessionPath();
      const port = gw.port;
      const done = rawHttp(port,
        `POST /socketServer${sp}/xhr_streaming?srect=${user.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n`,
        { until: (b) => b.includes('\r\n0\r\n\r\n'), timeout: 8000 });
      await sleep(300);
      await post(`${base}${sp}/xhr_send?srect=${user.token}`, JSON.stringify([stompFrame('NOSUCHCOMMAND')]));   // ERROR, then close
      const { buf } = await done;
      const { statusLine, headers, body } = splitHead(buf);
      assert.match(statusLine, /^HTTP\/1\.1 200/);
      assert.equal(headers['transfer-encoding'], 'chunked');
      assert.equal(headers['content-length'], undefined);
      const { chunks, complete } = dechunk(body);
      assert.ok(complete, 'last chunk seen');
      assert.equal(chunks[0].toString(), PRELUDE);
      assert.equal(chunks[1].toString(), 'o\n');
      assert.ok(chunks.some((c) => c.toString().startsWith('a["ERROR')));
      assert.equal(chunks[chunks.length - 1].toString(), `${GO_AWAY}\n`);
    });

    it('HTTP/1.0: no chunking, no length, Connection: close, ends with the connection', T, async () => {
      const sp = sessionPath();
      const done = rawHttp(gw.port,
        `POST /socketServer${sp}/xhr_streaming HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n`,
        { timeout: 8000 });
      await sleep(300);
      await post(`${base}${sp}/xhr_send`, JSON.stringify([stompFrame('NOSUCHCOMMAND')]));
      const { buf, closed } = await done;
      assert.ok(closed, 'the server closed the connection');
      const { headers, body } = splitHead(buf);
      assert.equal(headers['transfer-encoding'], undefined);
      assert.equal(headers['content-length'], undefined);
      assert.equal((headers.connection || '').toLowerCase(), 'close');
      const text = body.toString();
      assert.ok(text.startsWith(`${PRELUDE}o\n`));
      assert.ok(text.endsWith(`${GO_AWAY}\n`), JSON.stringify(text.slice(-60)));
    });
  });

  /* ---------------------------------------------------------------- */
  describe('websocket transports', () => {
    const wsBase = () => gw.wsUrl('/socketServer');

    it('framed: o, a[...] batches, single-string messages, empty ones ignored', T, async () => {
      const ws = await wsOpen(`${wsBase()}${sessionPath()}/websocket?srect=${user.token}`);
      assert.equal(await ws.messages.waitFor(() => true), 'o');
      ws.send('');
      ws.send(JSON.stringify([CONNECT]));
      const a = await ws.messages.waitFor((m) => m.startsWith('a['));
      assert.ok(aFrames(a)[0].startsWith('CONNECTED\n'));
      ws.send(JSON.stringify(stompFrame('SUBSCRIBE', { id: '1', destination: '/user/queue/status', receipt: 'one' })));
      await ws.messages.waitFor((m) => m.includes('receipt-id:one'));
      ws.send(JSON.stringify([stompFrame('DISCONNECT', { receipt: 'bye' })]));
      await ws.messages.waitFor((m) => m.includes('receipt-id:bye'));
      assert.equal(await ws.messages.waitFor((m) => m.startsWith('c[')), GO_AWAY);
      await withTimeout(ws.closed, 5000, 'close after c[3000]');
    });

    it('framed: heartbeat h every sockjs_heartbeat_ms', T, async () => {
      const ws = await wsOpen(`${wsBase()}${sessionPath()}/websocket`);
      await ws.messages.waitFor((m) => m === 'o');
      const since = ws.messages.mark();
      await ws.messages.waitFor((m) => m === 'h', 3000, { since });
      ws.close();
    });

    it('framed: broken JSON closes the connection', T, async () => {
      const ws = await wsOpen(`${wsBase()}${sessionPath()}/websocket`);
      await ws.messages.waitFor((m) => m === 'o');
      ws.send('["a');
      await withTimeout(ws.closed, 5000, 'close after broken JSON');
    });

    it('framed: the same session id may be used by two websockets at once', T, async () => {
      const url = `${wsBase()}${sessionPath()}/websocket`;
      const w1 = await wsOpen(url);
      const w2 = await wsOpen(url);
      assert.equal(await w1.messages.waitFor(() => true), 'o');
      assert.equal(await w2.messages.waitFor(() => true), 'o');
      w1.close();
      w2.close();
    });

    it('raw /websocket: STOMP bytes as they are, no SockJS framing', T, async () => {
      const ws = await wsOpen(`${wsBase()}/websocket?srect=${user.token}`);
      ws.send(CONNECT);
      const m = await ws.messages.waitFor(() => true);
      assert.ok(m.startsWith('CONNECTED\n'), JSON.stringify(m));
      ws.send(stompFrame('DISCONNECT', { receipt: 'r' }));
      await ws.messages.waitFor((x) => x.startsWith('RECEIPT\nreceipt-id:r'));
      await withTimeout(ws.closed, 5000, 'closed after DISCONNECT');
    });

    it('a plain GET of a websocket URL is 400, a POST 405', T, async () => {
      for (const p of [`${sessionPath()}/websocket`, '/websocket']) {
        const r = await request(base + p);
        assert.equal(r.status, 400, p);
        assert.ok(r.text.includes('Can "Upgrade" only to "WebSocket".'));
        const r2 = await post(base + p, '');
        assert.equal(r2.status, 405, p);
        assert.ok(r2.headers.allow);
      }
    });
  });

  describe('websocket URLs: refused upgrades get an answer', () => {
    it('an upgrade with Connection: close is 400; a POST with upgrade headers is 405 with Allow: GET', T, async () => {
      for (const p of [`${sessionPath()}/websocket`, '/websocket']) {
        const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
        let r = await rawHttp(gw.port, `GET /socketServer${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: close\r\n${key}\r\n`);
        assert.ok(!r.timedOut && r.closed, `${p}: answered and closed`);
        let sh = splitHead(r.buf);
        assert.match(sh.statusLine, /^HTTP\/1\.[01] 400 /, p);
        assert.equal(sh.body.toString(), '"Connection" must be "Upgrade".', p);
        r = await rawHttp(gw.port, `POST /socketServer${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n${key}Content-Length: 0\r\n\r\n`);
        assert.ok(!r.timedOut && r.closed, `${p}: answered and closed, not upgraded`);
        sh = splitHead(r.buf);
        assert.match(sh.statusLine, /^HTTP\/1\.[01] 405 /, p);
        assert.equal(sh.headers.allow, 'GET', p);
      }
    });
  });

  /* ---------------------------------------------------------------- */
  describe('session credentials (issue 13, finding 3)', () => {
    const FORBIDDEN = 'Forbidden: this session belongs to another client.';
    const sub = (receipt) => [stompFrame('SUBSCRIBE', { id: receipt, destination: '/user/queue/status', receipt })];

    /** A request to a session URL from address `from` (default 127.0.0.1). */
    const hit = (url, { body, from } = {}) => httpRequest(url, {
      method: 'POST', body, localAddress: from,
      headers: body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) },
    });

    it("another principal with A's session id gets 403 on xhr and xhr_send, reads and sends nothing", T, async () => {
      const mallory = await gw.newUser('mal');
      const a = new Xhr(gw, { token: user.token });
      await a.open();
      // a frame waits for A: a stolen poll would take it
      assert.equal((await a.send(sub('r1'))).status, 204);
      await sleep(200);
      for (const q of ['', `?srect=${mallory.token}`, `?token=${mallory.token}`, '?srect=not-a-token']) {
        const r = await hit(`${a.base}/xhr${q}`);
        assert.equal(r.status, 403, `xhr ${q}`);
        assert.equal(r.text, FORBIDDEN);
        assert.match(r.headers['content-type'], /^text\/plain/);
        const s = await hit(`${a.base}/xhr_send${q}`, { body: JSON.stringify(sub('evil')) });
        assert.equal(s.status, 403, `xhr_send ${q}`);
        assert.equal(s.text, FORBIDDEN);
      }
      // the streaming receivers too
      for (const t of ['xhr_streaming', 'eventsource']) {
        const r = await request(`${a.base}/${t}`, { method: t === 'eventsource' ? 'GET' : 'POST' });
        assert.equal(r.status, 403, t);
      }
      // and a websocket of the same session id
      await assert.rejects(wsOpen(gw.wsUrl(`/socketServer${a.base.slice(base.length)}/websocket`)),
        (e) => e.status === 403, 'websocket without the token');
      // A goes on: the waiting frame is still there, nothing was sent as A
      assert.equal((await a.send(sub('r2'))).status, 204);
      const got = [];
      while (!got.some((f) => f.includes('receipt-id:r2'))) {
        const fr = aFrames(await a.next());
        if (fr) got.push(...fr);
      }
      assert.ok(got.some((f) => f.includes('receipt-id:r1')), 'the frame that waited reached A');
      assert.ok(!got.some((f) => f.includes('receipt-id:evil')), 'nothing was sent as A');
      // the token may travel as token= as well: the same hash
      assert.equal((await request(`${a.base}/xhr_send?token=${user.token}`, { method: 'POST', body: JSON.stringify(sub('r3')) })).status, 204);
      await a.stomp(/receipt-id:r3/);
    });

    it('a session opened without a token is kept to its client address, and to no token', T, async () => {
      const sp = sessionPath();
      const u = `${base}${sp}`;
      const home = loopbackAddress();
      let away = loopbackAddress();
      while (away === home) away = loopbackAddress();
      let r = await hit(`${u}/xhr`, { from: home });
      assert.equal(r.text, 'o\n');
      r = await hit(`${u}/xhr`, { from: away });
      assert.equal(r.status, 403, 'another address');
      r = await hit(`${u}/xhr_send`, { from: away, body: JSON.stringify([CONNECT]) });
      assert.equal(r.status, 403, 'another address sends');
      r = await hit(`${u}/xhr?srect=${user.token}`, { from: home });
      assert.equal(r.status, 403, 'the same address with a token');
      r = await hit(`${u}/xhr_send?srect=${user.token}`, { from: home, body: JSON.stringify([CONNECT]) });
      assert.equal(r.status, 403, 'the same address sends with a token');
      // the owner goes on: its CONNECT (no credentials) gets the ERROR
      r = await hit(`${u}/xhr_send`, { from: home, body: JSON.stringify([CONNECT]) });
      assert.equal(r.status, 204);
      r = await hit(`${u}/xhr`, { from: home });
      assert.equal(r.status, 200);
      assert.match(r.text, /^a\["ERROR/);
    });

    it('session ids are not logged at info', T, async () => {
      const c = new Xhr(gw, { token: user.token });
      await c.open();
      const id = c.base.split('/').pop();
      await hit(`${c.base}/xhr`);            // a refused one too
      assert.ok(!gw.stderr().includes(id), 'the session id is in the info log');
    });
  });

  /* ---------------------------------------------------------------- */
  describe('Origin', () => {
    it('websockets: a refused Origin is 403, an allowed one and none are served', T, async () => {
      for (const p of [`${sessionPath()}/websocket`, '/websocket']) {
        for (const o of [BAD_ORIGIN, 'null']) {
          await assert.rejects(wsOpen(gw.wsUrl(`/socketServer${p}`), { origin: o }), (e) => e.status === 403, `${p} ${o}`);
        }
        const ok = await wsOpen(gw.wsUrl(`/socketServer${p}`), { origin: GOOD_ORIGIN });
        ok.close();
      }
    });

    it('HTTP transports: a refused Origin is 403 on every one, never reflected', T, async () => {
      const c = new Xhr(gw);
      assert.equal(await c.poll(), 'o');
      const cases = [
        ['POST', '/xhr'], ['POST', '/xhr_send'], ['POST', '/xhr_streaming'], ['GET', '/eventsource'],
      ];
      for (const [method, p] of cases) {
        for (const o of [BAD_ORIGIN, 'null']) {
          const r = await request(`${c.base}${p}`, { method, body: p === '/xhr_send' ? '["x"]' : undefined, headers: { Origin: o } });
          assert.equal(r.status, 403, `${method} ${p} from ${o}`);
          assert.equal(r.headers['access-control-allow-origin'], undefined);
        }
      }
      const sp = sessionPath();
      const s = new HttpStream(`${base}${sp}/eventsource`, { method: 'GET', headers: { Origin: GOOD_ORIGIN } });
      await s.waitText(/data: o/);
      assert.equal(s.headers['access-control-allow-origin'], GOOD_ORIGIN);
      s.abort();
    });

    it('with allowed_origins *, every Origin (null too) is echoed with credentials; none gets *', T, async () => {
      const any = await h.env.startGateway(['--allowed-origins', '*'], { name: 'anyorigin' });
      const b = any.url('/socketServer');
      for (const o of ['null', BAD_ORIGIN, GOOD_ORIGIN]) {
        for (const [m, u] of [['GET', '/info'], ['POST', `${sessionPath()}/xhr`], ['OPTIONS', `${sessionPath()}/xhr_send`]]) {
          const r = await request(`${b}${u}`, { method: m, headers: { Origin: o } });
          assert.ok(r.status < 300, `${m} ${u} ${o}: ${r.status}`);
          assert.equal(r.headers['access-control-allow-origin'], o, `${m} ${u} ${o}`);
          assert.equal(r.headers['access-control-allow-credentials'], 'true', `${m} ${u} ${o}`);
        }
      }
      const r = await request(`${b}/info`);
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-credentials'], undefined);
      await h.env.stopGateway(any);
    });

    it('OPTIONS on xhr transports echoes requested headers for OPTIONS, POST', T, async () => {
      for (const p of ['/xhr', '/xhr_send', '/xhr_streaming']) {
        const r = await request(`${base}/abc/abc${p}`, {
          method: 'OPTIONS',
          headers: { Origin: GOOD_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'a, b, c' },
        });
        assert.ok(r.status === 204 || r.status === 200);
        for (const m of ['OPTIONS', 'POST']) assert.ok(r.headers['access-control-allow-methods'].includes(m), p);
        assert.equal(r.headers['access-control-allow-headers'], 'a, b, c');
        assert.equal(r.headers['access-control-allow-origin'], GOOD_ORIGIN);
        assert.ok(Number(r.headers['access-control-max-age']) > 1000000);
        const r2 = await request(`${base}/abc/abc${p}`, { method: 'OPTIONS', headers: { Origin: GOOD_ORIGIN } });
        assert.equal(r2.headers['access-control-allow-headers'], undefined);
      }
    });
  });

  /* ---------------------------------------------------------------- */
  describe('unicode', () => {
    it('the server escapes what SockJS requires; \\u2028, emoji and U+FFF0 arrive intact', T, async () => {
      const bob = await gw.newUser('bob');
      const rx = new Xhr(gw, { token: bob.token });
      await rx.open();
      await rx.send([stompFrame('SUBSCRIBE', { id: 'r', destination: `/user/${bob.username}/recive`, receipt: 'sub' })]);
      await rx.stomp(/receipt-id:sub/);
      const tx = await wsOpen(gw.wsUrl(`/socketServer${sessionPath()}/websocket?srect=${user.token}`));
      tx.send(JSON.stringify([CONNECT]));
      await tx.messages.waitFor((m) => m.startsWith('a["CONNECTED'));
      const content = 'a\u2028b\u2029c 😀 \ufff0 \u200d 中文 "q" \\ </script>';
      const body = JSON.stringify({ msgID: 'abcdef0123456789', reciverId: bob.uid, content });
      tx.send(JSON.stringify([stompFrame('SEND', { destination: '/socket/chat/send', 'content-length': Buffer.byteLength(body) }, body)]));
      // the raw poll body, as it is on the wire
      let raw;
      for (;;) {
        const r = await request(`${rx.base}/xhr${rx.q}`, { method: 'POST' });
        if (r.text.startsWith('a[')) { raw = r.text; break; }
      }
      for (const esc of ['\\u2028', '\\u2029', '\\ud83d\\ude00', '\\ufff0', '\\u200d', '\\u0000']) {
        assert.ok(raw.includes(esc), `${esc} escaped on the wire`);
      }
      assert.ok(!/[\u2028\u2029\ufff0\u200d]/.test(raw), 'no raw U+2028/2029/FFF0/200D on the wire');
      assert.ok(!/[\ud800-\udfff]/.test(raw), 'no raw character above U+FFFF on the wire');
      const frame = aFrames(raw.trim()).find((f) => f.startsWith('MESSAGE'));
      const msg = JSON.parse(frame.slice(frame.indexOf('\n\n') + 2, frame.lastIndexOf('\0')));
      assert.equal(msg.content, content);
      tx.close();
    });
  });

  /* ---------------------------------------------------------------- */
  describe('jsonp and htmlfile', () => {
    it('are 404 by default', T, async () => {
      const sp = sessionPath();
      assert.equal((await request(`${base}${sp}/jsonp?c=x`)).status, 404);
      assert.equal((await request(`${base}${sp}/htmlfile?c=x`)).status, 404);
      assert.equal((await post(`${base}${sp}/jsonp_send`, 'd=%5B%22x%22%5D',
        { 'Content-Type': 'application/x-www-form-urlencoded' })).status, 404);
    });

    it('jsonp (with --sockjs-jsonp true): callback check, framing, jsonp_send forms, nosniff', T, async () => {
      const u = await jp.newUser('jp');
      const b = jp.url('/socketServer');
      const sp = sessionPath();
      for (const q of ['', '?c=', '?c=alert(1)', '?c=a-b', '?c=a%3Bb', '?callback=x%20y']) {
        const r = await request(`${b}/a/a${q ? Math.random().toString(36).slice(2, 6) : ''}/jsonp${q}`);
        assert.equal(r.status, 500, q);
        assert.ok(r.text.includes('"callback" parameter required'), q);
      }
      let r = await request(`${b}${sp}/jsonp?c=%63allback&srect=${u.token}`);
      assert.equal(r.status, 200);
      assert.equal(ct(r), 'application/javascript;charset=UTF-8');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['cache-control'], NO_CACHE);
      assert.equal(r.text, 'callback("o");\r\n');

      const form = (s) => post(`${b}${sp}/jsonp_send?srect=${u.token}`, s, { 'Content-Type': 'application/x-www-form-urlencoded' });
      r = await form(`d=${encodeURIComponent(JSON.stringify([CONNECT]))}`);
      assert.equal(r.status, 200);
      assert.equal(r.text, 'ok');
      assert.equal(ct(r), 'text/plain;charset=UTF-8');
      assert.equal(r.headers['cache-control'], NO_CACHE);
      r = await form('d=%5B%22x');
      assert.equal(r.status, 500);
      assert.ok(r.text.includes('Broken JSON encoding.'));
      for (const d of ['', 'd=', 'p=p']) {
        r = await form(d);
        assert.equal(r.status, 500, d);
        assert.ok(r.text.includes('Payload expected.'), d);
      }
      // a raw (text/plain) body works too
      r = await post(`${b}${sp}/jsonp_send?srect=${u.token}`, JSON.stringify([stompFrame('SUBSCRIBE', { id: 's', destination: '/user/queue/status', receipt: 'ok' })]),
        { 'Content-Type': 'text/plain' });
      assert.equal(r.text, 'ok');
      const got = [];
      while (!got.some((f) => f.includes('receipt-id:ok'))) {
        r = await request(`${b}${sp}/jsonp?c=x.y_z&srect=${u.token}`);
        const m = /^x\.y_z\((".*")\);\r\n$/s.exec(r.text);
        assert.ok(m, JSON.stringify(r.text));
        const frame = JSON.parse(m[1]);
        if (frame.startsWith('a[')) got.push(...aFrames(frame));
      }
      assert.ok(got[0].startsWith('CONNECTED'));
    });

    it('htmlfile (with --sockjs-jsonp true): the page, <script> frames, nothing ends the script early', T, async () => {
      const u = await jp.newUser('hf');
      const b = jp.url('/socketServer');
      const sp = sessionPath();
      const r0 = await request(`${b}/a/a/htmlfile`);
      assert.equal(r0.status, 500);
      assert.ok(r0.text.includes('"callback" parameter required'));
      const s = new HttpStream(`${b}${sp}/htmlfile?c=%63allback&srect=${u.token}`, { method: 'GET' });
      await s.response;
      assert.equal(s.status, 200);
      assert.equal(ct(s), 'text/html;charset=UTF-8');
      assert.equal(s.headers['cache-control'], NO_CACHE);
      assert.equal(s.headers['x-content-type-options'], 'nosniff');
      await s.waitText(/<script>\np\("o"\);\n<\/script>\r\n$/);
      const head = s.text.slice(0, s.text.indexOf('<script>\np('));
      assert.ok(head.length > 1024);
      assert.ok(head.includes('var c = parent.callback;'));
      assert.ok(head.trim().startsWith('<!doctype html>'));
      await post(`${b}${sp}/xhr_send?srect=${u.token}`, JSON.stringify([CONNECT]));
      await post(`${b}${sp}/xhr_send?srect=${u.token}`, JSON.stringify([stompFrame('SUBSCRIBE', { id: 's', destination: '/user/queue/status', receipt: '</script><script>alert(1)</script>' })]));
      await s.waitText(/receipt-id/);
      await s.waitText(/<\/script>\r\n$/);
      const frames = s.text.slice(head.length);
      assert.equal((frames.match(/<\/script>/g) || []).length, (frames.match(/<script>/g) || []).length,
        'only our own </script> tags');
      assert.ok(frames.includes('\\u003c/script\\u003e'));
      s.abort();
    });
  });
});
