// SockJS at {base}/socketServer with real clients (issue #4, PROTOCOL.md
// section 2): the original Mimi page's code (stompjs 2.3.3 over
// `new SockJS(base + "/socketServer?srect=" + token)`) and @stomp/stompjs 7
// through `webSocketFactory: () => new SockJS(url)`, each transport that
// sockjs-client 1.x offers in node forced in turn (websocket,
// xhr-streaming, xhr-polling, eventsource), with and without
// --base-path /Mimi. Raw protocol conformance is in sockjs_protocol.test.mjs.
//
// ASSUMPTIONS: sockjs-client runs with lib/sockjs.mjs's browser-like XHR
// driver (bodies with Content-Length, as browsers send them; see there);
// a user's messages pushed while no poll is open arrive with the next poll.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { useEnv, until, sleep } from './lib/harness.mjs';
import {
  NODE_TRANSPORTS, sockjsPage, sockjsStomp, metrics, request, sessionPath, post, HttpStream,
} from './lib/sockjs.mjs';

const T = { timeout: 60000 };

/** CPU time (user + system, in clock ticks of 10 ms) the gateway used. */
function cpuTicks(gw) {
  const f = fs.readFileSync(`/proc/${gw.proc.pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function assertOk(st, msgID) {
  assert.equal(st.msgID, msgID);
  assert.equal(st.code, 200, JSON.stringify(st));
  assert.equal(st.status, '成功');
  assert.equal(st.content, 'ok');
  assert.ok(Number.isSafeInteger(st.id) && st.id > 0);
}

describe('SockJS with real clients', () => {
  const h = useEnv('sockjs', { gatewayArgs: ['--sockjs-heartbeat-ms', '1000', '--sockjs-disconnect-ms', '1000'] });
  let gw, mimi;
  before(async () => {
    gw = h.env.gw;
    mimi = await h.env.startGateway(['--base-path', '/Mimi', '--sockjs-disconnect-ms', '1000'], { name: 'mimi' });
  });

  for (const variant of ['', '/Mimi']) {
    for (const transport of NODE_TRANSPORTS) {
      describe(`${variant || '(no base path)'}/socketServer over ${transport}`, () => {
        let g, alice, bob;
        before(async () => {
          g = variant ? mimi : gw;
          alice = await g.newUser('alice');
          bob = await g.newUser('bob');
        });

        it('the Mimi page: connect, send, receive, confirm, init', T, async () => {
          const A = await sockjsPage(g, alice, { transport });
          const B = await sockjsPage(g, bob, { transport });
          assert.equal(A.transportUsed, transport);
          assert.equal(A.connectedFrame.headers.version, '1.1');
          assert.equal(A.connectedFrame.headers['user-name'], alice.username);
          await A.ready();
          await B.ready();

          const content = `起来聊天 via ${transport} \u2028 😀`;
          const r = await A.chat(bob.uid, content);
          assertOk(r, r.msgID);
          const m = await B.chats.waitFor((c) => c.json?.chatID === r.msgID, 10000, { what: 'the chat at bob' });
          assert.equal(m.json.content, content, 'content intact (U+2028, emoji)');
          assert.equal(m.json.sender, alice.username);
          assert.equal(m.json.reciverId, bob.uid);
          // The page confirmed it: recive/status 200 comes back.
          const st = await B.reciveStatus.waitFor((s) => s.json?.msgID === r.msgID, 10000, { what: 'recive/status' });
          assert.equal(st.json.code, 200);

          // A message sent while bob is away is pending; a new page's init
          // fetches it.
          await B.close();
          const r2 = await A.chat(bob.uid, `pending for init over ${transport}`);
          assertOk(r2, r2.msgID);
          const B2 = await sockjsPage(g, bob, { transport });
          const m2 = await B2.chats.waitFor((c) => c.json?.chatID === r2.msgID, 10000, { what: 'init delivery' });
          assert.equal(m2.json.content, `pending for init over ${transport}`);
          await A.close();
          await B2.close();
        });

        it('@stomp/stompjs 7 through webSocketFactory: () => new SockJS(url)', T, async () => {
          const A = await sockjsStomp(g, alice, { transport });
          const B = await sockjsStomp(g, bob, { transport });
          assert.equal(A.ws.transport, transport);
          const r = await A.chat(bob.uid, `stompjs 7 over ${transport}`);
          assert.equal(r.code, 200, JSON.stringify(r));
          const m = await B.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000, { what: 'chat' });
          const c = await B.confirm(m.json.chatID);
          assert.equal(c.code, 200);
          await A.close();
          await B.close();
        });

        it('a STOMP frame over 16 KiB, split by stompjs 2.3.3 into SockJS messages, is reassembled', T, async () => {
          const A = await sockjsPage(g, alice, { transport });
          const B = await sockjsPage(g, bob, { transport });
          await A.ready();
          await B.ready();
          // stompjs 2.3.3 cuts frames at 16 Ki UTF-16 units; content at the
          // chat limit (16 KiB, ASCII) makes a SEND frame just over that.
          const content = 'x'.repeat(16370);
          const send = A.sock.send.bind(A.sock);
          let messages = 0;
          A.sock.send = (d) => { messages++; return send(d); };
          const r = await A.chat(bob.uid, content, 15000);
          A.sock.send = send;
          assert.ok(messages >= 2, `the SEND went as ${messages} SockJS message(s)`);
          assertOk(r, r.msgID);
          const m = await B.chats.waitFor((c) => c.json?.chatID === r.msgID, 15000, { what: 'the big chat' });
          assert.equal(m.json.content, content);
          await A.close();
          await B.close();
        });
      });
    }
  }

  describe('@stomp/stompjs 7 with splitLargeFrames over SockJS', () => {
    it('reassembles a frame split into 4 KiB SockJS messages', T, async () => {
      const alice = await gw.newUser('alice');
      const bob = await gw.newUser('bob');
      const A = await sockjsStomp(gw, alice, { transport: 'websocket', splitLargeFrames: true, chunkSize: 4096 });
      const B = await sockjsStomp(gw, bob, { transport: 'xhr-streaming' });
      const content = 'y'.repeat(15000);
      const r = await A.chat(bob.uid, content);
      assert.equal(r.code, 200, JSON.stringify(r));
      const m = await B.recive.waitFor((x) => x.json?.chatID === r.msgID, 10000, { what: 'chat' });
      assert.equal(m.json.content, content);
      await A.close();
      await B.close();
    });
  });

  describe('no leak, no growth', () => {
    let g;
    before(async () => {
      // Sessions live 10 s without a poll here, long enough to see all
      // 1000 open at once even on a busy machine (opening them took over
      // 3 s beside other suites); all come from 127.0.0.1, so the
      // per-address session limit (max_addr_connections, 256) is raised.
      g = await h.env.startGateway(['--sockjs-disconnect-ms', '10000', '--sockjs-heartbeat-ms', '500',
        '--max-addr-connections', '100000'],
        { name: 'leak' });
    });

    it('1000 xhr sessions opened and abandoned are all reaped', T, async () => {
      const base = g.url('/socketServer');
      const before0 = await metrics(g);
      const opened = [];
      for (let i = 0; i < 1000; i += 100) {
        const batch = [];
        for (let j = 0; j < 100; j++) {
          const sp = sessionPath();
          opened.push(sp);
          batch.push(post(`${base}${sp}/xhr`, ''));
        }
        for (const r of await Promise.all(batch)) assert.equal(r.text, 'o\n');
      }
      const mid = await metrics(g);
      assert.equal(mid.connections['sockjs-xhr'], (before0.connections['sockjs-xhr'] || 0) + 1000,
        `connections while open: ${JSON.stringify(mid.connections)}`);
      assert.equal(mid.sessions, before0.sessions + 1000);
      await until(async () => {
        const m = await metrics(g);
        return m.connections['sockjs-xhr'] === (before0.connections['sockjs-xhr'] || 0) &&
          m.sessions === before0.sessions;
      }, { timeout: 40000, interval: 250, what: 'all 1000 sessions reaped' });
      // Reaped means gone: xhr_send to one of them is 404, and the table
      // is empty (the reaper logs its size).
      const r = await post(`${base}${opened[0]}/xhr_send`, '["x"]');
      assert.equal(r.status, 404);
      await until(() => /SockJS session reaped \(0 SockJS sessions in the table\)/.test(g.stderr()),
        { timeout: 5000, what: 'an empty session table' });
    });

    it('a client that vanishes mid-poll, mid-stream, or never polls again leaves nothing', T, async () => {
      const base = g.url('/socketServer');
      const before0 = await metrics(g);
      // vanishes mid-poll
      const sp1 = sessionPath();
      assert.equal((await post(`${base}${sp1}/xhr`, '')).text, 'o\n');
      const held = new HttpStream(`${base}${sp1}/xhr`);
      await sleep(200);                 // the poll is held: nothing to send
      held.abort();
      // never polls again
      const sp2 = sessionPath();
      assert.equal((await post(`${base}${sp2}/xhr`, '')).text, 'o\n');
      // a stream that vanishes
      const sp3 = sessionPath();
      const st = new HttpStream(`${base}${sp3}/xhr_streaming`);
      await st.waitText(/o\n$/);
      st.abort();
      // A vanished peer costs no CPU while its request is held (lws 4.1
      // would spin on the closed socket: sockjs_http.c req_idle).
      const cpu0 = cpuTicks(g);
      await sleep(1000);
      const burnt = cpuTicks(g) - cpu0;
      assert.ok(burnt < 50, `gateway used ${burnt} ticks of CPU in 1 s with vanished clients (busy loop?)`);
      await until(async () => {
        const m = await metrics(g);
        return m.sessions === before0.sessions &&
          (m.connections['sockjs-xhr'] || 0) === (before0.connections['sockjs-xhr'] || 0) &&
          (m.connections['sockjs-xhr-streaming'] || 0) === (before0.connections['sockjs-xhr-streaming'] || 0);
      }, { timeout: 10000, interval: 200, what: 'sessions gone' });
    });
  });

  describe('info without a token', () => {
    it('GET {base}/socketServer/info works without a token', T, async () => {
      const r = await request(mimi.url('/socketServer/info'));
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.text).websocket, true);
    });
  });
});
