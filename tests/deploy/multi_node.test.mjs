// multi_node.test.mjs - three gateways on one Redis behind nginx (Debian's
// nginx, run from docker/nginx.conf with the ports filled in), on loopback.
//
//   - users on different gateways chat over WebSocket through nginx; the
//     gateways see the client's address (X-Forwarded-For from a trusted
//     proxy), not nginx's
//   - SockJS through nginx on xhr-polling, xhr-streaming and websocket:
//     polling only works when every request of a session reaches the same
//     gateway, which nginx.conf does by hashing the /{server}/ segment
//   - TLS at nginx: wss through its 443 listener (certificate made here)
//   - the gateways' /metrics, parsed strictly, add up to the traffic sent
//   - one gateway SIGKILLed: its clients reconnect through nginx to the
//     others and catch up (init) with nothing lost
//   - one gateway SIGTERMed while a sender keeps sending to its users:
//     WebSocket clients get 1001, SockJS clients c[3000,"Go away!"], the
//     process exits 0 within drain_ms with no sanitizer report, and after
//     reconnecting through nginx every message answered 200 has arrived
//   - logs: one line per event, time + level (+ session context), no token
//     and no message body at info; nginx's access log has no token
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Env, sleep, until, withTimeout } from '../integration/lib/harness.mjs';
import { sockjsStomp } from '../integration/lib/sockjs.mjs';
import {
  Nginx, Front, nodeOfUser, nodesOfUser, parsePrometheus, selfSignedCert,
} from './lib/deploy.mjs';

const DRAIN_MS = 5000;
const gatewayArgs = (id) => [
  '--node-id', id, '--trusted-proxies', '127.0.0.1', '--drain-ms', String(DRAIN_MS),
  '--metrics-sample-ms', '500',
];

let env;
let nginx;
let front;
let certs;
let gws;                       // every gateway started, dead or alive
const tokens = new Set();      // tokens and passwords: never in a log
const bodies = new Set();      // message contents: not in the gateways' logs
const counts = { sent200: 0, confirmed: 0 };
const sessions = new Map();    // username -> {user, s, transport}

const live = () => gws.filter((g) => g.alive);

async function user(prefix) {
  const u = await front.newUser(prefix);
  tokens.add(u.token);
  tokens.add(u.password);
  return u;
}

/** Connects through nginx with a transport: 'ws' or a SockJS one. */
async function connect(u, transport, via = front, opts = {}) {
  const s = transport === 'ws'
    ? await via.stomp(u, opts)
    : await sockjsStomp(via, u, { transport, ...opts });
  sessions.set(u.username, { user: u, s, transport });
  return s;
}

