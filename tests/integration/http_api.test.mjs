// PROTOCOL.md section 1 (HTTP API), row by row, against the real binary and
// a real redis-server; plus `--base-path /Mimi` (section 0 and 2), and HTTP
// framing over raw TCP: a request whose Content-Length is refused (400,
// 413), with Transfer-Encoding (411) or a POST without Content-Length is
// answered with Connection: close and the connection closed, so a request
// pipelined after it is never answered (no request smuggling).
//
// Assumptions where the contract is silent (each marked ASSUMPTION below):
// - expiresAt is milliseconds since the epoch (like `time` in chat
//   messages) or an ISO-8601 string; either must be now + 7 days.
// - usernames are unique regardless of case (the brief asks for 409 on
//   "Alice" after "alice").
// - a JSON value of the wrong type (number instead of string, array instead
//   of object) is "invalid" → 400.
// - success and error answers carry Content-Type application/json.
// - "online" turns true within 2 s of CONNECTED and false within 5 s after
//   the user's last STOMP connection closed (presence is kept in Redis and
//   may be updated asynchronously).
import { describe, it, before, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { useEnv, uniqueName, httpRequest, until, RawStomp, HandshakeError, WebSocket } from './lib/harness.mjs';
import { sessionPath } from './lib/sockjs.mjs';

const T = { timeout: 30000 };
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
const DAY = 24 * 3600 * 1000;

function assertJsonError(r, status, what) {
  assert.equal(r.status, status, `${what}: status (body ${r.text})`);
  assert.match(String(r.headers['content-type']), /^application\/json/i, `${what}: content-type`);
  assert.equal(typeof r.json, 'object', `${what}: body is JSON: ${r.text}`);
  assert.deepEqual(Object.keys(r.json), ['error'], `${what}: body is {"error":...}: ${r.text}`);
  assert.equal(typeof r.json.error, 'string');
  assert.ok(r.json.error.length > 0, `${what}: error text is not empty`);
}

/**
 * Writes `parts` (strings or Buffers) in one write on one fresh TCP
 * connection, as a pipelining client does, and collects what comes back
 * until the server closes it or `timeout` ms pass: {data (latin1 string),
 * closed, error}. An ECONNRESET after the answer is fine: a server that
 * closes with bytes still unread (an unread request body) makes the kernel
 * reset the connection. (One write: a later write to a connection the
 * server already closed would fail with EPIPE, and node would drop the
 * answer it had not read yet.)
 */
function rawExchange(port, parts, timeout = 5000) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    const chunks = [];
    let error = null;
    const done = (closed) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed, error });
    };
    const timer = setTimeout(() => done(false), timeout);
    s.on('connect', () => s.write(Buffer.concat(parts.map((p) => Buffer.from(p, 'latin1')))));
    s.on('data', (d) => chunks.push(d));
    s.on('error', (e) => { error = e.code || e.message; });
    s.on('close', () => done(true));
  });
}

