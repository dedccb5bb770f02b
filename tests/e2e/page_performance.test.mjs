// Issue 14, bug 4 and the page-performance budget: the page takes 1,000
// confirmations (✓) of its own messages, and 1,000 incoming messages that
// it shows and confirms, with no main-thread task over 100 ms. Each event
// costs the same whatever the thread's length: it changes one message and
// marks it; the DOM work of a frame is done once, for the rendered part of
// the thread only, and storage writes only what changed.
//
// The tasks are recorded with the Long Tasks API (wall time) and a
// DevTools trace (wall and CPU time of every task of the renderer's main
// thread). The assertion is on CPU time: the wall time of a task on a busy
// 2-core machine also counts the time the OS ran other processes (builds,
// other tests). Both figures are printed. PERF_WALL=1 asserts wall time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, openChatWith, openConversation, sendMessage, sendBurst,
  waitState, incoming, outgoing, assertNoConsoleProblems, watchMainThread, scrollUpUntil, until,
} from './lib/e2e.mjs';

// PERF_TIMEOUT_MS: for measuring a slow page by hand (CTest stops a file at 300 s)
const T = { timeout: Number(process.env.PERF_TIMEOUT_MS) || 280000 };
const N = Number(process.env.PERF_N) || 1000;
const BUDGET_MS = 100;

function report(what, r) {
  const long = r.longTasks.map((d) => Math.round(d));
  console.log(`${what}: ${r.tasks.length} tasks; worst CPU ${r.worstCpu.toFixed(1)} ms, worst wall ${r.worstWall.toFixed(1)} ms; `
    + `long tasks (>50 ms wall) ${long.length}: [${long.slice(0, 20).join(', ')}${long.length > 20 ? ', ...' : ''}]`);
  console.log(`  the worst task (ms, nested events overlap): ${r.worstBreakdown}`);
}

function assertBudget(what, r) {
  report(what, r);
  assert.ok(r.worstCpu < BUDGET_MS, `${what}: a task took ${r.worstCpu.toFixed(1)} ms of CPU (budget ${BUDGET_MS} ms)`);
  if (process.env.PERF_WALL) {
    assert.ok(r.worstWall < BUDGET_MS, `${what}: a task blocked the page for ${r.worstWall.toFixed(1)} ms (budget ${BUDGET_MS} ms)`);
  }
}

async function idle(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 0)))));
}

describe('page performance', () => {
  // the page sends 1,000 messages in a few seconds: above the default 50/s
  const h = useWebEnv('e2e-perf', { gatewayArgs: ['--send-rate', '5000', '--send-burst', '5000'] });

  it(`${N} confirmations (✓) of the page's own messages: no task over ${BUDGET_MS} ms`, T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);
    await openChatWith(A, bob.username);

    // N messages to bob, who is not connected: each is stored ("Sent")
    const texts = Array.from({ length: N }, (_, i) => `m ${i + 1}`);
    await sendBurst(A, texts, { perTask: 20 });
    await waitState(outgoing(A, `m ${N}`), 'sent', T.timeout);
    assert.equal(await A.locator('#messages li.msg.out[data-state="failed"]').count(), 0);

    // bob comes online and confirms all N at once: N ✓ reach the page
    const watch = await watchMainThread(A);
    const B = await gw.stomp(bob);
    const { messages } = await B.init(60000);
    assert.equal(messages.length, N);
    for (const m of messages) B.publish('/socket/chat/recive', { msgID: m.json.chatID });
    await B.reciveStatus.waitCount(N, (s) => s.json?.code === 200, 60000, { what: `${N} confirmed` });
    await waitState(outgoing(A, `m ${N}`), 'delivered', T.timeout);
    await idle(A);
    const r = await watch.stop();
    assertBudget(`${N} ✓ on the sender's page`, r);

    // every one of them shows its ✓ (the older ones load on scroll)
    await scrollUpUntil(A, 'm 1', { timeout: 60000 });
    assert.equal(await A.locator('#messages li.msg.out').count(), N);
    assert.equal(await A.locator('#messages li.msg.out:not([data-state="delivered"])').count(), 0);

    assertNoConsoleProblems(A);
    await A.context().close();
    await B.close();
  });

  it(`${N} incoming messages shown and confirmed with the thread open: no task over ${BUDGET_MS} ms`, T, async () => {
    const { gw, browser } = h;
    const carol = await gw.newUser('carol');
    const dave = await gw.newUser('dave');
    const C = await openPage(browser, gw, { name: 'carol' });
    await login(C, carol);
    const D = await gw.stomp(dave);
    await D.chat(carol, 'hello');
    await openConversation(C, dave.username);
    await incoming(C, 'hello').waitFor();

    const watch = await watchMainThread(C);
    for (let i = 1; i <= N; i++) D.sendChat(carol, `n ${i}`);
    await D.delivered.waitCount(N + 1, () => true, 200000, { what: `${N} confirmed by carol's page` });
    await incoming(C, `n ${N}`).waitFor();
    await idle(C);
    const r = await watch.stop();
    assertBudget(`${N} incoming on the receiver's page`, r);
    // the reader at the bottom sees the newest; nothing is unread
    assert.equal(await C.locator('#messages li.msg.in').last().locator('.bubble').textContent(), `n ${N}`);
    assert.equal(await C.title(), 'chatgate');

    // still responsive: a reply goes out and is confirmed
    const reply = await sendMessage(C, 'that was a lot');
    await D.recive.waitFor((m) => m.json?.content === 'that was a lot', 15000);
    await waitState(reply, 'sent');

    assertNoConsoleProblems(C);
    await C.context().close();
    await D.close();
  });
});
