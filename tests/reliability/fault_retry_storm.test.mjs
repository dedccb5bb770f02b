// A retry storm (issue #8; PROTOCOL.md 4: "The same (sender, msgID) sent
// again (a retry) is not stored or delivered twice: the answer is 200 with
// the first id").
//
// SENDERS users each hold two connections, and send PER_SENDER messages to
// their own receiver, every one THREE times: on connection 1 and
// connection 2 in the same instant, and once more on connection 1 a random
// 0-30 ms later (often after the receiver already confirmed it, so the
// msgID is no longer pending). The receivers are online and confirm every
// message at once. The gateway runs with --send-rate 100000 --send-burst
// 1000000 (this is about dedupe, not the rate limit). Asserted:
//   - every one of the 3 x SENDERS x PER_SENDER sends is answered 200, and
//     the three answers of a message carry the same id;
//   - each receiver's socket got each message exactly once (a retry is
//     never published again);
//   - a fresh sync from 0 returns each message once with its first id, and
//     a fresh init finds nothing pending (one stored message each);
//   - the checker is clean.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, sleep, until } from '../integration/lib/harness.mjs';
import { History, check, assertClean, reported } from './lib/checker.mjs';
import { RawClient, sendFrame } from './lib/raw.mjs';
import { pick, secrets, newUser } from './lib/util.mjs';

const SENDERS = pick(10, 20);
const PER_SENDER = pick(300, 900);       // <= history_max (1000): sync sees them all

secrets.use('fault_retry_storm');

