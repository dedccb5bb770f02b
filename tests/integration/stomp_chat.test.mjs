// PROTOCOL.md sections 3 (STOMP) and 4 (chat destinations) with the
// @stomp/stompjs 7 client over a plain WebSocket, against the real binary
// and a real redis-server.
//
// Assumptions where the contract is silent (each marked ASSUMPTION below):
// - the `time` of send/status and of the MESSAGE body is the same stored
//   time (both describe the stored message; `id` is shared the same way).
// - a sync with nothing new answers count 0 and the key it was given.
// - a MESSAGE's `destination` is the destination the session subscribed to.
// - send/status for a request the gateway cannot parse as JSON may arrive
//   on /user/queue/send/status or /user/queue/status (section 4 lists bad
//   JSON under both); JSON with a bad field answers on send/status.
// - a chat SEND inside a transaction is answered (send/status) at COMMIT.
// - CONNECTED's heart-beat is the server's heartbeat_ms both ways.
// - a STOMP session survives a Redis outage (requests fail with 503).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, sha1hex, buildFrame, until, httpRequest, Mailbox, sleep } from './lib/harness.mjs';

const T = { timeout: 30000 };
const OK_KEYS = ['code', 'content', 'id', 'msgID', 'status', 'time'];
const CHAT_KEYS = ['chatID', 'content', 'id', 'reciver', 'reciverId', 'sender', 'senderId', 'time'];

function assertSendOk(st, msgID) {
  assert.deepEqual(Object.keys(st).sort(), OK_KEYS, `send/status keys: ${JSON.stringify(st)}`);
  assert.equal(st.msgID, msgID);
  assert.equal(st.code, 200, JSON.stringify(st));
  assert.equal(st.status, '成功');
  assert.equal(st.content, 'ok');
  assert.ok(Number.isSafeInteger(st.id) && st.id > 0, `id ${st.id}`);
  assert.ok(Number.isSafeInteger(st.time), `time ${st.time}`);
}

function assertFail(st, code, msgID, what = '') {
  assert.equal(st.code, code, `${what}: ${JSON.stringify(st)}`);
  assert.equal(st.status, '失败', `${what}: ${JSON.stringify(st)}`);
  assert.equal(typeof st.content, 'string', `${what}: content is the reason`);
  assert.ok(st.content.length > 0, `${what}: reason is not empty`);
  if (msgID !== undefined && 'msgID' in st) assert.equal(st.msgID, msgID, `${what}: msgID echoed`);
}

/** Next answer on send/status or status after the marks. */
function nextAnswer(s, marks, timeout = 10000) {
  return Promise.race([
    s.sendStatus.waitFor(() => true, timeout, { since: marks[0], what: 'an answer' }).then((m) => ({ topic: 'send/status', m })),
    s.status.waitFor(() => true, timeout, { since: marks[1], what: 'an answer' }).then((m) => ({ topic: 'status', m })),
  ]);
}

/** Sends a fresh message from `from` to `toUser` and waits for it at `toSession`:
 * per-pair order then guarantees everything `from` sent before arrived. */
async function barrier(from, toUser, toSession) {
  const r = await from.chat(toUser, `barrier ${Math.random()}`);
  assert.equal(r.code, 200, JSON.stringify(r));
  await toSession.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000, { what: 'barrier message' });
  return r;
}