let seq = 0;
/** from sends n messages to user to; resolves their msgIDs (all 200). */
async function send(from, to, n, label) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const content = `body-${label}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
    bodies.add(content);
    const st = await from.chat(to, content);
    assert.equal(st.code, 200, JSON.stringify(st));
    counts.sent200++;
    ids.push(st.msgID);
  }
  return ids;
}

async function receiveAll(s, ids, timeout = 10000) {
  await until(() => ids.every((id) => s.recive.find((m) => m.json?.chatID === id)),
    { timeout, what: `${ids.length} messages at ${s.user.username}` });
}

async function confirmAll(s, ids) {
  for (const id of ids) {
    const r = await s.confirm(id);
    assert.equal(r.code, 200);
    counts.confirmed++;
  }
}

async function scrape(gw) {
  const r = await fetch(gw.metricsUrl());
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await r.text());
}

before(async () => {
  env = new Env('deploy_multi_node');
  await env.init();
  gws = [];
  for (const id of ['node-a', 'node-b', 'node-c']) {
    gws.push(await env.startGateway(gatewayArgs(id), { name: id }));
  }
  certs = selfSignedCert(path.join(env.dir, 'certs'));
  nginx = new Nginx(path.join(env.dir, 'nginx'));
  await nginx.start({ upstreams: gws.map((g) => g.port), ...certs });
  front = new Front(env, nginx.httpPort);
});

afterEach(() => env?.check());

after(async () => {
  await env?.closeClients();
  await nginx?.stop();
  await env?.close();
});

let alice;
let bob;

test('users on different gateways chat over WebSocket through nginx', async () => {
  alice = await user('alice');
  bob = await user('bob');
  // alice comes from 127.0.0.77: nginx appends it to X-Forwarded-For and
  // the gateway, trusting nginx (127.0.0.1), logs that address.
  const a = await connect(alice, 'ws', front, { wsOptions: { localAddress: '127.0.0.77' } });
  let b = await connect(bob, 'ws');
  const na = await nodeOfUser(gws, alice.username);
  let nb = await nodeOfUser(gws, bob.username);
  // least_conn sends the second connection to an idle gateway; should two
  // workers ever race, try again rather than test nothing.
  for (let i = 0; i < 5 && nb === na; i++) {
    await b.close();
    b = await connect(bob, 'ws');
    await sleep(100);
    nb = await nodeOfUser(gws, bob.username);
  }
  assert.notEqual(na.name, nb.name, 'alice and bob should be on different gateways');
  assert.match(na.stderr(), new RegExp(`\\[s#\\d+ u=${alice.username} 127\\.0\\.0\\.77 ws\\] connected`));

  const toBob = await send(a, bob, 5, 'a2b');
  await receiveAll(b, toBob);
  await confirmAll(b, toBob);
  await until(() => toBob.every((id) => a.delivered.find((d) => d.json?.msgID === id)),
    { what: 'delivered notifications at alice' });
  const toAlice = await send(b, alice, 5, 'b2a');
  await receiveAll(a, toAlice);
  await confirmAll(a, toAlice);
  // The node that stored each message is not the node that delivered it.
  const m = a.recive.find((x) => x.json?.chatID === toAlice[0]).json;
  assert.equal(m.sender, bob.username);
  assert.equal(m.reciverId, alice.uid);
});

test('SockJS through nginx: polling, streaming and websocket sessions stay on one gateway', async () => {
  const a = sessions.get(alice.username).s;
  for (const transport of ['xhr-polling', 'xhr-streaming', 'websocket']) {
    const u = await user(`sj_${transport.replace('-', '')}`);
    const s = await connect(u, transport);
    assert.equal(s.ws.transport, transport, `sockjs-client chose ${s.ws.transport}`);
    const node = await nodeOfUser(gws, u.username);
    assert.ok(node);
    // A few round trips each way: every poll and xhr_send of this session
    // must have reached the gateway that holds it.
    const toU = await send(a, u, 3, `a2${transport}`);
    await receiveAll(s, toU);
    await confirmAll(s, toU);
    const toA = await send(s, alice, 3, `${transport}2a`);
    await receiveAll(a, toA);
    await confirmAll(a, toA);
    assert.equal(nodesOfUser(gws, u.username).length, 1);
  }
});

test('TLS at nginx: https and wss through its 443 listener', async () => {
  const ca = fs.readFileSync(certs.cert);
  const tlsFront = new Front(env, nginx.httpsPort, { scheme: 'https' });
  const carol = await user('carol');
  const c = await connect(carol, 'ws', tlsFront, { wsOptions: { ca } });
  const a = sessions.get(alice.username).s;
  const ids = await send(c, alice, 2, 'tls2a');
  await receiveAll(a, ids);
  await confirmAll(a, ids);
  const back = await send(a, carol, 1, 'a2tls');
  await receiveAll(c, back);
  await confirmAll(c, back);
});

