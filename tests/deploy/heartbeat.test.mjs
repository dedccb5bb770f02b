// heartbeat.test.mjs - heart-beats for mobile networks: a client may ask for
// intervals of minutes (a Mars-style client pings every few minutes) and
// the gateway honours them up to heartbeat_max_ms (5 minutes by default);
// nothing else in the gateway or in docker/nginx.conf cuts such a client
// first.
//
// STOMP's rule: CONNECTED carries the server's own offer (heartbeat_ms);
// each direction then runs at the larger of the two sides' values. So a
// client asking 240000,240000 from a server offering 1000,1000 gets a beat
// every 240 s each way: no EOL from the server in between, and silence
// from the client for far longer than the server's own 1 s is fine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { useEnv, sleep, until, gatewayBinary } from '../integration/lib/harness.mjs';
import { defaultConfig, nginxDirectives, nginxDurationMs, NGINX_CONF } from './lib/deploy.mjs';

const h = useEnv('deploy_heartbeat', {
  gatewayArgs: ['--heartbeat-ms', '1000', '--heartbeat-max-ms', '300000', '--log-level', 'debug'],
});

async function connectRaw(gw, heartBeat) {
  const u = await gw.newUser('hb');
  const r = await gw.raw({ token: u.token });
  const c = await r.connect({ 'heart-beat': heartBeat });
  return { u, r, c };
}

test('CONNECT heart-beat:240000,240000 is honoured: no server beats, no cut for silence', async () => {
  const gw = h.env.gw;
  const { u, r, c } = await connectRaw(gw, '240000,240000');
  assert.equal(c.headers['heart-beat'], '1000,1000');   // the server's offer
  await until(() => new RegExp(`u=${u.username} .*connected: STOMP 1\\.2, heart-beat out 240000 ms, in 240000 ms`).test(gw.stderr()),
    { what: 'the negotiated intervals in the log' });
  // Silent for 3 s: a client at the server's 1 s would have been cut
  // after 2 s, and would have received an EOL each second.
  await sleep(3000);
  assert.ok(r.open, 'still open');
  assert.equal(r.heartbeats.length, 0, `server sent ${r.heartbeats.length} heart-beats`);
  r.close();
});

test('a client at the server\'s own interval gets beats and is held to it', async () => {
  const gw = h.env.gw;
  const { r } = await connectRaw(gw, '1000,1000');
  // The client stays silent: a beat each second from the server, and a
  // cut after 2 x 1000 ms with an ERROR naming the rule.
  const e = await r.waitError(6000);
  assert.ok(r.heartbeats.length >= 1, 'the server beat while the client was silent');
  assert.match(e.headers.message + e.body, /no data from the client within 2000 ms/);
});

test('asking beyond heartbeat_max_ms is held to the maximum', async () => {
  const gw = await h.env.startGateway(['--heartbeat-ms', '1000', '--heartbeat-max-ms', '1000'], { name: 'capped' });
  const { u, r } = await connectRaw(gw, '600000,600000');
  await until(() => new RegExp(`u=${u.username} .*heart-beat out 1000 ms, in 1000 ms`).test(gw.stderr()),
    { what: 'intervals capped at heartbeat_max_ms' });
  const e = await r.waitError(6000);
  assert.match(e.headers.message + e.body, /within 2000 ms/);
  await h.env.stopGateway(gw);
});

test('@stomp/stompjs with minutes-long heart-beats chats normally', async () => {
  const gw = h.env.gw;
  const a = await gw.stomp(await gw.newUser('mars_a'), { heartbeat: [240000, 240000] });
  const bu = await gw.newUser('mars_b');
  const b = await gw.stomp(bu, { heartbeat: [180000, 180000] });
  const st = await a.chat(bu, 'long heart-beats');
  assert.equal(st.code, 200);
  await b.recive.waitFor((m) => m.json?.chatID === st.msgID);
});

test('nothing in the gateway or nginx.conf times out before the longest heart-beat', () => {
  const cfg = defaultConfig(gatewayBinary());
  assert.equal(cfg.heartbeat_max_ms, 300000, 'default heartbeat_max_ms is 5 minutes');
  const max = cfg.heartbeat_max_ms;
  // lws's own idle check on WebSockets (server.c): logged at debug when a
  // connection is established; twice the maximum plus a minute.
  const m = /setting validity timer (\d+)s/.exec(h.env.gw.stderr());
  assert.ok(m, 'lws validity timer in the debug log');
  assert.ok(Number(m[1]) * 1000 > 2 * max, `lws pings idle WebSockets after ${m[1]} s`);
  // Session timeouts that exist are about other states (before CONNECT,
  // inside a frame), not about idle connections.
  assert.ok(cfg.frame_timeout_ms <= max && cfg.connect_timeout_ms <= max);
  // nginx: proxied WebSockets and SockJS polls/streams are cut after
  // proxy_read_timeout without data from the gateway.
  const d = nginxDirectives(fs.readFileSync(NGINX_CONF, 'utf8'));
  for (const name of ['proxy_read_timeout', 'proxy_send_timeout', 'send_timeout']) {
    const found = d.filter((x) => x.name === name);
    assert.ok(found.length >= 1, `${name} is set in nginx.conf`);
    for (const x of found) {
      const ms = nginxDurationMs(x.args[0]);
      assert.ok(ms > max, `${name} ${x.args[0]} must exceed heartbeat_max_ms ${max}`);
      assert.ok(ms > cfg.sockjs_heartbeat_ms, `${name} must exceed the SockJS heartbeat`);
    }
  }
});
