// redis_cluster.test.mjs - Redis Cluster readiness: the gateway's Lua
// scripts (gateway/store/lua/*.lua, the same files compiled into the binary) run
// on a 3-master Redis Cluster started here (redis-server --cluster-enabled
// yes, joined with redis-cli --cluster create), called with exactly the
// KEYS and ARGV chat.c builds, through a client that knows nothing of the
// slot map and follows MOVED/ASK redirects.
//
// What this proves: every script touches one user's keys only (one hash
// tag {u:<uid>}: one slot), PUBLISH from a script reaches a subscriber on
// any node, and the scripts' results are the same as on a single Redis.
// What it does not: the gateway itself still speaks to one Redis (hiredis
// 0.14 has no cluster support; docs/OPERATIONS.md "Redis: one primary, and Redis Cluster" lists what is missing).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT, until } from '../integration/lib/harness.mjs';
import { ClusterClient, RespConn, keySlot, startCluster } from './lib/deploy.mjs';

const LUA = path.join(REPO_ROOT, 'gateway', 'store', 'lua');
// The script files, and the key sets: chat.lua's three operations (claim,
// send, recive) and the other two scripts.
const FILES = ['chat', 'fetch', 'pending'];
const SCRIPTS = ['claim', 'send', 'recive', 'fetch', 'pending'];
const OPS = new Set(['claim', 'send', 'recive']);
// The key suffixes of each, in chat.c's order (SEND_KEYS, ...).
const KEYS = {
  claim: ['sent', 'sent.old'],
  send: ['user', 'msg', 'pending', 'seq', 'psend'],
  recive: ['msg', 'pending', 'user', 'psend'],
  fetch: ['pending', 'user', 'seq', 'msg'],
  pending: ['pending', 'msg'],
};
const keys = (uid, script) => KEYS[script].map((s) => `{u:${uid}}:${s}`);

let cluster;
let client;
let sha;
let dir;

before(async () => {
  const root = process.env.CHATGATE_IT_TMPDIR;
  dir = root ? path.join(root, 'deploy_redis_cluster') : fs.mkdtempSync(path.join(os.tmpdir(), 'cg-cluster-'));
  fs.rmSync(dir, { recursive: true, force: true });
  cluster = await startCluster(dir);
  client = new ClusterClient(cluster.ports);
  // Scripts are cached per node: load each on every master (what a
  // cluster-aware gateway would do on each node connection).
  sha = {};
  for (const p of cluster.ports) {
    const c = await RespConn.open(p);
    for (const s of FILES) {
      const r = await c.call('SCRIPT', 'LOAD', fs.readFileSync(path.join(LUA, `${s}.lua`), 'utf8'));
      assert.ok(!(r instanceof Error), String(r));
      if (sha[s]) assert.equal(sha[s], r); else sha[s] = r;
    }
    c.close();
  }
});

after(async () => {
  client?.close();
  await cluster?.stop();
  if (!process.env.CHATGATE_IT_TMPDIR) fs.rmSync(dir, { recursive: true, force: true });
});

/** The master that owns a slot, from CLUSTER SLOTS. */
async function ownerOf(slot) {
  const c = await RespConn.open(cluster.ports[0]);
  const slots = await c.call('CLUSTER', 'SLOTS');
  c.close();
  const r = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
  return r[2][1];
}

/** A uid whose keys live on a node other than the first one. */
async function uidAwayFromFirstNode(from) {
  for (let uid = from; ; uid++) {
    if ((await ownerOf(keySlot(`{u:${uid}}:x`))) !== cluster.ports[0]) return uid;
  }
}

// chat.c's content digest: the first 8 bytes of SHA-1(content), in hex.
const digest = (content) => crypto.createHash('sha1').update(content).digest('hex').slice(0, 16);

