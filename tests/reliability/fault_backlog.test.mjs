// A full pending inbox drained by one init (issue #8; PROTOCOL.md 4: init
// pushes "every pending (unconfirmed) message of this user to this session,
// oldest first, in batches paced by the socket's drain (memory stays flat
// for any inbox size)"; 507 "receiver's pending inbox full (default
// 100 000)").
//
// How the inbox is filled, and why: directly in Redis, by running the
// gateway's own gateway/store/lua/chat.lua with EVALSHA, pipelined 2 000 commands
// at a time (lib/redis.mjs; the harness exposes Redis's port). The stored
// messages are exactly what sends through the gateway would store (same
// script, same KEYS and ARGV as chat.c), but 100 000 of them take seconds
// instead of the minutes an ASan gateway needs at its per-connection rate
// limit, and what is under test here is the drain, not the send path (the
// load tests cover that). The last message that fits and the one past the
// limit do go through the gateway: 200, then 507.
//
// Asserted, for a small and a big backlog (10 000 and 100 000, at the
// default max_pending of 100 000; the long form drains a second 100 000
// backlog, whose growth must not exceed the first's: no leak per drain):
//   - one init delivers every message: oldest first, ids strictly
//     increasing with no gap (1..N), chatIDs in the order stored, then
//     init/status with count N; the checker is clean;
//   - message N+1 gets 507 and is not stored (count stays N);
//   - gateway memory growth during the drain does not depend on the backlog
//     size: peak VmRSS growth for the big drain stays within
//     GROWTH_SLACK_MIB of the small one's (the small drain runs first, so
//     the allocator's high-water mark it leaves is reused by the big one:
//     a leak or an unpaced drain still shows, as the big backlog is 5-10x
//     the small). ASan's quarantine of freed memory is lowered to 2 MiB for
//     this file's gateways: it holds freed blocks up to its size and would
//     read as growth proportional to the work done.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';

process.env.ASAN_OPTIONS = `${(process.env.ASAN_OPTIONS || 'detect_leaks=1:halt_on_error=1:abort_on_error=0')
  .replace(/:?quarantine_size_mb=\d+/, '')}:quarantine_size_mb=2`;

/* eslint-disable import/first */
import { useEnv } from '../integration/lib/harness.mjs';
import { History, check, assertClean, reported } from './lib/checker.mjs';
import { RawClient } from './lib/raw.mjs';
import { fillInbox } from './lib/redis.mjs';
import { pick, secrets, newUser, RssSampler, rssKiB, fmtMiB } from './lib/util.mjs';

const MAX_PENDING = 100000;              // the default: no --max-pending flag
const SMALL = 10000;
const BIG = MAX_PENDING;
const RUNS = pick([SMALL, BIG], [SMALL, BIG, BIG]);
const GROWTH_SLACK_MIB = 8;

secrets.use('fault_backlog');

/** One init on a fresh connection of user r: every MESSAGE, the init/status, RSS. */
async function drainOnce(gw, r, expect) {
  const got = [];
  const c = await RawClient.open(gw, {
    token: r.token,
    onFrame: (f) => { if (f.command === 'MESSAGE' && f.headers.subscription === 'r') got.push(f); },
  });
  await c.connect();
  await c.subscribe([[`/user/${r.username}/recive`, 'r'], ['/user/queue/init/status', 'is']]);
  const rss0 = rssKiB(gw.proc.pid);
  const sampler = new RssSampler(gw.proc.pid, 50);
  const t0 = Date.now();
  const done = c.next((f) => f.command === 'MESSAGE' && f.headers.subscription === 'is', 30000 + expect * 3, 'init/status');
  c.frame('SEND', { destination: '/socket/chat/init' }, '');
  const st = await done;
  const ms = Date.now() - t0;
  const rss = sampler.stop();
  await c.terminate();
  return { got, status: st.json, ms, rss0, rss, growth: rss.peak - rss0 };
}