describe('STOMP chat (PROTOCOL.md sections 3 and 4)', () => {
  const h = useEnv('stomp_chat');
  let gw;
  before(() => { gw = h.env.gw; });

  describe('CONNECT', () => {
    it('CONNECTED carries version, heart-beat, server, session and user-name', T, async () => {
      const alice = await gw.newUser('alice');
      const s1 = await gw.stomp(alice);
      const s2 = await gw.stomp(alice);
      const hd = s1.connectedFrame.headers;
      assert.equal(hd.version, '1.2');
      assert.match(hd['heart-beat'], /^\d+,\d+$/);
      assert.match(hd.server, /^chatgate\/\S+$/);
      assert.ok(hd.session && hd.session.length > 0, 'session header');
      assert.equal(hd['user-name'], alice.username);
      assert.notEqual(s2.connectedFrame.headers.session, hd.session, 'each connection has its own session id');
      assert.equal(s1.ws.protocol, 'v12.stomp');
      await s1.close();
      await s2.close();
    });

    it('negotiates the highest offered WebSocket subprotocol', T, async () => {
      const u = await gw.newUser('proto');
      const cases = [
        [['v12.stomp', 'v11.stomp', 'v10.stomp'], 'v12.stomp'],
        [['v10.stomp', 'v11.stomp', 'v12.stomp'], 'v12.stomp'],
        [['v10.stomp', 'v11.stomp'], 'v11.stomp'],
        [['v10.stomp'], 'v10.stomp'],
        [['foo', 'v11.stomp'], 'v11.stomp'],
      ];
      for (const [offer, want] of cases) {
        const r = await gw.raw({ token: u.token, protocols: offer });
        assert.equal(r.protocol, want, `offered ${offer}`);
        const c = await r.connect();
        assert.equal(c.command, 'CONNECTED');
        await r.terminate();
      }
    });

    it('serves a client that offers no subprotocol (STOMP version from accept-version)', T, async () => {
      const u = await gw.newUser('noproto');
      const r = await gw.raw({ token: u.token });
      assert.equal(r.protocol, '');
      const c = await r.connect({ 'accept-version': '1.2' });
      assert.equal(c.headers.version, '1.2');
      assert.equal(c.headers['user-name'], u.username);
      await r.terminate();
      const r11 = await gw.raw({ token: u.token });
      assert.equal((await r11.connect({ 'accept-version': '1.0,1.1' })).headers.version, '1.1');
      await r11.terminate();
    });

    it('answers a STOMP 1.0 CONNECT (no accept-version) and the STOMP command', T, async () => {
      const u = await gw.newUser('v10');
      const r = await gw.raw({ token: u.token });
      const c = await r.connect({ 'accept-version': null, 'heart-beat': null });
      assert.equal(c.command, 'CONNECTED');
      assert.equal(c.headers.version, '1.0');
      await r.terminate();
      const r2 = await gw.raw({ token: u.token });
      r2.send(buildFrame('STOMP', { 'accept-version': '1.2', host: 'localhost' }));
      const c2 = await r2.frames.waitFor((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
      assert.equal(c2.command, 'CONNECTED');
      assert.equal(c2.headers.version, '1.2');
      await r2.terminate();
    });
  });

  describe('send, push, confirm', () => {
    let alice, bob, carol, A, B, C;
    before(async () => {
      alice = await gw.newUser('alice');
      bob = await gw.newUser('bob');
      carol = await gw.newUser('carol');
      A = await gw.stomp(alice);
      B = await gw.stomp(bob);
      C = await gw.stomp(carol);
    });

    it('send answers 200 on send/status with msgID, id and the server time', T, async () => {
      const t0 = Date.now();
      const r = await A.chat(bob, '起来聊天');
      const t1 = Date.now();
      assertSendOk(r.frame.json, r.msgID);
      assert.ok(r.time >= t0 - 2000 && r.time <= t1 + 2000, `time ${r.time} not within [${t0}, ${t1}]`);
      assert.equal(r.frame.headers.destination, '/user/queue/send/status');
      assert.equal(r.frame.headers.subscription, 'send-status');
    });

    it("the receiver's MESSAGE has exactly the documented body and headers", T, async () => {
      const content = '起来聊天 🙂 "quotes" \\ and\nnewline';
      const r = await A.chat(bob, content);
      const m = await B.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
      assert.deepEqual(Object.keys(m.json).sort(), CHAT_KEYS, m.body);
      assert.deepEqual(m.json, {
        id: r.id,
        chatID: r.msgID,
        sender: alice.username,
        reciver: bob.username,
        content,
        time: r.time, // ASSUMPTION: the same stored time as send/status
        senderId: alice.uid,
        reciverId: bob.uid,
      });
      assert.equal(m.headers.destination, `/user/${bob.username}/recive`);
      assert.equal(m.headers.subscription, 'recive');
      assert.ok(m.headers['message-id'] && m.headers['message-id'].length > 0, 'message-id');
      assert.equal(m.headers['content-type'], 'application/json;charset=UTF-8');
      assert.equal(m.headers['content-length'], String(Buffer.byteLength(m.body)));
      assert.equal(m.headers.redelivered, undefined, 'a first live push is not redelivered');
    });

    it('delivers to a session that subscribed by uid', T, async () => {
      const B2 = await gw.stomp(bob, { byUid: true });
      const r = await A.chat(bob, 'by uid');
      const m = await B2.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
      assert.equal(m.headers.destination, `/user/${bob.uid}/recive`);
      assert.equal(m.json.reciverId, bob.uid);
      await B2.close();
    });

    it('delivers to every live session of the receiver', T, async () => {
      const B2 = await gw.stomp(bob);
      const B3 = await gw.stomp(bob, { byUid: true });
      const r = await A.chat(bob, 'to all my devices');
      for (const s of [B, B2, B3]) {
        const m = await s.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
        assert.equal(m.json.id, r.id);
      }
      await B2.close();
      await B3.close();
    });

    it('ignores a forged sender/senderId in the body', T, async () => {
      const id = A.sendChat(bob, 'forged', { extra: { senderId: carol.uid, sender: carol.username, id: 1, time: 5 } });
      const st = await A.sendStatus.waitFor((s) => s.json?.msgID === id, 10000);
      assertSendOk(st.json, id);
      const m = await B.recive.waitFor((x) => x.json?.chatID === id, 10000);
      assert.equal(m.json.senderId, alice.uid);
      assert.equal(m.json.sender, alice.username);
      assert.equal(m.json.id, st.json.id);
      assert.equal(m.json.time, st.json.time);
    });

    it('accepts receiverId as an alias of reciverId', T, async () => {
      const r = await A.chat(bob, 'alias', { field: 'receiverId' });
      assertSendOk(r.frame.json, r.msgID);
      const m = await B.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
      assert.equal(m.json.reciverId, bob.uid);
    });

    it('a retried msgID answers 200 with the first id and is delivered once', T, async () => {
      const id = msgId('retry me');
      const first = await A.chat(bob, 'retry me', { msgID: id });
      assertSendOk(first.frame.json, id);
      const again = await A.chat(bob, 'retry me', { msgID: id });
      assertSendOk(again.frame.json, id);
      assert.equal(again.id, first.id, 'a retry answers the first id');
      await barrier(A, bob, B);
      assert.equal(B.recive.count((m) => m.json?.chatID === id), 1, 'delivered exactly once');
    });

    it('recive answers 200 (twice too) and the sender gets /user/queue/delivered', T, async () => {
      const r = await A.chat(bob, 'confirm me');
      await B.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
      const t0 = Date.now();
      const st = await B.confirm(r.msgID);
      assert.deepEqual(st, { msgID: r.msgID, code: 200, status: '成功', content: 'ok' });
      const d = await A.delivered.waitFor((x) => x.json?.msgID === r.msgID, 10000);
      assert.deepEqual(Object.keys(d.json).sort(), ['id', 'msgID', 'reciverId', 'time']);
      assert.equal(d.json.id, r.id);
      assert.equal(d.json.reciverId, bob.uid);
      assert.ok(Number.isSafeInteger(d.json.time) && d.json.time >= r.time && d.json.time <= Date.now() + 2000,
        `delivered time ${d.json.time} (sent ${r.time}, confirmed ~${t0})`);
      assert.equal(d.headers.destination, '/user/queue/delivered');
      const st2 = await B.confirm(r.msgID);
      assert.deepEqual(st2, { msgID: r.msgID, code: 200, status: '成功', content: 'ok' });
    });

    it('recive of an unknown msgID or of another user\'s message answers 404', T, async () => {
      const unknown = sha1hex(`never sent ${Math.random()}`);
      const st = await B.confirm(unknown);
      assertFail(st, 404, unknown, 'unknown msgID');
      assert.equal(st.msgID, unknown);
      const toCarol = await A.chat(carol, 'for carol only');
      await C.recive.waitFor((x) => x.json?.chatID === toCarol.msgID, 10000);
      const st2 = await B.confirm(toCarol.msgID);
      assertFail(st2, 404, toCarol.msgID, "another user's msgID");
      // it is still pending for carol
      const C2 = await gw.stomp(carol);
      const { messages } = await C2.init();
      assert.ok(messages.some((m) => m.json.chatID === toCarol.msgID), 'still pending for its receiver');
      await C2.close();
    });

    it('ids increase strictly per receiver across senders', T, async () => {
      const dan = await gw.newUser('dan');
      let last = 0;
      for (let i = 0; i < 10; i++) {
        const from = i % 2 ? A : C;
        const r = await from.chat(dan, `n${i}`);
        assert.equal(r.code, 200);
        assert.ok(r.id > last, `id ${r.id} after ${last}`);
        last = r.id;
      }
    });
  });

  describe('offline receivers: init', () => {
    it('delivers pending messages on init, oldest first, then init/status; again with redelivered:true', T, async () => {
      const alice = await gw.newUser('alice');
      const erin = await gw.newUser('erin');
      const A = await gw.stomp(alice);
      const sent = [];
      for (const c of ['one', '二', 'three']) sent.push(await A.chat(erin, c));
      for (const r of sent) assertSendOk(r.frame.json, r.msgID);

      const E = await gw.stomp(erin);
      const first = await E.init();
      assert.deepEqual(first.messages.map((m) => m.json.chatID), sent.map((r) => r.msgID), 'all pending, oldest first');
      first.messages.forEach((m, i) => {
        assert.deepEqual(m.json, {
          id: sent[i].id, chatID: sent[i].msgID, sender: alice.username, reciver: erin.username,
          content: ['one', '二', 'three'][i], time: sent[i].time, senderId: alice.uid, reciverId: erin.uid,
        });
        assert.equal(m.headers['content-type'], 'application/json;charset=UTF-8');
      });
      assert.deepEqual(Object.keys(first.status).sort(), ['code', 'count', 'syncKey']);
      // syncKey: the end of erin's stream, here the last message pushed
      assert.deepEqual(first.status, { code: 200, count: 3, syncKey: sent[2].id });
      assert.equal(first.statusFrame.headers.destination, '/user/queue/init/status');

      // not confirmed: a second init pushes them again, marked redelivered
      const second = await E.init();
      assert.deepEqual(second.messages.map((m) => m.json.chatID), sent.map((r) => r.msgID));
      for (const m of second.messages) assert.equal(m.headers.redelivered, 'true');
      assert.equal(second.status.count, 3);

      // confirm the middle one: init now has the other two
      assert.equal((await E.confirm(sent[1].msgID)).code, 200);
      const third = await E.init();
      assert.deepEqual(third.messages.map((m) => m.json.chatID), [sent[0].msgID, sent[2].msgID]);
      assert.equal(third.status.count, 2);
      // everything confirmed: nothing to deliver, but the key is still the
      // end of erin's stream, so a new device syncs on from there, not from 0
      assert.equal((await E.confirm(sent[0].msgID)).code, 200);
      assert.equal((await E.confirm(sent[2].msgID)).code, 200);
      const E2 = await gw.stomp(erin);
      const done = await E2.init();
      assert.equal(done.messages.length, 0);
      assert.deepEqual(done.status, { code: 200, count: 0, syncKey: sent[2].id });
      const after = await E2.sync(done.status.syncKey);
      assert.equal(after.messages.length, 0);
      // and a session of a user who never received anything gets 0, 0
      const nobody = await gw.newUser('empty');
      const N = await gw.stomp(nobody);
      const none = await N.init();
      assert.equal(none.messages.length, 0);
      assert.deepEqual(none.status, { code: 200, count: 0, syncKey: 0 });
    });

    it('a pushed but unconfirmed message comes again on the next init', T, async () => {
      const alice = await gw.newUser('alice');
      const fay = await gw.newUser('fay');
      const A = await gw.stomp(alice);
      const F = await gw.stomp(fay);
      const r = await A.chat(fay, 'did you get it?');
      await F.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
      await F.terminate();
      const F2 = await gw.stomp(fay);
      const { messages, status } = await F2.init();
      assert.deepEqual(messages.map((m) => m.json.chatID), [r.msgID]);
      assert.equal(messages[0].headers.redelivered, 'true');
      assert.equal(status.count, 1);
    });
  });

  describe('init and sync cut short by UNSUBSCRIBE', () => {
    it('end with init/status 400 (and the same on status), before the RECEIPT; nothing is lost', T, async () => {
      const alice = await gw.newUser('alice');
      const gus = await gw.newUser('gus');
      const A = await gw.stomp(alice);
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push(await A.chat(gus, `cut ${i}`));
      const r = await gw.raw({ token: gus.token });
      await r.connect();
      await r.subscribe('/user/queue/status', 'st');
      await r.subscribe('/user/queue/init/status', 'is');
      for (const [n, dest, body] of [[1, '/socket/chat/init', ''], [2, '/socket/chat/sync', '{"syncKey":0}']]) {
        const what = dest.split('/').pop();
        await r.subscribe(`/user/${gus.username}/recive`, `rc${n}`);
        const since = r.frames.mark();
        // One WebSocket message: the UNSUBSCRIBE is handled before the
        // first batch comes back from Redis, so the cut is certain.
        r.send(Buffer.concat([
          buildFrame('SEND', { destination: dest }, body),
          buildFrame('UNSUBSCRIBE', { id: `rc${n}`, receipt: `cut-${n}` }),
        ]));
        const rc = await r.frames.waitFor((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === `cut-${n}`,
          10000, { since, what: `RECEIPT of the UNSUBSCRIBE after ${what}` });
        const end = r.frames.find((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', since);
        assert.ok(end, `init/status for the ${what} came before the RECEIPT`);
        assert.ok(end.seq < rc.seq);
        assertFail(end.json, 400, undefined, `${what} cut short`);
        assert.match(end.json.content, new RegExp(`^${what} stopped: `));
        assert.equal(end.json.count, undefined, 'no count: it would claim deliveries');
        const st = r.frames.find((f) => f.command === 'MESSAGE' && f.headers.subscription === 'st', since);
        assert.deepEqual(st?.json, end.json, 'the same answer on /user/queue/status');
        assert.equal(r.frames.count((f) => f.command === 'MESSAGE' && f.headers.subscription === `rc${n}`, since), 0);
        assert.ok(r.open, 'the connection stays open');
      }
      // Everything is still pending: a full init after a new SUBSCRIBE has it.
      await r.subscribe(`/user/${gus.uid}/recive`, 'rc3');
      const since = r.frames.mark();
      r.send(buildFrame('SEND', { destination: '/socket/chat/init' }));
      const end = await r.message('is', () => true, 10000, since);
      assert.deepEqual({ code: end.json.code, count: end.json.count }, { code: 200, count: 5 });
      assert.deepEqual(r.frames.filter((f) => f.headers.subscription === 'rc3', since).map((f) => f.json.chatID),
        sent.map((x) => x.msgID));
      await r.terminate();
      await A.close();
    });
  });

  describe('send errors', () => {
    let alice, bob, A, B;
    before(async () => {
      alice = await gw.newUser('alice');
      bob = await gw.newUser('bob');
      A = await gw.stomp(alice);
      B = await gw.stomp(bob);
    });

    it('400 for malformed requests; the connection stays open', T, async () => {
      const ok = (id) => JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'x' });
      const cases = [
        [JSON.stringify({ msgID: 'abcdefg', reciverId: bob.uid, content: 'x' }), 'msgID of 7 chars', 'abcdefg'],
        [JSON.stringify({ msgID: 'a'.repeat(65), reciverId: bob.uid, content: 'x' }), 'msgID of 65 chars', 'a'.repeat(65)],
        [JSON.stringify({ msgID: 'abc def12', reciverId: bob.uid, content: 'x' }), 'msgID with a space', 'abc def12'],
        [JSON.stringify({ msgID: 'abcdefg!', reciverId: bob.uid, content: 'x' }), 'msgID with !', 'abcdefg!'],
        [JSON.stringify({ msgID: 'abcdéfgh', reciverId: bob.uid, content: 'x' }), 'msgID non-ASCII', 'abcdéfgh'],
        [JSON.stringify({ msgID: '', reciverId: bob.uid, content: 'x' }), 'empty msgID', ''],
        [JSON.stringify({ msgID: 12345678, reciverId: bob.uid, content: 'x' }), 'numeric msgID'],
        [JSON.stringify({ reciverId: bob.uid, content: 'x' }), 'no msgID'],
        [JSON.stringify({ msgID: msgId('a'), content: 'x' }), 'no reciverId'],
        [JSON.stringify({ msgID: msgId('b'), reciverId: bob.uid }), 'no content'],
        [JSON.stringify({ msgID: msgId('c'), reciverId: bob.uid, content: 5 }), 'numeric content'],
        [JSON.stringify([1, 2]), 'array body'],
      ];
      for (const [body, what, id] of cases) {
        const marks = [A.sendStatus.mark(), A.status.mark()];
        A.publish('/socket/chat/send', body);
        const { topic, m } = await nextAnswer(A, marks);
        assert.equal(topic, 'send/status', `${what}: answered on ${topic}`);
        assertFail(m.json, 400, id, what);
      }
      for (const [body, what] of [['{"msgID":', 'truncated JSON'], ['not json at all', 'not JSON'], ['', 'empty body']]) {
        const marks = [A.sendStatus.mark(), A.status.mark()];
        A.publish('/socket/chat/send', body);
        const { m } = await nextAnswer(A, marks);
        assertFail(m.json, 400, undefined, what);
      }
      // msgID limits: 8 and 64 chars of [A-Za-z0-9_-] are fine
      for (const id of ['a_b-C9zz', `${'Z9_-'.repeat(16)}`]) {
        A.publish('/socket/chat/send', ok(id));
        const st = await A.sendStatus.waitFor((s) => s.json?.msgID === id, 10000);
        assertSendOk(st.json, id);
      }
      assert.ok(A.open, 'the connection stays open');
      const after = await A.chat(bob, 'still here');
      assert.equal(after.code, 200);
    });

    it('404 for an unknown receiver', T, async () => {
      const r = await A.chat(987654321, 'hello?');
      assertFail(r.frame.json, 404, r.msgID, 'unknown receiver');
    });

    it('takes content of exactly 16384 bytes (ASCII and 3-byte characters)', T, async () => {
      const at = await A.chat(bob, 'a'.repeat(16384));
      assertSendOk(at.frame.json, at.msgID);
      const m = await B.recive.waitFor((x) => x.json?.chatID === at.msgID, 10000);
      assert.equal(m.json.content.length, 16384);
      const mb = '字'.repeat(5461) + 'a';               // 16383 + 1 = 16384 bytes
      assert.equal(Buffer.byteLength(mb), 16384);
      const atMb = await A.chat(bob, mb);
      assertSendOk(atMb.frame.json, atMb.msgID);
      const m2 = await B.recive.waitFor((x) => x.json?.chatID === atMb.msgID, 10000);
      assert.equal(m2.json.content, mb);
    });

    it('413 for content over 16384 bytes (bytes, not characters)', T, async () => {
      const over = await A.chat(bob, 'a'.repeat(16385));
      assertFail(over.frame.json, 413, over.msgID, '16385 ASCII bytes');
      const mb = '字'.repeat(5462);                       // 16386 bytes, 5462 characters
      const overMb = await A.chat(bob, mb);
      assertFail(overMb.frame.json, 413, overMb.msgID, '5462 three-byte characters');
      await barrier(A, bob, B);
      assert.equal(B.recive.count((x) => x.json?.chatID === over.msgID || x.json?.chatID === overMb.msgID), 0,
        'nothing is delivered on a failure');
    });

    it('409 when the msgID is pending for the receiver from another sender', T, async () => {
      const carol = await gw.newUser('carol');
      const dave = await gw.newUser('dave');
      const C = await gw.stomp(carol);
      const id = msgId('same id');
      const a = await A.chat(dave, 'from alice', { msgID: id });
      assertSendOk(a.frame.json, id);
      const c = await C.chat(dave, 'from carol', { msgID: id });
      assertFail(c.frame.json, 409, id, 'same msgID from another sender');
      const D = await gw.stomp(dave);
      const { messages } = await D.init();
      assert.deepEqual(messages.map((m) => [m.json.chatID, m.json.sender]), [[id, alice.username]]);
      // once confirmed it is no longer pending: the other sender may use it
      assert.equal((await D.confirm(id)).code, 200);
      const c2 = await C.chat(dave, 'from carol', { msgID: id });
      assertSendOk(c2.frame.json, id);
      assert.ok(c2.id > a.id);
      const m = await D.recive.waitFor((x) => x.json?.chatID === id && x.json.sender === carol.username, 10000);
      assert.equal(m.json.content, 'from carol');
    });

    it('an unknown /socket/chat destination answers 4xx on /user/queue/status; the connection stays open', T, async () => {
      for (const dest of ['/socket/chat/x', '/socket/chat/', '/socket/nope']) {
        const mark = A.status.mark();
        A.publish(dest, '{}');
        const st = await A.status.waitFor(() => true, 10000, { since: mark, what: `answer to ${dest}` });
        assert.deepEqual(Object.keys(st.json).sort(), ['code', 'content', 'status'], st.body);
        assert.ok(st.json.code >= 400 && st.json.code < 500, `code ${st.json.code}`);
        assert.equal(st.json.status, '失败');
        assert.ok(st.json.content.length > 0);
        assert.equal(st.headers.destination, '/user/queue/status');
      }
      assert.ok(A.open);
      assert.equal((await A.chat(bob, 'still open')).code, 200);
    });

    it("subscribing to another user's inbox (or any foreign destination) is an ERROR 403 and a close", T, async () => {
      for (const dest of [`/user/${bob.username}/recive`, `/user/${bob.uid}/recive`, '/topic/chat',
        `/user/${alice.username}/../${bob.username}/recive`, '/user/queue/../../bob/recive']) {
        const s = await gw.stomp(alice);
        s.client.subscribe(dest, () => {}, { id: 'evil' });
        const e = await s.errors.waitFor(() => true, 10000, { what: `ERROR for ${dest}` });
        assert.match(`${e.headers.message} ${e.body}`, /403/, `ERROR names 403 for ${dest}`);
        await s.closed;
        assert.equal(s.recive.count(), 0);
      }
      // and bob got nothing out of it
      assert.ok(B.open);
    });
  });

  describe('limits: 429 and 507', () => {
    it('429 under --send-rate 5 --send-burst 5: a burst of 20 gets 429s, none of them stored', T, async () => {
      const limited = await h.env.startGateway(['--send-rate', '5', '--send-burst', '5'], { name: 'rate' });
      const alice = await limited.newUser('alice');
      const gina = await limited.newUser('gina');
      const A = await limited.stomp(alice);
      const ids = [];
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) ids.push(A.sendChat(gina, `burst ${i}`));
      const answers = [];
      for (const id of ids) answers.push((await A.sendStatus.waitFor((s) => s.json?.msgID === id, 10000)).json);
      const elapsed = (Date.now() - t0) / 1000;
      const ok = answers.filter((a) => a.code === 200);
      const limitedAnswers = answers.filter((a) => a.code === 429);
      assert.equal(ok.length + limitedAnswers.length, 20, `only 200 and 429: ${JSON.stringify(answers.map((a) => a.code))}`);
      for (let i = 0; i < 5; i++) assert.equal(answers[i].code, 200, `send ${i} is within the burst`);
      assert.ok(limitedAnswers.length >= 1, 'some sends are limited');
      assert.ok(ok.length <= 5 + Math.ceil(5 * elapsed) + 1, `${ok.length} accepted in ${elapsed}s at 5/s burst 5`);
      for (const a of limitedAnswers) assertFail(a, 429, a.msgID, 'rate limited');
      const G = await limited.stomp(gina);
      const { messages, status } = await G.init();
      assert.deepEqual(messages.map((m) => m.json.chatID).sort(), ok.map((a) => a.msgID).sort(),
        'exactly the accepted sends are stored');
      assert.equal(status.count, ok.length);
      await A.close();
      await h.env.stopGateway(limited);
    });

    it('507 under --max-pending 3: the 4th send to an offline user fails and is not stored', T, async () => {
      const small = await h.env.startGateway(['--max-pending', '3'], { name: 'pending' });
      const alice = await small.newUser('alice');
      const hal = await small.newUser('hal');
      const A = await small.stomp(alice);
      const sent = [];
      for (let i = 0; i < 3; i++) {
        const r = await A.chat(hal, `p${i}`);
        assertSendOk(r.frame.json, r.msgID);
        sent.push(r);
      }
      const full = await A.chat(hal, 'p3');
      assertFail(full.frame.json, 507, full.msgID, 'inbox full');
      const H = await small.stomp(hal);
      const { messages, status } = await H.init();
      assert.deepEqual(messages.map((m) => m.json.chatID), sent.map((r) => r.msgID));
      assert.equal(status.count, 3);
      assert.equal((await H.confirm(sent[0].msgID)).code, 200);
      const again = await A.chat(hal, 'p4');
      assertSendOk(again.frame.json, again.msgID);
      await A.close();
      await H.close();
      await h.env.stopGateway(small);
    });
  });

  describe('sync (ext)', () => {
    it('sync from 0 and from a key, at most 100 per call with more, confirmed ones included', T, async () => {
      const ivy = await gw.newUser('ivy');
      const alice = await gw.newUser('alice');
      const carol = await gw.newUser('carol');
      const A = await gw.stomp(alice);
      const C = await gw.stomp(carol);
      // 60 + 45 sends on two connections stay within the default burst of 100.
      const ids = [...Array(60).keys()].map((i) => A.sendChat(ivy, `a${i}`)).concat(
        [...Array(45).keys()].map((i) => C.sendChat(ivy, `c${i}`)));
      const answers = [];
      for (const [i, id] of ids.entries()) {
        const st = await (i < 60 ? A : C).sendStatus.waitFor((x) => x.json?.msgID === id, 15000);
        assert.equal(st.json.code, 200, JSON.stringify(st.json));
        answers.push(st.json);
      }
      const byId = answers.slice().sort((x, y) => x.id - y.id);
      const keys = byId.map((a) => a.id);
      for (let i = 1; i < keys.length; i++) assert.ok(keys[i] > keys[i - 1], 'unique ids');

      const I = await gw.stomp(ivy);
      const s0 = await I.sync(0);
      assert.deepEqual(Object.keys(s0.status).sort(), ['code', 'count', 'more', 'syncKey']);
      assert.deepEqual(s0.status, { code: 200, count: 100, syncKey: keys[99], more: true });
      assert.deepEqual(s0.messages.map((m) => m.json.id), keys.slice(0, 100), 'oldest first, ids increasing');
      assert.deepEqual(s0.messages.map((m) => m.json.chatID), byId.slice(0, 100).map((a) => a.msgID));
      const s1 = await I.sync(s0.status.syncKey);
      assert.deepEqual(s1.status, { code: 200, count: 5, syncKey: keys[104], more: false });
      assert.deepEqual(s1.messages.map((m) => m.json.id), keys.slice(100));
      // ASSUMPTION: nothing new keeps the key.
      const s2 = await I.sync(keys[104]);
      assert.deepEqual(s2.status, { code: 200, count: 0, syncKey: keys[104], more: false });
      assert.equal(s2.messages.length, 0);
      const mid = await I.sync(keys[49]);
      assert.deepEqual(mid.messages.map((m) => m.json.id), keys.slice(50));
      assert.deepEqual(mid.status, { code: 200, count: 55, syncKey: keys[104], more: false });
      // a confirmed message stays in the history
      assert.equal((await I.confirm(byId[0].msgID)).code, 200);
      const again = await I.sync(0);
      assert.equal(again.messages[0].json.chatID, byId[0].msgID);
      assert.equal(again.status.count, 100);
      // a new message shows up in the next sync from the last key
      const late = await A.chat(ivy, 'late');
      await I.recive.waitFor((m) => m.json?.chatID === late.msgID, 10000, { what: 'the live push' });
      const s3 = await I.sync(keys[104]);
      assert.deepEqual(s3.messages.map((m) => m.json.chatID), [late.msgID]);
      assert.deepEqual(s3.status, { code: 200, count: 1, syncKey: late.id, more: false });
    });
  });

  describe('order', () => {
    it('keeps per-pair order and increasing ids over 200 rapid sends', T, async () => {
      const fast = await h.env.startGateway(['--send-rate', '10000', '--send-burst', '10000'], { name: 'fast' });
      const alice = await fast.newUser('alice');
      const jay = await fast.newUser('jay');
      const A = await fast.stomp(alice);
      const J = await fast.stomp(jay);
      const ids = [];
      for (let i = 0; i < 200; i++) ids.push(A.sendChat(jay, `m${i}`));
      const sts = await A.sendStatus.waitCount(200, (s) => ids.includes(s.json?.msgID), 20000);
      const byMsg = new Map(sts.map((s) => [s.json.msgID, s.json]));
      let last = 0;
      for (const id of ids) {
        const st = byMsg.get(id);
        assert.equal(st.code, 200, JSON.stringify(st));
        assert.ok(st.id > last, `ids follow send order: ${st.id} after ${last}`);
        last = st.id;
      }
      const got = await J.recive.waitCount(200, (m) => ids.includes(m.json?.chatID), 20000);
      assert.deepEqual(got.map((m) => m.json.chatID), ids, 'pushed in send order');
      assert.deepEqual(got.map((m) => m.json.content), ids.map((_, i) => `m${i}`));
      await A.close();
      await J.close();
      await h.env.stopGateway(fast);
    });
  });

  describe('STOMP frames: receipts, transactions, unsubscribe', () => {
    let alice, bob, A, B;
    before(async () => {
      alice = await gw.newUser('alice');
      bob = await gw.newUser('bob');
      A = await gw.stomp(alice);
      B = await gw.stomp(bob);
    });

    it('a SEND with a receipt gets its RECEIPT after its send/status', T, async () => {
      const id = A.sendChat(bob, 'with receipt', { headers: { receipt: 'rcpt-send-1' } });
      const rc = await A.receipts.waitFor((r) => r.headers['receipt-id'] === 'rcpt-send-1', 10000);
      const st = A.sendStatus.find((s) => s.json?.msgID === id);
      assert.ok(st, 'send/status came before the RECEIPT');
      assert.ok(st.seq < rc.seq);
      assertSendOk(st.json, id);
    });

    it('UNSUBSCRIBE stops the pushes of that subscription', T, async () => {
      // One recive subscription at a time: whether a session with two (by
      // name and by uid) gets one MESSAGE or two is not in the contract.
      const B2 = await gw.stomp(bob, { subscribe: false });
      const box1 = B2.subscribeBox(`/user/${bob.username}/recive`, new Mailbox('sub-a'), { id: 'sub-a', receipt: 'r-sub-a' });
      await B2.receipts.waitFor((r) => r.headers['receipt-id'] === 'r-sub-a', 10000);
      const r1 = await A.chat(bob, 'subscribed');
      const m1 = await box1.waitFor((m) => m.json?.chatID === r1.msgID, 10000);
      assert.equal(m1.headers.subscription, 'sub-a');
      box1.subscription.unsubscribe({ receipt: 'r-unsub' });
      await B2.receipts.waitFor((r) => r.headers['receipt-id'] === 'r-unsub', 10000);
      const r2 = await A.chat(bob, 'after unsubscribe');
      assert.equal(r2.code, 200);
      const box2 = B2.subscribeBox(`/user/${bob.uid}/recive`, new Mailbox('sub-b'), { id: 'sub-b', receipt: 'r-sub-b' });
      await B2.receipts.waitFor((r) => r.headers['receipt-id'] === 'r-sub-b', 10000);
      const r3 = await A.chat(bob, 'subscribed again');
      const m3 = await box2.waitFor((m) => m.json?.chatID === r3.msgID, 10000);
      assert.equal(m3.headers.subscription, 'sub-b');
      // per-pair order: r2 would have been pushed before r3
      assert.equal(box1.count((m) => m.json?.chatID === r2.msgID || m.json?.chatID === r3.msgID), 0,
        'nothing after UNSUBSCRIBE on the old subscription');
      assert.equal(B2.other.count(), 0, 'no MESSAGE for an unknown subscription');
      await B2.close();
    });

    it('SENDs in a transaction take effect at COMMIT', T, async () => {
      const tx = A.client.begin('tx-commit');
      const id = A.sendChat(bob, 'in a transaction', { headers: { transaction: tx.id } });
      await barrier(A, bob, B);
      assert.equal(A.sendStatus.count((s) => s.json?.msgID === id), 0, 'no answer before COMMIT');
      assert.equal(B.recive.count((m) => m.json?.chatID === id), 0, 'not delivered before COMMIT');
      tx.commit();
      const st = await A.sendStatus.waitFor((s) => s.json?.msgID === id, 10000);
      assertSendOk(st.json, id);
      const m = await B.recive.waitFor((x) => x.json?.chatID === id, 10000);
      assert.equal(m.json.content, 'in a transaction');
    });

    it('ABORT drops the SENDs of the transaction', T, async () => {
      const tx = A.client.begin('tx-abort');
      const id = A.sendChat(bob, 'aborted', { headers: { transaction: tx.id } });
      tx.abort();
      await barrier(A, bob, B);
      assert.equal(A.sendStatus.count((s) => s.json?.msgID === id), 0);
      assert.equal(B.recive.count((m) => m.json?.chatID === id), 0);
      const st = await B.confirm(id);
      assertFail(st, 404, id, 'an aborted message was never stored');
    });

    it('DISCONNECT with a receipt gets the RECEIPT, then the server closes', T, async () => {
      const r = await gw.raw({ token: alice.token });
      await r.connect();
      r.send(buildFrame('DISCONNECT', { receipt: 'bye-77' }));
      const rc = await r.frames.waitFor((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 5000);
      assert.equal(rc.command, 'RECEIPT');
      assert.equal(rc.headers['receipt-id'], 'bye-77');
      const c = await r.waitClose(5000);
      assert.notEqual(c.code, 1006, 'closed with a close frame');
    });
  });

  describe('heart-beats (--heartbeat-ms 1000)', () => {
    let hb, user;
    before(async () => {
      hb = await h.env.startGateway(['--heartbeat-ms', '1000'], { name: 'hb' });
      user = await hb.newUser('hb');
    });

    it('sends EOLs and disconnects a client that goes silent for twice the interval', T, async () => {
      const r = await hb.raw({ token: user.token });
      const c = await r.connect({ 'heart-beat': '1000,1000' });
      assert.equal(c.headers['heart-beat'], '1000,1000'); // ASSUMPTION: the server's heartbeat_ms both ways
      // 3 s of client heart-beats: the server beats too and keeps the connection
      const start = Date.now();
      let lastSent = 0;
      while (Date.now() - start < 3000) {
        r.send('\n');
        lastSent = Date.now();
        await sleep(300);
      }
      assert.ok(r.open, 'open while the client beats');
      const beats = r.heartbeats.filter((t) => t >= start).length;
      assert.ok(beats >= 2, `server heart-beats in 3 s: ${beats}`);
      // silence: closed after 2 x 1000 ms (with slack), not before
      const closed = await r.waitClose(8000);
      const after = closed.at - lastSent;
      assert.ok(after >= 1900, `closed after only ${after} ms of silence`);
      assert.ok(after <= 6000, `closed after ${after} ms of silence`);
    });

    it('does not beat or time out a client that asked for no heart-beats', T, async () => {
      const r = await hb.raw({ token: user.token });
      await r.connect({ 'heart-beat': '0,0' });
      await sleep(3000);   // > 2 x 1000 ms of silence, on purpose
      assert.ok(r.open, 'still open');
      assert.equal(r.heartbeats.length, 0, 'no EOLs for a client that wants none');
      r.send(buildFrame('SUBSCRIBE', { id: 's1', destination: '/user/queue/status', receipt: 'alive' }));
      const rc = await r.frames.waitFor((f) => f.command === 'RECEIPT', 5000);
      assert.equal(rc.headers['receipt-id'], 'alive');
      await r.terminate();
    });

    it('@stomp/stompjs with heart-beat 1000,1000 stays connected and chats', T, async () => {
      const other = await hb.newUser('hb2');
      const s = await hb.stomp(user, { heartbeat: [1000, 1000] });
      const o = await hb.stomp(other, { heartbeat: [1000, 1000] });
      await sleep(2500);
      assert.ok(s.open && o.open);
      const r = await s.chat(other, 'beating');
      assert.equal(r.code, 200);
      await o.recive.waitFor((m) => m.json?.chatID === r.msgID, 10000);
      await s.close();
      await o.close();
    });
  });

  describe('Redis unavailable: 503', () => {
    const h2 = useEnv('stomp_chat_503');

    it('send answers 503 promptly and readyz 503 while Redis is down; 200 again once it is back', T, async () => {
      const env = h2.env;
      const g = env.gw;
      const alice = await g.newUser('alice');
      const bob = await g.newUser('bob');
      let A = await g.stomp(alice);
      const before = await A.chat(bob, 'before the outage');
      assert.equal(before.code, 200);

      await env.redis.kill('SIGKILL');
      const t0 = Date.now();
      const down = await A.chat(bob, 'during the outage', { timeout: 15000 });
      assertFail(down.frame.json, 503, down.msgID, 'store unavailable');
      assert.ok(Date.now() - t0 < 5000, `503 took ${Date.now() - t0} ms`);
      await until(async () => (await httpRequest(g.url('/readyz'))).status === 503,
        { timeout: 5000, what: 'readyz 503' });
      assert.equal((await httpRequest(g.url('/healthz'))).status, 200, 'healthz stays 200');

      await env.redis.start();
      await until(async () => (await httpRequest(g.url('/readyz'))).status === 200,
        { timeout: 20000, what: 'readyz 200 after Redis came back' });
      if (!A.open) A = await g.stomp(alice); // ASSUMPTION (header): sessions survive; tolerated if not
      const afterR = await A.chat(bob, 'after the outage');
      assertSendOk(afterR.frame.json, afterR.msgID);

      const B = await g.stomp(bob);
      const { messages } = await B.init();
      assert.deepEqual(messages.map((m) => m.json.chatID), [before.msgID, afterR.msgID],
        'the 503 message was not stored');
    });
  });
});
