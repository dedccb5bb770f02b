// Fault: SIGKILL redis-server and start it again on its AOF (appendonly,
// appendfsync always: the harness's RedisServer), again and again, under a
// steady load of many pairs (issue #8; PROTOCOL.md 5: a 200 survives "a
// Redis restart when Redis runs with appendfsync always").
//
// What is asserted, and why it is exact rather than a guess with margins:
//   - the checker: lost = dup = unexpected = inversions = 0, and after the
//     drain everything the clients wanted to send was answered 200;
//   - no 200 while Redis is down. Redis is known dead from `downAt` (the
//     moment the kill's exit event came: the process is gone by then) to
//     `upAt` (the moment the new redis-server was spawned: it cannot have
//     executed anything before). Two consequences, neither needing a margin:
//       (a) every 200 carries the store time Redis's send script took from
//           TIME (`time`, ms since the epoch, the same clock as ours on one
//           machine): no 200, and no delivered message, may carry a time
//           inside (downAt, upAt);
//       (b) an attempt issued after downAt cannot have been executed by the
//           dead Redis, so if it was answered 200 the answer must have come
//           after upAt. A send issued just before the kill may legitimately
//           be answered 200 after downAt (Redis executed it and died while
//           the reply travelled), which is why (b) keys on the issue time
//           and not on the answer time;
//   - /readyz answers 503 within a second of the kill on every gateway (a
//     poller hits it every 50 ms), and 200 again after the restart;
//   - gateway memory is bounded: VmRSS at the end is less than
//     RSS_BOUND_MIB above its level after a second of load, and less than
//     FLAT_MIB above its level after the first outage (ASan build; the
//     ctest environment caps ASan's quarantine of freed memory at 16 MiB,
//     which would otherwise read as growth).
//
// Short form: 20 pairs, 100 msg/s, 3 outages of ~1 s, ~16 s. Long form
// (CHATGATE_SOAK=1): 60 pairs, 300 msg/s, 20 outages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { useEnv, sleep, until, httpRequest } from '../integration/lib/harness.mjs';
import { LoadDriver } from './lib/load.mjs';
import { check, assertClean, reported } from './lib/checker.mjs';
import { pick, secrets, rssKiB, ReadyzWatch, fmtMiB } from './lib/util.mjs';

const PAIRS = pick(20, 60);
const RATE = pick(100, 300);
const OUTAGES = pick(3, 20);
const UP_MS = pick(3000, 6000);      // load with Redis up between outages
const DOWN_MS = pick(1000, 2000);    // how long Redis stays dead
const RSS_BOUND_MIB = 64;
const FLAT_MIB = 32;

secrets.use('fault_redis_kill');

