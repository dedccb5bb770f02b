// Hostile input (issue #8): Origins on every SockJS transport, and tokens
// that are missing, bad, expired or revoked on plain WebSocket and SockJS.
// Extends tests/integration/malformed.test.mjs (which covers Origin and
// tokens on the plain WebSocket /client) and durability.test.mjs (logout
// on plain WebSocket, two nodes); nothing here repeats those.
//
// Expectations, from PROTOCOL.md section 2:
//   - "A handshake without an Origin header (native clients, servers) is
//     admitted; a listed-but-wrong one (null, a look-alike) is 403", on
//     WebSocket and SockJS: the SockJS websocket and raw websocket upgrades
//     and the xhr, xhr_send, xhr_streaming and eventsource requests answer
//     403 to a foreign, `null` or look-alike Origin, and never reflect it in
//     Access-Control-Allow-Origin;
//   - /info is public (sockjs-client fetches it before anything else; it
//     carries no session and no data): any status, but a refused Origin
//     gets no Access-Control-Allow-Origin, so a browser page of that origin
//     cannot read it; an admitted one is reflected with credentials;
//   - "No valid token anywhere: ... CONNECT answers an ERROR frame and the
//     connection closes", on every SockJS transport sockjs-client has in node;
//   - logout: "the token is revoked and its live connections are closed":
//     within a second on every SockJS transport.
//
// Expired tokens: the short form makes a token expire by rewriting its
// record in Redis ("uid:expires:name", keyed by the SHA-256 of the token)
// with an expiry in the past and the key's TTL kept: the gateway must check
// the expiry itself. The long form (CHATGATE_SOAK=1) also waits a real
// --token-ttl-s 60 out. (tests/integration/token_expiry.test.mjs waits a
// --token-ttl-s 2 out on live sessions.)
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { useEnv, sleep, HandshakeError, RawStomp, buildFrame, httpRequest } from '../integration/lib/harness.mjs';
import { NODE_TRANSPORTS, sockjsStomp, request, sessionPath, HttpStream, wsOpen, post, stompFrame } from '../integration/lib/sockjs.mjs';
import { SOAK, secrets, newUser, loginToken } from './lib/util.mjs';

const T = { timeout: 60000 };

secrets.use('hostile_origins_tokens');

const tokenKey = (t) => `cg:tok:${crypto.createHash('sha256').update(t).digest('hex')}`;

/** Makes token t expired in Redis: its record's expiry goes into the past. */
async function expire(env, t) {
  const k = tokenKey(t);
  const rec = await env.redis.command('GET', k);
  assert.ok(rec, `token record ${k} exists`);
  const [uid, , ...name] = rec.split(':');
  const r = await env.redis.command('SET', k, `${uid}:${Date.now() - 1000}:${name.join(':')}`, 'KEEPTTL');
  assert.equal(r, 'OK');
}

function acao(res) {
  return res.headers['access-control-allow-origin'];
}

