// Fault: receivers that drop their socket after a MESSAGE and before its
// /socket/chat/recive (issue #8; PROTOCOL.md 5: not lost "by a slow or
// vanished receiver"; 3: "a redelivered chat message also carries
// redelivered:true").
//
// Under a steady load of many pairs, every receiver, on a random ~2% of the
// MESSAGEs it gets while the load runs, drops its TCP connection at once
// instead of confirming (no DISCONNECT, no close frame: ws.terminate()).
// It reconnects (backoff), inits and syncs. Asserted:
//   - every dropped message arrives again on a later connection of the
//     same receiver, and that later delivery carries redelivered:true;
//   - the checker: lost = dup = unexpected = inversions = 0, all confirmed;
//   - the dedupe layer passed each message to the app once (appDup = 0),
//     although the socket saw many twice.
//
// Short form: 20 pairs, 100 msg/s, 12 s. Long form: 80 pairs, 300 msg/s, 2 min.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { useEnv, sleep } from '../integration/lib/harness.mjs';
import { LoadDriver } from './lib/load.mjs';
import { check, assertClean, reported } from './lib/checker.mjs';
import { pick, secrets } from './lib/util.mjs';

const PAIRS = pick(20, 80);
const RATE = pick(100, 300);
const DURATION_MS = pick(12000, 120000);
const P_DROP = 0.02;

secrets.use('fault_receiver_drop');

describe('receivers that vanish between MESSAGE and recive', () => {
  const h = useEnv('fault_receiver_drop');

  it(`${PAIRS} pairs at ${RATE} msg/s, ${P_DROP * 100}% of MESSAGEs dropped before recive: all redelivered with redelivered:true`, { timeout: DURATION_MS + 120000 }, async () => {
    await reported('receiver drops before recive', async (rep) => {
      const env = h.env;
      const load = new LoadDriver(env, { name: 'rcvdrop', pairs: PAIRS, rate: RATE, dropBeforeConfirm: P_DROP });
      await load.setup(env.gw);
      await load.start();
      rep.load = `${load.loadLabel}, ${DURATION_MS / 1000} s`;
      await sleep(DURATION_MS);
      load.stopGenerating();
      const drained = await load.drain({ timeout: 60000 });
      const res = check(load.history);
      load.dump(path.join(env.dir, 'load-history.jsonl'));   // evidence, kept with the logs
      rep.res = res;
      const dropped = load.clients.flatMap((c) => c.dropped.map((x) => ({ ...x, rcv: c.user.uid })));
      rep.faults = `${dropped.length} x socket dropped after MESSAGE, before recive`;

      // every dropped message: delivered again later, on another connection, flagged
      const missing = [];
      const unflagged = [];
      for (const x of dropped) {
        const later = load.history.deliveries.filter((d) => d.rcv === x.rcv && d.chatID === x.chatID && d.at >= x.at && d.conn !== x.conn);
        if (!later.length) missing.push(x);
        else if (!later[0].redelivered) unflagged.push({ ...x, again: later[0] });
      }
      const socketDups = load.history.deliveries.length - res.delivered;
      console.log(`[receiver drop] ${JSON.stringify({ drained: { ok: drained.ok, waitedMs: drained.waitedMs, pending: drained.pending }, ...load.stats(), dropped: dropped.length, redeliveredFlagged: res.redeliveredFlagged, socketDeliveries: load.history.deliveries.length, socketDuplicates: socketDups })}`);
      await load.close();

      assertClean(res, { what: 'receiver drops' });
      assert.ok(drained.ok, `drain: ${JSON.stringify(drained)}`);
      assert.ok(dropped.length >= 5, `only ${dropped.length} drops happened`);
      assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${dropped.length} dropped messages never came again`);
      assert.deepEqual(unflagged.slice(0, 5), [], `${unflagged.length} of ${dropped.length} came again without redelivered:true`);
      assert.ok(socketDups >= dropped.length, 'the socket saw the dropped ones twice, the app once');
    });
  });
});