describe('a retry storm', () => {
  const h = useEnv('fault_retry_storm', { gatewayArgs: ['--send-rate', '100000', '--send-burst', '1000000'] });

  it(`${SENDERS} senders x ${PER_SENDER} messages, each sent 3 times on 2 connections: stored once, answered with the first id`, { timeout: pick(150000, 600000) }, async () => {
    await reported('retry storm', async (rep) => {
      const gw = h.env.gw;
      const hist = new History('storm');
      rep.load = `${SENDERS} senders x ${PER_SENDER} msgs x 3 sends (2 connections each)`;
      rep.faults = `${SENDERS * PER_SENDER * 2} duplicate sends, ${SENDERS * PER_SENDER} concurrent on 2 connections`;
      const pairs = [];
      for (let i = 0; i < SENDERS; i++) {
        pairs.push({ a: await newUser(gw, `storm${i}`), b: await newUser(gw, `calm${i}`) });
      }
      const byId = new Map();
      const onAnswer = (conn) => (f) => {
        if (f.command !== 'MESSAGE' || f.headers.subscription !== 'ss') return;
        const rec = byId.get(f.json?.msgID);
        if (!rec) return;
        const a = rec.attempts.find((x) => x.conn === conn && x.outcome === null);
        if (a) hist.answer(rec, a, f.json, f.at);
      };
      for (const p of pairs) {
        p.c1 = await RawClient.open(gw, { token: p.a.token, onFrame: onAnswer(`${p.a.uid}/1`) });
        p.c2 = await RawClient.open(gw, { token: p.a.token, onFrame: onAnswer(`${p.a.uid}/2`) });
        for (const c of [p.c1, p.c2]) {
          await c.connect();
          await c.subscribe([['/user/queue/send/status', 'ss']]);
        }
        p.got = [];
        p.r = await RawClient.open(gw, {
          token: p.b.token,
          onFrame: (f) => {
            if (f.command !== 'MESSAGE' || f.headers.subscription !== 'r') return;
            const j = f.json;
            p.got.push(j);
            const d = { rcv: p.b.uid, conn: 'live', at: f.at, chatID: j.chatID, id: j.id, sender: j.sender, senderId: j.senderId,
              reciverId: j.reciverId, content: j.content, time: j.time, redelivered: f.headers.redelivered === 'true', phase: 'live' };
            hist.addDelivery(d);
            hist.addApp(p.b.uid, d);
            p.r.frame('SEND', { destination: '/socket/chat/recive' }, JSON.stringify({ msgID: j.chatID }));
          },
        });
        await p.r.connect();
        await p.r.subscribe([[`/user/${p.b.username}/recive`, 'r']]);
      }

      // the storm: waves of 10 messages per sender every 10 ms
      const t0 = Date.now();
      const pendingThird = [];
      for (let k = 0; k < PER_SENDER; k += 10) {
        for (const p of pairs) {
          for (let m = k; m < Math.min(PER_SENDER, k + 10); m++) {
            const content = `storm ${p.a.uid}>${p.b.uid} #${m + 1}`;
            const id = msgId(content);
            const rec = hist.addSend({ from: p.a.uid, fromName: p.a.username, to: p.b.uid, msgID: id, content, seq: m + 1 });
            byId.set(id, rec);
            const frame = sendFrame(id, p.b.uid, content);
            hist.addAttempt(rec, `${p.a.uid}/1`);
            p.c1.send(frame);
            hist.addAttempt(rec, `${p.a.uid}/2`);
            p.c2.send(frame);
            pendingThird.push(sleep(Math.random() * 30).then(() => { hist.addAttempt(rec, `${p.a.uid}/1`); p.c1.send(frame); }));
          }
        }
        await sleep(10);
      }
      await Promise.all(pendingThird);
      await until(() => [...hist.sends.values()].every((r) => r.attempts.every((a) => a.outcome !== null)),
        { timeout: pick(90000, 400000), interval: 200, what: 'every send answered' });
      const stormMs = Date.now() - t0;
      await until(() => pairs.every((p) => p.got.length >= PER_SENDER), { timeout: 30000, interval: 100, what: 'every message at its receiver' });
      await sleep(300);   // a second (wrong) publish would show up by now

      // fresh sync from 0 and a fresh init per receiver
      const verify = [];
      for (const p of pairs) {
        const items = [];
        const c = await RawClient.open(gw, {
          token: p.b.token,
          onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'r2') items.push(f.json); },
        });
        await c.connect();
        await c.subscribe([[`/user/${p.b.username}/recive`, 'r2'], ['/user/queue/init/status', 'is']]);
        let key = 0;
        for (;;) {
          const st = c.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 20000, 'sync status');
          c.frame('SEND', { destination: '/socket/chat/sync' }, JSON.stringify({ syncKey: key }));
          const j = (await st).json;
          key = j.syncKey;
          if (!j.more) break;
        }
        const synced = items.splice(0);
        const st = c.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 20000, 'init status');
        c.frame('SEND', { destination: '/socket/chat/init' }, '');
        const init = (await st).json;
        await c.terminate();
        verify.push({ p, synced, initCount: init.count });
      }
      const res = check(hist);
      rep.res = res;

      const codes = {};
      let mismatched = 0;
      for (const r of hist.sends.values()) {
        for (const a of r.attempts) codes[a.code] = (codes[a.code] || 0) + 1;
        if (new Set(r.attempts.map((a) => a.id)).size !== 1) mismatched++;
      }
      console.log(`[retry storm] ${JSON.stringify({ sends: res.attempts, codes, mismatched, stormMs, rate: Math.round(res.attempts / (stormMs / 1000)), received: pairs.map((p) => p.got.length), synced: verify.map((v) => v.synced.length), initCounts: verify.map((v) => v.initCount) })}`);
      for (const p of pairs) { await p.c1.terminate(); await p.c2.terminate(); await p.r.terminate(); }

      assert.deepEqual(codes, { 200: SENDERS * PER_SENDER * 3 }, 'every send, first or retry, answered 200');
      assert.equal(mismatched, 0, 'the three answers of a message carry the same id');
      for (const p of pairs) {
        assert.equal(p.got.length, PER_SENDER, `${p.b.username}'s socket got each message once`);
        assert.equal(new Set(p.got.map((j) => j.chatID)).size, PER_SENDER);
      }
      for (const v of verify) {
        const first = new Map([...hist.sends.values()].filter((r) => r.to === v.p.b.uid).map((r) => [r.msgID, r.confirmed.id]));
        assert.equal(v.synced.length, PER_SENDER, `sync from 0 returned ${v.synced.length} for ${v.p.b.username}`);
        assert.equal(new Set(v.synced.map((j) => j.chatID)).size, PER_SENDER, 'each message once in sync');
        for (const j of v.synced) assert.equal(j.id, first.get(j.chatID), `sync id of ${j.chatID} is the first id`);
        assert.equal(v.initCount, 0, 'nothing left pending');
      }
      assertClean(res, { what: 'retry storm' });
    });
  });
});
