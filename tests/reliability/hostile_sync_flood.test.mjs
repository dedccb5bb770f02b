// Hostile input (issue 13, finding 1): one user must not stall Redis for
// everyone. The attacker stores 100 messages of 16 KiB for itself, then
// pipelines 250 `/socket/chat/sync {"syncKey":0}` on one connection and
// reads nothing. Each answer is ~1.6 MiB: fetched all at once they sat in
// Redis's output buffer for the gateway (193 MB), the gateway's command
// connections timed out, and other users' sends got 503.
//
// A session now has one sync in Redis at a time: later syncs wait their
// turn (16 at most, then 429), and the output caps bound what a reader that
// reads nothing piles up in the gateway.
//
// Asserted, while the flood runs:
//   - another pair's 200 sends are all answered 200 (no 503);
//   - Redis's largest client output buffer stays under 16 MiB (a few sync
//     answers, not hundreds) and no gateway command connection timed out;
//   - the attacker's own connection is eventually closed at its output cap
//     or is still open; either way the gateway serves everyone else.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, msgId, until, sleep } from '../integration/lib/harness.mjs';
import { RawClient, sendFrame } from './lib/raw.mjs';
import { secrets, newUser } from './lib/util.mjs';

const T = { timeout: 180000 };

secrets.use('hostile_sync_flood');

/** One field of Redis's INFO. */
async function redisInfo(env, section, field) {
  const text = String(await env.redis.command('INFO', section));
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(text);
  assert.ok(m, `${field} in INFO ${section}`);
  return Number(m[1]);
}

describe('a sync flood from one connection', () => {
  const h = useEnv('hostile_sync_flood');

  it('250 pipelined syncs of 1.6 MiB each, never read: other users keep getting 200, Redis stays small', T, async () => {
    const env = h.env;
    const gw = env.gw;
    const a = await newUser(gw, 'flooder');
    const b = await newUser(gw, 'bob');
    const c = await newUser(gw, 'carol');

    // 100 messages of 16 KiB for a itself
    const answers = new Map();
    const A = await RawClient.open(gw, {
      token: a.token,
      onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'ss') answers.set(f.json.msgID, f.json.code); },
    });
    await A.connect();
    await A.subscribe([['/user/queue/send/status', 'ss']]);
    const big = 'x'.repeat(16000);
    for (let i = 0; i < 100; i++) A.send(sendFrame(msgId(`${i}`), a.uid, `${i} ${big}`));
    await until(() => answers.size === 100, { timeout: 60000, what: `100 stored (have ${answers.size})` });
    assert.ok([...answers.values()].every((code) => code === 200), 'the 100 messages are stored');
    await A.terminate();

    // the flood: subscribe, stop reading, pipeline 250 syncs
    const F = await RawClient.open(gw, { token: a.token });
    await F.connect();
    await F.subscribe([[`/user/${a.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
    F.pause();
    const sync = `SEND\ndestination:/socket/chat/sync\n\n{"syncKey":0}\0`;
    F.send(sync.repeat(250));

    // meanwhile bob sends to carol, 200 messages, 10 every 250 ms (40/s:
    // under the default send rate limit of 50/s)
    const codes = new Map();
    const B = await RawClient.open(gw, {
      token: b.token,
      onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'ss') codes.set(f.json.msgID, f.json.code); },
    });
    await B.connect();
    await B.subscribe([['/user/queue/send/status', 'ss']]);
    let peakOut = 0;
    const sample = setInterval(async () => {
      try { peakOut = Math.max(peakOut, await redisInfo(env, 'clients', 'client_recent_max_output_buffer')); } catch { /* next time */ }
    }, 100);
    try {
      for (let i = 0; i < 200; i += 10) {
        for (let k = i; k < i + 10; k++) B.send(sendFrame(msgId(`b${k}`), c.uid, `to carol ${k}`));
        await until(() => codes.size >= i + 10, { timeout: 30000, what: `bob's send ${i + 10} answered` });
        await sleep(250);
      }
    } finally {
      clearInterval(sample);
    }
    peakOut = Math.max(peakOut, await redisInfo(env, 'clients', 'client_recent_max_output_buffer'));
    const bad = [...codes.values()].filter((code) => code !== 200);
    console.log(`[sync flood] ${JSON.stringify({ bobSends: codes.size, notOk: bad.length, redisPeakClientOutputBuffer: peakOut })}`);
    assert.equal(bad.length, 0, `bob's sends not 200: ${JSON.stringify(bad.slice(0, 5))}`);
    assert.ok(peakOut < 16 * 1048576, `Redis's largest client output buffer reached ${peakOut} bytes`);
    assert.ok(!/no reply .* for \d+ ms/.test(gw.stderr()), 'no Redis command connection timed out');
    F.resume();
    await F.terminate();
    await B.terminate();
  });
});
