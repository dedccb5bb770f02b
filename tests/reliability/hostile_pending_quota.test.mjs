// Hostile input (issue 13, finding 6: "Anyone can fill anyone's pending
// inbox"). One account with four connections stored 16 KB messages to a
// stranger as fast as the rate limit let it; the victim's pending inbox
// (max_pending) filled up with them, up to 1.6 GB of Redis per victim at
// the defaults, and then the victim's friends got 507.
//
// Now one sender holds at most max_pending_per_sender of a receiver's
// pending messages (429 past it). Scaled down so a run takes seconds: an
// inbox of 200 and a share of 25; the flood is 500 messages, 20 times the
// share and more than the whole inbox. The friend sends 20 (within its own
// share), half during the flood and half once it was answered.
//
// Asserted:
//   - the flooder's sends beyond its share are all 429, none 507, and
//     exactly its share is stored (pending inbox and psend count);
//   - a friend's sends to the victim during and after the flood are all 200;
//   - the victim's msg hash holds the share and the friend's messages, not
//     the flood (MEMORY USAGE well under the flood's size);
//   - control: with the share set to the whole inbox (the old behaviour)
//     the same flood fills the inbox and the friend gets 507.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, until } from '../integration/lib/harness.mjs';
import { RawClient, sendFrame } from './lib/raw.mjs';
import { secrets, newUser } from './lib/util.mjs';

const T = { timeout: 180000 };
const INBOX = 200;
const SHARE = 25;
const FLOOD = 500;
const CONNS = 4;
const FRIEND = 20;
const BIG = 'x'.repeat(16000);

secrets.use('hostile_pending_quota');

/** Opens a connection of user u that records send/status codes by msgID. */
async function sender(gw, u, codes) {
  const c = await RawClient.open(gw, {
    token: u.token,
    onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'ss') codes.set(f.json.msgID, f.json.code); },
  });
  await c.connect();
  await c.subscribe([['/user/queue/send/status', 'ss']]);
  return c;
}

/** The flood from `flooder` on CONNS connections, interleaved with the
 * friend's sends; returns both sets of answers. */
async function flood(gw, flooder, friend, victim) {
  const fcodes = new Map();
  const gcodes = new Map();
  const conns = [];
  for (let i = 0; i < CONNS; i++) conns.push(await sender(gw, flooder, fcodes));
  const G = await sender(gw, friend, gcodes);
  const during = [];
  const afterIds = [];
  for (let i = 0; i < FLOOD; i++) {
    conns[i % CONNS].send(sendFrame(msgId(`flood ${i}`), victim.uid, `${i} ${BIG}`));
    if (i % (2 * FLOOD / FRIEND) === 0) {
      const id = msgId(`friend ${i}`);
      during.push(id);
      G.send(sendFrame(id, victim.uid, `hi ${i}`));
    }
  }
  await until(() => fcodes.size === FLOOD, { timeout: 120000, what: `flood answers ${fcodes.size}/${FLOOD}` });
  for (let i = 0; i < FRIEND / 2; i++) {
    const id = msgId(`friend after ${i}`);
    afterIds.push(id);
    G.send(sendFrame(id, victim.uid, `hi again ${i}`));
  }
  await until(() => gcodes.size === FRIEND, { timeout: 60000, what: `friend answers ${gcodes.size}/${FRIEND}` });
  for (const c of [...conns, G]) await c.terminate();
  return { flood: [...fcodes.values()], during: during.map((id) => gcodes.get(id)), after: afterIds.map((id) => gcodes.get(id)) };
}

const tally = (codes) => codes.reduce((m, c) => ({ ...m, [c]: (m[c] || 0) + 1 }), {});

describe('one sender flooding a stranger\'s pending inbox', () => {
  const h = useEnv('hostile_pending_quota', { gatewayArgs: null });
  const rates = ['--send-rate', '100000', '--send-burst', '100000'];

  it(`${FLOOD} messages of 16 KB on ${CONNS} connections: ${SHARE} stored, the rest 429; a friend's sends all 200`, T, async () => {
    const env = h.env;
    const gw = await env.startGateway(['--max-pending', String(INBOX), '--max-pending-per-sender', String(SHARE), ...rates],
      { name: 'quota' });
    const flooder = await newUser(gw, 'flooder');
    const friend = await newUser(gw, 'friend');
    const victim = await newUser(gw, 'victim');

    const r = await flood(gw, flooder, friend, victim);
    const fl = tally(r.flood);
    console.log(`[pending quota] ${JSON.stringify({ flood: fl, during: tally(r.during), after: tally(r.after) })}`);
    assert.deepEqual(fl, { 200: SHARE, 429: FLOOD - SHARE }, 'the share is stored, the rest is 429 (never 507)');
    assert.deepEqual(tally([...r.during, ...r.after]), { 200: FRIEND }, 'every send of the friend is stored');
    assert.equal(Number(await env.redis.command('ZCARD', `{u:${victim.uid}}:pending`)), SHARE + FRIEND);
    assert.equal(String(await env.redis.command('HGET', `{u:${victim.uid}}:psend`, String(flooder.uid))), String(SHARE));
    // the flood would be FLOOD x 16 KB (8 MB); the share is SHARE x 16 KB
    // plus the allocator's rounding (16 KB strings take 20 KiB)
    const bytes = Number(await env.redis.command('MEMORY', 'USAGE', `{u:${victim.uid}}:msg`, 'SAMPLES', '0'));
    assert.ok(bytes < 2 * SHARE * 16384, `the victim's messages take ${bytes} bytes: the share, not the flood`);

    // one more from the friend, after everything
    const G = await RawClient.open(gw, { token: friend.token });
    await G.connect();
    await G.subscribe([['/user/queue/send/status', 'ss']]);
    const id = msgId('after');
    const p = G.next((f) => f.command === 'MESSAGE' && f.json?.msgID === id, 10000, 'send/status');
    G.send(sendFrame(id, victim.uid, 'after the flood'));
    assert.equal((await p).json.code, 200);
    await G.terminate();
    await env.stopGateway(gw);
  });

  it('control: with the share set to the whole inbox, the same flood makes the friend\'s sends fail with 507', T, async () => {
    const env = h.env;
    const gw = await env.startGateway(['--max-pending', String(INBOX), '--max-pending-per-sender', String(INBOX), ...rates],
      { name: 'noquota' });
    const flooder = await newUser(gw, 'flooder');
    const friend = await newUser(gw, 'friend');
    const victim = await newUser(gw, 'victim');
    const r = await flood(gw, flooder, friend, victim);
    console.log(`[pending quota, control] ${JSON.stringify({ flood: tally(r.flood), during: tally(r.during), after: tally(r.after) })}`);
    assert.deepEqual(tally(r.after), { 507: FRIEND / 2 }, 'after the flood the friend meets the full inbox');
    await env.stopGateway(gw);
  });
});
