// Hostile input (issue #8): authorization tricks, every configurable limit
// at N and N+1 that tests/integration does not already cover, broken HTTP
// lengths, and header injection. Extends tests/integration (see there for:
// another user's inbox by name/uid/dot-dot, another user's msgID 404, forged
// sender/senderId; frame 4096/4097, 64/65 headers, 8192/8193 header lines,
// 64/65 subscriptions and 16384/16385 content at their defaults; STOMP
// content-length -1/abc/huge; 10 000 headers; the frame deadline; HTTP body
// 64 KiB/64 KiB+1; names 32/33; passwords 7/8/128/129).
//
// Here:
//   - more ways to name another user's inbox (case, URL-encoding, slashes,
//     spaces, escapes, a repeated destination header) -> ERROR 403 + close;
//     ACK/NACK of another user's message-id confirms nothing; forged id,
//     time, chatID and reciver in the body and forged identity headers on
//     the SEND are ignored;
//   - limits at N / N+1 on a gateway with every STOMP limit set small
//     (max_headers 10, max_header_line 300, max_subscriptions 8,
//     max_content_bytes 100, max_tx_frames 4, unauth_max_frame_bytes 1024,
//     http_max_body 1024, max_inflight 1), plus the two defaults the
//     integration tests do not reach (unauth_max_frame_bytes 8192 and
//     max_tx_frames 128) and SockJS xhr_send's 1 MiB body;
//   - HTTP Content-Length negative, huge, not a number, and a lying one, on
//     the API and on xhr_send: an error status, never a hang or a crash;
//   - header injection: names with CR/LF are refused; CR, LF, NUL and
//     U+0000 in content arrive JSON-escaped with an exact content-length and
//     no extra header; a receipt or subscription id carrying an escaped
//     newline or colon comes back escaped (STOMP 1.2), not as a new header.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { useEnv, buildFrame, msgId, sleep } from '../integration/lib/harness.mjs';
import { request, sessionPath, post, stompFrame } from '../integration/lib/sockjs.mjs';
import { RawClient, sendFrame } from './lib/raw.mjs';
import { secrets, newUser } from './lib/util.mjs';

const T = { timeout: 60000 };

secrets.use('hostile_authz_limits');

/** A raw connection of user u, CONNECTed, subscribed to its status topics. */
async function rawFor(gw, u, subs = []) {
  const frames = [];
  const c = await RawClient.open(gw, { token: u.token, onFrame: (f) => frames.push(f) });
  c.got = frames;
  await c.connect();
  await c.subscribe([['/user/queue/send/status', 'ss'], ['/user/queue/status', 'st'], ['/user/queue/recive/status', 'rs'], ...subs]);
  return c;
}

async function expectErrorClose(c, re, what) {
  const e = await c.next((f) => f.command === 'ERROR', 5000, `ERROR for ${what}`).catch((err) => {
    const got = c.got?.find((f) => f.command === 'ERROR');
    if (got) return got;
    throw err;
  });
  if (re) assert.match(`${e.headers.message}\n${e.body}`, re, `${what}: ERROR names it`);
  const cl = await c.waitClose(5000);
  assert.notEqual(cl.code, 1006, `${what}: a close frame, not a dropped connection`);
  return e;
}

/** send/status of msgID on c. */
function answerOf(c, msgID, timeout = 10000) {
  const have = c.got.find((f) => f.command === 'MESSAGE' && f.json?.msgID === msgID);
  if (have) return Promise.resolve(have.json);
  return c.next((f) => (f.command === 'MESSAGE' && f.json?.msgID === msgID) || f.command === 'ERROR', timeout, `answer ${msgID}`)
    .then((f) => { if (f.command === 'ERROR') throw new Error(`ERROR ${f.headers.message}`); return f.json; });
}