test('the gateways\' /metrics parse strictly and add up to the traffic sent', async () => {
  // Counters move when the answers are queued; the last confirmations may
  // still be on their way to the counters of the receiver's node.
  await sleep(200);
  const ms = await Promise.all(live().map(scrape));
  const sum = (name, labels) => ms.reduce((a, m) => a + m.sum(name, labels), 0);
  assert.equal(sum('chatgate_sends_total', { code: '200' }), counts.sent200);
  assert.equal(sum('chatgate_sends_total') - sum('chatgate_sends_total', { code: '200' }), 0);
  // Every receiver had one live session: one push per message, none again.
  assert.equal(sum('chatgate_deliveries_total'), counts.sent200);
  assert.equal(sum('chatgate_redeliveries_total'), 0);
  assert.equal(sum('chatgate_confirmations_total'), counts.confirmed);
  assert.equal(sum('chatgate_send_ack_seconds_count'), counts.sent200);
  assert.equal(sum('chatgate_send_deliver_seconds_count'), counts.sent200);
  assert.equal(sum('chatgate_confirm_seconds_count'), counts.confirmed);
  assert.ok(sum('chatgate_redis_rtt_seconds_count') >= counts.sent200 + counts.confirmed);
  assert.equal(sum('chatgate_redis_errors_total'), 0);
  // Sessions by transport, as connected above.
  const open = [...sessions.values()];
  assert.equal(sum('chatgate_connections', { transport: 'ws' }), open.filter((x) => x.transport === 'ws').length);
  assert.equal(sum('chatgate_connections', { transport: 'sockjs-xhr' }), 1);
  assert.equal(sum('chatgate_connections', { transport: 'sockjs-xhr-streaming' }), 1);
  assert.equal(sum('chatgate_connections', { transport: 'sockjs-websocket' }), 1);
  assert.equal(sum('chatgate_sessions'), open.length);
  assert.ok(sum('chatgate_frames_total', { direction: 'in' }) > counts.sent200 + counts.confirmed);
  assert.ok(sum('chatgate_frames_total', { direction: 'out' }) > 2 * counts.sent200);
  const nodes = ms.map((m) => [...m.families.get('chatgate_info').samples][0].labels.node).sort();
  assert.deepEqual(nodes, ['node-a', 'node-b', 'node-c']);
  // Everything sent was confirmed: no pending message on any node.
  await until(async () => {
    const again = await Promise.all(live().map(scrape));
    return again.every((m) => m.value('chatgate_pending_messages') === 0 &&
      m.value('chatgate_pending_sampled_users') === m.value('chatgate_users'));
  }, { timeout: 5000, what: 'pending gauges at 0 on every node' });
});

test('a gateway killed with SIGKILL: its clients reconnect through nginx and catch up', async () => {
  const a = sessions.get(alice.username).s;
  const aliceNode = await nodeOfUser(gws, alice.username);
  const victim = await nodeOfUser(gws, bob.username);
  assert.notEqual(victim, aliceNode);
  const gone = [...sessions.values()].filter((x) => nodesOfUser([victim], x.user.username).length);
  assert.ok(gone.length >= 1);
  await env.killGateway(victim, 'SIGKILL');
  await Promise.all(gone.map((x) => withTimeout(x.s.closed, 15000, `${x.user.username} sees the crash`)));

  // While they are away, alice keeps writing to them: stored, pending.
  const missed = new Map();
  for (const x of gone) missed.set(x.user.username, await send(a, x.user, 3, `while-down-${x.transport}`));

  for (const x of gone) {
    const s = await connect(x.user, x.transport);
    const node = await nodeOfUser(live(), x.user.username);
    assert.notEqual(node, victim);
    const { messages, status } = await s.init();
    assert.equal(status.code, 200);
    const got = new Set(messages.map((m) => m.json.chatID));
    for (const id of missed.get(x.user.username)) assert.ok(got.has(id), `${id} lost for ${x.user.username}`);
    await confirmAll(s, missed.get(x.user.username));
  }
});