/** Every complete HTTP/1.1 response in data (each with a Content-Length). */
function parseResponses(data) {
  const out = [];
  let rest = data;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) break;
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (rest.length < end + 4 + len) break;
    out.push({ status: Number(m[1]), headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

/**
 * The first request (head, then its body parts) followed on the same
 * connection by a pipelined GET /healthz: exactly one answer with
 * `status` and "Connection: close", then the connection ends; the
 * pipelined request is never answered.
 */
async function expectAnsweredThenClosed(gw, head, bodyParts, status, what) {
  const next = `GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  const r = await rawExchange(gw.port, [head, ...bodyParts, next]);
  const answers = parseResponses(r.data);
  assert.ok(answers.length >= 1, `${what}: an answer before the close (got ${JSON.stringify(r.data.slice(0, 300))}, error ${r.error})`);
  assert.equal(answers[0].status, status, `${what}: status (${answers[0].body})`);
  assert.equal(answers[0].headers.connection, 'close', `${what}: Connection: close`);
  assert.ok(r.closed, `${what}: the server closed the connection`);
  assert.equal(answers.length, 1, `${what}: the pipelined request was not answered: ${JSON.stringify(r.data)}`);
  assert.ok(!/HTTP\/1\.1 200/.test(r.data), `${what}: nothing of GET /healthz came back`);
  return answers[0];
}

function expiresMs(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && !/^\d+$/.test(v)) return Date.parse(v);
  return NaN;
}

describe('HTTP API (PROTOCOL.md section 1)', () => {
  const h = useEnv('http_api');
  let gw;
  before(() => { gw = h.env.gw; });

  describe('POST /api/register', () => {
    it('answers 201 {"uid","username"} with a positive integer uid', T, async () => {
      const name = uniqueName('reg');
      const r = await gw.register(name, 'password-123');
      assert.equal(r.status, 201, r.text);
      assert.match(String(r.headers['content-type']), /^application\/json/i);
      assert.deepEqual(Object.keys(r.json).sort(), ['uid', 'username']);
      assert.equal(r.json.username, name);
      assert.ok(Number.isSafeInteger(r.json.uid) && r.json.uid > 0, `uid ${r.json.uid}`);
      const r2 = await gw.register(uniqueName('reg'), 'password-123');
      assert.equal(r2.status, 201, r2.text);
      assert.notEqual(r2.json.uid, r.json.uid, 'every user gets its own uid');
    });

    it('accepts names of 1 and 32 characters of [A-Za-z0-9_.-]', T, async () => {
      // 1 character: a fresh Redis, so single letters are free; take 'Z'.
      let r = await gw.register('Z', 'password-123');
      assert.equal(r.status, 201, `1-char name: ${r.text}`);
      assert.equal(r.json.username, 'Z');
      const n32 = `a_b.c-D9${uniqueName('').slice(1)}`.padEnd(32, 'x');
      assert.equal(n32.length, 32);
      r = await gw.register(n32, 'password-123');
      assert.equal(r.status, 201, `32-char name: ${r.text}`);
      assert.equal(r.json.username, n32);
    });

    it('refuses bad names with 400 {"error"}', T, async () => {
      const bad = [
        ['', 'empty'],
        ['a'.repeat(33), '33 chars'],
        ['has space', 'space'],
        ['semi;colon', 'semicolon'],
        ['slash/name', 'slash'],
        ['colon:name', 'colon'],
        ['at@name', 'at sign'],
        ['plus+name', 'plus'],
        ['ümlaut', 'non-ASCII'],
        ['tab\tname', 'tab'],
        ['nul\u0000name', 'NUL'],
      ];
      for (const [name, what] of bad) {
        const r = await gw.register(name, 'password-123');
        assertJsonError(r, 400, `name ${what}`);
      }
    });

    it('takes passwords of 8 and 128 bytes and refuses 7 and 129 bytes (bytes, not characters)', T, async () => {
      const cases = [
        ['p'.repeat(8), 201, '8 ASCII'],
        ['p'.repeat(128), 201, '128 ASCII'],
        ['p'.repeat(7), 400, '7 ASCII'],
        ['p'.repeat(129), 400, '129 ASCII'],
        ['é'.repeat(4), 201, '4 x 2-byte = 8 bytes'],
        ['é'.repeat(3) + 'a', 400, '3 x 2-byte + 1 = 7 bytes'],
        ['é'.repeat(64), 201, '64 x 2-byte = 128 bytes'],
        ['é'.repeat(64) + 'a', 400, '64 x 2-byte + 1 = 129 bytes'],
      ];
      for (const [pw, status, what] of cases) {
        const name = uniqueName('pw');
        const r = await gw.register(name, pw);
        if (status === 201) {
          assert.equal(r.status, 201, `password ${what}: ${r.text}`);
          const l = await gw.login(name, pw);
          assert.equal(l.status, 200, `login with password ${what}: ${l.text}`);
        } else {
          assertJsonError(r, 400, `password ${what}`);
        }
      }
    });

    it('answers 400 for missing fields, wrong types and malformed JSON', T, async () => {
      const name = uniqueName('miss');
      const bodies = [
        ['{}', 'empty object'],
        [JSON.stringify({ username: name }), 'no password'],
        [JSON.stringify({ password: 'password-123' }), 'no username'],
        [JSON.stringify({ username: 5, password: 'password-123' }), 'numeric username'],
        [JSON.stringify({ username: name, password: 12345678 }), 'numeric password'],
        [JSON.stringify({ username: null, password: 'password-123' }), 'null username'],
        ['[]', 'array body'],
        ['"text"', 'string body'],
        ['null', 'null body'],
        ['{"username":', 'truncated JSON'],
        ['{username: "x", password: "password-123"}', 'unquoted keys'],
        ['', 'empty body'],
        [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 'invalid UTF-8'],
      ];
      for (const [body, what] of bodies) {
        const r = await gw.api('POST', '/api/register', body);
        assertJsonError(r, 400, `register with ${what}`);
      }
      // nothing of the above registered the name
      const ok = await gw.register(name, 'password-123');
      assert.equal(ok.status, 201, ok.text);
    });

    it('answers 409 when the name is taken, also when it differs only by case', T, async () => {
      const name = uniqueName('Dup');
      const r = await gw.register(name, 'password-123');
      assert.equal(r.status, 201, r.text);
      assertJsonError(await gw.register(name, 'password-456'), 409, 'same name');
      // ASSUMPTION: names are unique regardless of case.
      assertJsonError(await gw.register(name.toLowerCase(), 'password-456'), 409, 'lower-case variant');
      assertJsonError(await gw.register(name.toUpperCase(), 'password-456'), 409, 'upper-case variant');
      // the first registration still logs in with its password
      const l = await gw.login(name, 'password-123');
      assert.equal(l.status, 200, l.text);
      assert.equal(l.json.uid, r.json.uid);
    });

    it('answers 413 {"error"} for a body over 64 KiB and takes one of exactly 64 KiB', T, async () => {
      const name = uniqueName('big');
      const json = JSON.stringify({ username: name, password: 'password-123' });
      const exact = json + ' '.repeat(65536 - Buffer.byteLength(json));
      assert.equal(Buffer.byteLength(exact), 65536);
      const r = await gw.api('POST', '/api/register', exact);
      assert.equal(r.status, 201, `65536-byte body: ${r.text}`);
      const over = JSON.stringify({ username: uniqueName('big'), password: 'password-123' });
      const big = over + ' '.repeat(65537 - Buffer.byteLength(over));
      assertJsonError(await gw.api('POST', '/api/register', big), 413, '65537-byte body');
      const huge = JSON.stringify({ username: uniqueName('big'), password: 'x'.repeat(1 << 20) });
      assertJsonError(await gw.api('POST', '/api/register', huge), 413, '1 MiB body');
      // and the gateway still answers
      assert.equal((await gw.register(uniqueName('after'), 'password-123')).status, 201);
    });
  });

  describe('POST /api/login and /api/logout', () => {
    // A user per test: the gateway also limits failed logins per user (not
    // in PROTOCOL.md), so no one user should fail more than a few times.
    let user;
    beforeEach(async () => {
      const name = uniqueName('login');
      const r = await gw.register(name, 'correct horse');
      assert.equal(r.status, 201, r.text);
      user = { username: name, password: 'correct horse', uid: r.json.uid };
    });

    it('answers 200 {"token","uid","username","expiresAt"}: 43-char base64url token, 7 days', T, async () => {
      const before = Date.now();
      const r = await gw.login(user.username, user.password);
      const after = Date.now();
      assert.equal(r.status, 200, r.text);
      assert.match(String(r.headers['content-type']), /^application\/json/i);
      assert.deepEqual(Object.keys(r.json).sort(), ['expiresAt', 'token', 'uid', 'username']);
      assert.match(r.json.token, TOKEN_RE);
      assert.equal(Buffer.from(r.json.token, 'base64url').length, 32, '256-bit token');
      assert.equal(r.json.uid, user.uid);
      assert.equal(r.json.username, user.username);
      // ASSUMPTION: expiresAt is ms since the epoch or an ISO-8601 string.
      const exp = expiresMs(r.json.expiresAt);
      assert.ok(Number.isFinite(exp), `expiresAt ${JSON.stringify(r.json.expiresAt)}`);
      assert.ok(exp >= before + 7 * DAY - 60000 && exp <= after + 7 * DAY + 60000,
        `expiresAt ${r.json.expiresAt} is not now + 7 days`);
      const r2 = await gw.login(user.username, user.password);
      assert.equal(r2.status, 200);
      assert.notEqual(r2.json.token, r.json.token, 'each login makes a new token');
    });

    it('answers 401 {"error"} for a wrong password or an unknown user', T, async () => {
      assertJsonError(await gw.login(user.username, 'wrong horse'), 401, 'wrong password');
      assertJsonError(await gw.login(user.username, ''), 401, 'empty password');
      assertJsonError(await gw.login(uniqueName('nobody'), 'correct horse'), 401, 'unknown user');
    });

    it('answers 400 {"error"} for malformed login requests', T, async () => {
      assertJsonError(await gw.api('POST', '/api/login', '{"username":'), 400, 'truncated JSON');
      assertJsonError(await gw.api('POST', '/api/login', { username: user.username }), 400, 'no password');
      assertJsonError(await gw.api('POST', '/api/login', { password: user.password }), 400, 'no username');
      assertJsonError(await gw.api('POST', '/api/login', '[]'), 400, 'array');
    });

    it('logout answers 204 and revokes only that token', T, async () => {
      const t1 = (await gw.login(user.username, user.password)).json.token;
      const t2 = (await gw.login(user.username, user.password)).json.token;
      assert.equal((await gw.api('GET', `/api/users/${user.uid}`, undefined, t1)).status, 200);
      const r = await gw.api('POST', '/api/logout', undefined, t1);
      assert.equal(r.status, 204, r.text);
      assert.equal(r.text, '', '204 has no body');
      assertJsonError(await gw.api('GET', `/api/users/${user.uid}`, undefined, t1), 401, 'revoked token');
      assertJsonError(await gw.api('GET', `/api/users/${user.uid}`, undefined, t1, { tokenVia: 'srect' }), 401,
        'revoked token via srect');
      assertJsonError(await gw.api('POST', '/api/logout', undefined, t1), 401, 'second logout');
      const other = await gw.api('GET', `/api/users/${user.uid}`, undefined, t2);
      assert.equal(other.status, 200, `the user's other token still works: ${other.text}`);
    });

    it('logout accepts the token as srect= and token= too', T, async () => {
      for (const via of ['srect', 'token']) {
        const t = (await gw.login(user.username, user.password)).json.token;
        const r = await gw.api('POST', '/api/logout', undefined, t, { tokenVia: via });
        assert.equal(r.status, 204, `logout via ${via}: ${r.text}`);
        assertJsonError(await gw.api('GET', `/api/users/${user.uid}`, undefined, t), 401, `after logout via ${via}`);
      }
    });

    it('logout without a token or with a bad one answers 401 {"error"}', T, async () => {
      assertJsonError(await gw.api('POST', '/api/logout'), 401, 'no token');
      assertJsonError(await gw.api('POST', '/api/logout', undefined, 'not-a-token'), 401, 'malformed token');
      assertJsonError(await gw.api('POST', '/api/logout', undefined, 'A'.repeat(43)), 401, 'unknown token');
    });

    it('a revoked token can no longer open a STOMP connection', T, async () => {
      const t = (await gw.login(user.username, user.password)).json.token;
      assert.equal((await gw.api('POST', '/api/logout', undefined, t)).status, 204);
      // PROTOCOL.md 2: the handshake answers 401, or CONNECT answers ERROR and closes.
      let raw;
      try {
        raw = await RawStomp.open(gw, { token: t });
      } catch (e) {
        assert.ok(e instanceof HandshakeError, String(e));
        assert.equal(e.status, 401);
        return;
      }
      h.env.track(raw);
      raw.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
      const f = await raw.frames.waitFor((x) => x.command === 'ERROR' || x.command === 'CONNECTED', 5000);
      assert.equal(f.command, 'ERROR', 'a revoked token must not get CONNECTED');
      await raw.waitClose(5000);
    });
  });

  describe('GET /api/users/{uid-or-name}', () => {
    let alice, bob;
    before(async () => {
      alice = await gw.newUser('alice');
      bob = await gw.newUser('bob');
    });

    it('finds a user by uid and by name: 200 {"uid","username","online"}', T, async () => {
      for (const key of [String(bob.uid), bob.username]) {
        const r = await gw.api('GET', `/api/users/${encodeURIComponent(key)}`, undefined, alice.token);
        assert.equal(r.status, 200, `lookup ${key}: ${r.text}`);
        assert.match(String(r.headers['content-type']), /^application\/json/i);
        assert.deepEqual(r.json, { uid: bob.uid, username: bob.username, online: false });
      }
    });

    it('answers 404 {"error"} for unknown users', T, async () => {
      assertJsonError(await gw.api('GET', `/api/users/${uniqueName('ghost')}`, undefined, alice.token), 404, 'unknown name');
      assertJsonError(await gw.api('GET', '/api/users/987654321', undefined, alice.token), 404, 'unknown uid');
    });

    it('answers 401 {"error"} without a token or with a bad one', T, async () => {
      assertJsonError(await gw.api('GET', `/api/users/${bob.uid}`), 401, 'no token');
      assertJsonError(await gw.api('GET', `/api/users/${bob.uid}`, undefined, 'garbage'), 401, 'garbage bearer');
      assertJsonError(await gw.api('GET', `/api/users/${bob.uid}`, undefined, 'B'.repeat(43)), 401, 'unknown bearer');
      assertJsonError(await gw.api('GET', `/api/users/${bob.uid}`, undefined, 'B'.repeat(43), { tokenVia: 'srect' }), 401, 'unknown srect');
      const basic = await gw.api('GET', `/api/users/${bob.uid}`, undefined, undefined,
        { headers: { Authorization: `Basic ${Buffer.from(`${alice.username}:${alice.password}`).toString('base64')}` } });
      assertJsonError(basic, 401, 'Basic auth is not a token');
    });

    it('takes the token as Authorization: Bearer, ?srect= and ?token=', T, async () => {
      for (const via of ['bearer', 'srect', 'token']) {
        const r = await gw.api('GET', `/api/users/${bob.username}`, undefined, alice.token, { tokenVia: via });
        assert.equal(r.status, 200, `token via ${via}: ${r.text}`);
        assert.equal(r.json.uid, bob.uid);
      }
    });

    it('reports online:true while the user has a STOMP session, false after it closed', T, async () => {
      const s = await gw.stomp(bob);
      // ASSUMPTION: presence may be written asynchronously: true within 2 s
      // of CONNECTED, false within 5 s of the close.
      let r;
      await until(async () => {
        r = await gw.api('GET', `/api/users/${bob.uid}`, undefined, alice.token);
        return r.status === 200 && r.json.online === true;
      }, { timeout: 2000, what: 'online:true while connected' });
      assert.deepEqual(r.json, { uid: bob.uid, username: bob.username, online: true });
      await s.close();
      await until(async () => {
        r = await gw.api('GET', `/api/users/${bob.username}`, undefined, alice.token);
        return r.status === 200 && r.json.online === false;
      }, { timeout: 5000, what: 'online:false after the session closed' });
      assert.deepEqual(r.json, { uid: bob.uid, username: bob.username, online: false });
    });
  });

  describe('health, readiness, metrics, unknown routes', () => {
    it('GET /healthz answers 200 ok', T, async () => {
      const r = await httpRequest(gw.url('/healthz'));
      assert.equal(r.status, 200);
      assert.match(r.text, /^ok\r?\n?$/);
    });

    it('GET /readyz answers 200 while Redis answers', T, async () => {
      const r = await httpRequest(gw.url('/readyz'));
      assert.equal(r.status, 200, r.text);
    });

    it('GET /metrics on the metrics listener answers 200 in Prometheus text format', T, async () => {
      assert.ok(gw.metricsPort && gw.metricsPort !== gw.port, 'the harness gave the gateway a metrics port');
      const r = await httpRequest(gw.metricsUrl());
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      assert.match(r.text, /^# (HELP|TYPE) \w+/m);
      for (const line of r.text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?\d+)?$/, `metrics line: ${line}`);
      }
    });

    it('the main port does not serve /metrics; the metrics listener serves nothing else', T, async () => {
      // Issue 13, finding 11: host name and pid are not for everyone.
      assertJsonError(await gw.api('GET', '/metrics'), 404, 'GET {base}/metrics on the main port');
      const m = `http://127.0.0.1:${gw.metricsPort}`;
      assert.equal((await httpRequest(`${m}/api/users/1`)).status, 404, 'the API on the metrics port');
      assert.equal((await httpRequest(`${m}/healthz`)).status, 404, 'healthz on the metrics port');
      assert.equal((await httpRequest(`${m}/metrics`, { method: 'POST', body: '' })).status, 405, 'POST /metrics');
    });

    it('an unknown API path answers 404 {"error"}', T, async () => {
      // ASSUMPTION: "every error answer is {"error":...}" covers unknown routes.
      assertJsonError(await gw.api('GET', '/api/nope'), 404, 'GET /api/nope');
      assertJsonError(await gw.api('POST', '/api/nope', {}), 404, 'POST /api/nope');
    });

    it('a wrong method on an API path answers 404 or 405 {"error"}', T, async () => {
      const r = await gw.api('GET', '/api/register');
      assert.ok(r.status === 404 || r.status === 405, `GET /api/register: ${r.status}`);
      assertJsonError(r, r.status, 'GET /api/register');
      const d = await gw.api('DELETE', '/api/login');
      assert.ok(d.status === 404 || d.status === 405, `DELETE /api/login: ${d.status}`);
      assertJsonError(d, d.status, 'DELETE /api/login');
    });
  });

  describe('HTTP framing: a request whose length is refused ends the connection', () => {
    // lws 4.1 frames bodies by an atoll() of Content-Length and parses
    // whatever it did not take as a body as the next request: after such
    // an answer the gateway must close, or the rest of the bytes would be
    // read as a request of their own (request smuggling / desync).
    const login = JSON.stringify({ username: 'nobody', password: 'password-123' });
    const post = (p, cl, extra = '') =>
      `POST ${gw.basePath}${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}` +
      (cl === null ? '' : `Content-Length: ${cl}\r\n`) + '\r\n';

    it('Content-Length: abc answers 400 {"error"} with Connection: close, then closes; a pipelined request is not answered', T, async () => {
      const a = await expectAnsweredThenClosed(gw, post('/api/login', 'abc'), [login], 400, 'Content-Length abc');
      assert.deepEqual(Object.keys(JSON.parse(a.body)), ['error']);
      assert.match(a.headers['content-type'], /^application\/json/);
    });

    it('negative, overflowing, signed, listed and duplicate Content-Lengths answer 400 and close', T, async () => {
      for (const cl of ['-1', '99999999999999999999', '18446744073709551616', '+5', '5, 5', '0x10', '1e3']) {
        await expectAnsweredThenClosed(gw, post('/api/register', cl), [login], 400, `Content-Length ${JSON.stringify(cl)}`);
      }
      await expectAnsweredThenClosed(gw, post('/api/register', '5', `Content-Length: ${login.length}\r\n`), [login], 400,
        'two Content-Length headers');
    });

    it('any method: a bad Content-Length, or a body on a GET, answers 400 and closes', T, async () => {
      const get = (p, cl) => `GET ${gw.basePath}${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${cl}\r\n\r\n`;
      await expectAnsweredThenClosed(gw, get('/healthz', 'abc'), ['12345'], 400, 'GET /healthz, Content-Length abc');
      await expectAnsweredThenClosed(gw, get('/index.html', '5'), ['12345'], 400, 'GET of a file with a body');
      await expectAnsweredThenClosed(gw, get('/nowhere/../x', '-1'), ['12345'], 400, 'an unknown path, Content-Length -1');
      await expectAnsweredThenClosed(gw, get('/socketServer/info', 'abc'), ['12345'], 400, 'SockJS info, Content-Length abc');
    });

    it('a body over http_max_body answers 413 and closes, whether or not the body follows', T, async () => {
      // only the headers: answered at once, the body is never waited for
      await expectAnsweredThenClosed(gw, post('/api/register', String(1 << 20)), [], 413, 'announced 1 MiB, not sent');
      // the whole body, then a pipelined request
      const big = JSON.stringify({ username: uniqueName('big'), password: 'x'.repeat(70000) });
      await expectAnsweredThenClosed(gw, post('/api/register', Buffer.byteLength(big)), [big], 413, '70 kB body sent');
    });

    it('a refused body is read and discarded after the answer (lingering close): the client keeps writing, then reads the 413', T, async () => {
      // The body goes out in 64 KiB writes after the answer came back: with
      // an abortive close the kernel would reset the connection and the
      // writes would fail with EPIPE / ECONNRESET.
      const total = 4 << 20;
      const r = await new Promise((resolve) => {
        const s = net.createConnection({ host: '127.0.0.1', port: gw.port });
        const chunks = [];
        let error = null;
        let written = 0;
        let closedAt = 0;
        const started = Date.now();
        const writeMore = () => {
          while (written < total) {
            written += 65536;
            if (!s.write(Buffer.alloc(65536, 0x20))) { s.once('drain', writeMore); return; }
          }
          s.end();
        };
        s.on('connect', () => s.write(post('/api/register', total)));
        s.on('data', (d) => { chunks.push(d); if (chunks.length === 1) writeMore(); });
        s.on('error', (e) => { error = e.code || e.message; });
        s.on('close', () => { closedAt = Date.now(); resolve({ data: Buffer.concat(chunks).toString('latin1'), error, written, ms: closedAt - started }); });
        setTimeout(() => s.destroy(new Error('no close within 15 s')), 15000);
      });
      assert.equal(r.error, null, `no error while the client writes the rest of its body (wrote ${r.written})`);
      assert.equal(r.written, total, 'the whole body was written');
      const answers = parseResponses(r.data);
      assert.equal(answers.length, 1, r.data.slice(0, 300));
      assert.equal(answers[0].status, 413);
      assert.equal(answers[0].headers.connection, 'close');
    });

    it('a POST without Content-Length, or with Transfer-Encoding, is answered and the connection closed', T, async () => {
      await expectAnsweredThenClosed(gw, post('/api/logout', null), [], 401, 'POST without Content-Length');
      const chunked = `${login.length.toString(16)}\r\n${login}\r\n0\r\n\r\n`;
      await expectAnsweredThenClosed(gw, post('/api/login', null, 'Transfer-Encoding: chunked\r\n'), [chunked], 411,
        'Transfer-Encoding: chunked');
    });

    it('SockJS xhr_send: a bad or too large Content-Length answers 400 / 413 and closes', T, async () => {
      const p = `${gw.basePath}/socketServer${sessionPath()}/xhr_send`;
      const send = (cl) => `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${cl}\r\n\r\n`;
      await expectAnsweredThenClosed(gw, send('abc'), ['["x"]'], 400, 'xhr_send Content-Length abc');
      await expectAnsweredThenClosed(gw, send('-5'), ['["x"]'], 400, 'xhr_send Content-Length -5');
      await expectAnsweredThenClosed(gw, send(String((1 << 20) + 1)), [], 413, 'xhr_send over 1 MiB');
    });

    it('a well-framed request keeps the connection: the pipelined request is answered too', T, async () => {
      const next = `GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
      const r = await rawExchange(gw.port, [post('/api/login', login.length), login, next], 1500);
      const answers = parseResponses(r.data);
      assert.deepEqual(answers.map((a) => a.status), [401, 200], r.data.slice(0, 400));
      assert.notEqual(answers[0].headers.connection, 'close');
    });
  });

  describe('request heads lws cannot take: 400, 414, 431 (PROTOCOL.md section 1.2)', () => {
    // Before issue 13 (finding 7) lws 4.1.6 closed these connections
    // without a word. Defaults: request line 4096 bytes, head 8192 bytes,
    // 64 header fields, 24 query parameters.
    let gw;
    before(() => { gw = h.env.gw; });
    const get = (target, fields = []) =>
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`;

    /** The answer to head (refused): status, a JSON {"error"} body, Connection: close, then the close. */
    async function expectRefused(head, status, what) {
      const a = await expectAnsweredThenClosed(gw, head, [], status, what);
      assert.match(String(a.headers['content-type']), /^application\/json/i, `${what}: content-type`);
      const j = JSON.parse(a.body);
      assert.deepEqual(Object.keys(j), ['error'], `${what}: body ${a.body}`);
      assert.ok(j.error.length > 0, `${what}: error text`);
      return j.error;
    }

    /** Writes parts one by one, gapMs apart, on one connection; resolves like rawExchange. */
    function trickle(parts, gapMs, timeout = 8000) {
      return new Promise((resolve) => {
        const s = net.createConnection({ host: '127.0.0.1', port: gw.port });
        const chunks = [];
        let error = null;
        const timer = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(chunks).toString('latin1'), closed: false, error }); }, timeout);
        s.on('connect', async () => {
          for (const p of parts) {
            if (s.destroyed) return;
            s.write(Buffer.from(p, 'latin1'));
            await new Promise((r) => setTimeout(r, gapMs));
          }
        });
        s.on('data', (d) => chunks.push(d));
        s.on('error', (e) => { error = e.code || e.message; });
        s.on('close', () => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks).toString('latin1'), closed: true, error }); });
      });
    }

    it('a request line over http_max_request_line (4096) is 414', T, async () => {
      const e = await expectRefused(get(`${gw.basePath}/healthz?x=${'a'.repeat(5000)}`), 414, 'request line of 5 kB');
      assert.match(e, /http_max_request_line/);
      await expectRefused(get(`${gw.basePath}/${'a'.repeat(70000)}`), 414, 'request line of 70 kB');
    });

    it('more than 24 query parameters is 414', T, async () => {
      const q = Array.from({ length: 25 }, (_, i) => `p${i}=1`).join('&');
      await expectRefused(get(`${gw.basePath}/healthz?${q}`), 414, '25 parameters');
    });

    it('more than 64 header fields, or a head over http_max_head_bytes (8192), is 431', T, async () => {
      const many = Array.from({ length: 64 }, (_, i) => `X-F${i}: v`);   // + Host = 65
      assert.match(await expectRefused(get(`${gw.basePath}/healthz`, many), 431, '65 fields'), /http_max_headers/);
      assert.match(await expectRefused(get(`${gw.basePath}/healthz`, [`Cookie: a=${'b'.repeat(9000)}`]), 431, 'one 9 kB field'),
        /http_max_head_bytes/);
      const spread = Array.from({ length: 40 }, (_, i) => `X-F${i}: ${'v'.repeat(250)}`);
      await expectRefused(get(`${gw.basePath}/healthz`, spread), 431, '40 fields of 250 bytes');
    });

    it('a NUL or another control byte in the request line, or a malformed one, is 400', T, async () => {
      assert.match(await expectRefused(`GET ${gw.basePath}/heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'raw NUL in the path'), /control byte/);
      assert.match(await expectRefused(get(`${gw.basePath}/heal%00thz`), 400, '%00 in the path'), /NUL/);
      await expectRefused(get(`${gw.basePath}/healthz?a=%00`), 400, '%00 in the query');
      await expectRefused(`GET ${gw.basePath}/a\x01b HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'control byte in the path');
      await expectRefused(get(`${gw.basePath}/a%zzb`), 400, 'bad %-escape');
      await expectRefused(`GET ${gw.basePath}/healthz\r\nHost: x\r\n\r\n`, 400, 'no HTTP version');
      await expectRefused(`GET  ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'two spaces');
      await expectRefused(`GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n`, 400, 'NUL in a header value');
      await expectRefused(`GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n`, 400, 'space in a field name');
      await expectRefused(`GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n`, 400, 'obs-fold');
      await expectRefused(`GET ${gw.basePath}/healthz HTTP/1.1\rHost: x\r\n\r\n`, 400, 'CR without LF');
    });

    it('a head that arrives in pieces is checked whole: refused when it grows too large, served when it ends within the limits', T, async () => {
      const big = [`GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\n`, `Cookie: ${'c'.repeat(4000)}\r\n`,
        `X-More: ${'m'.repeat(4500)}\r\n`, '\r\n'];
      const r = await trickle(big, 150);
      const a = parseResponses(r.data);
      assert.equal(a.length, 1, r.data.slice(0, 300));
      assert.equal(a[0].status, 431);
      assert.equal(a[0].headers.connection, 'close');
      assert.ok(r.closed, 'closed after the answer');

      const ok = [`GET ${gw.basePath}/heal`, `thz HTTP/1.1\r\nHo`, `st: x\r\nCookie: ${'c'.repeat(3000)}\r`, '\n\r', '\n'];
      const r2 = await trickle(ok, 150, 3000);
      const a2 = parseResponses(r2.data);
      assert.deepEqual(a2.map((x) => x.status), [200], r2.data.slice(0, 300));
      assert.equal(a2[0].body, 'ok\n');
    });

    it('a long head within the limits is served, and keeps its connection for the next request', T, async () => {
      // 4096-byte request line; 63 more fields; 8192 bytes in all.
      const pre = `GET ${gw.basePath}/healthz?`;
      const line = `${pre}${'q'.repeat(4096 - pre.length - ' HTTP/1.1'.length)} HTTP/1.1`;
      assert.equal(line.length, 4096);
      const fields = ['Host: 127.0.0.1', ...Array.from({ length: 62 }, (_, i) => `X-F${String(i).padStart(2, '0')}: v`)];
      let head = `${line}\r\n${fields.map((f) => `${f}\r\n`).join('')}`;
      const cookie = 'Cookie: ';
      head += `${cookie}${'c'.repeat(8192 - head.length - cookie.length - 4)}\r\n\r\n`;
      assert.equal(head.length, 8192);
      assert.equal(head.split('\r\n').length - 3, 64, '64 fields');
      const next = `GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
      const r = await rawExchange(gw.port, [head, next], 1500);
      const answers = parseResponses(r.data);
      assert.deepEqual(answers.map((a) => a.status), [200, 200], r.data.slice(0, 400));
      // one byte more is refused
      const r2 = await rawExchange(gw.port, [head.replace('Cookie: ', 'Cookie: c')]);
      assert.equal(parseResponses(r2.data)[0]?.status, 431, r2.data.slice(0, 200));
    });

    it('WebSocket upgrades still work, with a long head too', T, async () => {
      for (const headers of [{}, { Cookie: `a=${'b'.repeat(6000)}` }]) {
        const ws = new WebSocket(gw.wsUrl('/client'), ['v12.stomp'], { headers, perMessageDeflate: false });
        await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
        assert.equal(ws.protocol, 'v12.stomp');
        ws.close();
      }
    });

    it('a connection that sends nothing, or half a head, is closed without an answer after 10 s', { timeout: 30000 }, async () => {
      const t0 = Date.now();
      const [silent, half] = await Promise.all([
        rawExchange(gw.port, [], 15000),
        rawExchange(gw.port, [`GET ${gw.basePath}/healthz HTTP/1.1\r\nHost: x\r\n`], 15000),
      ]);
      const ms = Date.now() - t0;
      for (const r of [silent, half]) {
        assert.ok(r.closed, 'closed by the server');
        assert.equal(r.data, '', 'no answer');
      }
      assert.ok(ms >= 9000 && ms < 13000, `closed after ${ms} ms`);
    });

    it('refusals are counted in chatgate_http_heads_refused_total', T, async () => {
      const m = await httpRequest(gw.metricsUrl());
      for (const code of ['400', '414', '431'])
        assert.match(m.text, new RegExp(`^chatgate_http_heads_refused_total\\{code="${code}"\\} [1-9]`, 'm'), code);
    });
  });

  describe('--base-path /Mimi', () => {
    let mimi;
    before(async () => { mimi = await h.env.startGateway(['--base-path', '/Mimi'], { name: 'mimi' }); });

    it('serves /Mimi/api/register, /Mimi/api/login, /Mimi/api/users, /Mimi/healthz and /Mimi/readyz', T, async () => {
      const name = uniqueName('mimi');
      const r = await mimi.register(name, 'password-123');
      assert.equal(r.status, 201, r.text);
      const l = await mimi.login(name, 'password-123');
      assert.equal(l.status, 200, l.text);
      assert.match(l.json.token, TOKEN_RE);
      const u = await mimi.api('GET', `/api/users/${name}`, undefined, l.json.token);
      assert.equal(u.status, 200, u.text);
      assert.equal(u.json.uid, r.json.uid);
      assert.equal((await httpRequest(mimi.url('/healthz'))).status, 200);
      assert.equal((await httpRequest(mimi.url('/readyz'))).status, 200);
      // both gateways share Redis: the user exists on the other one too
      const o = await gw.login(name, 'password-123');
      assert.equal(o.status, 200, o.text);
    });

    it('does not serve /api/... or /client outside the base path', T, async () => {
      const r = await httpRequest(`${mimi.origin}/api/register`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: uniqueName('out'), password: 'password-123' }),
      });
      assert.equal(r.status, 404, `/api/register without the base path: ${r.status} ${r.text}`);
      const user = await mimi.newUser('mimiws');
      await assert.rejects(RawStomp.open(mimi, { token: user.token, path: `ws://127.0.0.1:${mimi.port}/client` }),
        (e) => e instanceof HandshakeError && e.status === 404);
    });

    it('serves STOMP at /Mimi/client?srect=', T, async () => {
      const user = await mimi.newUser('mimiws');
      const s = await mimi.stomp(user);
      assert.equal(s.connectedFrame.headers['user-name'], user.username);
      await s.close();
    });
  });
});
