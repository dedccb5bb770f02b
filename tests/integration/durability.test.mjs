// PROTOCOL.md section 5 (guarantees): a 200 is a promise. Gateways are
// killed with SIGKILL, redis-server is killed with SIGKILL and restarted on
// its AOF (appendfsync always), two gateway processes share one Redis, and a
// logout closes the token's connections on every node.
//
// ASSUMPTIONS where the contract is silent: tokens and accounts live in
// Redis (so they survive a gateway restart and a Redis restart); "within a
// second" for logout is measured from the 204; a gateway stopped with
// SIGTERM closes its WebSocket connections with a close frame (not a bare
// TCP close) and exits 0.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, until, httpRequest, withTimeout, RawStomp, HandshakeError } from './lib/harness.mjs';

const T = { timeout: 45000 };

async function ready(gw, timeout = 20000) {
  await until(async () => (await httpRequest(gw.url('/readyz'))).status === 200,
    { timeout, what: `${gw.name} readyz 200` });
}

/** The token must no longer open a session: 401 or ERROR + close. */
async function assertTokenRefused(env, gw, token) {
  let raw;
  try {
    raw = await RawStomp.open(gw, { token });
  } catch (e) {
    assert.ok(e instanceof HandshakeError, String(e));
    assert.equal(e.status, 401);
    return;
  }
  env.track(raw);
  raw.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
  const f = await raw.frames.waitFor((x) => x.command === 'ERROR' || x.command === 'CONNECTED', 5000);
  assert.equal(f.command, 'ERROR', 'a revoked token must not get CONNECTED');
  await raw.waitClose(5000);
}

