// Hostile input (issue #8): the send rate limit at its defaults, and login
// brute force.
//
// Send rate limit: the gateway's defaults, 50 sends/s per connection with a
// burst of 100 (PROTOCOL.md 4). One connection fires 1 000 SENDs at once
// (well within a second): at least 850 must be answered 429, and exactly
// the accepted ones are stored (a fresh init and a sync from 0 return those
// and nothing else). (tests/integration/stomp_chat covers 429 with
// --send-rate 5; this is the default configuration at volume.)
//
// Login brute force: PROTOCOL.md lists no 429 for /api/login; the gateway
// answers 429 {"error":"too many attempts, try again later"} with a
// Retry-After header once failed logins (wrong password or unknown name)
// fill one of three fixed windows, counted in Redis (gateway/chat/auth.c, at
// the defaults): 10 per account and client address per 300 s, 30 per
// address per 300 s, 100 per account from all addresses per 900 s.
// Asserted:
//   - one address cannot lock an account out: an attacker at A fails 10
//     times (401) and keeps going, far past the per-account limit (429,
//     also with the right password from A); the victim logs in from B
//     (200), and A still gets 429. Also behind a trusted proxy, where the
//     client address is the X-Forwarded-For entry proxies.c picks; a
//     forged X-Forwarded-For from an untrusted peer is not believed;
//   - the per-account limit still bounds guessing from many addresses:
//     100 failures from 10 addresses (401), the 101st from a fresh one is
//     429, also with the right password;
//   - per address: 30 failures on 30 different accounts (or unknown
//     names) from one address, then 429 whatever the account; the same
//     account from another address logs in (200);
//   - successful logins do not count (25 in a row from one address);
//   - a window ends: on a gateway with a 2 s window the account logs in
//     again from the refused address, no sooner than Retry-After allows.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, until } from '../integration/lib/harness.mjs';
import { RawClient, sendFrame } from './lib/raw.mjs';
import { History, check, assertClean, reported } from './lib/checker.mjs';
import { secrets, newUser } from './lib/util.mjs';

const T = { timeout: 60000 };

secrets.use('hostile_ratelimit_login');

let addrN = 0;
const addr = () => { addrN++; return `127.77.${(addrN >> 8) & 255}.${(addrN & 255) || 1}`; };

