// 10 000 pipelined SENDs, then DISCONNECT with a receipt (issue #8;
// PROTOCOL.md 3: "DISCONNECT with receipt"; session.c: "DISCONNECT's
// RECEIPT follows every outstanding answer").
//
// One raw connection writes COUNT SEND frames of 128-byte content without
// waiting for anything (the first half one frame per WebSocket message,
// the second half 100 frames per message), then `DISCONNECT receipt:x`.
// The gateway runs with --send-rate 100000 --send-burst 1000000 so the
// per-connection rate limit does not answer 429, and with
// --max-pending-per-sender 100000 (the whole default inbox) so alice's
// share of bob's inbox does not either: all COUNT are hers, and bob
// confirms them as they come, not before the next is sent. Asserted:
//   - the sender gets COUNT send/status answers, all 200, ids strictly
//     increasing in send order, and the RECEIPT x after the last of them;
//     then the server closes the connection (1000);
//   - the receiver, online throughout, gets all COUNT messages, in order;
//     a later init finds exactly COUNT pending (each stored once);
//   - the checker is clean.
// And the same with the sender's reader paused until 1.5 s after its
// DISCONNECT (its socket full, the gateway's last writes partial): the
// RECEIPT still comes after every answer and the close frame still says
// 1000. (Found here: lws closed such a connection without a close frame,
// the client saw 1006; fixed in gateway/transport/transport_ws.c.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, sleep } from '../integration/lib/harness.mjs';
import { History, check, assertClean, reported } from './lib/checker.mjs';
import { RawClient, sendFrame, buildFrame } from './lib/raw.mjs';
import { pick, secrets, newUser } from './lib/util.mjs';

const COUNT = pick(10000, 50000);

secrets.use('fault_pipeline_disconnect');

