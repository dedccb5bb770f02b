// Hostile and broken input over a raw WebSocket (the `ws` package): bad
// commands and frames, every STOMP limit of PROTOCOL.md section 3 at the
// limit (accepted) and one past it (ERROR naming the limit, then close),
// frame deadlines, tokens and Origin checks of section 2. After every case
// the gateway still serves a normal client, and the harness finds no
// sanitizer report in its stderr (afterEach).
//
// ASSUMPTIONS where the contract is silent:
// - limits count as include/stomp/stomp.h documents them: max_frame_bytes
//   is the whole frame from the command through the NUL; max_headers counts
//   every header line (destination and content-length included);
//   max_header_line is one raw "name:value" line without its EOL.
// - the ERROR frame names the limit by its config name (max_frame_bytes,
//   max_headers, max_header_line, max_subscriptions) in its `message`
//   header or body, and the close that follows is a WebSocket close frame
//   (not a dropped TCP connection, code 1006).
// - a handshake with a well-formed but unknown token, or with no token at
//   all, may be upgraded (the token can still come in CONNECT) as long as
//   CONNECT then answers ERROR and the connection closes; a malformed token
//   is refused at the handshake with 401.
// - with an explicit --allowed-origins list only the listed origins are
//   admitted (the default's own-origin/loopback rule no longer applies).
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, buildFrame, msgId, sleep, HandshakeError } from './lib/harness.mjs';

const T = { timeout: 30000 };

async function expectErrorAndClose(r, re, what) {
  const e = await r.waitError(5000);
  assert.ok(e.headers.message && e.headers.message.length > 0, `${what}: ERROR has a message header`);
  if (re) assert.match(`${e.headers.message}\n${e.body}`, re, `${what}: ERROR names the problem`);
  const c = await r.waitClose(5000);
  assert.notEqual(c.code, 1006, `${what}: closed with a WebSocket close frame (got ${c.code})`);
  return { e, c };
}

/** A SEND of a valid chat message whose frame is exactly `size` bytes. */
function sizedSend(size, to, extraHeaders = []) {
  const id = msgId(`sized${size}`);
  let pad = 0;
  for (let i = 0; i < 10; i++) {
    const body = JSON.stringify({ msgID: id, reciverId: to, content: 'x'.repeat(pad) });
    const f = buildFrame('SEND', [['destination', '/socket/chat/send'], ...extraHeaders], body);
    if (f.length === size) return { frame: f, msgID: id };
    pad += size - f.length;
    if (pad < 0) throw new Error(`frame of ${size} bytes impossible`);
  }
  throw new Error(`could not size a frame to ${size}`);
}

/** Waits for the send/status MESSAGE of msgID on subscription 'ss'. */
async function sendStatusOf(r, msgID, timeout = 10000) {
  const m = await r.frames.waitFor((f) => (f.command === 'MESSAGE' && f.json?.msgID === msgID) || f.command === 'ERROR',
    timeout, { what: `send/status of ${msgID}` });
  assert.equal(m.command, 'MESSAGE', `expected send/status, got ERROR: ${m.headers.message} ${m.body}`);
  return m.json;
}

