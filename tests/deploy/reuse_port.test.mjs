// reuse_port.test.mjs - one process per core on one port: two gateways
// started with --reuse-port bind the same address (SO_REUSEPORT), the
// kernel spreads connections over both, users on the two processes chat,
// and when one gets SIGTERM it stops accepting at once (listen socket
// closed) so every new connection lands on the other. Without the flag
// the second process refuses to start, saying why.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { Env, freePort, gatewayBinary, httpRequest } from '../integration/lib/harness.mjs';
import { nodeOfUser } from './lib/deploy.mjs';

let env;
let port;
let a;
let b;

before(async () => {
  env = new Env('deploy_reuse_port');
  await env.init();
  port = await freePort();
  // --metrics-listen "": {base}/metrics on the shared port, which tells
  // which process answered.
  a = await env.startGateway(['--reuse-port', 'true', '--node-id', 'core-0', '--metrics-listen', ''], { name: 'core0', port });
  b = await env.startGateway(['--reuse-port', 'true', '--node-id', 'core-1', '--metrics-listen', ''], { name: 'core1', port });
});
afterEach(() => env?.check());
after(async () => { await env?.close(); });

/** node id answering each of n fresh connections to the shared port. */
async function whoAnswers(n) {
  const seen = {};
  for (let i = 0; i < n; i++) {
    const r = await httpRequest(`http://127.0.0.1:${port}/metrics`);
    assert.equal(r.status, 200);
    const node = /chatgate_info\{node="([^"]+)"/.exec(r.text)[1];
    seen[node] = (seen[node] || 0) + 1;
  }
  return seen;
}

test('two processes listen on one port and both serve', async () => {
  assert.equal(a.port, b.port);
  const seen = await whoAnswers(40);
  assert.deepEqual(Object.keys(seen).sort(), ['core-0', 'core-1'], JSON.stringify(seen));
  assert.match(a.stderr(), new RegExp(`listening on http://127\\.0\\.0\\.1:${port} \\(port ${port}, shared`));
});

test('users on the two processes chat', async () => {
  // Connections are spread by the kernel's hash of the 4-tuple: connect
  // until one user sits on each process.
  const users = [];
  const byNode = new Map();
  for (let i = 0; i < 16 && byNode.size < 2; i++) {
    const u = await a.newUser(`rp${i}`);
    const s = await a.stomp(u);
    const node = await nodeOfUser([a, b], u.username);
    if (!byNode.has(node.name)) byNode.set(node.name, { u, s });
    users.push(u);
  }
  assert.equal(byNode.size, 2, 'sessions on both processes');
  const [x, y] = [...byNode.values()];
  const st = await x.s.chat(y.u, 'across processes');
  assert.equal(st.code, 200);
  await y.s.recive.waitFor((m) => m.json?.chatID === st.msgID);
  const back = await y.s.chat(x.u, 'and back');
  await x.s.recive.waitFor((m) => m.json?.chatID === back.msgID);
  await env.closeClients();
});

test('SIGTERM on one: its listen socket closes first, the other takes every new connection', async () => {
  await env.stopGateway(a);          // exit 0, no sanitizer report
  assert.match(a.stderr(), /stopping: listen socket closed/);
  const seen = await whoAnswers(30);
  assert.deepEqual(seen, { 'core-1': 30 });
});

test('without --reuse-port a second process on the port refuses to start', () => {
  const r = spawnSync(gatewayBinary(), ['--listen', `127.0.0.1:${port}`, '--redis', env.redis.url],
    { encoding: 'utf8', timeout: 20000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1' } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: Address already in use \(set --listen to another address, or --reuse-port/);
  assert.doesNotMatch(r.stderr, /Sanitizer/);
});

test('a metrics port already taken says which flag to change', async () => {
  // the shared port is taken (by b): used here as a busy metrics address
  const r = spawnSync(gatewayBinary(), ['--listen', `127.0.0.1:${await freePort()}`, '--redis', env.redis.url,
    '--metrics-listen', `127.0.0.1:${port}`],
  { encoding: 'utf8', timeout: 20000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1' } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: Address already in use \(set --metrics-listen to another address, or to "" to serve \/metrics on the main port\)/);
  assert.doesNotMatch(r.stderr, /--reuse-port/);
  assert.doesNotMatch(r.stderr, /Sanitizer/);
});
