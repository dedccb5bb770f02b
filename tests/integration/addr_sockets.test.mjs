// max_addr_sockets (PROTOCOL.md section 7, issue 13): TCP connections from
// one client address on the listen port are capped, whatever they are (a
// head still arriving, a request being served, a WebSocket), counted from
// accept to close; past the cap a new connection is closed at once; other
// addresses are not affected; a trusted proxy is not counted.
//
// Connections come from chosen loopback addresses (Linux routes all of
// 127/8 to lo), so the test's own other connections do not count.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { useEnv, httpRequest, sleep, until } from './lib/harness.mjs';
import { metrics } from './lib/sockjs.mjs';

const T = { timeout: 30000 };
const A = '127.0.9.1';
const B = '127.0.9.2';

/** An idle TCP connection from addr; resolves once connected, with a
 * promise of when the server closed it. */
function idle(gw, addr) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ host: '127.0.0.1', port: gw.port, localAddress: addr });
    const closed = new Promise((r) => { s.on('close', () => r(Date.now())); });
    s.on('error', () => {});
    s.once('connect', () => resolve({ s, closed }));
    s.once('error', reject);
  });
}

const closedWithin = (c, ms) => Promise.race([c.closed.then(() => true), sleep(ms).then(() => false)]);

async function refusedCount(gw) {
  const m = await metrics(gw);
  const line = m.text.split('\n').find((l) => l.startsWith('chatgate_addr_sockets_refused_total'));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('max_addr_sockets', () => {
  const h = useEnv('addr_sockets', { gatewayArgs: null });
  let gw;
  before(async () => { gw = await h.env.startGateway(['--max-addr-sockets', '4'], { name: 'cap' }); });
  after(async () => { await h.env.stopGateway(gw); });

  it('past the cap a new connection from that address is closed at once; others are served', T, async () => {
    const before = await refusedCount(gw);
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await idle(gw, A));
    const fifth = await idle(gw, A);
    assert.equal(await closedWithin(fifth, 3000), true, 'the fifth from A is closed');
    for (const c of held) assert.equal(await closedWithin(c, 0), false, 'the four stay open');
    const r = await httpRequest(gw.url('/healthz'), { localAddress: B });
    assert.equal(r.status, 200, 'another address is served');
    assert.equal(await refusedCount(gw), before + 1);
    assert.match(gw.stderr(), /127\.0\.9\.1 already has 4 connections \(max_addr_sockets\)/);

    // one of A's closes: its place is free again
    held.pop().s.destroy();
    await until(async () => {
      const c = await idle(gw, A);
      const kept = !(await closedWithin(c, 300));
      if (kept) held.push(c); else c.s.destroy();
      return kept;
    }, { timeout: 5000, interval: 50, what: 'a place for A again' });
    for (const c of held) c.s.destroy();
  });

  it('connections served by lws give their place back when they close', T, async () => {
    // 20 requests one after the other from A (each on its own connection,
    // closed after its answer): with a cap of 4, a place that was not
    // given back would refuse the fifth.
    for (let i = 0; i < 20; i++) {
      const r = await until(async () => {
        try { return await httpRequest(gw.url('/healthz'), { localAddress: A }); } catch { return null; }
      }, { timeout: 5000, interval: 50, what: `request ${i} from A` });
      assert.equal(r.status, 200);
    }
    // and with all of them closed, four idle ones fit again
    await sleep(200);
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await idle(gw, A));
    for (const c of held) assert.equal(await closedWithin(c, 300), false);
    for (const c of held) c.s.destroy();
  });
});

describe('max_addr_sockets and a trusted proxy', () => {
  const h = useEnv('addr_sockets_proxy', { gatewayArgs: null });
  let gw;
  before(async () => {
    gw = await h.env.startGateway(['--max-addr-sockets', '2', '--trusted-proxies', A], { name: 'proxy' });
  });
  after(async () => { await h.env.stopGateway(gw); });

  it("a trusted proxy's connections are not counted", T, async () => {
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await idle(gw, A));
    for (const c of held) assert.equal(await closedWithin(c, 300), false, 'all five from the proxy stay open');
    for (const c of held) c.s.destroy();
  });
});