describe('rate limits', () => {
  const h = useEnv('hostile_ratelimit_login');

  it('1 000 sends in a second on one connection at the defaults (50/s, burst 100): >= 850 answered 429, none of them stored', T, async () => {
    await reported('send rate limit (defaults)', async (rep) => {
      const gw = h.env.gw;
      const alice = await newUser(gw, 'alice');
      const bob = await newUser(gw, 'bob');
      const hist = new History('rate');
      rep.load = '1 connection, 1000 SENDs at once';
      rep.faults = 'rate limit 50/s burst 100';
      const answers = new Map();
      const A = await RawClient.open(gw, {
        token: alice.token,
        onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'ss') answers.set(f.json.msgID, { ...f.json, at: f.at }); },
      });
      await A.connect();
      await A.subscribe([['/user/queue/send/status', 'ss']]);
      const recs = [];
      const t0 = Date.now();
      for (let i = 0; i < 1000; i++) {
        const content = `rate ${i}`;
        const id = msgId(content);
        const rec = hist.addSend({ from: alice.uid, fromName: alice.username, to: bob.uid, msgID: id, content, seq: i + 1 });
        hist.addAttempt(rec, 'A');
        recs.push(rec);
        A.send(sendFrame(id, bob.uid, content));
      }
      const sentMs = Date.now() - t0;
      await until(() => answers.size === 1000, { timeout: 30000, interval: 50, what: `1000 answers (have ${answers.size})` });
      const lastAt = Math.max(...[...answers.values()].map((a) => a.at));
      for (const rec of recs) {
        const a = answers.get(rec.msgID);
        hist.answer(rec, rec.attempts[0], a, a.at);
        if (a.code === 429) rec.failed = { code: 429 };
      }
      const codes = {};
      for (const a of answers.values()) codes[a.code] = (codes[a.code] || 0) + 1;
      const accepted = recs.filter((r) => r.confirmed);

      // what is stored: a fresh init and a sync from 0
      const got = [];
      const B = await RawClient.open(gw, {
        token: bob.token,
        onFrame: (f) => {
          if (f.command !== 'MESSAGE' || f.headers.subscription !== 'r') return;
          const j = f.json;
          got.push(j);
          const d = { rcv: bob.uid, conn: 'B', at: f.at, chatID: j.chatID, id: j.id, sender: j.sender, senderId: j.senderId,
            reciverId: j.reciverId, content: j.content, time: j.time, redelivered: f.headers.redelivered === 'true', phase: 'catchup' };
          hist.addDelivery(d);
          if (!hist.app.get(bob.uid)?.some((x) => x.chatID === j.chatID)) hist.addApp(bob.uid, d);
        },
      });
      await B.connect();
      await B.subscribe([[`/user/${bob.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
      let st = B.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 10000, 'init/status');
      B.frame('SEND', { destination: '/socket/chat/init' }, '');
      const initCount = (await st).json.count;
      const fromInit = got.splice(0).map((j) => j.chatID);
      let key = 0;
      const fromSync = [];
      for (;;) {
        st = B.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 10000, 'sync status');
        B.frame('SEND', { destination: '/socket/chat/sync' }, JSON.stringify({ syncKey: key }));
        const j = (await st).json;
        fromSync.push(...got.splice(0).map((x) => x.chatID));
        key = j.syncKey;
        if (!j.more) break;
      }
      await B.terminate();
      await A.terminate();
      const res = check(hist);
      rep.res = res;
      console.log(`[rate limit] ${JSON.stringify({ codes, sentMs, answeredWithinMs: lastAt - t0, initCount, synced: fromSync.length })}`);

      assert.ok(sentMs < 1000, `the 1000 SENDs left within a second (${sentMs} ms)`);
      assert.deepEqual(Object.keys(codes).sort(), ['200', '429'], `only 200 and 429: ${JSON.stringify(codes)}`);
      assert.ok(codes[429] >= 850, `${codes[429]} answered 429`);
      const acceptedIds = accepted.map((r) => r.msgID);
      assert.deepEqual(fromInit, acceptedIds, 'init: exactly the accepted ones, in order');
      assert.equal(initCount, accepted.length);
      assert.deepEqual(fromSync, acceptedIds, 'sync from 0: exactly the accepted ones');
      assertClean(res, { allowFailed: true, allowUnconfirmed: true, what: 'rate limit' });
      assert.equal(res.delivered, accepted.length);
    });
  });

  const login = (gw, username, password, localAddress, headers) =>
    gw.api('POST', '/api/login', { username, password }, undefined, { localAddress, headers });

  /** A 429 as auth.c answers it: the error body and a Retry-After of 1..window s. */
  function assertLimited(r, window, what) {
    assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
    assert.match(r.json?.error || '', /too many/i, `${what}: error body`);
    const after = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(after) && after >= 1 && after <= window, `${what}: Retry-After ${r.headers['retry-after']}`);
  }

  /** n wrong-password logins of username from localAddress: their statuses. */
  async function failures(gw, username, n, localAddress, headers) {
    const codes = [];
    for (let i = 0; i < n; i++) codes.push((await login(gw, username, `wrong-password-${i}`, localAddress, headers)).status);
    return codes;
  }

  it('an attacker at one address cannot lock the account out: after its 10 failures it gets 429, the victim at another address gets 200', T, async () => {
    const gw = h.env.gw;
    const victim = await newUser(gw, 'victim');
    const a = addr();
    assert.deepEqual(await failures(gw, victim.username, 10, a), Array(10).fill(401), 'ten failures from A');
    // far past the account's own limit (100): every one refused at A's bucket
    const codes = await failures(gw, victim.username, 150, a);
    assert.deepEqual([...new Set(codes)], [429], 'A keeps getting 429');
    assertLimited(await login(gw, victim.username, victim.password, a), 300, 'the right password from A');
    assertLimited(await login(gw, victim.username.toUpperCase(), victim.password, a), 300, 'the name in upper case from A');
    const b = addr();
    const ok = await login(gw, victim.username, victim.password, b);
    assert.equal(ok.status, 200, `the victim at B: ${ok.status} ${ok.text}`);
    secrets.add('token', ok.json.token);
    assertLimited(await login(gw, victim.username, 'wrong-password', a), 300, 'A after the victim logged in');
    // the victim may still mistype at B
    assert.equal((await login(gw, victim.username, 'wrong-password', b)).status, 401);
    const again = await login(gw, victim.username, victim.password, b);
    assert.equal(again.status, 200);
    secrets.add('token', again.json.token);
  });

  it('behind a trusted proxy the X-Forwarded-For client is what counts; a forged one from an untrusted peer is not believed', T, async () => {
    const proxy = '127.88.0.1';
    const gw = await h.env.startGateway(['--trusted-proxies', proxy], { name: 'proxied' });
    const victim = await newUser(gw, 'pvictim');
    const viaProxy = (client) => ({ 'X-Forwarded-For': `${client}` });
    // the attacker behind the proxy
    assert.deepEqual(await failures(gw, victim.username, 10, proxy, viaProxy('203.0.113.66')), Array(10).fill(401));
    assertLimited(await login(gw, victim.username, victim.password, proxy, viaProxy('203.0.113.66')), 300,
      'the attacker behind the proxy');
    // the same proxy, another client: the victim
    const ok = await login(gw, victim.username, victim.password, proxy, viaProxy('198.51.100.77'));
    assert.equal(ok.status, 200, `the victim behind the proxy: ${ok.status} ${ok.text}`);
    secrets.add('token', ok.json.token);
    // an untrusted peer claiming to be the victim's address is counted as itself
    const liar = '127.88.0.2';
    assert.deepEqual(await failures(gw, victim.username, 10, liar, viaProxy('198.51.100.77')), Array(10).fill(401));
    assertLimited(await login(gw, victim.username, victim.password, liar, viaProxy('198.51.100.78')), 300,
      'the untrusted peer, whatever it forges');
    const still = await login(gw, victim.username, victim.password, proxy, viaProxy('198.51.100.77'));
    assert.equal(still.status, 200, `the victim is unaffected by the forgery: ${still.status} ${still.text}`);
    secrets.add('token', still.json.token);
  });

  it('the per-account limit still bounds guessing from many addresses: the 101st failure from a fresh address gets 429', T, async () => {
    const gw = h.env.gw;
    const victim = await newUser(gw, 'spread');
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await failures(gw, victim.username, 10, addr()), Array(10).fill(401), `address ${i}: ten failures`);
    }
    assertLimited(await login(gw, victim.username, 'wrong-password', addr()), 900, 'the 101st failure, from a fresh address');
    assertLimited(await login(gw, victim.username, victim.password, addr()), 900, 'the right password, from a fresh address');
  });

  it('login brute force is limited per address: after 30 failures on 30 accounts, 429 whatever the account; another address is fine', T, async () => {
    const gw = h.env.gw;
    const users = [];
    for (let i = 0; i < 32; i++) users.push(await newUser(gw, `spray${i}`));
    const a = addr();
    const codes = [];
    for (let i = 0; i < 30; i++) codes.push((await login(gw, users[i].username, 'wrong-password', a)).status);
    assert.deepEqual(codes, Array(30).fill(401));
    assertLimited(await login(gw, users[30].username, 'wrong-password', a), 300, 'the 31st account');
    assertLimited(await login(gw, users[31].username, users[31].password, a), 300, 'the right password, at the limited address');
    const elsewhere = await login(gw, users[31].username, users[31].password, addr());
    assert.equal(elsewhere.status, 200, 'the account itself is not locked');
    secrets.add('token', elsewhere.json.token);
    // unknown accounts count against the address too (no user enumeration bypass)
    const b = addr();
    const unk = [];
    for (let i = 0; i < 31; i++) unk.push((await login(gw, `nobody${i}x${Date.now() % 1e6}`, 'wrong-password', b)).status);
    assert.deepEqual(unk, [...Array(30).fill(401), 429]);
  });

  it('successful logins do not count: 25 in a row from one address, then the failures are limited as usual', T, async () => {
    const gw = h.env.gw;
    const user = await newUser(gw, 'often');
    const a = addr();
    for (let i = 0; i < 25; i++) {
      const r = await login(gw, user.username, user.password, a);
      assert.equal(r.status, 200, `login ${i + 1}: ${r.status} ${r.text}`);
      secrets.add('token', r.json.token);
    }
    assert.deepEqual(await failures(gw, user.username, 11, a), [...Array(10).fill(401), 429]);
  });

  it('a window ends: with a 2 s window the refused address logs in again, not before the window is over', T, async () => {
    const gw = await h.env.startGateway(['--login-account-addr-window-s', '2'], { name: 'shortwindow' });
    const user = await newUser(gw, 'window');
    const a = addr();
    const t0 = Date.now();             // the window starts at the first failure, after this
    assert.deepEqual(await failures(gw, user.username, 10, a), Array(10).fill(401));
    const refused = await login(gw, user.username, user.password, a);
    assertLimited(refused, 2, 'within the window');
    let ok;
    await until(async () => {
      ok = await login(gw, user.username, user.password, a);
      return ok.status === 200;
    }, { timeout: 10000, interval: 200, what: 'a login once the window ended' });
    secrets.add('token', ok.json.token);
    assert.ok(Date.now() - t0 >= 2000, `not before the window ended: ${Date.now() - t0} ms`);
  });
});