describe('malformed input, limits, tokens and origins', () => {
  const h = useEnv('malformed');
  let gw, alice, bob;

  before(async () => {
    gw = h.env.gw;
    alice = await gw.newUser('alice');
    bob = await gw.newUser('bob');
  });

  // After every case: every gateway of this file still serves a normal client.
  afterEach(async () => {
    for (const g of h.env.gateways) {
      if (!g.alive) continue;
      const s = await g.stomp(alice);
      const r = await s.chat(bob, 'still serving');
      assert.equal(r.code, 200, `${g.name} still serves: ${JSON.stringify(r)}`);
      await s.close();
    }
  });

  /** Raw connection for alice, CONNECTed, subscribed to send/status as 'ss'. */
  async function connected(g = gw, { subscribe = true } = {}) {
    const r = await g.raw({ token: alice.token });
    await r.connect();
    if (subscribe) await r.subscribe('/user/queue/send/status', 'ss');
    return r;
  }

  describe('bad frames', () => {
    it('an unknown command gets ERROR, then close', T, async () => {
      const r = await connected();
      r.send('FOO\n\n\0');
      await expectErrorAndClose(r, null, 'unknown command');
    });

    it('frames before CONNECT get ERROR, then close', T, async () => {
      for (const [data, what] of [
        [buildFrame('SEND', { destination: '/socket/chat/send' }, '{}'), 'SEND before CONNECT'],
        [buildFrame('SUBSCRIBE', { id: '1', destination: '/user/queue/status' }), 'SUBSCRIBE before CONNECT'],
        ['hello\n\n\0', 'garbage before CONNECT'],
      ]) {
        const r = await gw.raw({ token: alice.token });
        r.send(data);
        await expectErrorAndClose(r, null, what);
        assert.equal(r.frames.count((f) => f.command === 'CONNECTED'), 0);
      }
    });

    it('a bad content-length gets an ERROR naming it, then close', T, async () => {
      for (const [value, re] of [
        ['-1', /content-length/i],
        ['abc', /content-length/i],
        ['', /content-length/i],
        ['1.5', /content-length/i],
        ['0x10', /content-length/i],
        [' 5', /content-length/i],
        ['99999999999999999999999', /content-length|max_frame_bytes/i],
        ['70000', /max_frame_bytes/i],
      ]) {
        const r = await connected();
        r.send(`SEND\ndestination:/socket/chat/send\ncontent-length:${value}\n\n{}\0`);
        await expectErrorAndClose(r, re, `content-length:${JSON.stringify(value)}`);
      }
    });

    it('a body longer than its content-length (no NUL after it) gets ERROR, then close', T, async () => {
      const r = await connected();
      r.send('SEND\ndestination:/socket/chat/send\ncontent-length:2\n\n{}xyz\0');
      await expectErrorAndClose(r, null, 'no NUL after content-length bytes');
    });

    it('content-length is honoured: a NUL inside the body does not end the frame', T, async () => {
      const r = await connected();
      const id = msgId('nul');
      const body = Buffer.concat([Buffer.from(JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'x' })),
        Buffer.from([0]), Buffer.from(' trailing')]);
      r.send(buildFrame('SEND', { destination: '/socket/chat/send' }, body));
      // the whole body (with its NUL) is the JSON: not valid JSON → 400, not a framing ERROR
      const ans = await r.frames.waitFor((f) => f.command === 'MESSAGE' || f.command === 'ERROR', 10000);
      assert.equal(ans.command, 'MESSAGE', `${ans.headers.message} ${ans.body}`);
      assert.equal(ans.json.code, 400);
      assert.ok(r.open);
    });

    it('a SEND without destination gets ERROR, then close', T, async () => {
      const r = await connected();
      r.send(buildFrame('SEND', {}, '{}'));
      await expectErrorAndClose(r, /destination/i, 'SEND without destination');
    });

    it('an undefined header escape (\\t) gets ERROR, then close', T, async () => {
      const r = await connected();
      r.send('SEND\ndestination:/socket/chat/se\\tnd\n\n{}\0');
      await expectErrorAndClose(r, null, 'bad escape');
    });

    it('a NUL before any command, and random binary bytes, get ERROR, then close', T, async () => {
      const r = await connected();
      r.send(Buffer.from([0]));
      await expectErrorAndClose(r, null, 'NUL before a command');
      const r2 = await connected();
      const junk = Buffer.alloc(4000);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
      junk[0] = 0x01;
      r2.send(junk, { binary: true });
      await expectErrorAndClose(r2, null, 'binary garbage');
    });

    it('1 MiB without a line end closes the connection without hurting the gateway', T, async () => {
      const r = await connected();
      r.send(Buffer.alloc(1 << 20, 0x41), { binary: true });
      await r.waitClose(10000);
    });

    it('bad JSON on /socket/chat/send answers 400 and the connection stays open', T, async () => {
      const r = await connected();
      r.send(buildFrame('SUBSCRIBE', { id: 'st', destination: '/user/queue/status' }));
      r.send(buildFrame('SEND', { destination: '/socket/chat/send' }, '{"msgID": nope'));
      const ans = await r.frames.waitFor((f) => f.command === 'MESSAGE' || f.command === 'ERROR', 10000);
      assert.equal(ans.command, 'MESSAGE');
      assert.equal(ans.json.code, 400);
      assert.equal(ans.json.status, '失败');
      assert.ok(r.open);
      const { frame, msgID } = sizedSend(300, bob.uid);
      r.send(frame);
      assert.equal((await sendStatusOf(r, msgID)).code, 200);
    });
  });

  describe('bytes that are not UTF-8 are never echoed (issue 13, finding 10)', () => {
    /** A frame from raw header bytes (Buffers or strings) and a body. */
    const rawFrame = (command, headers, body = '') => Buffer.concat([
      Buffer.from(`${command}\n`),
      ...headers.flatMap(([k, v]) => [Buffer.from(`${k}:`), Buffer.from(v), Buffer.from('\n')]),
      Buffer.from('\n'), Buffer.from(body), Buffer.from([0])]);
    const FFFE = Buffer.from([0xff, 0xfe]);

    /** Every text message r gets, checked as a browser does (1007 otherwise). */
    function strictUtf8(r) {
      const bad = [];
      const dec = new TextDecoder('utf-8', { fatal: true });
      r.ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        try { dec.decode(data); } catch { bad.push(Buffer.from(data).toString('hex')); }
      });
      return bad;
    }

    it('a SEND to a destination and a receipt holding FF FE: the 404 and the RECEIPT are UTF-8', T, async () => {
      const r = await connected();
      const bad = strictUtf8(r);
      await r.subscribe('/user/queue/status', 'st');
      r.send(rawFrame('SEND', [['destination', Buffer.concat([Buffer.from('/socket/chat/x'), FFFE])],
        ['receipt', Buffer.concat([Buffer.from('r'), FFFE])]], '{}'));
      const m = await r.message('st');
      assert.equal(m.json?.code, 404, m.body);
      assert.equal(m.json.content, 'unknown destination /socket/chat/x\uFFFD\uFFFD');
      const rc = await r.frames.waitFor((f) => f.command === 'RECEIPT' && !/^r-s[st]$/.test(f.headers['receipt-id']),
        5000, { what: 'RECEIPT of the SEND' });
      assert.equal(rc.headers['receipt-id'], 'r\uFFFD\uFFFD');
      await sleep(100);
      assert.deepEqual(bad, [], 'every text message is UTF-8');
      assert.equal(r.closeInfo, null, 'the connection stays open');
      await r.terminate();
    });

    it('an ERROR about a frame whose receipt holds FF FE names it in UTF-8', T, async () => {
      const r = await connected();
      const bad = strictUtf8(r);
      r.send(rawFrame('COMMIT', [['transaction', Buffer.concat([Buffer.from('t'), FFFE])],
        ['receipt', Buffer.concat([Buffer.from('e'), FFFE])]]));
      const e = await r.waitError(5000);
      assert.equal(e.headers['receipt-id'], 'e\uFFFD\uFFFD');
      const c = await r.waitClose(5000);
      assert.equal(c.code, 1002, `closed for the protocol error, not 1007: ${JSON.stringify(c)}`);
      assert.deepEqual(bad, [], 'every text message is UTF-8');
    });
  });

  describe('framing is incremental', () => {
    it('takes CR LF line ends', T, async () => {
      const r = await connected();
      const id = msgId('crlf');
      r.send(buildFrame('SEND', { destination: '/socket/chat/send' },
        JSON.stringify({ msgID: id, reciverId: bob.uid, content: 'crlf' }), { eol: '\r\n' }));
      assert.equal((await sendStatusOf(r, id)).code, 200);
    });

    it('takes several frames in one WebSocket message, and one frame in 1-byte messages', T, async () => {
      const r = await connected();
      const ids = [msgId('m1'), msgId('m2'), msgId('m3')];
      const frames = ids.map((id) => buildFrame('SEND', { destination: '/socket/chat/send' },
        JSON.stringify({ msgID: id, reciverId: bob.uid, content: id })));
      r.send(Buffer.concat([Buffer.from('\n'), frames[0], Buffer.from('\r\n\n'), frames[1]]), { binary: false });
      for (const id of ids.slice(0, 2)) assert.equal((await sendStatusOf(r, id)).code, 200);
      await r.sendInPieces(frames[2], 1);
      assert.equal((await sendStatusOf(r, ids[2])).code, 200);
    });
  });

  describe('header limits (defaults: 64 headers, 8 KiB lines)', () => {
    it('64 headers are accepted, 65 get an ERROR naming max_headers', T, async () => {
      const extra = (n) => [...Array(n).keys()].map((i) => [`x-h${i}`, `v${i}`]);
      // destination + content-length + 62 = 64 header lines
      const r = await connected();
      const ok = sizedSend(2000, bob.uid, extra(62));
      assert.equal(ok.frame.toString().split('\n\n')[0].split('\n').length - 1, 64);
      r.send(ok.frame);
      assert.equal((await sendStatusOf(r, ok.msgID)).code, 200);
      const bad = sizedSend(2000, bob.uid, extra(63));
      r.send(bad.frame);
      await expectErrorAndClose(r, /max_headers/, '65 headers');
    });

    it('10 000 tiny headers get an ERROR naming max_headers, no crash', T, async () => {
      const r = await connected();
      let s = 'SEND\ndestination:/socket/chat/send\n';
      for (let i = 0; i < 10000; i++) s += 'a:b\n';
      r.send(`${s}\n{}\0`);
      await expectErrorAndClose(r, /max_headers/, '10 000 headers');
    });

    it('a header line of 8192 bytes is accepted, 8193 gets an ERROR naming max_header_line', T, async () => {
      const line = (n) => ['x-pad', 'p'.repeat(n - 'x-pad:'.length)];
      const r = await connected();
      const ok = sizedSend(9000, bob.uid, [line(8192)]);
      r.send(ok.frame);
      assert.equal((await sendStatusOf(r, ok.msgID)).code, 200);
      const bad = sizedSend(9000, bob.uid, [line(8193)]);
      r.send(bad.frame);
      await expectErrorAndClose(r, /max_header_line/, '8193-byte header line');
    });

    it('64 subscriptions are accepted, the 65th gets an ERROR naming max_subscriptions', T, async () => {
      const r = await connected(gw, { subscribe: false });
      for (let i = 0; i < 64; i++) {
        r.send(buildFrame('SUBSCRIBE', { id: `s${i}`, destination: '/user/queue/status', ...(i === 63 ? { receipt: 'r64' } : {}) }));
      }
      const rc = await r.frames.waitFor((f) => f.command === 'RECEIPT' || f.command === 'ERROR', 10000);
      assert.equal(rc.command, 'RECEIPT', `64 subscriptions: ${rc.headers.message}`);
      r.send(buildFrame('SUBSCRIBE', { id: 's64', destination: '/user/queue/status' }));
      await expectErrorAndClose(r, /max_subscriptions/, '65th subscription');
    });
  });

  describe('--max-frame-bytes 4096', () => {
    let small;
    // unauth_max_frame_bytes (8192 by default) must not exceed max_frame_bytes
    // (the gateway refuses to start otherwise), so it is lowered too.
    before(async () => {
      small = await h.env.startGateway(['--max-frame-bytes', '4096', '--unauth-max-frame-bytes', '4096'],
        { name: 'small' });
    });
    after(async () => { await h.env.stopGateway(small); });

    it('a 4096-byte frame is accepted (also in pieces), 4097 gets an ERROR naming max_frame_bytes', T, async () => {
      const r = await connected(small);
      const ok = sizedSend(4096, bob.uid);
      assert.equal(ok.frame.length, 4096);
      r.send(ok.frame);
      assert.equal((await sendStatusOf(r, ok.msgID)).code, 200);
      const ok2 = sizedSend(4096, bob.uid);
      await r.sendInPieces(ok2.frame, 1000);
      assert.equal((await sendStatusOf(r, ok2.msgID)).code, 200);
      const bad = sizedSend(4097, bob.uid);
      r.send(bad.frame);
      await expectErrorAndClose(r, /max_frame_bytes/, '4097-byte frame');
    });

    it('a content-length implying more than 4096 bytes is refused before the body arrives', T, async () => {
      const r = await connected(small);
      r.send('SEND\ndestination:/socket/chat/send\ncontent-length:5000\n\n');
      await expectErrorAndClose(r, /max_frame_bytes/, 'content-length:5000');
    });

    it('a header block over 4096 bytes without a body is refused', T, async () => {
      const r = await connected(small);
      r.send(`SEND\ndestination:/socket/chat/send\nx-pad:${'p'.repeat(4200)}\n`);
      await expectErrorAndClose(r, /max_frame_bytes/, 'headers over the frame limit');
    });
  });

  describe('--frame-timeout-ms 1000', () => {
    let slow;
    before(async () => { slow = await h.env.startGateway(['--frame-timeout-ms', '1000'], { name: 'slow' }); });
    after(async () => { await h.env.stopGateway(slow); });

    it('a frame that never ends is closed by the deadline', T, async () => {
      for (const partial of [
        'SEND\ndestination:/socket/chat/send\ncontent-length:100\n\n{"msgID":',
        'SEND\ndestination:/socket/chat/send\n',
        'SEND',
      ]) {
        const r = await connected(slow);
        const t0 = Date.now();
        r.send(partial);
        const c = await r.waitClose(6000);
        const took = c.at - t0;
        assert.ok(took >= 900, `closed after ${took} ms, before the 1000 ms deadline`);
        assert.ok(took <= 5000, `closed after ${took} ms`);
      }
    });

    it('a frame trickled in byte by byte past the deadline is closed too', T, async () => {
      const r = await connected(slow);
      const t0 = Date.now();
      const data = `SEND\ndestination:/socket/chat/send\nx-slow:${'s'.repeat(100)}\n\n{}\0`;
      for (const ch of data) {
        if (!r.open) break;
        r.send(ch);
        await sleep(100);
      }
      const c = await r.waitClose(6000);
      assert.ok(c.at - t0 <= 5000, `closed after ${c.at - t0} ms`);
      assert.equal(r.frames.count((f) => f.command === 'MESSAGE'), 0);
    });
  });

  describe('tokens on the handshake and in CONNECT', () => {
    it('a malformed token is refused at the handshake with 401', T, async () => {
      for (const t of ['not-a-token', 'x', '%%%', 'A'.repeat(200)]) {
        await assert.rejects(gw.raw({ token: t }), (e) => e instanceof HandshakeError && e.status === 401, `token ${t}`);
      }
      await assert.rejects(gw.raw({ token: 'bad token!', tokenVia: 'bearer' }),
        (e) => e instanceof HandshakeError && e.status === 401);
    });

    it('no valid token anywhere: 401 at the handshake, or ERROR at CONNECT and close', T, async () => {
      for (const [opts, connectHeaders, what] of [
        [{}, {}, 'no token at all'],
        [{ token: 'C'.repeat(43) }, {}, 'well-formed unknown token'],
        [{}, { login: alice.username, passcode: 'D'.repeat(43) }, 'unknown passcode'],
        [{}, { login: alice.username, passcode: alice.password }, 'the password is not a token'],
        [{}, { token: 'E'.repeat(43) }, 'unknown token header'],
      ]) {
        let r;
        try {
          r = await gw.raw(opts);
        } catch (e) {
          assert.ok(e instanceof HandshakeError, `${what}: ${e}`);
          assert.equal(e.status, 401, what);
          continue;
        }
        r.send(buildFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', ...connectHeaders }));
        const f = await r.frames.waitFor((x) => x.command === 'ERROR' || x.command === 'CONNECTED', 5000, { what });
        assert.equal(f.command, 'ERROR', `${what}: must not get CONNECTED`);
        await r.waitClose(5000);
      }
    });

    it('takes the token from srect=, token=, Authorization: Bearer, CONNECT passcode and CONNECT token', T, async () => {
      const ways = [
        [{ token: alice.token, tokenVia: 'srect' }, {}],
        [{ token: alice.token, tokenVia: 'token' }, {}],
        [{ token: alice.token, tokenVia: 'bearer' }, {}],
        [{}, { login: alice.username, passcode: alice.token }],
        [{}, { login: 'anything', passcode: alice.token }],
        [{}, { token: alice.token }],
      ];
      for (const [opts, hdrs] of ways) {
        const r = await gw.raw(opts);
        const c = await r.connect(hdrs);
        assert.equal(c.headers['user-name'], alice.username, JSON.stringify([opts.tokenVia, hdrs]));
        await r.terminate();
      }
    });
  });

  describe('Origin (default: own origin and loopback)', () => {
    it('admits no Origin, its own origin and loopback origins', T, async () => {
      for (const origin of [undefined, gw.origin, `http://localhost:${gw.port}`, 'http://localhost:3000',
        'http://127.0.0.1:8080', 'http://[::1]:8080', 'https://localhost']) {
        const r = await gw.raw({ token: alice.token, origin });
        const c = await r.connect();
        assert.equal(c.command, 'CONNECTED', `origin ${origin}`);
        await r.terminate();
      }
    });

    it('refuses foreign, null and look-alike origins with 403', T, async () => {
      for (const origin of ['http://evil.com', 'null', `http://localhost:${gw.port}.evil.com`,
        'http://localhost:8080.evil.com', 'http://localhost.evil.com', 'http://127.0.0.1.nip.io',
        'http://localhost@evil.com', 'http://evil.com/http://localhost', 'file://']) {
        await assert.rejects(gw.raw({ token: alice.token, origin }),
          (e) => e instanceof HandshakeError && e.status === 403, `origin ${JSON.stringify(origin)}`);
      }
    });
  });

  describe('Origin with --allowed-origins http://localhost:8080', () => {
    let strict;
    before(async () => {
      strict = await h.env.startGateway(['--allowed-origins', 'http://localhost:8080'], { name: 'origins' });
    });
    after(async () => { await h.env.stopGateway(strict); });

    it('admits exactly the listed origin and requests without Origin', T, async () => {
      for (const origin of [undefined, 'http://localhost:8080']) {
        const r = await strict.raw({ token: alice.token, origin });
        assert.equal((await r.connect()).command, 'CONNECTED', `origin ${origin}`);
        await r.terminate();
      }
    });

    it('refuses every other origin with 403', T, async () => {
      for (const origin of ['http://localhost:8081', 'https://localhost:8080', 'http://localhost',
        'http://localhost:8080.evil.com', 'http://localhost:8080/', 'null', strict.origin, 'http://127.0.0.1:8080']) {
        await assert.rejects(strict.raw({ token: alice.token, origin }),
          (e) => e instanceof HandshakeError && e.status === 403, `origin ${origin}`);
      }
    });
  });
});