describe('a backlog drained by one init', () => {
  // Every message of a backlog is alice's: her share of one inbox may be
  // the whole inbox here (max_pending_per_sender, default 1000, is not
  // what this file tests; hostile_pending_quota does).
  const h = useEnv('fault_backlog', { gatewayArgs: ['--max-pending-per-sender', String(MAX_PENDING)] });
  let gw, alice;
  before(async () => {
    gw = h.env.gw;
    alice = await newUser(gw, 'alice');
  });

  it(`${RUNS.join(', ')} pending messages: oldest first, no gaps, ${BIG + 1}th is 507, memory independent of size`, { timeout: pick(240000, 900000) }, async () => {
    await reported(`backlog ${BIG} + init`, async (rep) => {
      const hist = new History('backlog');
      rep.load = `backlogs of ${RUNS.join(', ')} (max_pending ${MAX_PENDING}), filled by chat.lua`;
      rep.faults = `receiver offline for ${RUNS.reduce((a, b) => a + b, 0)} messages; send #${BIG + 1}`;
      const runs = [];
      for (const n of RUNS) {
        const r = await newUser(gw, `inbox${n}`);
        const t0 = Date.now();
        const filled = await fillInbox(h.env.redis.port, { sender: alice, to: r.uid, count: n - 1, maxPending: MAX_PENDING });
        const fillMs = Date.now() - t0;
        // the last one that fits and the one past the limit, through the gateway
        const s = await RawClient.open(gw, { token: alice.token });
        await s.connect();
        await s.subscribe([['/user/queue/send/status', 'ss']]);
        const ask = async (content) => {
          const msgID = `${content.replace(/\W/g, '')}${Date.now()}`;
          const p = s.next((f) => f.command === 'MESSAGE' && f.json?.msgID === msgID, 10000, `send/status ${msgID}`);
          s.frame('SEND', { destination: '/socket/chat/send' }, JSON.stringify({ msgID, reciverId: r.uid, content }));
          return { ...(await p).json, msgID, content };
        };
        const last = await ask(`backlog #${n} for ${r.uid}`);
        assert.equal(last.code, 200, `message ${n} (the last that fits): ${JSON.stringify(last)}`);
        const stored = [...filled, { msgID: last.msgID, content: last.content, id: last.id, time: last.time }];
        const all = [...stored];
        if (n === MAX_PENDING) {
          const over = await ask(`over the limit ${n + 1}`);
          assert.equal(over.code, 507, `message ${n + 1}: ${JSON.stringify(over)}`);
          assert.equal(over.status, '失败');
          all.push({ msgID: over.msgID, content: over.content, failed: 507 });
        }
        await s.terminate();
        all.forEach((m, i) => {
          const rec = hist.addSend({ from: alice.uid, fromName: alice.username, to: r.uid, msgID: m.msgID, content: m.content, seq: i + 1 });
          const a = hist.addAttempt(rec, 'fill');
          if (m.failed) { hist.answer(rec, a, { code: 507 }); rec.failed = { code: 507 }; } else hist.answer(rec, a, { code: 200, id: m.id, time: m.time });
        });

        const d = await drainOnce(gw, r, n);
        for (const f of d.got) {
          const j = f.json;
          const dl = { rcv: r.uid, conn: `init${n}`, at: f.at, chatID: j.chatID, id: j.id, sender: j.sender, senderId: j.senderId,
            reciverId: j.reciverId, content: j.content, time: j.time, redelivered: f.headers.redelivered === 'true', phase: 'catchup' };
          hist.addDelivery(dl);
          hist.addApp(r.uid, dl);
        }
        // oldest first, strictly increasing, no gap, in the order stored
        const ids = d.got.map((f) => f.json.id);
        let bad = -1;
        for (let i = 0; i < ids.length; i++) if (ids[i] !== i + 1) { bad = i; break; }
        assert.equal(d.got.length, n, `init delivered ${d.got.length} of ${n}`);
        assert.equal(bad, -1, `ids 1..${n} in order: at index ${bad} got ${ids[bad]} (neighbours ${ids.slice(Math.max(0, bad - 2), bad + 3)})`);
        assert.deepEqual(d.got.map((f) => f.json.chatID), stored.map((m) => m.msgID), 'oldest first: chatIDs in the order stored');
        assert.equal(d.status.count, n, `init/status ${JSON.stringify(d.status)}`);
        runs.push({ n, fillMs, drainMs: d.ms, rate: Math.round(n / (d.ms / 1000)), rss0: d.rss0, peak: d.rss.peak, growth: d.growth });
      }
      const res = check(hist);
      rep.res = res;
      console.log(`[backlog] ${JSON.stringify(runs.map((x) => ({ ...x, rss0: fmtMiB(x.rss0), peak: fmtMiB(x.peak), growth: fmtMiB(x.growth) })))}`);
      assertClean(res, { allowFailed: true, what: 'backlog' });
      assert.equal(res.failed, RUNS.filter((n) => n === MAX_PENDING).length, 'exactly the sends past the limit failed (507)');
      const [small, ...bigs] = runs;
      for (const big of bigs) {
        assert.ok(big.growth <= small.growth + GROWTH_SLACK_MIB * 1024,
          `VmRSS growth during the drain: ${fmtMiB(small.growth)} for ${small.n}, ${fmtMiB(big.growth)} for ${big.n} (slack ${GROWTH_SLACK_MIB} MiB)`);
      }
    });
  });
});
