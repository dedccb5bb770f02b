// The checker checked (issue #8): a checker that cannot fail proves
// nothing, so every anomaly it reports is planted here in a synthetic
// history and must be found, and a clean history must pass. Pure
// JavaScript: no gateway, no Redis; milliseconds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { History, check, clean, assertClean } from './lib/checker.mjs';

const A = { uid: 1, name: 'alice' };
const B = { uid: 2, name: 'bob' };
const C = { uid: 3, name: 'carol' };

/** A history of n messages A -> B, each confirmed (ids 10, 11, ...) and delivered live once. */
function base(n = 5) {
  const h = new History('t');
  for (let i = 0; i < n; i++) {
    const rec = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: `m${i}xxxxxxxx`, content: `c${i}`, seq: i + 1, createdAt: 1000 + i });
    const a = h.addAttempt(rec, 'A#1', 1000 + i);
    h.answer(rec, a, { code: 200, id: 10 + i, time: 1000 + i }, 1001 + i);
  }
  return h;
}

function deliver(h, rec, { id = rec.confirmed?.id, conn = 'B#1', phase = 'live', rcv = rec.to, content = rec.content, app = true, redelivered = false, senderId = rec.from, chatID = rec.msgID, sender = rec.fromName } = {}) {
  const d = { rcv, conn, at: 5000, chatID, id, sender, senderId, reciverId: rec.to, content, time: 1, redelivered, phase };
  h.addDelivery(d);
  if (app) h.addApp(rcv, d);
  return d;
}

const sends = (h) => [...h.sends.values()];

