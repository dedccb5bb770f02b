// PROTOCOL.md section 4, /socket/chat/send: one sender's share of a pending
// inbox (max_pending_per_sender, 429), and a msgID used again by its sender
// for another message (409), with the original page's msgID formula.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, sha1hex } from './lib/harness.mjs';

const T = { timeout: 30000 };

function assertFail(st, code, re, what) {
  assert.equal(st.code, code, `${what}: ${JSON.stringify(st)}`);
  assert.equal(st.status, '失败', `${what}: ${JSON.stringify(st)}`);
  assert.match(st.content, re, `${what}: the reason`);
}

describe('max_pending_per_sender: 429 (PROTOCOL.md section 4)', () => {
  const h = useEnv('send_quota', { gatewayArgs: null });
  let gw;
  before(async () => { gw = await h.env.startGateway(['--max-pending-per-sender', '3'], { name: 'quota' }); });
  after(async () => { await h.env.stopGateway(gw); });

  it('a sender at its share gets 429 while another sender still stores; a confirmation frees one place', T, async () => {
    const alice = await gw.newUser('alice');
    const carol = await gw.newUser('carol');
    const hal = await gw.newUser('hal');
    const A = await gw.stomp(alice);
    const C = await gw.stomp(carol);
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const r = await A.chat(hal, `a${i}`);
      assert.equal(r.code, 200, JSON.stringify(r));
      sent.push(r);
    }
    const over = await A.chat(hal, 'a3');
    assertFail(over, 429, /too many unconfirmed messages from you to this user \(max_pending_per_sender 3\)/, 'alice\'s 4th');
    // another sender is not affected, and alice may still write to others
    const c = await C.chat(hal, 'from carol');
    assert.equal(c.code, 200, JSON.stringify(c));
    assert.equal((await A.chat(carol, 'to carol')).code, 200);
    // a retry of a stored message is still its first id, not a 429
    const again = await A.chat(hal, 'a0', { msgID: sent[0].msgID });
    assert.equal(again.code, 200, JSON.stringify(again));
    assert.equal(again.id, sent[0].id);

    const H = await gw.stomp(hal);
    const { messages } = await H.init();
    assert.deepEqual(messages.map((m) => m.json.chatID), [...sent.map((r) => r.msgID), c.msgID],
      'the refused send was not stored');
    // confirming one of alice's frees one place; confirming it again frees none
    assert.equal((await H.confirm(sent[0].msgID)).code, 200);
    assert.equal((await H.confirm(sent[0].msgID)).code, 200);
    const freed = await A.chat(hal, 'a4');
    assert.equal(freed.code, 200, JSON.stringify(freed));
    assertFail(await A.chat(hal, 'a5'), 429, /max_pending_per_sender/, 'full again');
    // the rest confirmed: two more places
    for (const r of sent.slice(1)) assert.equal((await H.confirm(r.msgID)).code, 200);
    assert.equal((await A.chat(hal, 'a6')).code, 200);
    assert.equal((await A.chat(hal, 'a7')).code, 200);
    assertFail(await A.chat(hal, 'a8'), 429, /max_pending_per_sender/, 'full once more');
    for (const s of [A, C, H]) await s.close();
  });

  it('507 stays the answer for a full inbox, 429 for one sender\'s share', T, async () => {
    const small = await h.env.startGateway(['--max-pending', '4', '--max-pending-per-sender', '2'], { name: 'small' });
    const alice = await small.newUser('alice');
    const carol = await small.newUser('carol');
    const dave = await small.newUser('dave');
    const ivy = await small.newUser('ivy');
    const A = await small.stomp(alice);
    const C = await small.stomp(carol);
    const D = await small.stomp(dave);
    for (let i = 0; i < 2; i++) {
      assert.equal((await A.chat(ivy, `a${i}`)).code, 200);
      assert.equal((await C.chat(ivy, `c${i}`)).code, 200);
    }
    assertFail(await A.chat(ivy, 'a2'), 507, /pending inbox is full/, 'inbox full: 507 first');
    assertFail(await D.chat(ivy, 'd0'), 507, /pending inbox is full/, 'a third sender meets the full inbox');
    for (const s of [A, C, D]) await s.close();
    await h.env.stopGateway(small);
  });
});

/** The page's msgID formula: var data = {reciverId, content};
 * data.msgID = sha1hex(data + new Date().getTime()). */
function pageMsgId(to, ms) {
  const id = sha1hex(`${{ reciverId: to.uid, content: 'x' }}${ms}`);
  assert.equal(id, sha1hex(`[object Object]${ms}`), 'the content is not in it');
  return id;
}

async function answersOf(A, msgID, n, since) {
  await A.sendStatus.waitFor(() => A.sendStatus.filter((s) => s.json?.msgID === msgID, since).length === n, 10000,
    { since, what: `${n} answers` });
  return A.sendStatus.filter((s) => s.json?.msgID === msgID, since).map((s) => s.json.code);
}

