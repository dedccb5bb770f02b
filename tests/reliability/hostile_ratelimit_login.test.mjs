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
// answers 429 {"error":"too many attempts, try again later"} once a token
// bucket runs dry, one bucket per account and one per client address
// (gateway/auth.c: 10 attempts, refilled at 1 per 5 s). Asserted:
//   - per account: after its first login, 9 wrong passwords from 9
//     different addresses get 401, the 11th attempt gets 429, and so does the right password from a fresh
//     address; a login works again once the bucket refilled (bounded wait);
//   - per address: 10 attempts from one address on 10 different accounts
//     get 401, the 11th (another account) gets 429, also with the right
//     password; the same account from another address logs in (200).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, sleep, until } from '../integration/lib/harness.mjs';
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

  it('login brute force is limited per account: the 11th attempt gets 429, also with the right password', T, async () => {
    const gw = h.env.gw;
    const victim = await newUser(gw, 'victim');
    // newUser() logged in once: 9 attempts are left in the account's bucket of 10
    const codes = [];
    for (let i = 0; i < 10; i++) {
      const r = await gw.api('POST', '/api/login', { username: victim.username, password: `wrong-password-${i}` }, undefined, { localAddress: addr() });
      codes.push(r.status);
      if (r.status === 429) {
        assert.match(r.json?.error || '', /too many/i);
      }
    }
    assert.deepEqual(codes, [...Array(9).fill(401), 429], 'ten attempts (one right, nine wrong), then limited');
    const right = await gw.api('POST', '/api/login', { username: victim.username, password: victim.password }, undefined, { localAddress: addr() });
    assert.equal(right.status, 429, 'the right password is limited too while the account is');
    // case does not open a second bucket
    const upper = await gw.api('POST', '/api/login', { username: victim.username.toUpperCase(), password: victim.password }, undefined, { localAddress: addr() });
    assert.equal(upper.status, 429, 'the account bucket ignores case');
    // it refills (1 attempt per 5 s): a login works again, bounded
    const t0 = Date.now();
    let ok;
    await until(async () => {
      ok = await gw.api('POST', '/api/login', { username: victim.username, password: victim.password }, undefined, { localAddress: addr() });
      return ok.status === 200;
    }, { timeout: 12000, interval: 500, what: 'a login after the refill' });
    secrets.add('token', ok.json.token);
    assert.ok(Date.now() - t0 >= 2000, 'not before the bucket refilled');
  });

  it('login brute force is limited per address: the 11th account from one address gets 429; another address is fine', T, async () => {
    const gw = h.env.gw;
    const users = [];
    for (let i = 0; i < 12; i++) users.push(await newUser(gw, `spray${i}`));
    const a = addr();
    const codes = [];
    for (let i = 0; i < 10; i++) {
      codes.push((await gw.api('POST', '/api/login', { username: users[i].username, password: 'wrong-password' }, undefined, { localAddress: a })).status);
    }
    assert.deepEqual(codes, Array(10).fill(401));
    const eleventh = await gw.api('POST', '/api/login', { username: users[10].username, password: 'wrong-password' }, undefined, { localAddress: a });
    assert.equal(eleventh.status, 429);
    const right = await gw.api('POST', '/api/login', { username: users[11].username, password: users[11].password }, undefined, { localAddress: a });
    assert.equal(right.status, 429, 'the address is limited, whatever the account');
    const elsewhere = await gw.api('POST', '/api/login', { username: users[11].username, password: users[11].password }, undefined, { localAddress: addr() });
    assert.equal(elsewhere.status, 200, 'the account itself is not locked');
    secrets.add('token', elsewhere.json.token);
    // unknown accounts count against the address too (no user enumeration bypass)
    const b = addr();
    const unk = [];
    for (let i = 0; i < 11; i++) unk.push((await gw.api('POST', '/api/login', { username: `nobody${i}x${Date.now() % 1e6}`, password: 'wrong-password' }, undefined, { localAddress: b })).status);
    assert.deepEqual(unk, [...Array(10).fill(401), 429]);
    await sleep(10);
  });
});