/** Raw HTTP on a fresh TCP connection: the status line, or 'closed' / 'timeout'. */
function rawHttp(port, text, timeout = 5000) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => { clearTimeout(t); s.destroy(); resolve(v); };
    const t = setTimeout(() => done({ status: 'timeout', text: buf }), timeout);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      const end = buf.indexOf('\r\n\r\n');
      if (!m || end < 0) return;
      const cl = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
      if (!cl || buf.length >= end + 4 + Number(cl[1])) done({ status: Number(m[1]), text: buf.slice(end + 4) });
    });
    s.on('error', () => done({ status: 'closed', text: buf }));
    s.on('close', () => done({ status: buf ? 'closed' : 'closed', text: buf }));
  });
}

describe('hostile: authorization, limits, lengths, injection', () => {
  const h = useEnv('hostile_authz_limits');
  let gw, alice, bob;

  before(async () => {
    gw = h.env.gw;
    alice = await newUser(gw, 'alice');
    bob = await newUser(gw, 'bob');
  });

  afterEach(async () => {
    // the gateway still serves after every case
    const c = await rawFor(gw, alice);
    const id = msgId('alive');
    c.send(sendFrame(id, bob.uid, 'alive'));
    assert.equal((await answerOf(c, id)).code, 200);
    await c.terminate();
  });

  describe('authorization', () => {
    it("more spellings of another user's inbox are refused (ERROR 403, close)", T, async () => {
      const B = bob.username;
      const dests = [
        `/user/${B.toUpperCase()}/recive`, `/user/${B.charAt(0).toUpperCase()}${B.slice(1)}/recive`,
        `/user/%${B.charCodeAt(0).toString(16)}${B.slice(1)}/recive`, `/user/${B}/recive/`, `/user//${B}/recive`,
        `/user/${B}//recive`, `//user/${B}/recive`, `/user/${B}/recive `, ` /user/${B}/recive`, `/user/${B}/./recive`,
        `/user/${alice.username}/recive/../../${B}/recive`, `/user/${String(bob.uid).padStart(4, '0')}/recive`,
        `/user/+${bob.uid}/recive`, `/user/${bob.uid}.0/recive`, `/user/${B}\\c/recive`,
      ];
      for (const dest of dests) {
        const c = await rawFor(gw, alice);
        c.frame('SUBSCRIBE', { id: 'evil', destination: dest });
        await expectErrorClose(c, /403|forbidden/i, `SUBSCRIBE ${JSON.stringify(dest)}`);
      }
      // a repeated destination header: the first wins (STOMP), so bob's first is refused
      const c = await rawFor(gw, alice);
      c.send(`SUBSCRIBE\nid:x\ndestination:/user/${B}/recive\ndestination:/user/${alice.username}/recive\n\n\0`);
      await expectErrorClose(c, /403|forbidden/i, 'repeated destination, foreign first');
      // and with own first it is accepted as own
      const c2 = await rawFor(gw, alice);
      const receipt = 'own-first';
      c2.send(`SUBSCRIBE\nid:x\ndestination:/user/${alice.username}/recive\ndestination:/user/${B}/recive\nreceipt:${receipt}\n\n\0`);
      const r = await c2.next((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 5000, 'receipt');
      assert.equal(r.command, 'RECEIPT');
      // bob's message does not reach alice through it
      const A = await rawFor(gw, alice);
      const id = msgId('for bob only');
      A.send(sendFrame(id, bob.uid, 'for bob only'));
      assert.equal((await answerOf(A, id)).code, 200);
      await sleep(300);
      assert.equal(c2.got.filter((f) => f.command === 'MESSAGE' && f.json?.chatID === id).length, 0);
      await c2.terminate();
      await A.terminate();
    });

    it("ACK/NACK of another user's message-id confirms nothing", T, async () => {
      const carol = await newUser(gw, 'carol');
      const A = await rawFor(gw, alice);
      const id = msgId('pending for carol');
      A.send(sendFrame(id, carol.uid, 'pending for carol'));
      const ans = await answerOf(A, id);
      assert.equal(ans.code, 200);
      // alice, on her own client-ack subscription, ACKs carol's "<uid>-<id>"
      const M = await rawFor(gw, alice);
      M.frame('SUBSCRIBE', { id: 'mine', destination: `/user/${alice.username}/recive`, ack: 'client-individual' });
      for (const mid of [`${carol.uid}-${ans.id}`, `${ans.id}`, `${alice.uid}-${ans.id}`]) {
        M.frame('ACK', { id: mid, 'message-id': mid, subscription: 'mine' });
        M.frame('NACK', { id: mid, 'message-id': mid, subscription: 'mine' });
      }
      await sleep(300);
      await M.terminate();
      // carol still has it pending
      const C = await rawFor(gw, carol, [[`/user/${carol.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
      C.frame('SEND', { destination: '/socket/chat/init' }, '');
      await C.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 10000, 'init/status');
      assert.ok(C.got.some((f) => f.headers.subscription === 'r' && f.json?.chatID === id), "carol's message is still pending");
      await C.terminate();
      await A.terminate();
    });

    it('forged id, time, chatID, reciver in the body and identity headers on SEND are ignored', T, async () => {
      const B = await rawFor(gw, bob, [[`/user/${bob.username}/recive`, 'r']]);
      const A = await rawFor(gw, alice);
      const id = msgId('forged fields');
      const body = JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'forged fields', id: 1, time: 5, chatID: 'other-chat-id',
        reciver: 'mallory', sender: 'mallory', senderId: 999999 });
      A.frame('SEND', { destination: '/socket/chat/send', 'user-name': bob.username, login: bob.username, passcode: bob.token, 'user-id': String(bob.uid) }, body);
      const st = await answerOf(A, id);
      assert.equal(st.code, 200);
      const m = await B.next((f) => f.command === 'MESSAGE' && f.json?.chatID === id, 10000, 'the message at bob');
      assert.deepEqual({ id: m.json.id, time: m.json.time, chatID: m.json.chatID, reciver: m.json.reciver, sender: m.json.sender, senderId: m.json.senderId },
        { id: st.id, time: st.time, chatID: id, reciver: bob.username, sender: alice.username, senderId: alice.uid });
      // init with a forged uid in the body is still alice's own init
      const I = await rawFor(gw, alice, [[`/user/${alice.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
      I.frame('SEND', { destination: '/socket/chat/init' }, JSON.stringify({ uid: bob.uid, username: bob.username }));
      await I.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 10000, 'init/status');
      assert.ok(!I.got.some((f) => f.headers.subscription === 'r' && f.json?.reciverId !== alice.uid), 'only alice\'s own messages');
      for (const c of [A, B, I]) await c.terminate();
    });
  });

  describe('limits at N and N+1 (configured small)', () => {
    let small;
    before(async () => {
      small = await h.env.startGateway(['--max-headers', '10', '--max-header-line', '300', '--max-subscriptions', '8',
        '--max-content-bytes', '100', '--max-tx-frames', '4', '--unauth-max-frame-bytes', '1024', '--max-frame-bytes', '4096',
        '--http-max-body', '1024', '--max-inflight', '1', '--send-rate', '100000', '--send-burst', '1000000'], { name: 'small' });
    });

    it('max_headers 10: 10 accepted, 11 refused', T, async () => {
      const hdrs = (n) => [['destination', '/socket/chat/send'], ['content-length', null], ...[...Array(n - 2).keys()].map((i) => [`x${i}`, 'v'])];
      const frame = (n, id) => {
        const body = JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'h' });
        const list = hdrs(n).map(([k, v]) => [k, v ?? String(Buffer.byteLength(body))]);
        return buildFrame('SEND', list, body, { contentLength: false });
      };
      const c = await rawFor(small, alice);
      const id = msgId('h10');
      c.send(frame(10, id));
      assert.equal((await answerOf(c, id)).code, 200);
      c.send(frame(11, msgId('h11')));
      await expectErrorClose(c, /max_headers/, '11 headers');
    });

    it('max_header_line 300: 300 accepted, 301 refused', T, async () => {
      const c = await rawFor(small, alice);
      const id = msgId('l300');
      c.send(buildFrame('SEND', [['destination', '/socket/chat/send'], ['x-pad', 'p'.repeat(300 - 6)]], JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'l' })));
      assert.equal((await answerOf(c, id)).code, 200);
      c.send(buildFrame('SEND', [['destination', '/socket/chat/send'], ['x-pad', 'p'.repeat(301 - 6)]], JSON.stringify({ msgID: msgId('l301'), reciverId: bob.uid, content: 'l' })));
      await expectErrorClose(c, /max_header_line/, '301-byte header line');
    });

    it('max_subscriptions 8: 8 accepted, the 9th refused', T, async () => {
      const c = await RawClient.open(small, { token: alice.token });
      await c.connect();
      const list = [...Array(8).keys()].map((i) => ['/user/queue/status', `s${i}`]);
      await c.subscribe(list);
      c.frame('SUBSCRIBE', { id: 's8', destination: '/user/queue/status' });
      await expectErrorClose(c, /max_subscriptions/, '9th subscription');
    });

    it('max_content_bytes 100: 100 bytes accepted (also as 2-byte characters), 101 answered 413 and not stored', T, async () => {
      const c = await rawFor(small, alice);
      for (const [content, code] of [['c'.repeat(100), 200], ['é'.repeat(50), 200], ['c'.repeat(101), 413], ['é'.repeat(50) + 'c', 413]]) {
        const id = msgId(content);
        c.send(sendFrame(id, bob.uid, content));
        const a = await answerOf(c, id);
        assert.equal(a.code, code, `${Buffer.byteLength(content)} bytes: ${JSON.stringify(a)}`);
      }
      await c.terminate();
    });

    it('max_tx_frames 4: a transaction of 4 SENDs commits, the 5th SEND is refused', T, async () => {
      const c = await rawFor(small, alice);
      c.frame('BEGIN', { transaction: 't1' });
      const ids = [];
      for (let i = 0; i < 4; i++) { const id = msgId(`tx${i}`); ids.push(id); c.send(sendFrame(id, bob.uid, `tx ${i}`, { transaction: 't1' })); }
      c.frame('COMMIT', { transaction: 't1' });
      for (const id of ids) assert.equal((await answerOf(c, id)).code, 200);
      c.frame('BEGIN', { transaction: 't2' });
      for (let i = 0; i < 5; i++) c.send(sendFrame(msgId(`tx2-${i}`), bob.uid, `tx2 ${i}`, { transaction: 't2' }));
      await expectErrorClose(c, /max_tx_frames/, '5 SENDs in a transaction');
    });

    it('unauth_max_frame_bytes 1024: a CONNECT of 1024 bytes is read, 1025 refused', T, async () => {
      // padded with headers of at most 290 bytes (max_header_line is 300 here)
      const connect = (n) => {
        const pads = ['', '', '', ''];
        const frame = () => buildFrame('CONNECT', [['accept-version', '1.2'], ['host', 'x'], ...pads.map((v, i) => [`x-p${i}`, v])]);
        for (let i = 0; frame().length < n; i = (i + 1) % 4) pads[i] += pads[i].length < 280 ? 'p' : '';
        return frame();
      };
      assert.equal(connect(1024).length, 1024);
      assert.equal(connect(1025).length, 1025);
      const ok = await RawClient.open(small, { token: alice.token });
      const p = ok.next((f) => f.command === 'CONNECTED' || f.command === 'ERROR', 5000, 'CONNECTED');
      ok.send(connect(1024));
      assert.equal((await p).command, 'CONNECTED');
      await ok.terminate();
      const bad = await RawClient.open(small, { token: alice.token });
      bad.send(connect(1025));
      await expectErrorClose(bad, /unauth_max_frame_bytes|max_frame_bytes/, '1025-byte CONNECT');
    });

    it('max_inflight 1: 300 pipelined sends are all answered, in order, none lost', T, async () => {
      const c = await rawFor(small, alice);
      const ids = [];
      for (let i = 0; i < 300; i++) { const id = msgId(`inflight${i}`); ids.push(id); c.send(sendFrame(id, bob.uid, `n${i}`)); }
      await answerOf(c, ids[299], 30000);
      const answers = c.got.filter((f) => f.command === 'MESSAGE' && f.headers.subscription === 'ss').map((f) => f.json);
      assert.deepEqual(answers.map((a) => a.msgID), ids);
      assert.ok(answers.every((a) => a.code === 200));
      assert.ok(answers.every((a, i) => i === 0 || a.id > answers[i - 1].id), 'ids in send order');
      await c.terminate();
    });

    it('http_max_body 1024: 1024 bytes read, 1025 answered 413', T, async () => {
      const name = `lim${Date.now() % 1e8}`;
      const json = JSON.stringify({ username: name, password: 'password-123' });
      const r1 = await small.api('POST', '/api/register', json + ' '.repeat(1024 - json.length));
      assert.equal(r1.status, 201, r1.text);
      const r2 = await small.api('POST', '/api/login', JSON.stringify({ username: name, password: 'password-123' }) + ' '.repeat(1025 - json.length));
      assert.equal(r2.status, 413, r2.text);
      secrets.add('token', r1.json?.token);
    });
  });

  describe('sessions per user and per address (issue 13, finding 2)', () => {
    let lim;
    before(async () => {
      lim = await h.env.startGateway(['--max-user-sessions', '2', '--max-addr-connections', '4'], { name: 'conn_limits' });
    });
    after(async () => { await h.env.stopGateway(lim); });

    /** Opens a WebSocket on g, retrying while it is refused (a closed session is counted out asynchronously). */
    async function openWhenAdmitted(g, opts, what) {
      for (let i = 0; ; i++) {
        try { return await RawClient.open(g, opts); } catch (e) {
          if (i >= 50 || !e.status) throw new Error(`${what}: ${e.message}`);
          await sleep(100);
        }
      }
    }

    it('max_user_sessions 2: the 3rd CONNECT of one user gets ERROR naming the limit; a close makes room', T, async () => {
      const a1 = await rawFor(lim, alice);
      const a2 = await rawFor(lim, alice);
      const frames = [];
      const a3 = await RawClient.open(lim, { token: alice.token, onFrame: (f) => frames.push(f) });
      a3.got = frames;
      a3.frame('CONNECT', { 'accept-version': '1.2', host: 'x' });
      const e = await expectErrorClose(a3, /max_user_sessions/, 'a 3rd session of alice');
      assert.equal(e.headers.message, 'user has 2 sessions here (max_user_sessions)');
      const b = await rawFor(lim, bob);            // another user is not affected
      await b.terminate();
      await a1.terminate();
      let a4;
      for (let i = 0; !a4; i++) {
        a4 = await rawFor(lim, alice).catch((err) => { if (i >= 50) throw err; return null; });
        if (!a4) await sleep(100);
      }
      await a4.terminate();
      await a2.terminate();
    });

    it('max_addr_connections 4: a 5th WebSocket or SockJS session from one address is refused with 429', T, async () => {
      const open = [];
      for (let i = 0; i < 4; i++) open.push(await openWhenAdmitted(lim, { token: bob.token }, `connection ${i + 1}`));
      await assert.rejects(RawClient.open(lim, { token: bob.token }), (e) => e.status === 429, '5th WebSocket');
      await assert.rejects(RawClient.open(lim, { token: bob.token, path: `/socketServer${sessionPath()}/websocket` }),
        (e) => e.status === 429, '5th as a SockJS websocket');
      const x = await post(`${lim.url('/socketServer')}${sessionPath()}/xhr?srect=${bob.token}`, '');
      assert.equal(x.status, 429, `5th as SockJS xhr: ${x.text}`);
      assert.match(x.text, /max_addr_connections/);
      await open.shift().terminate();
      open.push(await openWhenAdmitted(lim, { token: bob.token }, 'after a close'));
      for (const c of open) await c.terminate();
    });
  });

  describe('the memory budget (issue 13, finding 2)', () => {
    const BUDGET = 16 << 20;
    let mem;
    before(async () => {
      mem = await h.env.startGateway(['--memory-budget-bytes', String(BUDGET), '--max-tx-bytes', String(64 << 20),
        '--max-tx-frames', '4096'], { name: 'memory_budget' });
    });
    after(async () => { await h.env.stopGateway(mem); });

    async function heap() {
      const r = await request(mem.metricsUrl());
      const m = /^chatgate_heap_bytes (\d+)$/m.exec(r.text);
      assert.ok(m, 'chatgate_heap_bytes in /metrics');
      return Number(m[1]);
    }

    it('over the budget: new sessions get 503, sends 503; open sessions and confirmations go on', T, async () => {
      const b = await rawFor(mem, bob, [[`/user/${bob.username}/recive`, 'r']]);
      const a = await rawFor(mem, alice);
      const first = msgId('before');
      a.send(sendFrame(first, bob.uid, 'before the budget'));
      assert.equal((await answerOf(a, first)).code, 200);
      const delivered = await b.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'r', 10000, 'delivery');
      const base = await heap();
      assert.ok(base < BUDGET, `heap ${base} starts below the budget ${BUDGET}`);

      // a third session holds transaction frames until the heap is over the budget
      const filler = await rawFor(mem, alice);
      filler.frame('BEGIN', { transaction: 'fill' });
      const chunk = 'f'.repeat(60000);
      const n = Math.ceil((BUDGET - base) / 60000) + 16;
      for (let i = 0; i < n; i++) filler.frame('SEND', { destination: '/x', transaction: 'fill' }, chunk);
      filler.frame('SEND', { destination: '/x', receipt: 'filled' });
      await filler.next((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 30000, 'the filler read');
      assert.ok((await heap()) > BUDGET, 'heap over the budget');

      await assert.rejects(RawClient.open(mem, { token: bob.token }), (e) => e.status === 503, 'new WebSocket');
      const x = await post(`${mem.url('/socketServer')}${sessionPath()}/xhr?srect=${bob.token}`, '');
      assert.equal(x.status, 503, `new SockJS session: ${x.text}`);
      assert.match(x.text, /memory_budget_bytes/);

      const refused = msgId('over');
      a.send(sendFrame(refused, bob.uid, 'over the budget'));
      const ans = await answerOf(a, refused);
      assert.equal(ans.code, 503, JSON.stringify(ans));
      assert.match(ans.content, /memory_budget_bytes/);
      // the receiver's confirmation still works (it frees memory)
      b.frame('SEND', { destination: '/socket/chat/recive' }, JSON.stringify({ msgID: delivered.json.chatID }));
      const conf = await b.next((f) => f.command === 'MESSAGE' && f.json?.msgID === delivered.json.chatID, 10000, 'recive/status');
      assert.equal(conf.json.code, 200, JSON.stringify(conf.json));

      // ABORT gives the memory back: new work is taken again
      filler.frame('ABORT', { transaction: 'fill', receipt: 'aborted' });
      await filler.next((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'aborted', 10000, 'ABORT receipt');
      assert.ok((await heap()) < BUDGET, 'heap below the budget after ABORT');
      const again = msgId('after');
      a.send(sendFrame(again, bob.uid, 'after the budget'));
      assert.equal((await answerOf(a, again)).code, 200);
      const c = await RawClient.open(mem, { token: bob.token });
      for (const k of [c, filler, a, b]) await k.terminate();
    });
  });

  describe('limits at their defaults that the integration tests do not reach', () => {
    it('unauth_max_frame_bytes 8192: a CONNECT of 8192 bytes is read, 8193 refused', T, async () => {
      const connect = (n) => {
        const pad = (k) => buildFrame('CONNECT', [['accept-version', '1.2'], ['host', 'x'], ['x-a', 'a'.repeat(k)], ['x-b', '']]);
        const first = Math.min(8000, n - pad(0).length);
        const rest = n - pad(first).length;
        return buildFrame('CONNECT', [['accept-version', '1.2'], ['host', 'x'], ['x-a', 'a'.repeat(first)], ['x-b', 'b'.repeat(rest)]]);
      };
      assert.equal(connect(8192).length, 8192);
      const ok = await RawClient.open(gw, { token: alice.token });
      const p = ok.next((f) => f.command === 'CONNECTED' || f.command === 'ERROR', 5000, 'CONNECTED');
      ok.send(connect(8192));
      assert.equal((await p).command, 'CONNECTED');
      await ok.terminate();
      const bad = await RawClient.open(gw, { token: alice.token });
      bad.send(connect(8193));
      await expectErrorClose(bad, /unauth_max_frame_bytes|max_frame_bytes/, '8193-byte CONNECT');
    });

    it('max_tx_frames 128: 128 SENDs in a transaction commit, the 129th is refused', T, async () => {
      const c = await rawFor(gw, alice);
      c.frame('BEGIN', { transaction: 't' });
      const ids = [];
      for (let i = 0; i < 128; i++) { const id = msgId(`t128-${i}`); ids.push(id); c.send(sendFrame(id, bob.uid, `t ${i}`, { transaction: 't' })); }
      c.frame('COMMIT', { transaction: 't', receipt: 'done' });
      await c.next((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 30000, 'COMMIT receipt');
      // answers at the default rate limit (burst 100): 200 or 429, never anything else
      const codes = new Set();
      for (const id of ids) codes.add((await answerOf(c, id)).code);
      assert.ok([...codes].every((x) => x === 200 || x === 429), [...codes].join());
      c.frame('BEGIN', { transaction: 'u' });
      for (let i = 0; i < 129; i++) c.send(sendFrame(msgId(`t129-${i}`), bob.uid, 'u', { transaction: 'u' }));
      await expectErrorClose(c, /max_tx_frames/, '129 SENDs in a transaction');
    });

    it('SockJS xhr_send: a 1 MiB body is read, 1 MiB + 1 answered 413', T, async () => {
      const base = gw.url('/socketServer');
      const sp = sessionPath();
      assert.equal((await post(`${base}${sp}/xhr?srect=${alice.token}`, '')).text, 'o\n');
      const payload = (n) => {
        const core = JSON.stringify([stompFrame('CONNECT', { 'accept-version': '1.2', host: 'x' })]);
        return `${core.slice(0, -1)}${' '.repeat(n - core.length)}]`;
      };
      assert.equal(payload(1 << 20).length, 1 << 20);
      const ok = await request(`${base}${sp}/xhr_send?srect=${alice.token}`, { method: 'POST', body: payload(1 << 20), headers: { 'Content-Type': 'text/plain' } });
      assert.equal(ok.status, 204, `1 MiB: ${ok.status} ${ok.text}`);
      const big = await request(`${base}${sp}/xhr_send?srect=${alice.token}`, { method: 'POST', body: payload((1 << 20) + 1), headers: { 'Content-Type': 'text/plain' } }).catch((e) => ({ status: `error ${e.message}` }));
      assert.equal(big.status, 413, `1 MiB + 1: ${big.status}`);
    });
  });

  describe('HTTP lengths', () => {
    it('Content-Length negative, huge, not a number, or lying: an error status or a close, never a hang', T, async () => {
      const body = JSON.stringify({ username: 'x', password: 'password-123' });
      const sp = sessionPath();
      assert.equal((await post(`${gw.url('/socketServer')}${sp}/xhr`, '')).text, 'o\n');
      const targets = [['/api/register', body], ['/api/login', body], [`/socketServer${sp}/xhr_send`, '["x"]']];
      const lengths = ['-1', '-100', '99999999999999999999', '18446744073709551616', '1e3', 'abc', '0x10', ' ', '', '5, 5', '1.5'];
      for (const [p, b] of targets) {
        for (const cl of lengths) {
          const r = await rawHttp(gw.port, `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${cl}\r\n\r\n${b}`, 5000);
          assert.notEqual(r.status, 'timeout', `${p} Content-Length ${JSON.stringify(cl)}: no answer in 5 s`);
          // (xhr_send with no payload is 500 "Payload expected." by sockjs-protocol-0.3.3)
          const sockjsEmpty = r.status === 500 && p.includes('xhr_send') && /Payload expected/.test(r.text);
          if (typeof r.status === 'number') assert.ok((r.status >= 400 && r.status < 500) || sockjsEmpty, `${p} Content-Length ${JSON.stringify(cl)}: HTTP ${r.status}`);
        }
        // one that promises more than it sends: the server waits, then gives up (or answers), never hangs forever
        const lie = await rawHttp(gw.port, `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n${b}`, 1000);
        assert.ok(lie.status === 'timeout' || lie.status === 'closed' || lie.status >= 400, `${p} short body: ${lie.status}`);
        // duplicate Content-Length headers that disagree (request smuggling)
        const dup = await rawHttp(gw.port, `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: ${b.length}\r\n\r\n${b}`, 1500);
        assert.ok(dup.status !== 'timeout' && (typeof dup.status !== 'number' || dup.status >= 400), `${p} two Content-Lengths: ${dup.status}`);
      }
    });
  });

  describe('header injection', () => {
    it('names with CR, LF or a header-like tail are refused at register', T, async () => {
      for (const name of ['a\nb', 'a\r\nx-evil:1', 'evil\rname', 'a\u2028b', 'a\u0085b', 'x:y']) {
        const r = await gw.register(name, 'password-123');
        assert.equal(r.status, 400, `name ${JSON.stringify(name)}: ${r.status}`);
      }
    });

    it('CR, LF, NUL and U+0000 in content arrive JSON-escaped, exact content-length, no extra header', T, async () => {
      const B = await rawFor(gw, bob, [[`/user/${bob.username}/recive`, 'r']]);
      const A = await rawFor(gw, alice);
      const content = 'line1\r\nmessage-id:evil\n\nx-injected:1\u0000after-nul\u0000\\u0000 </script>"\'';
      const id = msgId('inject');
      A.send(sendFrame(id, bob.uid, content));
      assert.equal((await answerOf(A, id)).code, 200);
      const m = await B.next((f) => f.command === 'MESSAGE' && f.json?.chatID === id, 10000, 'the message at bob');
      assert.equal(m.json.content, content, 'content intact');
      assert.ok(!/[\r\n\u0000]/.test(m.body.replace(/\n$/, '')), 'no raw CR/LF/NUL in the JSON body');
      assert.equal(Number(m.headers['content-length']), m.bytes.length, 'content-length is exact');
      const names = m.headerList.map(([k]) => k).sort();
      assert.deepEqual(names, ['content-length', 'content-type', 'destination', 'message-id', 'subscription'].concat(names.includes('ack') ? ['ack'] : []).sort());
      assert.equal(m.headerList.filter(([k]) => k === 'message-id').length, 1);
      await A.terminate();
      await B.terminate();
    });

    it('a receipt and a subscription id carrying an escaped newline and colon come back escaped', T, async () => {
      const A = await rawFor(gw, alice);
      // STOMP 1.2 escapes: \n -> "\\n", : -> "\\c"
      A.send('SUBSCRIBE\nid:evil\\nx-injected\\c1\ndestination:/user/queue/delivered\nreceipt:r\\nx-injected\\c2\n\n\0');
      const r = await A.next((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 5000, 'RECEIPT');
      assert.equal(r.command, 'RECEIPT');
      assert.equal(r.headers['receipt-id'], 'r\nx-injected:2', 'receipt-id round-trips');
      assert.ok(!r.headerList.some(([k]) => k === 'x-injected'), 'no injected header in RECEIPT');
      // the subscription id comes back on MESSAGE (delivered receipts): bob confirms alice's message
      const B = await rawFor(gw, bob, [[`/user/${bob.username}/recive`, 'r']]);
      const id = msgId('escape sub');
      A.send(sendFrame(id, bob.uid, 'x'));
      await answerOf(A, id);
      await B.next((f) => f.command === 'MESSAGE' && f.json?.chatID === id, 10000, 'at bob');
      B.frame('SEND', { destination: '/socket/chat/recive' }, JSON.stringify({ msgID: id }));
      const d = await A.next((f) => f.command === 'MESSAGE' && f.headers.destination === '/user/queue/delivered', 10000, 'delivered');
      assert.equal(d.headers.subscription, 'evil\nx-injected:1');
      assert.ok(!d.headerList.some(([k]) => k === 'x-injected'), 'no injected header in MESSAGE');
      await A.terminate();
      await B.terminate();
    });
  });
});
