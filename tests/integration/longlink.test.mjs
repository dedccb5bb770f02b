// PROTOCOL.md section 9: the native long link, against the real binary and
// a real redis-server. A long-link user and a STOMP WebSocket user chat
// both ways through the same chat core; malformed packets are answered
// with a close packet and never crash the gateway; idle links are closed.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { useEnv, freePort, msgId, sleep, REPO_ROOT } from './lib/harness.mjs';
import { LongLink, OP, packet } from './lib/longlink.mjs';

const T = { timeout: 30000 };

async function gatewayWithLongLink(env, extra = [], name) {
  const port = await freePort();
  const gw = await env.startGateway(['--longlink-listen', `127.0.0.1:${port}`, ...extra], { name });
  gw.longlinkPort = port;
  return gw;
}

async function openLongLink(env, gw, user) {
  const ll = env.track(await LongLink.open(gw.longlinkPort));
  if (user) {
    const a = await ll.auth(user.token);
    assert.equal(a.code, 200, JSON.stringify(a));
    assert.equal(a.uid, user.uid);
    assert.equal(a.username, user.username);
  }
  return ll;
}

/** A malformed stream must end with a close packet of code and a reason
 * matching re, then the close; the gateway lives on. */
async function assertClosedWith(ll, code, re) {
  const c = await ll.closedByServer(10000);
  assert.ok(c, 'a close packet came before the close');
  assert.equal(c.code, code, JSON.stringify(c));
  assert.match(c.reason, re);
  const last = ll.packets.items[ll.packets.items.length - 1];
  assert.equal(last.op, OP.close, 'the close packet is the last packet');
  assert.equal(last.seq, 0, 'the close packet is a server packet (sequence 0)');
}

describe('PROTOCOL.md section 9.3: the examples', () => {
  it('every operation has an example, and each header is what the client writes', () => {
    const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/PROTOCOL.md'), 'utf8');
    const sec = doc.slice(doc.indexOf('### 9.3 Examples'), doc.indexOf('### 9.4 Errors'));
    const rows = [...sec.matchAll(/^\| (\w+) \| `([0-9a-f ]+)` \| (\d+) \| (.*) \|$/gm)];
    const names = rows.map((r) => r[1]);
    assert.deepEqual([...names].sort(), Object.keys(OP).sort(), 'one example per operation');
    const bodies = Object.fromEntries(rows.map((r) => [r[1], r[4]]));
    for (const [, name, hex, blen, body] of rows) {
      const text = body === '(none)' ? '' : body === 'the body of the `push` above'
        ? bodies.push.slice(1, -1) : body.slice(1, -1);
      assert.equal(Buffer.byteLength(text), Number(blen), `${name}: body bytes`);
      const head = Buffer.from(hex.replace(/ /g, ''), 'hex');
      const seq = head.readUInt32BE(12);
      assert.equal(packet(OP[name], seq, text).subarray(0, 16).toString('hex'), head.toString('hex'),
        `${name}: header`);
    }
  });
});

