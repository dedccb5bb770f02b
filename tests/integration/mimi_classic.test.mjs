// The original Mimi page, unchanged (PROTOCOL.md appendix): the classic
// stompjs 2.3.3 client, `Stomp.over(new WebSocket(base + "/client?srect=" +
// token))`, no subprotocol offered, CONNECT with accept-version:1.1,1.0 and
// heart-beat:10000,10000, the page's four subscriptions and its init with a
// null body. Run against `/client` and against `--base-path /Mimi`.
//
// The page's code lives in MimiPage (lib/harness.mjs). Tests only add
// observation: MimiPage.ready() (one confirmation of an unknown msgID, as a
// barrier) and, where the page has no way to look, a second session with
// @stomp/stompjs 7.
//
// ASSUMPTIONS: the gateway sends text WebSocket messages (stompjs 2.3.3
// decodes binary ones byte by byte as Latin-1, which would garble
// "起来聊天"); a send/status failure keeps the page's connection open.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, httpRequest } from './lib/harness.mjs';

const T = { timeout: 30000 };

function assertOk(st, msgID) {
  assert.deepEqual(Object.keys(st).sort(), ['code', 'content', 'id', 'msgID', 'status', 'time'], JSON.stringify(st));
  assert.equal(st.msgID, msgID);
  assert.equal(st.code, 200, JSON.stringify(st));
  assert.equal(st.status, '成功');
  assert.equal(st.content, 'ok');
  assert.ok(Number.isSafeInteger(st.id) && st.id > 0);
}

/** Counts the WebSocket messages a page sends while fn runs. */
async function countWsSends(page, fn) {
  const orig = page.ws.send;
  let n = 0;
  page.ws.send = function (...args) { n++; return orig.apply(this, args); };
  try {
    const r = await fn();
    return { n, r };
  } finally {
    page.ws.send = orig;
  }
}