describe('durability and scale-out (PROTOCOL.md section 5)', () => {
  const h = useEnv('durability');
  let nodeA, nodeB;
  before(async () => {
    nodeA = h.env.gw;
    nodeB = await h.env.startGateway([], { name: 'nodeB' });
  });

  it('a message answered 200 survives kill -9 of the gateway before the receiver inits', T, async () => {
    const alice = await nodeA.newUser('alice');
    const bob = await nodeA.newUser('bob');
    const A = await nodeA.stomp(alice);
    const r = await A.chat(bob, 'kill -9 me');
    assert.equal(r.code, 200, JSON.stringify(r));
    await h.env.killGateway(nodeA, 'SIGKILL');
    await A.closed;
    nodeA = await h.env.startGateway([], { name: 'nodeA2' });
    const B = await nodeA.stomp(bob);   // bob's token is still valid on the new process
    const { messages, status } = await B.init();
    assert.deepEqual(messages.map((m) => m.json), [{
      id: r.id, chatID: r.msgID, sender: alice.username, reciver: bob.username,
      content: 'kill -9 me', time: r.time, senderId: alice.uid, reciverId: bob.uid,
    }]);
    assert.equal(status.count, 1);
  });

  it('a message pushed but not confirmed is redelivered after the receiver\'s node dies', T, async () => {
    const alice = await nodeA.newUser('alice');
    const carl = await nodeA.newUser('carl');
    const A = await nodeA.stomp(alice);
    const Cb = await nodeB.stomp(carl);
    const r = await A.chat(carl, 'pushed, never confirmed');
    await Cb.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
    await h.env.killGateway(nodeB, 'SIGKILL');
    await Cb.closed;
    const Ca = await nodeA.stomp(carl);
    const { messages } = await Ca.init();
    assert.deepEqual(messages.map((m) => m.json.chatID), [r.msgID]);
    assert.equal(messages[0].headers.redelivered, 'true');
    nodeB = await h.env.startGateway([], { name: 'nodeB2' });
  });

  it('a message answered 200 survives kill -9 and restart of redis-server (AOF, appendfsync always)', T, async () => {
    const alice = await nodeB.newUser('alice');
    const carol = await nodeB.newUser('carol');
    const A = await nodeB.stomp(alice);
    const r1 = await A.chat(carol, 'before the crash, unconfirmed');
    const r2 = await A.chat(carol, 'before the crash, confirmed');
    assert.equal(r1.code, 200);
    assert.equal(r2.code, 200);
    const C = await nodeB.stomp(carol);
    assert.equal((await C.confirm(r2.msgID)).code, 200);
    await C.close();
    await A.close();

    await h.env.restartRedis();
    await ready(nodeA);
    await ready(nodeB);

    // accounts and tokens survived too
    assert.equal((await nodeA.login(carol.username, carol.password)).status, 200);
    const C2 = await nodeA.stomp(carol);
    const { messages, status } = await C2.init();
    assert.deepEqual(messages.map((m) => m.json.chatID), [r1.msgID], 'the unconfirmed one, and only it');
    assert.equal(messages[0].json.content, 'before the crash, unconfirmed');
    assert.equal(messages[0].json.id, r1.id);
    assert.equal(status.count, 1);
    // ids never go back
    const A2 = await nodeA.stomp(alice);
    const r3 = await A2.chat(carol, 'after the crash');
    assert.equal(r3.code, 200);
    assert.ok(r3.id > r2.id, `id ${r3.id} after ${r2.id}`);
    await C2.recive.waitFor((m) => m.json?.chatID === r3.msgID, 10000);
  });

  it('two gateway processes: a sender on A reaches a receiver on B live; the confirmation comes back', T, async () => {
    const alice = await nodeA.newUser('alice');
    const dave = await nodeA.newUser('dave');
    const A = await nodeA.stomp(alice);
    const Db = await nodeB.stomp(dave);
    const Da = await nodeA.stomp(dave);
    const r = await A.chat(dave, 'across nodes');
    assert.equal(r.code, 200);
    const onB = await Db.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
    const onA = await Da.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
    assert.deepEqual(onB.json, onA.json);
    assert.equal(onB.json.id, r.id);
    assert.equal((await Db.confirm(r.msgID)).code, 200);
    const d = await A.delivered.waitFor((m) => m.json?.msgID === r.msgID, 10000);
    assert.deepEqual({ id: d.json.id, reciverId: d.json.reciverId }, { id: r.id, reciverId: dave.uid });
    // and the reverse direction
    const back = await Db.chat(alice, 'and back');
    assert.equal(back.code, 200);
    await A.recive.waitFor((m) => m.json?.chatID === back.msgID, 10000);
  });

  it("logout closes the token's live connections on both nodes within a second", T, async () => {
    const hank = await nodeA.newUser('hank');
    const other = await nodeA.newUser('other');
    const t2 = await nodeA.loginToken(hank);
    const S1a = await nodeA.stomp(hank);
    const S1b = await nodeB.stomp(hank);
    const S2 = await nodeB.stomp({ ...hank, token: t2 });
    const r = await nodeA.api('POST', '/api/logout', undefined, hank.token);
    assert.equal(r.status, 204, r.text);
    const t0 = Date.now();
    const closes = await withTimeout(Promise.all([S1a.closed, S1b.closed]), 5000,
      "both connections of the revoked token close");
    closes.forEach((c, i) => assert.ok(c.at - t0 <= 1000,
      `connection on node ${'AB'[i]} closed ${c.at - t0} ms after the 204`));
    // the user's other token keeps its connection
    assert.ok(S2.open, 'a connection of another token stays open');
    const ok = await S2.chat(other, 'still logged in elsewhere');
    assert.equal(ok.code, 200);
    await assertTokenRefused(h.env, nodeB, hank.token);
    await assertTokenRefused(h.env, nodeA, hank.token);
  });

  it('a gateway connects to Redis over a unix socket (unix:///path) and shares its data', T, async () => {
    const u = await h.env.startGateway([], { name: 'unix', redisUrl: h.env.redis.unixUrl });
    const alice = await u.newUser('alice');
    const ivan = await u.newUser('ivan');
    const A = await u.stomp(alice);
    const I = await nodeA.stomp(ivan);
    const r = await A.chat(ivan, 'via the unix socket');
    assert.equal(r.code, 200);
    await I.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
    await A.close();
    await h.env.stopGateway(u);
  });

  it('SIGTERM closes live connections, exits 0, and keeps pending messages', T, async () => {
    const g = await h.env.startGateway([], { name: 'term' });
    const alice = await g.newUser('alice');
    const jo = await g.newUser('jo');
    const A = await g.stomp(alice);
    const r = await A.chat(jo, 'pending over a restart');
    assert.equal(r.code, 200);
    await h.env.stopGateway(g);   // SIGTERM; asserts exit 0 and no sanitizer report
    const c = await A.closed;
    assert.notEqual(c.code, 1006, 'closed with a close frame');
    const J = await nodeA.stomp(jo);
    const { messages } = await J.init();
    assert.deepEqual(messages.map((m) => m.json.chatID), [r.msgID]);
  });
});