describe('a msgID used again by its sender: 409 (PROTOCOL.md section 4)', () => {
  const h = useEnv('send_msgid_reuse');
  let gw;
  let alice;
  let bob;
  let carol;
  let A;
  let B;
  let C;
  before(async () => {
    gw = h.env.gw;
    alice = await gw.newUser('alice');
    bob = await gw.newUser('bob');
    carol = await gw.newUser('carol');
    A = await gw.stomp(alice);
    B = await gw.stomp(bob);
    C = await gw.stomp(carol);
  });

  it('other content to the same receiver: 409, nothing stored or pushed; a true retry: 200 with the first id', T, async () => {
    const id = msgId('reuse');
    const first = await A.chat(bob, 'the first', { msgID: id });
    assert.equal(first.code, 200, JSON.stringify(first));
    const other = await A.chat(bob, 'another text', { msgID: id });
    assertFail(other, 409, /msgID already used by you for another message to this receiver \(other content\)/, 'other content');
    const retry = await A.chat(bob, 'the first', { msgID: id });
    assert.equal(retry.code, 200, JSON.stringify(retry));
    assert.equal(retry.id, first.id, 'a retry answers the first id');
    // a later message as a barrier: per-pair order puts it after the above
    const bar = await A.chat(bob, 'barrier');
    await B.recive.waitFor((m) => m.json?.chatID === bar.msgID, 10000, { what: 'barrier' });
    const got = B.recive.filter((m) => m.json?.chatID === id);
    assert.deepEqual(got.map((m) => m.json.content), ['the first'], 'one message pushed, the first one');
    assert.equal(bar.id, first.id + 1, 'nothing was stored in between');
  });

  it('another receiver: a message of its own there, stored and delivered (msgid_unique_per_sender off)', T, async () => {
    const id = msgId('two receivers');
    assert.equal((await A.chat(bob, 'hello bob', { msgID: id })).code, 200);
    const toCarol = await A.chat(carol, 'hello carol', { msgID: id });
    assert.equal(toCarol.code, 200, JSON.stringify(toCarol));
    const m = await C.recive.waitFor((x) => x.json?.chatID === id, 10000, { what: 'carol gets hers' });
    assert.equal(m.json.content, 'hello carol');
    // and a retry to either is still a retry
    assert.equal((await A.chat(carol, 'hello carol', { msgID: id })).id, toCarol.id);
  });

  it("the original page's msgID (SHA1 of \"[object Object]\" + ms) twice in one millisecond: the second is 409, not a silent 200", T, async () => {
    const pageId = pageMsgId(bob, Date.now());
    const since = A.sendStatus.mark();
    A.sendChat(bob, 'first of the millisecond', { msgID: pageId });
    A.sendChat(bob, 'second of the millisecond', { msgID: pageId });
    A.sendChat(carol, 'third, to carol', { msgID: pageId });
    assert.deepEqual(await answersOf(A, pageId, 3, since), [200, 409, 200],
      'the second to bob is refused, visibly; the one to carol is hers');
  });
});

describe('--msgid-unique-per-sender: a msgID names one message whatever the receiver', () => {
  const h = useEnv('send_msgid_claim', { gatewayArgs: null });
  let gw;
  let alice;
  let bob;
  let carol;
  let A;
  before(async () => {
    gw = await h.env.startGateway(['--msgid-unique-per-sender', 'true'], { name: 'claim' });
    alice = await gw.newUser('alice');
    bob = await gw.newUser('bob');
    carol = await gw.newUser('carol');
    A = await gw.stomp(alice);
  });
  after(async () => { await h.env.stopGateway(gw); });

  it('another receiver: 409, nothing stored for it', T, async () => {
    const id = msgId('two receivers');
    assert.equal((await A.chat(bob, 'hello', { msgID: id })).code, 200);
    assertFail(await A.chat(carol, 'hello', { msgID: id }), 409,
      /msgID already used by you for another message \(another receiver or other content\)/, 'another receiver');
    const C = await gw.stomp(carol);
    const { messages, status } = await C.init();
    assert.equal(status.count, 0);
    assert.deepEqual(messages, []);
    await C.close();
  });

  it('two sends with one msgID to two receivers at once: exactly one is stored', T, async () => {
    const id = msgId('race');
    const since = A.sendStatus.mark();
    A.sendChat(bob, 'race to bob', { msgID: id });
    A.sendChat(carol, 'race to carol', { msgID: id });
    assert.deepEqual(await answersOf(A, id, 2, since), [200, 409], 'the first claim wins, in send order');
  });

  it("the original page's msgID three times in one millisecond: 200, then 409 for other content and for another receiver", T, async () => {
    const pageId = pageMsgId(bob, Date.now());
    const since = A.sendStatus.mark();
    A.sendChat(bob, 'first of the millisecond', { msgID: pageId });
    A.sendChat(bob, 'second of the millisecond', { msgID: pageId });
    A.sendChat(carol, 'third, to carol', { msgID: pageId });
    assert.deepEqual(await answersOf(A, pageId, 3, since), [200, 409, 409]);
  });
});