describe('hostile origins and tokens', () => {
  const h = useEnv('hostile_origins_tokens', { gatewayArgs: ['--sockjs-disconnect-ms', '1000'] });
  let gw, alice, bad;
  before(async () => {
    gw = h.env.gw;
    alice = await newUser(gw, 'alice');
    bad = (o) => [
      ['foreign', 'http://evil.example'],
      ['null', 'null'],
      ['look-alike suffix', `http://127.0.0.1:${o.port}.evil.example`],
      ['look-alike host', 'http://localhost.evil.example'],
      ['userinfo trick', `http://127.0.0.1:${o.port}@evil.example`],
    ];
  });

  describe('Origin on every SockJS transport', () => {
    it('foreign, null and look-alike Origins get 403 on websocket, raw websocket, xhr, xhr_send, xhr_streaming, eventsource', T, async () => {
      const base = gw.url('/socketServer');
      const wsBase = gw.wsUrl('/socketServer');
      const q = `?srect=${alice.token}`;
      // a real session for xhr_send to target
      const live = sessionPath();
      assert.equal((await post(`${base}${live}/xhr${q}`, '')).text, 'o\n');
      for (const [what, origin] of bad(gw)) {
        for (const p of [`${sessionPath()}/websocket`, '/websocket']) {
          await assert.rejects(wsOpen(`${wsBase}${p}${q}`, { origin }),
            (e) => e.status === 403, `${what} Origin on ${p}`);
        }
        const reqs = [
          ['xhr', () => request(`${base}${sessionPath()}/xhr${q}`, { method: 'POST', headers: { Origin: origin } })],
          ['xhr_send', () => request(`${base}${live}/xhr_send${q}`, { method: 'POST', body: JSON.stringify([stompFrame('CONNECT', { 'accept-version': '1.2' })]), headers: { Origin: origin, 'Content-Type': 'text/plain' } })],
          ['xhr_streaming', () => request(`${base}${sessionPath()}/xhr_streaming${q}`, { method: 'POST', headers: { Origin: origin }, timeout: 3000 })],
          ['eventsource', () => request(`${base}${sessionPath()}/eventsource${q}`, { headers: { Origin: origin }, timeout: 3000 })],
        ];
        for (const [t, fn] of reqs) {
          const r = await fn();
          assert.equal(r.status, 403, `${what} Origin on ${t}: HTTP ${r.status} ${r.text.slice(0, 80)}`);
          assert.notEqual(acao(r), origin, `${t} reflects ${origin}`);
          assert.notEqual(acao(r), '*', `${t} answers a refused origin with ACAO *`);
        }
        // preflight: never grants the origin
        const pre = await request(`${base}${live}/xhr_send`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
        assert.ok(acao(pre) !== origin && acao(pre) !== '*', `${what}: OPTIONS xhr_send grants ${acao(pre)}`);
        // /info: public, but not readable by that origin
        const info = await request(`${base}/info`, { headers: { Origin: origin } });
        assert.ok([200, 403].includes(info.status), `${what} /info: ${info.status}`);
        assert.ok(acao(info) !== origin && acao(info) !== '*', `${what}: /info grants ${acao(info)}`);
      }
    });

    it('no Origin is admitted on every transport; the own origin is reflected with credentials', T, async () => {
      const base = gw.url('/socketServer');
      const wsBase = gw.wsUrl('/socketServer');
      const q = `?srect=${alice.token}`;
      for (const origin of [undefined, gw.origin]) {
        const hdr = origin ? { Origin: origin } : {};
        for (const p of [`${sessionPath()}/websocket`, '/websocket']) {
          const ws = await wsOpen(`${wsBase}${p}${q}`, { origin });
          ws.terminate();
        }
        const sp = sessionPath();
        const x = await request(`${base}${sp}/xhr${q}`, { method: 'POST', headers: hdr });
        assert.equal(x.status, 200);
        assert.equal(x.text, 'o\n');
        const send = await request(`${base}${sp}/xhr_send${q}`, { method: 'POST', headers: { ...hdr, 'Content-Type': 'text/plain' }, body: JSON.stringify([stompFrame('CONNECT', { 'accept-version': '1.2', host: 'x' })]) });
        assert.equal(send.status, 204, `xhr_send with Origin ${origin}: ${send.status} ${send.text}`);
        const st = new HttpStream(`${base}${sessionPath()}/xhr_streaming${q}`, { headers: hdr });
        await st.waitText(/o\n/, 5000);
        st.abort();
        const es = new HttpStream(`${base}${sessionPath()}/eventsource${q}`, { method: 'GET', headers: hdr });
        await es.waitText(/data: o\r?\n/, 5000);
        es.abort();
        const info = await request(`${base}/info`, { headers: hdr });
        assert.equal(info.status, 200);
        if (origin) {
          assert.equal(acao(info), origin, '/info reflects the admitted origin');
          assert.equal(info.headers['access-control-allow-credentials'], 'true');
          assert.equal(acao(x), origin, 'xhr reflects the admitted origin');
        }
      }
    });

    it('with --allowed-origins https://chat.example: only it is admitted, loopback is not', T, async () => {
      const strict = await h.env.startGateway(['--allowed-origins', 'https://chat.example'], { name: 'strict' });
      try {
        const base = strict.url('/socketServer');
        const q = `?srect=${alice.token}`;
        const ok = await request(`${base}${sessionPath()}/xhr${q}`, { method: 'POST', headers: { Origin: 'https://chat.example' } });
        assert.equal(ok.status, 200);
        assert.equal(acao(ok), 'https://chat.example');
        for (const origin of ['http://chat.example', 'https://chat.example:8443', 'https://chat.example.evil', strict.origin, 'null']) {
          const r = await request(`${base}${sessionPath()}/xhr${q}`, { method: 'POST', headers: { Origin: origin } });
          assert.equal(r.status, 403, `Origin ${origin}: ${r.status}`);
          await assert.rejects(wsOpen(`${strict.wsUrl('/socketServer')}${sessionPath()}/websocket${q}`, { origin }), (e) => e.status === 403, `ws ${origin}`);
        }
      } finally {
        await h.env.stopGateway(strict);
      }
    });
  });

  describe('tokens: none, bad, expired, revoked', () => {
    it('on every SockJS transport, CONNECT without a valid token answers ERROR and the session closes', T, async () => {
      const bob = await newUser(gw, 'bob');
      const expired = await loginToken(gw, bob);
      await expire(h.env, expired);
      const revoked = await loginToken(gw, bob);
      assert.equal((await gw.api('POST', '/api/logout', undefined, revoked)).status, 204);
      const cases = [
        ['none', { ...bob, token: undefined }],
        ['bad', { ...bob, token: 'B'.repeat(43) }],
        ['expired', { ...bob, token: expired }],
        ['revoked', { ...bob, token: revoked }],
      ];
      for (const transport of NODE_TRANSPORTS) {
        for (const [what, user] of cases) {
          await assert.rejects(sockjsStomp(gw, user, { transport }),
            /ERROR frame|closed before CONNECTED/, `${what} token over SockJS ${transport} must not connect`);
        }
      }
      // and the valid token still works on each
      for (const transport of NODE_TRANSPORTS) {
        const s = await sockjsStomp(gw, bob, { transport });
        await s.close();
      }
    });

    it('an expired token: 401 on the HTTP API, refused on plain WebSocket; a fresh login works', T, async () => {
      const carl = await newUser(gw, 'carl');
      const t = await loginToken(gw, carl);
      assert.equal((await gw.api('GET', `/api/users/${carl.uid}`, undefined, t)).status, 200);
      await expire(h.env, t);
      const r = await gw.api('GET', `/api/users/${carl.uid}`, undefined, t);
      assert.equal(r.status, 401, `expired token on the API: ${r.status} ${r.text}`);
      let raw;
      try {
        raw = await RawStomp.open(gw, { token: t });
      } catch (e) {
        assert.ok(e instanceof HandshakeError && e.status === 401, String(e));
      }
      if (raw) {
        h.env.track(raw);
        raw.send(buildFrame('CONNECT', { 'accept-version': '1.2', host: 'x' }));
        const f = await raw.frames.waitFor((x) => x.command === 'ERROR' || x.command === 'CONNECTED', 5000);
        assert.equal(f.command, 'ERROR', 'an expired token must not get CONNECTED');
        await raw.waitClose(5000);
      }
      // logging out an expired token may answer 204 (revoked anyway) or 401
      assert.ok([204, 401].includes((await gw.api('POST', '/api/logout', undefined, t)).status), 'logout of an expired token');
      assert.equal((await gw.login(carl.username, carl.password)).status, 200);
    });

    it('logout closes live SockJS sessions of the token within a second, on every transport', T, async () => {
      const dora = await newUser(gw, 'dora');
      for (const transport of NODE_TRANSPORTS) {
        const t = await loginToken(gw, dora);
        const keep = await loginToken(gw, dora);
        const s = await sockjsStomp(gw, { ...dora, token: t }, { transport });
        const other = await sockjsStomp(gw, { ...dora, token: keep }, { transport });
        await sleep(100);
        const r = await gw.api('POST', '/api/logout', undefined, t);
        assert.equal(r.status, 204);
        const t0 = Date.now();
        const c = await Promise.race([s.closed, sleep(3000).then(() => null)]);
        assert.ok(c, `${transport}: the session of the revoked token is still open 3 s after the 204`);
        assert.ok(c.at - t0 <= 1000, `${transport}: closed ${c.at - t0} ms after the 204`);
        assert.ok(!other.closeInfo, `${transport}: a session of another token stays open`);
        await other.close();
      }
    });

    if (SOAK) {
      it('a token really expires (--token-ttl-s 60, waited out)', { timeout: 120000 }, async () => {
        const short = await h.env.startGateway(['--token-ttl-s', '60'], { name: 'ttl' });
        try {
          const eve = await newUser(short, 'eve');
          assert.equal((await short.api('GET', `/api/users/${eve.uid}`, undefined, eve.token)).status, 200);
          await sleep(61000);
          assert.equal((await short.api('GET', `/api/users/${eve.uid}`, undefined, eve.token)).status, 401);
          await assert.rejects(sockjsStomp(short, eve, { transport: 'websocket' }), /ERROR frame|closed before CONNECTED/);
        } finally {
          await h.env.stopGateway(short);
        }
      });
    }

    it('the gateway refuses --token-ttl-s 0 (below its range 1..)', T, async () => {
      const r = await httpRequest(gw.url('/healthz'));
      assert.equal(r.status, 200);
      await assert.rejects(h.env.startGateway(['--token-ttl-s', '0'], { name: 'ttl0' }), /not ready|exited/);
      h.env.gateways = h.env.gateways.filter((g) => g.name !== 'ttl0');
    });
  });
});