// chat.c's ARGV for chat.lua's send operation (send_submit), after its name.
function sendArgs(sender, senderName, reciver, msgID, content) {
  return [String(sender), msgID, '100000', '1000', '1000', `cg:u:${reciver}`,
    `,"chatID":"${msgID}","sender":"${senderName}","reciver":"`,
    `","content":${JSON.stringify(content)},"time":`,
    `,"senderId":${sender},"reciverId":${reciver}}`, '1', digest(content)];
}

// A send or recive is a batch of one chat.lua operation; its reply is the
// first (only) element of the batch's.
async function evalsha(script, uid, args) {
  if (!OPS.has(script)) {
    return client.call(keys(uid, script)[0], 'EVALSHA', sha[script], KEYS[script].length, ...keys(uid, script), ...args);
  }
  const r = await client.call(keys(uid, script)[0], 'EVALSHA', sha.chat, KEYS[script].length,
    ...keys(uid, script), script, ...args);
  if (r instanceof Error) return r;
  assert.equal(r.length, 1, `one reply per operation: ${JSON.stringify(r)}`);
  return r[0];
}

test('the cluster is up with 3 masters and every script\'s keys share one slot', async () => {
  const c = await RespConn.open(cluster.ports[0]);
  const info = await c.call('CLUSTER', 'INFO');
  assert.match(info, /cluster_state:ok/);
  assert.match(info, /cluster_known_nodes:3/);
  assert.match(info, /cluster_slots_assigned:16384/);
  for (const script of SCRIPTS) {
    for (const uid of [1, 42, 123456789]) {
      const slots = await Promise.all(keys(uid, script).map((k) => c.call('CLUSTER', 'KEYSLOT', k)));
      assert.equal(new Set(slots).size, 1, `${script} keys of uid ${uid} span slots ${slots}`);
      assert.equal(slots[0], keySlot(`{u:${uid}}`));
    }
  }
  c.close();
});