describe('pipelined SENDs then DISCONNECT receipt', () => {
  const h = useEnv('fault_pipeline_disconnect', {
    gatewayArgs: ['--send-rate', '100000', '--send-burst', '1000000', '--max-pending-per-sender', '100000'],
  });

  it(`${COUNT} x 128 B then DISCONNECT receipt:x: RECEIPT after every answer, receiver gets all`, { timeout: pick(120000, 600000) }, async () => {
    await reported(`pipelined ${COUNT} + DISCONNECT`, async (rep) => {
      const gw = h.env.gw;
      const hist = new History('pipeline');
      const alice = await newUser(gw, 'alice');
      const bob = await newUser(gw, 'bob');
      rep.load = `1 connection, ${COUNT} x 128 B pipelined`;
      rep.faults = 'DISCONNECT receipt:x right after the last SEND';

      const got = [];
      const B = await RawClient.open(gw, {
        token: bob.token,
        onFrame: (f) => {
          if (f.command !== 'MESSAGE' || f.headers.subscription !== 'r') return;
          const j = f.json;
          got.push(j);
          const d = { rcv: bob.uid, conn: 'B', at: f.at, chatID: j.chatID, id: j.id, sender: j.sender, senderId: j.senderId,
            reciverId: j.reciverId, content: j.content, time: j.time, redelivered: f.headers.redelivered === 'true', phase: 'live' };
          hist.addDelivery(d);
          hist.addApp(bob.uid, d);
        },
      });
      await B.connect();
      await B.subscribe([[`/user/${bob.username}/recive`, 'r']]);

      const order = [];              // the sender's frames after its SUBSCRIBE, in arrival order
      const byId = new Map();
      const A = await RawClient.open(gw, { token: alice.token, onFrame: (f) => order.push(f) });
      await A.connect();
      await A.subscribe([['/user/queue/send/status', 'ss']]);
      order.length = 0;
      const msgs = [];
      for (let i = 0; i < COUNT; i++) {
        const content = `#${String(i + 1).padStart(6, '0')} `.padEnd(128, 'abcdefgh');
        const msgID = msgId(content);
        const rec = hist.addSend({ from: alice.uid, fromName: alice.username, to: bob.uid, msgID, content, seq: i + 1 });
        hist.addAttempt(rec, 'A');
        byId.set(msgID, rec);
        msgs.push(sendFrame(msgID, bob.uid, content));
      }
      const half = COUNT / 2;
      const t0 = Date.now();
      for (let i = 0; i < half; i++) A.send(msgs[i]);
      for (let i = half; i < COUNT; i += 100) A.send(Buffer.concat(msgs.slice(i, Math.min(COUNT, i + 100))));
      A.send(buildFrame('DISCONNECT', { receipt: 'x' }));
      const closed = await A.waitClose(pick(60000, 300000));
      const tClose = Date.now() - t0;

      const answers = order.filter((f) => f.command === 'MESSAGE');
      const receiptAt = order.findIndex((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'x');
      const lastAnswerAt = order.reduce((k, f, i) => (f.command === 'MESSAGE' ? i : k), -1);
      for (const f of answers) {
        const rec = byId.get(f.json?.msgID);
        if (rec) hist.answer(rec, rec.attempts[0], f.json, f.at);
      }
      // the receiver gets all of them (bounded wait), then a fresh init counts them
      const tEnd = Date.now() + 60000;
      while (got.length < COUNT && Date.now() < tEnd && B.open) await new Promise((r) => setTimeout(r, 50));
      await B.terminate();
      const B2 = await RawClient.open(gw, { token: bob.token });
      await B2.connect();
      await B2.subscribe([[`/user/${bob.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
      const st = B2.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 60000, 'init/status');
      B2.frame('SEND', { destination: '/socket/chat/init' }, '');
      const initCount = (await st).json.count;
      await B2.terminate();

      const res = check(hist);
      rep.res = res;
      const ids = answers.map((f) => f.json.id);
      console.log(`[pipeline] ${JSON.stringify({ answers: answers.length, receiptIndex: receiptAt, lastAnswerIndex: lastAnswerAt, frames: order.length, close: closed, ms: tClose, rate: Math.round(COUNT / (tClose / 1000)), received: got.length, initCount, other: order.filter((f) => f.command !== 'MESSAGE' && f.command !== 'RECEIPT').map((f) => `${f.command} ${f.headers.message || ''}`).slice(0, 3) })}`);

      assert.equal(answers.length, COUNT, 'one send/status per SEND');
      assert.deepEqual([...new Set(answers.map((f) => f.json.code))], [200], 'every send answered 200');
      assert.ok(receiptAt >= 0, 'RECEIPT x arrived');
      assert.ok(receiptAt > lastAnswerAt, `RECEIPT at frame ${receiptAt}, after the last answer at ${lastAnswerAt}`);
      assert.equal(order.length, COUNT + 1, 'nothing but the answers and the RECEIPT');
      assert.equal(closed.code, 1000, `the server closed after the RECEIPT: ${JSON.stringify(closed)}`);
      assert.deepEqual(answers.map((f) => f.json.msgID), [...byId.keys()], 'answers in request order');
      assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'ids strictly increasing in send order');
      assert.equal(got.length, COUNT, 'the receiver got every message');
      assert.deepEqual(got.map((j) => j.id), ids, 'the receiver got them in send order');
      assert.equal(initCount, COUNT, 'each stored once (all pending)');
      assertClean(res, { what: 'pipeline' });
    });
  });

  it('with the sender not reading: RECEIPT after every answer, then the close frame (1000), not a bare TCP close', { timeout: 60000 }, async () => {
    const gw = h.env.gw;
    const a = await newUser(gw, 'pausa');
    const b = await newUser(gw, 'pausb');
    for (const n of [2000, 5000]) {
      const order = [];
      const A = await RawClient.open(gw, { token: a.token, onFrame: (f) => order.push(f.command) });
      await A.connect();
      await A.subscribe([['/user/queue/send/status', 'ss']]);
      order.length = 0;
      A.pause();
      for (let i = 0; i < n; i++) A.send(sendFrame(msgId(`paused${i}`), b.uid, 'p'.repeat(128)));
      A.send(buildFrame('DISCONNECT', { receipt: 'x' }));
      await sleep(1500);
      A.resume();
      const c = await A.waitClose(30000);
      assert.equal(order.filter((x) => x === 'MESSAGE').length, n, 'every answer');
      assert.equal(order.lastIndexOf('RECEIPT'), n, 'the RECEIPT last');
      assert.equal(c.code, 1000, `close after DISCONNECT with ${n} answers queued: ${JSON.stringify(c)}`);
    }
  });
});