describe('the original Mimi page (stompjs 2.3.3, Stomp.over)', () => {
  const h = useEnv('mimi_classic');
  let gw, mimi;
  before(async () => {
    gw = h.env.gw;
    mimi = await h.env.startGateway(['--base-path', '/Mimi'], { name: 'mimi' });
  });

  for (const variant of ['/client', '/Mimi/client']) {
    describe(`over ${variant}`, () => {
      let g, alice, bob;
      before(async () => {
        g = variant === '/client' ? gw : mimi;
        alice = await g.newUser('alice');
        bob = await g.newUser('bob');
      });

      it('connects without a subprotocol and gets STOMP 1.1 with the CONNECTED headers', T, async () => {
        const p = await g.mimi(alice);
        assert.equal(p.ws.protocol, '', 'no subprotocol negotiated');
        const hd = p.connectedFrame.headers;
        assert.equal(p.connectedFrame.command, 'CONNECTED');
        assert.equal(hd.version, '1.1');
        assert.match(hd['heart-beat'], /^\d+,\d+$/);
        assert.match(hd.server, /^chatgate\//);
        assert.equal(hd['user-name'], alice.username);
        await p.ready();
        await p.close();
      });

      it('sends, receives, confirms: every answer as the page expects', T, async () => {
        const A = await g.mimi(alice);
        const B = await g.mimi(bob);
        await A.ready();
        await B.ready();
        const r = await A.chat(bob.uid, '起来聊天');
        assertOk(r, r.msgID);
        const chat = await B.chats.waitFor((m) => m.json?.chatID === r.msgID, 10000);
        assert.deepEqual(chat.json, {
          id: r.id, chatID: r.msgID, sender: alice.username, reciver: bob.username,
          content: '起来聊天', time: r.time, senderId: alice.uid, reciverId: bob.uid,
        });
        assert.equal(chat.headers['content-type'], 'application/json;charset=UTF-8');
        // the page confirmed it in its recive callback
        const st = await B.reciveStatus.waitFor((m) => m.json?.msgID === r.msgID, 10000);
        assert.deepEqual(st.json, { msgID: r.msgID, code: 200, status: '成功', content: 'ok' });
        // ... so nothing is pending for bob any more
        const check = await g.stomp(bob);
        const { status } = await check.init();
        assert.equal(status.count, 0);
        await check.close();
        await A.close();
        await B.close();
      });

      it("delivers what arrived while the page was closed on the page's init", T, async () => {
        const A = await g.mimi(alice);
        const sent = [];
        for (const c of ['while you were away', '第二条']) sent.push(await A.chat(bob.uid, c));
        for (const r of sent) assertOk(r, r.msgID);
        const B = await g.mimi(bob);   // its connect callback sends init
        const got = await B.chats.waitCount(2, (m) => sent.some((r) => r.msgID === m.json?.chatID), 10000);
        assert.deepEqual(got.map((m) => m.json.chatID), sent.map((r) => r.msgID), 'oldest first');
        assert.deepEqual(got.map((m) => m.json.content), ['while you were away', '第二条']);
        for (const r of sent) {
          const st = await B.reciveStatus.waitFor((m) => m.json?.msgID === r.msgID, 10000);
          assert.equal(st.json.code, 200);
        }
        await B.close();
        // reopened: nothing left to push
        const check = await g.stomp(bob);
        const { messages } = await check.init();
        assert.equal(messages.filter((m) => sent.some((r) => r.msgID === m.json.chatID)).length, 0);
        await check.close();
        await A.close();
      });

      it('subscribes by uid ("/user/" + uid + "/recive") as well', T, async () => {
        const A = await g.mimi(alice);
        const B = await g.mimi(bob, { byUid: true });
        await B.ready();
        const r = await A.chat(bob.uid, 'by uid');
        const chat = await B.chats.waitFor((m) => m.json?.chatID === r.msgID, 10000);
        assert.equal(chat.headers.destination, `/user/${bob.uid}/recive`);
        await A.close();
        await B.close();
      });

      it('ten quick sends arrive in order and are all confirmed', T, async () => {
        const A = await g.mimi(alice);
        const B = await g.mimi(bob);
        await B.ready();
        const ids = [];
        for (let i = 0; i < 10; i++) ids.push(A.send(bob.uid, `quick ${i}`));
        const sts = await A.sendStatus.waitCount(10, (m) => ids.includes(m.json?.msgID), 10000);
        for (const s of sts) assert.equal(s.json.code, 200, JSON.stringify(s.json));
        const got = await B.chats.waitCount(10, (m) => ids.includes(m.json?.chatID), 10000);
        assert.deepEqual(got.map((m) => m.json.chatID), ids);
        await B.reciveStatus.waitCount(10, (m) => ids.includes(m.json?.msgID) && m.json.code === 200, 10000);
        await A.close();
        await B.close();
      });

      it('reassembles frames over 16 KiB that stompjs splits into several WebSocket messages', T, async () => {
        const A = await g.mimi(alice);
        const B = await g.mimi(bob);
        await B.ready();
        const contents = [
          ['a'.repeat(16300), '16300 ASCII'],
          ['b'.repeat(16384), '16384 ASCII (the content limit)'],
          ['c'.repeat(16204) + '字'.repeat(60), '16384 bytes, split inside 3-byte characters'],
        ];
        for (const [content, what] of contents) {
          assert.ok(Buffer.byteLength(content) <= 16384);
          const { n, r } = await countWsSends(A, () => A.chat(bob.uid, content));
          assert.ok(n >= 2, `${what}: stompjs sent the frame as ${n} WebSocket message(s)`);
          assertOk(r, r.msgID);
          const chat = await B.chats.waitFor((m) => m.json?.chatID === r.msgID, 10000);
          assert.equal(chat.json.content, content, `${what}: content intact`);
        }
        // over the content limit after reassembly: 413, not a frame error
        const { n, r } = await countWsSends(A, () => A.chat(bob.uid, 'd'.repeat(16385)));
        assert.ok(n >= 2);
        assert.equal(r.code, 413, JSON.stringify(r));
        assert.equal(r.status, '失败');
        assert.ok(A.open_, 'still connected after a 413');
        const ok = await A.chat(bob.uid, 'small again');
        assert.equal(ok.code, 200);
        await A.close();
        await B.close();
      });
    });
  }

  it('a page on /Mimi/client and a page on /client (two nodes) talk to each other', T, async () => {
    const alice = await mimi.newUser('alice');
    const bob = await gw.newUser('bob');
    const A = await mimi.mimi(alice);
    const B = await gw.mimi(bob);
    await B.ready();
    const r = await A.chat(bob.uid, 'across nodes');
    assert.equal(r.code, 200);
    const chat = await B.chats.waitFor((m) => m.json?.chatID === r.msgID, 10000);
    assert.equal(chat.json.sender, alice.username);
    await B.reciveStatus.waitFor((m) => m.json?.msgID === r.msgID, 10000);
    await A.close();
    await B.close();
  });

  it("the page's confirmation reaches a modern sender as /user/queue/delivered", T, async () => {
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const A = await gw.stomp(alice);
    const B = await gw.mimi(bob);
    await B.ready();
    const r = await A.chat(bob, 'confirm me, old page');
    assert.equal(r.code, 200);
    const d = await A.delivered.waitFor((m) => m.json?.msgID === r.msgID, 10000);
    assert.equal(d.json.id, r.id);
    assert.equal(d.json.reciverId, bob.uid);
    await A.close();
    await B.close();
  });

  it('/Mimi serves the login the page uses (/Mimi/api/login)', T, async () => {
    const alice = await mimi.newUser('alice');
    const r = await httpRequest(mimi.url('/api/login'), {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: alice.username, password: alice.password }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.uid, alice.uid);
  });
});