test('send, recive, fetch and pending run on the cluster, following MOVED', async () => {
  const alice = await uidAwayFromFirstNode(7);
  const bob = await uidAwayFromFirstNode(alice + 1);
  for (const [uid, name] of [[alice, 'alice'], [bob, 'bob']]) {
    assert.equal(await client.call(`{u:${uid}}:user`, 'HSET', `{u:${uid}}:user`, 'name', name), 1);
  }
  assert.ok(client.moved >= 1, 'the first command was redirected');

  // Two subscribers to bob's channel: one on the node that owns bob's
  // slot (where the script runs), one on another node. Cluster PUBLISH
  // reaches both, but its return value counts only the local one.
  const bobNode = await ownerOf(keySlot(`{u:${bob}}`));
  const otherNode = cluster.ports.find((p) => p !== bobNode);
  const pushes = [];
  const subscriber = async (port, channels) => {
    const c = await RespConn.open(port);
    c.onPush = (v) => { if (v[0] === 'message') pushes.push({ port, channel: v[1], payload: v[2] }); };
    await c.call('SUBSCRIBE', ...channels);
    return c;
  };
  const local = await subscriber(bobNode, [`cg:u:${bob}`]);
  const remote = await subscriber(otherNode, [`cg:u:${bob}`, `cg:u:${alice}`]);

  // claim, on the sender's slot: first claim and its retry go on; the same
  // msgID for another receiver or content is 409
  const m1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
  assert.deepEqual(await evalsha('claim', alice, [m1, `${bob}:${digest('起来聊天')}`]), [200]);
  assert.deepEqual(await evalsha('claim', alice, [m1, `${bob}:${digest('起来聊天')}`]), [200]);
  assert.deepEqual(await evalsha('claim', alice, [m1, `${bob + 1}:${digest('起来聊天')}`]), [409]);
  assert.deepEqual(await evalsha('claim', alice, [m1, `${bob}:${digest('other')}`]), [409]);

  // send: stored, numbered, published to both nodes' subscribers
  const r1 = await evalsha('send', bob, sendArgs(alice, 'alice', bob, m1, '起来聊天'));
  assert.equal(r1[0], 200);
  assert.equal(r1[1], 1);
  const t1 = r1[2];
  await until(() => pushes.filter((p) => p.channel === `cg:u:${bob}`).length === 2,
    { what: 'M push for bob on both nodes' });
  const push = pushes.find((p) => p.port === otherNode && p.channel === `cg:u:${bob}`).payload;
  assert.match(push, new RegExp(`^M1:${t1}:`));
  const body = JSON.parse(push.slice(push.indexOf(':', push.indexOf(':') + 1) + 1));
  assert.deepEqual(body, {
    id: 1, chatID: m1, sender: 'alice', reciver: 'bob', content: '起来聊天', time: t1, senderId: alice, reciverId: bob,
  });

  // a retry of the same (sender, msgID): the first id and time, nothing new
  assert.deepEqual(await evalsha('send', bob, sendArgs(alice, 'alice', bob, m1, '起来聊天')), [200, 1, t1]);
  // The second message while only the remote subscriber listens: it gets
  // the push, yet PUBLISH returned 0 on the script's node, so chat.lua
  // does not mark it as pushed (dlv) and a later init will not flag it
  // redelivered. Delivery is unaffected (at-least-once; clients dedupe by
  // chatID); docs/OPERATIONS.md "Redis: one primary, and Redis Cluster" lists sharded pub/sub as the fix.
  await local.call('UNSUBSCRIBE', `cg:u:${bob}`);
  const m2 = 'feedfacefeedfacefeedfacefeedfacefeedface';
  const r2 = await evalsha('send', bob, sendArgs(alice, 'alice', bob, m2, 'second'));
  assert.deepEqual(r2.slice(0, 2), [200, 2]);
  await until(() => pushes.find((p) => p.port === otherNode && /^M2:/.test(p.payload)),
    { what: 'M push for message 2 on the other node' });
  assert.deepEqual(await evalsha('send', 99999991, sendArgs(alice, 'alice', 99999991, m2, 'x')), [404, 0, 0]);

  // pending.lua: two pending, the oldest stored at t1
  assert.deepEqual(await evalsha('pending', bob, []), [2, t1]);

  // fetch init: both, oldest first; the first was pushed on the script's
  // node (redelivered = 1), the second only elsewhere (0, see above)
  // [more, position (bob's newest id), then id, time, redelivered, body ...]
  const f = await evalsha('fetch', bob, ['init', '0', '10']);
  assert.deepEqual([f[0], f[1]], [0, 2]);
  assert.deepEqual([f[2], f[3], f[4]], [1, t1, 1]);
  assert.equal(JSON.parse(f[5]).chatID, m1);
  assert.deepEqual([f[6], f[8]], [2, 0]);
  assert.equal(JSON.parse(f[9]).chatID, m2);

  // recive m1: 200, first confirmation, D pushed to alice's channel
  const rc = await evalsha('recive', bob, ['msgid', m1, String(bob), 'cg:u:']);
  assert.deepEqual(rc, [200, alice, 1, t1, 1, m1]);
  await until(() => pushes.find((p) => p.channel === `cg:u:${alice}`), { what: 'D push for alice (other node)' });
  const d = pushes.find((p) => p.channel === `cg:u:${alice}`).payload;
  assert.equal(d[0], 'D');
  assert.deepEqual({ ...JSON.parse(d.slice(1)), time: 0 }, { msgID: m1, id: 1, reciverId: bob, time: 0 });
  // again: still 200, not first
  assert.deepEqual(await evalsha('recive', bob, ['msgid', m1, String(bob), 'cg:u:']), [200, alice, 1, t1, 0, m1]);
  // confirm by id (a STOMP ACK), then an unknown one
  assert.equal((await evalsha('recive', bob, ['id', '2', String(bob), 'cg:u:']))[0], 200);
  // both confirmed: alice's count in bob's psend is gone
  assert.equal(await client.call(`{u:${bob}}:psend`, 'EXISTS', `{u:${bob}}:psend`), 0);
  assert.deepEqual(await evalsha('recive', bob, ['msgid', 'nosuchmsg123', String(bob), 'cg:u:']), [404, 0, 0, 0, 0, '']);

  // nothing pending any more; sync still has both in the history
  assert.deepEqual(await evalsha('fetch', bob, ['init', '0', '10']), [0, 2]);
  assert.deepEqual(await evalsha('pending', bob, []), [0, 0]);
  const s = await evalsha('fetch', bob, ['sync', '0', '10']);
  assert.deepEqual([s[0], s[1], s[2], s[6]], [0, 2, 1, 2]);
  const s1 = await evalsha('fetch', bob, ['sync', '1', '10']);
  assert.deepEqual([s1[0], s1[1], s1[2]], [0, 2, 2]);
  local.close();
  remote.close();
});