describe('long link (PROTOCOL.md section 9)', () => {
  const h = useEnv('longlink', { gatewayArgs: null });
  let gw;

  before(async () => { gw = await gatewayWithLongLink(h.env); });

  it('auth answers with the user, heartbeats are echoed by sequence', T, async () => {
    const u = await gw.newUser('llauth');
    const ll = await openLongLink(h.env, gw, u);
    assert.equal(ll.boxes.auth_answer.items[0].seq, 1);
    assert.ok(ll.boxes.auth_answer.items[0].json.heartbeatMs > 0);
    const hb = await ll.heartbeat();
    assert.equal(hb.seq, 2);
    assert.equal(hb.body, '');
    await ll.close();
  });

  it('a long-link user and a STOMP user chat both ways', T, async () => {
    const alice = await gw.newUser('llalice');
    const bob = await gw.newUser('llbob');
    const ll = await openLongLink(h.env, gw, alice);
    const st = await gw.stomp(bob);

    // long link -> STOMP
    const r = await ll.chat(bob, 'from the long link 起来');
    assert.equal(r.code, 200, JSON.stringify(r));
    assert.equal(r.status, '成功');
    assert.ok(r.id > 0);
    const m = await st.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
    assert.equal(m.json.content, 'from the long link 起来');
    assert.equal(m.json.senderId, alice.uid);
    assert.equal(m.json.sender, alice.username);

    // STOMP -> long link: a push with sequence 0, the MESSAGE body's shape
    const back = await st.chat(alice, 'from STOMP');
    assert.equal(back.code, 200);
    const p = await ll.pushes.waitFor((x) => x.json?.chatID === back.msgID, 10000);
    assert.equal(p.op, OP.push);
    assert.equal(p.seq, 0);
    assert.deepEqual(Object.keys(p.json).sort(),
      ['chatID', 'content', 'id', 'reciver', 'reciverId', 'sender', 'senderId', 'time']);
    assert.equal(p.json.content, 'from STOMP');
    assert.equal(p.json.id, back.id);

    // confirm on the long link: confirm_status, and the STOMP sender's
    // delivered notice
    const c = await ll.confirm(back.msgID);
    assert.equal(c.code, 200, JSON.stringify(c));
    assert.equal(c.msgID, back.msgID);
    const d = await st.delivered.waitFor((x) => x.json?.msgID === back.msgID, 10000);
    assert.equal(d.json.id, back.id);

    // STOMP confirms the long link's message: the long link gets delivered
    const c2 = await st.confirm(r.msgID);
    assert.equal(c2.code, 200);
    const d2 = await ll.boxes.delivered.waitFor((x) => x.json?.msgID === r.msgID, 10000);
    assert.equal(d2.seq, 0);
    assert.equal(d2.json.id, r.id);
    await ll.close();
  });

  it('send status: a retried msgID is stored once, failures answer on send_status', T, async () => {
    const alice = await gw.newUser('lldup');
    const bob = await gw.newUser('lldupb');
    const ll = await openLongLink(h.env, gw, alice);
    const st = await gw.stomp(bob);
    const id = msgId('dup');
    const a = await ll.chat(bob, 'once', { msgID: id });
    const b = await ll.chat(bob, 'once', { msgID: id });
    assert.equal(a.code, 200);
    assert.equal(b.code, 200);
    assert.equal(b.id, a.id, 'the retry is answered with the first id');
    assert.notEqual(b.seq, a.seq, 'each answer carries its own request sequence');
    await st.recive.waitFor((x) => x.json?.chatID === id, 10000);
    await sleep(300);
    assert.equal(st.recive.count((x) => x.json?.chatID === id), 1, 'delivered once');

    const unknown = await ll.chat(999999999, 'nobody');
    assert.equal(unknown.code, 404, JSON.stringify(unknown));
    assert.equal(unknown.status, '失败');
    const seq = ll.request(OP.send, '{not json');
    const bad = await ll.answer('send_status', seq);
    assert.equal(bad.json.code, 400, bad.body);
    // Several requests in one write are answered in order.
    const s1 = ++ll.seq, s2 = ++ll.seq;
    ll.write(Buffer.concat([
      packet(OP.send, s1, { msgID: msgId('p1'), reciverId: bob.uid, content: 'p1' }),
      packet(OP.send, s2, { msgID: msgId('p2'), reciverId: bob.uid, content: 'p2' }),
    ]));
    const [x1, x2] = await Promise.all([ll.answer('send_status', s1), ll.answer('send_status', s2)]);
    assert.ok(ll.packets.items.indexOf(x1) < ll.packets.items.indexOf(x2));
    await ll.close();
  });

  it('init after a reconnect delivers what is pending, redelivered as push_again; sync by key', T, async () => {
    const alice = await gw.newUser('llinit');
    const bob = await gw.newUser('llinitb');
    const st = await gw.stomp(bob);
    let ll = await openLongLink(h.env, gw, alice);
    const first = await st.chat(alice, 'one');
    await ll.pushes.waitFor((x) => x.json?.chatID === first.msgID, 10000);
    await ll.close();
    const second = await st.chat(alice, 'two (while offline)');

    ll = await openLongLink(h.env, gw, alice);
    const init = await ll.init();
    assert.equal(init.status.code, 200, JSON.stringify(init.status));
    assert.equal(init.status.count, 2);
    assert.equal(init.end.seq, 2, 'init_end answers the init (auth was 1)');
    const ids = init.messages.map((p) => p.json.chatID);
    assert.deepEqual(ids, [first.msgID, second.msgID], 'oldest first');
    assert.equal(init.messages[0].op, OP.push_again, 'pushed before: push_again');
    assert.equal(init.messages[1].op, OP.push, 'never pushed: push');
    assert.equal(init.status.syncKey, second.id);

    await ll.confirm(first.msgID);
    await ll.confirm(second.msgID);
    const again = await ll.init();
    assert.equal(again.status.count, 0, 'confirmed messages are not pending');

    const sync = await ll.sync(0);
    assert.equal(sync.status.code, 200, JSON.stringify(sync.status));
    assert.equal(sync.end.op, OP.sync_end);
    assert.deepEqual(sync.messages.map((p) => p.json.chatID), [first.msgID, second.msgID]);
    assert.equal(sync.status.syncKey, second.id);
    assert.equal(sync.status.more, false);
    const none = await ll.sync(second.id);
    assert.equal(none.status.count, 0);
    assert.equal(none.status.syncKey, second.id);
    const seq = ll.request(OP.sync, '{"syncKey":"x"}');
    const bad = await ll.answer('sync_end', seq);
    assert.equal(bad.json.code, 400, bad.body);
    await ll.close();
  });

  it('logout closes the links of its token (1008 logged out)', T, async () => {
    const u = await gw.newUser('lllogout');
    const ll = await openLongLink(h.env, gw, u);
    const r = await gw.api('POST', '/api/logout', undefined, u.token);
    assert.equal(r.status, 204, r.text);
    await assertClosedWith(ll, 1008, /^logged out$/);
  });

  it('before auth: only auth and heartbeat; a bad token closes with 1008', T, async () => {
    let ll = await openLongLink(h.env, gw);
    await ll.heartbeat();
    ll.request(OP.send, { msgID: msgId('x'), reciverId: 1, content: 'x' });
    await assertClosedWith(ll, 1008, /^401 unauthorized$/);

    ll = await openLongLink(h.env, gw);
    ll.request(OP.auth, { token: 'A'.repeat(43) });
    await assertClosedWith(ll, 1008, /^401 unauthorized$/);

    ll = await openLongLink(h.env, gw);
    ll.request(OP.auth, 'token please');
    await assertClosedWith(ll, 1008, /^401 unauthorized$/);
  });

  describe('malformed packets: a close packet, then the close; the gateway lives on', () => {
    const cases = [
      ['length below 16', packet(OP.heartbeat, 1, '', { length: 15 }), 1002, /^packet length below 16$/],
      ['length 0', packet(OP.heartbeat, 1, '', { length: 0 }), 1002, /^packet length below 16$/],
      ['header length not 16', packet(OP.heartbeat, 1, '', { headerLength: 20 }), 1002, /^header length is not 16$/],
      ['unknown version', packet(OP.heartbeat, 1, '', { version: 2 }), 1002, /^unknown protocol version$/],
      ['unknown operation', packet(99, 1, ''), 1002, /^unknown operation$/],
      ['operation 0', packet(0, 1, ''), 1002, /^unknown operation$/],
      ['a server operation', packet(OP.push, 1, '{}'), 1002, /push is sent by the server only/],
      ['over the limit, refused on its length alone',
        packet(OP.send, 1, '', { length: 16 + 70000 }).subarray(0, 4), 1008,
        /^packet exceeds 8192 bytes before auth \(unauth_max_frame_bytes\)$/],
    ];
    for (const [name, bytes, code, re] of cases) {
      it(`${name}: close ${code}`, T, async () => {
        const ll = await openLongLink(h.env, gw);
        ll.write(bytes);
        await assertClosedWith(ll, code, re);
      });
    }

    it('after auth, a packet over max_frame_bytes: close 1008 naming the limit', T, async () => {
      const u = await gw.newUser('llbig');
      const ll = await openLongLink(h.env, gw, u);
      ll.write(packet(OP.send, 2, Buffer.alloc(65536 - 16 + 1, 0x61)));
      await assertClosedWith(ll, 1008, /^packet exceeds 65536 bytes \(max_frame_bytes\)$/);
      // At the limit is fine (a 400: not JSON).
      const ll2 = await openLongLink(h.env, gw, u);
      ll2.write(packet(OP.send, 2, Buffer.alloc(65536 - 16, 0x61)));
      const st = await ll2.answer('send_status', 2);
      assert.equal(st.json.code, 400, st.body);
      await ll2.close();
    });

    it('a second auth is a protocol error', T, async () => {
      const u = await gw.newUser('llauth2');
      const ll = await openLongLink(h.env, gw, u);
      ll.request(OP.auth, { token: u.token });
      await assertClosedWith(ll, 1002, /auth again/);
    });

    it('the gateway still serves both protocols afterwards', T, async () => {
      const a = await gw.newUser('llafter');
      const b = await gw.newUser('llafterb');
      const ll = await openLongLink(h.env, gw, a);
      const st = await gw.stomp(b);
      const r = await ll.chat(b, 'still here');
      assert.equal(r.code, 200);
      await st.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000);
      await ll.close();
    });
  });

  describe('timeouts', () => {
    let gw2;
    before(async () => {
      gw2 = await gatewayWithLongLink(h.env,
        ['--heartbeat-ms', '500', '--frame-timeout-ms', '800', '--connect-timeout-ms', '1500'], 'gwshort');
    });

    it('an authenticated link silent for twice heartbeat_ms is closed (1008)', T, async () => {
      const u = await gw2.newUser('llidle');
      const ll = await openLongLink(h.env, gw2, u);
      assert.equal(ll.boxes.auth_answer.items[0].json.heartbeatMs, 500);
      // Heartbeats keep it open ...
      for (let i = 0; i < 4; i++) {
        await sleep(300);
        await ll.heartbeat();
      }
      assert.equal(ll.endInfo, null, 'open while it beats');
      // ... silence ends it.
      await assertClosedWith(ll, 1008, /^no data from the client within 1000 ms/);
    });

    it('the client may ask for a longer heartbeat, up to heartbeat_max_ms', T, async () => {
      const u = await gw2.newUser('llhb');
      let ll = await openLongLink(h.env, gw2);
      let seq = ll.request(OP.auth, { token: u.token, heartbeatMs: 2500 });
      assert.equal((await ll.answer('auth_answer', seq)).json.heartbeatMs, 2500);
      await sleep(1500);                                  // past 2 x 500 ms
      await ll.heartbeat();
      assert.equal(ll.endInfo, null, 'the longer interval holds');
      await ll.close();
      ll = await openLongLink(h.env, gw2);
      seq = ll.request(OP.auth, { token: u.token, heartbeatMs: 999999999 });
      assert.equal((await ll.answer('auth_answer', seq)).json.heartbeatMs, 300000);
      await ll.close();
      ll = await openLongLink(h.env, gw2);
      seq = ll.request(OP.auth, { token: u.token, heartbeatMs: 100 });
      assert.equal((await ll.answer('auth_answer', seq)).json.heartbeatMs, 500,
        'never shorter than heartbeat_ms');
      await ll.close();
    });

    it('a link that never authenticates is closed (connect_timeout_ms)', T, async () => {
      const ll = await openLongLink(h.env, gw2);
      await assertClosedWith(ll, 1008, /^no auth within 1500 ms \(connect_timeout_ms\)$/);
    });

    it('a packet that never ends is closed (frame_timeout_ms)', T, async () => {
      const u = await gw2.newUser('llpartial');
      const ll = await openLongLink(h.env, gw2, u);
      ll.write(packet(OP.send, 2, '{"msgID":"abcdefgh"}', { length: 16 + 400 }));
      await assertClosedWith(ll, 1008, /^packet not completed within 800 ms \(frame_timeout_ms\)$/);
    });

    it('a graceful stop closes open links with 1001 after the answers owed', T, async () => {
      const u = await gw2.newUser('llstop');
      const ll = await openLongLink(h.env, gw2, u);
      const quiet = await openLongLink(h.env, gw2);       // not even authenticated
      const stopped = h.env.stopGateway(gw2);
      await assertClosedWith(ll, 1001, /^server shutting down$/);
      await assertClosedWith(quiet, 1001, /^server shutting down$/);
      await stopped;                                      // exit 0, no sanitizer report
    });
  });
});