test('a gateway stopped with SIGTERM drains: 1001 / c[3000], exit 0 in time, nothing lost', async () => {
  const a = sessions.get(alice.username).s;
  const aliceNode = await nodeOfUser(live(), alice.username);
  const target = live().find((g) => g !== aliceNode);
  assert.ok(target, 'a live gateway without alice');

  // Clients of the target: one of each kind, connected to it directly, plus
  // whatever nginx placed there.
  const dave = await user('dave');
  const erin = await user('erin');
  const fay = await user('fay');
  await connect(dave, 'ws', target);
  await connect(erin, 'websocket', target);
  await connect(fay, 'xhr-streaming', target);
  const onTarget = [...sessions.values()].filter((x) => nodesOfUser([target], x.user.username).length);
  assert.ok(onTarget.length >= 3);
  // And a sender on the target with a burst of SENDs still in flight when
  // SIGTERM comes: each is answered before the 1001, or not taken at all
  // (then the client sends it again with the same msgID after reconnecting).
  const gus = await user('gus');
  const g = await target.stomp(gus);

  // A sender on another gateway writes to them during the whole drain.
  const answered = new Map(onTarget.map((x) => [x.user.username, []]));
  let sending = true;
  const sender = (async () => {
    while (sending) {
      for (const x of onTarget) {
        const content = `body-drain-${++seq}`;
        bodies.add(content);
        const st = await a.chat(x.user, content);
        if (st.code === 200) {
          counts.sent200++;
          answered.get(x.user.username).push(st.msgID);
        }
      }
      await sleep(20);
    }
  })();
  await sleep(300);

  const burst = [];
  for (let i = 0; i < 30; i++) {
    const content = `body-burst-${++seq}`;
    bodies.add(content);
    burst.push({ content, msgID: g.sendChat(alice, content) });
  }
  const t0 = Date.now();
  await target.stop({ timeout: DRAIN_MS + 10000 });   // SIGTERM; exit 0, no sanitizer report
  const took = Date.now() - t0;
  assert.ok(took < DRAIN_MS + 1500, `exit took ${took} ms (drain_ms ${DRAIN_MS})`);
  assert.match(target.stderr(), /stopping: listen socket closed/);
  assert.match(target.stderr(), /drained in \d+ ms/);

  for (const x of onTarget) {
    const c = await withTimeout(x.s.closed, 5000, `${x.user.username} closed`);
    if (x.transport === 'ws') assert.equal(c.code, 1001, `${x.user.username}: ${JSON.stringify(c)}`);
    else assert.deepEqual([c.code, c.reason], [3000, 'Go away!'], `${x.user.username} (${x.transport})`);
  }
  assert.equal((await withTimeout(g.closed, 5000, 'gus closed')).code, 1001);
  await sleep(300);
  sending = false;
  await sender;

  // gus: answers that came before the close are all 200; the rest is sent
  // again through nginx with the same msgIDs; alice gets each exactly once.
  const before = new Map(g.sendStatus.items.map((x) => [x.json.msgID, x.json]));
  for (const st of before.values()) assert.equal(st.code, 200, JSON.stringify(st));
  const g2 = await connect(gus, 'ws');
  for (const b of burst.filter((x) => !before.has(x.msgID))) {
    const st = await g2.chat(alice, b.content, { msgID: b.msgID });
    assert.equal(st.code, 200);
  }
  counts.sent200 += burst.length;
  await until(() => burst.every((b) => a.recive.find((m) => m.json?.chatID === b.msgID)),
    { what: 'every burst message at alice' });
  for (const b of burst) assert.equal(a.recive.count((m) => m.json?.chatID === b.msgID), 1, 'delivered once');

  // Back through nginx (to the one gateway left): everything answered 200 is there.
  for (const x of onTarget) {
    const old = x.s;
    const s = await connect(x.user, x.transport === 'ws' ? 'ws' : x.transport);
    const { messages } = await s.init();
    const got = new Set([...old.recive.items, ...messages].map((m) => m.json?.chatID));
    const ids = answered.get(x.user.username);
    assert.ok(ids.length > 0);
    const lost = ids.filter((id) => !got.has(id));
    assert.deepEqual(lost, [], `${x.user.username} lost ${lost.length} of ${ids.length}`);
  }
});

test('logs: one line per event with time, level and context; no tokens or bodies', async () => {
  const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN|NOTICE|INFO|DEBUG) /;
  for (const gw of gws) {
    const files = fs.readdirSync(env.dir).filter((f) => f.startsWith(`${gw.name}.`) && f.endsWith('.stderr'));
    for (const f of files) {
      const text = fs.readFileSync(path.join(env.dir, f), 'utf8');
      const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('# '));
      for (const l of lines) assert.match(l, LINE, `${f}: ${l}`);
      for (const t of tokens) assert.ok(!text.includes(t), `${f} contains a token or password`);
      for (const b of bodies) assert.ok(!text.includes(b), `${f} contains a message body`);
      // Session lines carry their context: id, user, client address, transport.
      assert.match(text, /INFO \[s#\d+ u=[\w.-]+ [0-9a-f.:]+ (ws|sockjs-[a-z-]+)\] connected/);
    }
  }
  const access = fs.readFileSync(nginx.accessLog, 'utf8');
  assert.match(access, /srect=\[redacted\]/);
  for (const t of tokens) assert.ok(!access.includes(t), 'nginx access log contains a token or password');
});
