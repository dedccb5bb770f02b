// A live session ends when its login token expires. PROTOCOL.md section 1
// stores every token "with an expiry" and section 2 serves no session
// without a valid token; logout closes a token's sessions at once, and an
// expiry does the same when it comes: ERROR "401 token expired: log in
// again", then the close (plain WebSocket: 1008; SockJS: c[3000,"Go away!"],
// as after any ERROR). A session of a token that is still valid - another
// login of the same user - is untouched.
//
// The gateway runs with --token-ttl-s 2, so each test waits an expiry out
// (the gateway closes to the millisecond of the expiry: session_connect.c
// sets a deadline of the session's one timer for it, session_timer.c).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, sleep } from './lib/harness.mjs';
import { NODE_TRANSPORTS, sockjsStomp } from './lib/sockjs.mjs';

const TTL_MS = 2000;
const T = { timeout: 30000 };
const EXPIRED = '401 token expired: log in again';

/** A new token of user u: {...u, token, expiresAt}. */
async function login(gw, u) {
  const l = await gw.login(u.username, u.password);
  assert.equal(l.status, 200, l.text);
  assert.ok(Math.abs(l.json.expiresAt - (Date.now() + TTL_MS)) < 1000, `expiresAt ${l.json.expiresAt}`);
  return { ...u, token: l.json.token, expiresAt: l.json.expiresAt };
}

describe(`token expiry (--token-ttl-s ${TTL_MS / 1000})`, () => {
  const h = useEnv('token_expiry', { gatewayArgs: ['--token-ttl-s', String(TTL_MS / 1000)] });
  let gw;
  before(() => { gw = h.env.gw; });

  it('plain WebSocket: ERROR 401 token expired at the expiry, then close 1008; a later token is untouched', T, async () => {
    const u = await gw.newUser('exp');
    const a = await login(gw, u);
    const A = await gw.raw({ token: a.token });
    await A.connect({ 'heart-beat': '0,0' });
    await A.subscribe('/user/queue/status', 'st');
    await sleep(800);
    const b = await login(gw, u);             // outlives a by ~800 ms
    const B = await gw.raw({ token: b.token });
    await B.connect({ 'heart-beat': '0,0' });

    const e = await A.waitError(TTL_MS + 3000);
    assert.equal(e.headers.message, EXPIRED);
    assert.match(e.body, /expired.*log in again/);
    // a few ms of slack: the gateway and this test read the clock apart
    assert.ok(e.at >= a.expiresAt - 50, `ERROR ${a.expiresAt - e.at} ms before the expiry`);
    assert.ok(e.at <= a.expiresAt + 1500, `ERROR ${e.at - a.expiresAt} ms after the expiry`);
    const c = await A.waitClose(5000);
    assert.equal(c.code, 1008);
    assert.equal(A.frames.count((f) => f.command === 'ERROR'), 1);

    // b is still valid: its session stays open and keeps working
    assert.ok(B.open, 'the session of the later token is open');
    assert.equal(B.frames.count((f) => f.command === 'ERROR'), 0);
    await B.subscribe('/user/queue/status', 'st');
    // ... until its own expiry
    const e2 = await B.waitError(TTL_MS + 3000);
    assert.equal(e2.headers.message, EXPIRED);
    assert.ok(e2.at >= b.expiresAt - 50, `ERROR ${b.expiresAt - e2.at} ms before the expiry`);
    assert.equal((await B.waitClose(5000)).code, 1008);
    // and a fresh login connects again
    const C = await gw.raw({ token: (await login(gw, u)).token });
    await C.connect();
    await C.terminate();
  });

  it('@stomp/stompjs sees the ERROR frame and the close, having chatted until then', T, async () => {
    const alice = await login(gw, await gw.newUser('alice'));
    const bob = await gw.newUser('bob');
    const A = await gw.stomp(alice);
    const r = await A.chat(bob, 'before the expiry');
    assert.equal(r.code, 200, JSON.stringify(r));
    const e = await A.errors.waitFor(() => true, TTL_MS + 3000, { what: 'ERROR at the expiry' });
    assert.equal(e.headers.message, EXPIRED);
    const c = await A.closed;
    assert.equal(c.code, 1008);
  });

  it('SockJS, every transport: ERROR 401 token expired, then c[3000,"Go away!"]', T, async () => {
    const u = await gw.newUser('sjs');
    await Promise.all(NODE_TRANSPORTS.map(async (transport) => {
      const a = await login(gw, u);
      const s = await sockjsStomp(gw, a, { transport });
      const e = await s.errors.waitFor(() => true, TTL_MS + 5000, { what: `ERROR over ${transport}` });
      assert.equal(e.headers.message, EXPIRED, transport);
      assert.ok(Date.now() >= a.expiresAt - 50, `${transport}: ERROR before the expiry`);
      const c = await s.closed;
      assert.deepEqual({ code: c.code, reason: c.reason }, { code: 3000, reason: 'Go away!' }, transport);
    }));
  });
});