describe('SIGKILL and restart of redis-server under load', () => {
  const h = useEnv('fault_redis_kill');

  it(`${PAIRS} pairs at ${RATE} msg/s, ${OUTAGES} Redis outages: no 200 while down, nothing lost`, { timeout: 240000 + OUTAGES * 15000 }, async () => {
    await reported('redis SIGKILL+restart', async (rep) => {
      const env = h.env;
      const gws = [env.gw, await env.startGateway([], { name: 'gw1' })];
      const load = new LoadDriver(env, { name: 'rediskill', pairs: PAIRS, rate: RATE, targets: () => gws });
      await load.setup(gws[0]);
      await load.start();
      rep.load = `${load.loadLabel}, ${OUTAGES} x (${UP_MS / 1000} s up + ${DOWN_MS / 1000} s down)`;
      await sleep(1000);
      const rss0 = gws.map((g) => rssKiB(g.proc.pid));
      const watches = gws.map((g) => new ReadyzWatch(g, 50));

      const outages = [];
      let rssWarm = null;
      try {
        for (let i = 0; i < OUTAGES; i++) {
          await sleep(UP_MS);
          const killAt = Date.now();
          await env.redis.kill('SIGKILL');
          const downAt = Date.now();
          load.history.fault('redis SIGKILL', killAt);
          await sleep(DOWN_MS);
          const upAt = Date.now();
          await env.redis.start();
          const readyAt = Date.now();
          outages.push({ killAt, downAt, upAt, readyAt });
          rep.faults = `${outages.length} x SIGKILL redis + restart (AOF, fsync always)`;
          for (const g of gws) {
            await until(async () => (await httpRequest(g.url('/readyz'), { timeout: 1000 })).status === 200,
              { timeout: 20000, interval: 50, what: `${g.name} readyz 200 after restart ${i + 1}` });
          }
          if (i === 0) rssWarm = gws.map((g) => rssKiB(g.proc.pid));
        }
      } finally {
        await Promise.all(watches.map((w) => w.stop()));
      }
      load.stopGenerating();
      const drained = await load.drain({ timeout: 60000 });
      const rss1 = gws.map((g) => rssKiB(g.proc.pid));
      const res = check(load.history);
      load.dump(path.join(env.dir, 'load-history.jsonl'));   // evidence, kept with the logs
      rep.res = res;

      // /readyz 503 within a second of every kill, on every gateway
      const readyLag = [];
      for (const o of outages) {
        for (const [k, w] of watches.entries()) {
          const at = w.firstAfter(503, o.killAt);
          assert.ok(at !== null && at <= o.upAt, `${gws[k].name}: no readyz 503 while Redis was down (${JSON.stringify(o)})`);
          readyLag.push(at - o.killAt);
        }
      }

      // no 200 while Redis is down
      const violations = [];
      let issuedInside = 0;
      let answeredInside = 0;
      for (const s of load.history.sends.values()) {
        for (const a of s.attempts) {
          for (const ans of [a.code === 200 ? { at: a.answeredAt, time: a.time } : null,
            a.late?.code === 200 ? a.late : null]) {
            if (!ans) continue;
            for (const o of outages) {
              if (ans.time > o.downAt && ans.time < o.upAt) violations.push({ why: 'stored while Redis was down', key: s.key, time: ans.time, o });
              if (a.at > o.downAt && a.at < o.upAt) {
                issuedInside++;
                if (ans.at < o.upAt) violations.push({ why: 'issued while down, 200 before restart', key: s.key, issued: a.at, answered: ans.at, o });
              }
              if (ans.at > o.downAt && ans.at < o.upAt) answeredInside++;
            }
          }
        }
      }
      for (const d of load.history.deliveries) {
        for (const o of outages) {
          if (d.time > o.downAt && d.time < o.upAt) violations.push({ why: 'delivered a message stored while down', chatID: d.chatID, time: d.time, o });
        }
      }

      const st = load.stats();
      const growth = rss1.map((v, k) => v - rss0[k]);
      console.log(`[redis SIGKILL] ${JSON.stringify({
        drained: { ok: drained.ok, waitedMs: drained.waitedMs, pending: drained.pending }, ...st,
        attempts: res.attempts, code503: res.code503, timeouts: res.timeouts, lostAttempts: res.lostAttempts,
        readyz503LagMs: { max: Math.max(...readyLag), all: readyLag },
        answered200WhileDown: answeredInside, issuedWhileDownThen200: issuedInside,
        rss: gws.map((g, k) => `${g.name} ${fmtMiB(rss0[k])} -> ${fmtMiB(rssWarm[k])} after outage 1 -> ${fmtMiB(rss1[k])}`),
      })}`);
      await load.close();

      assertClean(res, { what: 'redis SIGKILL' });
      assert.ok(drained.ok, `drain: ${JSON.stringify(drained)}; notes: ${load.history.notes.slice(-5).join(' | ')}`);
      assert.deepEqual(violations.slice(0, 5), [], `${violations.length} 200s contradict a dead Redis`);
      for (const lag of readyLag) assert.ok(lag <= 1000, `readyz 503 came ${lag} ms after SIGKILL (all: ${readyLag})`);
      assert.ok(res.code503 > 0, 'some sends met the outage (503), else the test proves little');
      growth.forEach((g, k) => assert.ok(g < RSS_BOUND_MIB * 1024,
        `${gws[k].name} VmRSS grew ${fmtMiB(g)} (${fmtMiB(rss0[k])} -> ${fmtMiB(rss1[k])}), bound ${RSS_BOUND_MIB} MiB`));
      rss1.forEach((v, k) => assert.ok(v - rssWarm[k] < FLAT_MIB * 1024,
        `${gws[k].name} VmRSS still grew ${fmtMiB(v - rssWarm[k])} after the first outage (${fmtMiB(rssWarm[k])} -> ${fmtMiB(v)}), bound ${FLAT_MIB} MiB`));
    });
  });
});