describe('checker', () => {
  it('passes a clean history', () => {
    const h = base();
    for (const s of sends(h)) deliver(h, s);
    const r = check(h);
    assert.deepEqual([r.sent, r.confirmed, r.delivered, r.lost, r.dup, r.unexpected, r.inversions, r.recovered, r.unconfirmed],
      [5, 5, 5, 0, 0, 0, 0, 0, 0]);
    assert.ok(clean(r));
    assertClean(r);
  });

  it('socket-level redeliveries deduped before the app are not duplicates', () => {
    const h = base();
    for (const s of sends(h)) deliver(h, s);
    deliver(h, sends(h)[2], { conn: 'B#2', phase: 'catchup', app: false, redelivered: true });
    const r = check(h);
    assert.equal(r.dup, 0);
    assert.equal(r.redeliveredFlagged, 1);
    assert.equal(r.socketDeliveries, 6);
  });

  it('finds a lost message (confirmed, never delivered)', () => {
    const h = base();
    for (const s of sends(h).slice(1)) deliver(h, s);
    const r = check(h);
    assert.equal(r.lost, 1);
    assert.equal(r.examples.lost[0].key, `${A.uid}:m0xxxxxxxx`);
    assert.throws(() => assertClean(r), /lost 1/);
  });

  it('a message delivered only at the socket (not passed to the app) is lost', () => {
    const h = base(1);
    deliver(h, sends(h)[0], { app: false });
    assert.equal(check(h).lost, 1);
  });

  it('finds a duplicate passed to the app twice', () => {
    const h = base();
    for (const s of sends(h)) deliver(h, s);
    deliver(h, sends(h)[1], { conn: 'B#2' });
    const r = check(h);
    assert.equal(r.appDup, 1);
    assert.equal(r.dup, 1);
  });

  it('finds a retry stored twice (same sender and msgID under two ids)', () => {
    const h = base();
    for (const s of sends(h)) deliver(h, s);
    deliver(h, sends(h)[3], { id: 99, app: false, conn: 'B#2' });
    const r = check(h);
    assert.equal(r.storedTwice, 1);
    assert.ok(r.dup >= 1);
  });

  it('finds two 200 answers of one message with different ids', () => {
    const h = base();
    for (const s of sends(h)) deliver(h, s);
    const s = sends(h)[0];
    const a = h.addAttempt(s, 'A#2', 2000);
    h.answer(s, a, { code: 200, id: 77, time: 2000 }, 2001);
    const r = check(h);
    assert.equal(r.retryMismatch, 1);
  });

  it('finds two different messages delivered to one receiver with the same id', () => {
    const h = base(2);
    const [s0, s1] = sends(h);
    deliver(h, s0);
    deliver(h, s1, { id: s0.confirmed.id });
    const r = check(h);
    assert.equal(r.idCollision, 1);
  });

  it('finds unexpected deliveries: never sent, wrong content, wrong receiver, wrong sender', () => {
    const h = base(4);
    const [s0, s1, s2, s3] = sends(h);
    deliver(h, s0);
    deliver(h, s1, { content: 'tampered' });
    deliver(h, s2, { rcv: C.uid });
    deliver(h, s3, { sender: 'mallory' });
    deliver(h, s0, { chatID: 'neversentxxxx', app: false });
    const r = check(h);
    assert.equal(r.unexpected, 4);
    assert.equal(r.lost, 3, 'the tampered ones do not count as delivered');
  });

  it('finds send-order inversions (ids against the sender\'s queue order)', () => {
    const h = new History('t');
    const ids = [10, 12, 11, 13];
    ids.forEach((id, i) => {
      const rec = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: `o${i}xxxxxxxx`, content: `c${i}`, seq: i + 1 });
      h.answer(rec, h.addAttempt(rec, 'A#1'), { code: 200, id, time: 1 });
      deliver(h, rec, { phase: 'catchup' });
    });
    const r = check(h);
    assert.equal(r.sendOrderInversions, 1);
    assert.equal(r.inversions, 1);
  });

  it('finds live-order inversions on one connection, but not across connections or during catch-up', () => {
    const h = base(3);
    const [s0, s1, s2] = sends(h);
    deliver(h, s1);
    deliver(h, s0);                               // live, lower id after higher: inversion
    deliver(h, s2);
    const r = check(h);
    assert.equal(r.liveOrderInversions, 1);

    const h2 = base(3);
    const [t0, t1, t2] = sends(h2);
    deliver(h2, t2, { conn: 'B#1' });
    deliver(h2, t0, { conn: 'B#2' });             // another connection: fine
    deliver(h2, t1, { conn: 'B#2', phase: 'catchup', app: false });
    deliver(h2, t1, { conn: 'B#2' });
    assert.equal(check(h2).liveOrderInversions, 0);
  });

  it('does not count interleaving during a re-read the gateway started after a fault', () => {
    const h = base(3);
    const [s0, s1, s2] = sends(h);
    h.fault('redis SIGKILL', 4000);
    const a = deliver(h, s2);                     // at 5000, live push
    const b = deliver(h, s0);                     // at 5000, from the re-read: lower id
    a.at = 5000; b.at = 5001;
    deliver(h, s1).at = 5002;
    assert.equal(check(h).liveOrderInversions, 2, 'without the resync mark these count');
    h.resyncs.push({ conn: 'B#1', at: 5003 });
    assert.equal(check(h).liveOrderInversions, 0);
    // but not before the fault, nor after the resync ended
    const h2 = base(2);
    const [t0, t1] = sends(h2);
    deliver(h2, t1).at = 3000;
    deliver(h2, t0).at = 3001;
    h2.fault('redis SIGKILL', 4000);
    h2.resyncs.push({ conn: 'B#1', at: 5003 });
    assert.equal(check(h2).liveOrderInversions, 1);
  });

  it('counts recovered: delivered although an attempt timed out, was lost, or got 503', () => {
    const h = base(3);
    const [s0, s1, s2] = sends(h);
    const t = h.addAttempt(s0, 'A#1', 900);
    t.outcome = 'timeout';
    const l = h.addAttempt(s1, 'A#1', 900);
    l.outcome = 'lost';
    h.answer(s2, h.addAttempt(s2, 'A#1', 900), { code: 503 }, 901);
    for (const s of sends(h)) deliver(h, s);
    const r = check(h);
    assert.equal(r.recovered, 3);
    assert.equal(r.timeouts, 1);
    assert.equal(r.lostAttempts, 1);
    assert.equal(r.code503, 1);
    assert.ok(clean(r));
  });

  it('a late 200 after a timeout confirms the message; unconfirmed and failed are told apart', () => {
    const h = new History('t');
    const s0 = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: 'late0xxxxxx', content: 'x', seq: 1 });
    const a = h.addAttempt(s0, 'A#1');
    a.outcome = 'timeout';
    h.answer(s0, a, { code: 200, id: 5, time: 1 });
    const s1 = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: 'never0xxxxx', content: 'y', seq: 2 });
    h.addAttempt(s1, 'A#1').outcome = 'lost';
    const s2 = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: 'full00xxxxx', content: 'z', seq: 3 });
    h.answer(s2, h.addAttempt(s2, 'A#1'), { code: 507 });
    s2.failed = { code: 507 };
    deliver(h, s0);
    const r = check(h);
    assert.equal(r.confirmed, 1);
    assert.equal(r.unconfirmed, 1);
    assert.equal(r.failed, 1);
    assert.equal(r.lost, 0);
    assert.throws(() => assertClean(r), /unconfirmed 1, failed 1/);
    assertClean(r, { allowUnconfirmed: true, allowFailed: true });
  });

  it('a message delivered although never answered 200 is recovered, not unexpected', () => {
    const h = new History('t');
    const s = h.addSend({ from: A.uid, fromName: A.name, to: B.uid, msgID: 'ghost0xxxxx', content: 'g', seq: 1 });
    h.addAttempt(s, 'A#1').outcome = 'lost';
    deliver(h, s, { id: 3 });
    const r = check(h);
    assert.deepEqual([r.unexpected, r.lost, r.recovered, r.unconfirmed], [0, 0, 1, 1]);
  });
});