test('a script given two users\' keys is refused by the cluster (CROSSSLOT)', async () => {
  // Proof that the test above passes because of the hash tags, not because
  // the cluster does not check: keys of two users in different slots.
  let a = 1;
  let b = 2;
  while (keySlot(`{u:${a}}`) === keySlot(`{u:${b}}`)) b++;
  const r = await client.call(`{u:${a}}:pending`, 'EVAL', 'return 1', 2, `{u:${a}}:pending`, `{u:${b}}:pending`);
  assert.ok(r instanceof Error && /CROSSSLOT|MOVED/.test(r.message), String(r));
});

test('a batch of operations on one user runs in one call on the cluster', async () => {
  // What the store sends: several operations of one hash slot in one
  // EVALSHA (store.c groups by connection; a cluster client would group by
  // slot). A batch spanning two slots is refused as a whole.
  const carol = await uidAwayFromFirstNode(500);
  const dave = carol + 1;
  assert.equal(await client.call(`{u:${carol}}:user`, 'HSET', `{u:${carol}}:user`, 'name', 'carol'), 1);
  const m1 = 'batch-one-0000000000000000000000000001';
  const m2 = 'batch-two-0000000000000000000000000002';
  const send = (to, m) => ['send', ...sendArgs(dave, 'dave', to, m, m)];
  const r = await client.call(`{u:${carol}}:user`, 'EVALSHA', sha.chat, 3 * KEYS.send.length + KEYS.recive.length,
    ...keys(carol, 'send'), ...keys(carol, 'send'), ...keys(carol, 'recive'), ...keys(carol, 'send'),
    ...send(carol, m1), ...send(carol, m2), 'recive', 'msgid', m1, String(carol), 'cg:u:', ...send(carol, m1));
  // dave's count in carol's psend: two stored, one confirmed
  assert.equal(await client.call(`{u:${carol}}:psend`, 'HGET', `{u:${carol}}:psend`, String(dave)), '1');
  assert.ok(Array.isArray(r), String(r));
  assert.equal(r.length, 4);
  assert.deepEqual(r[0].slice(0, 2), [200, 1]);
  assert.deepEqual(r[1].slice(0, 2), [200, 2]);
  assert.deepEqual(r[2].slice(0, 3), [200, dave, 1]);   // confirmed inside the batch
  assert.deepEqual(r[3].slice(0, 2), [200, 1]);         // a retry: the first id
  assert.deepEqual(r[0][2], r[1][2], 'one clock reading per batch');

  let other = carol + 1;
  while (keySlot(`{u:${other}}`) === keySlot(`{u:${carol}}`)) other++;
  const x = await client.call(`{u:${carol}}:user`, 'EVALSHA', sha.chat, 2 * KEYS.send.length,
    ...keys(carol, 'send'), ...keys(other, 'send'), ...send(carol, m1), ...send(other, m2));
  assert.ok(x instanceof Error && /CROSSSLOT|MOVED/.test(x.message), String(x));
});
