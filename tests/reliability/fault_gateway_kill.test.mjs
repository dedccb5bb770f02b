// Fault: SIGKILL a gateway, again and again, under a steady load of many
// pairs (issue #8; PROTOCOL.md 5: "A message answered 200 is never lost:
// not by a gateway crash (kill -9)"; "Any gateway node can serve any user").
//
// Two gateway processes share one Redis. Every `period` one of them (in
// turn) is killed with SIGKILL and started again (on a new port, as a
// restarted node would come back); clients of the dead one reconnect to
// whichever is up, resend what was unconfirmed with the same msgID, and
// catch up with init + sync. At the end the generator stops, the driver
// drains, and the checker must find lost = dup = unexpected = inversions = 0
// and every message confirmed.
//
// Short form (make test): 20 pairs, 100 msg/s, ~14 s, a kill every 2.5 s.
// Long form (CHATGATE_SOAK=1): 100 pairs, 400 msg/s, 3 minutes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { useEnv, sleep } from '../integration/lib/harness.mjs';
import { LoadDriver } from './lib/load.mjs';
import { check, assertClean, reported } from './lib/checker.mjs';
import { pick, secrets } from './lib/util.mjs';

const PAIRS = pick(20, 100);
const RATE = pick(100, 400);
const DURATION_MS = pick(14000, 180000);
const PERIOD_MS = pick(2500, 5000);

secrets.use('fault_gateway_kill');

describe('SIGKILL of a gateway under load', () => {
  const h = useEnv('fault_gateway_kill');

  it(`${PAIRS} pairs at ${RATE} msg/s, a gateway killed every ${PERIOD_MS} ms: nothing lost`, { timeout: DURATION_MS + 150000 }, async () => {
    await reported('gateway SIGKILL', async (rep) => {
      const env = h.env;
      const gws = [env.gw, await env.startGateway([], { name: 'gw1' })];
      const up = new Set(gws);
      const load = new LoadDriver(env, { name: 'gwkill', pairs: PAIRS, rate: RATE, targets: () => [...up] });
      await load.setup(gws[0]);
      await load.start();
      rep.load = `${load.loadLabel}, ${DURATION_MS / 1000} s`;

      let kills = 0;
      const t0 = Date.now();
      let i = 0;
      while (Date.now() - t0 < DURATION_MS) {
        await sleep(PERIOD_MS);
        const g = gws[i++ % gws.length];
        up.delete(g);
        const at = Date.now();
        await env.killGateway(g, 'SIGKILL');
        kills++;
        load.history.fault('gateway SIGKILL', at, { gw: g.name });
        await g.start();
        up.add(g);
        rep.faults = `${kills} x SIGKILL gateway (2 nodes)`;
      }
      load.stopGenerating();
      const drained = await load.drain({ timeout: 60000 });
      const res = check(load.history);
      load.dump(path.join(env.dir, 'load-history.jsonl'));   // evidence, kept with the logs
      rep.res = res;
      const st = load.stats();
      console.log(`[gateway SIGKILL] ${JSON.stringify({ drained: { ok: drained.ok, waitedMs: drained.waitedMs, pending: drained.pending }, ...st, attempts: res.attempts, timeouts: res.timeouts, lostAttempts: res.lostAttempts, storedByUnansweredAttempt: res.storedByUnansweredAttempt, code503: res.code503, redelivered: res.redeliveredFlagged })}`);
      await load.close();
      assert.ok(kills >= 3, `only ${kills} kills`);
      assertClean(res, { what: 'gateway SIGKILL' });
      assert.ok(drained.ok, `drain: ${JSON.stringify(drained)}; notes: ${load.history.notes.slice(-5).join(' | ')}`);
      // the kills had teeth: clients reconnected, and messages pushed but not
      // yet confirmed came again flagged (sends cut mid-flight are rarer at
      // this rate, one in flight per conversation: lostAttempts, reported)
      assert.ok(st.connects >= load.clients.length + kills * 5, `only ${st.connects} connects for ${kills} kills`);
      assert.ok(res.redeliveredFlagged > 0, 'some pushed-but-unconfirmed messages were redelivered');
    });
  });
});
