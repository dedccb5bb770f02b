// Issue 14, bug 1: my own messages in the order I sent them. A burst of
// sends (the gateway stores a batch of them under one clock reading, so
// several share a millisecond) and messages typed while the gateway is
// down and sent again by the page when it reconnects: the sender's thread
// shows them in send order, as the receiver does, also after a reload.
// The thread is ordered by the server's id once it is known and by send
// order before that.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn, useWebEnv, openChatWith, openConversation, sendMessage, sendBurst, waitState,
  incoming, outgoing, threadTexts, assertNoConsoleProblems, waitOnline, until, DOWNTIME_NOISE,
} from './lib/e2e.mjs';

const T = { timeout: 180000 };

async function allDelivered(page, n) {
  await until(async () => (await page.locator('#messages li.msg.out[data-state="delivered"]').count()) === n,
    { timeout: 30000, what: `${n} messages delivered` });
}

describe('own messages keep their send order', () => {
  const h = useWebEnv('e2e-order');

  it('a burst of 20 sends shows in send order on both pages', T, async () => {
    const { gw, browser } = h;
    const [alice, bob, A, B] = await twoSignedIn(gw, browser, 'alice', 'bob');
    await openChatWith(A, bob.username);
    await waitState(await sendMessage(A, 'start'), 'delivered');
    await openConversation(B, alice.username);

    const texts = Array.from({ length: 20 }, (_, i) => `rapid ${i + 1}`);
    await sendBurst(A, texts);
    await incoming(B, 'rapid 20').waitFor();
    await allDelivered(A, 21);
    const expected = ['start', ...texts];
    assert.deepEqual(await threadTexts(B), expected.map((t) => `< ${t}`), 'the receiver sees send order');
    assert.deepEqual(await threadTexts(A), expected.map((t) => `> ${t}`), 'the sender sees send order');

    await A.reload();
    await waitOnline(A);
    await openConversation(A, bob.username);
    await waitState(outgoing(A, 'rapid 20'), 'delivered');
    assert.deepEqual(await threadTexts(A), expected.map((t) => `> ${t}`), 'and so after a reload');

    assertNoConsoleProblems(A);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });

  it('messages typed while the gateway is down keep their order after the reconnect', T, async () => {
    const { gw, browser } = h;
    const [carol, dave, C, D] = await twoSignedIn(gw, browser, 'carol', 'dave');
    await openChatWith(C, dave.username);
    await waitState(await sendMessage(C, 'before'), 'delivered');
    await openConversation(D, carol.username);
    await incoming(D, 'before').waitFor();

    await gw.kill('SIGKILL');
    await C.locator('#conn[data-state="offline"]').waitFor({ timeout: 30000 });
    const typed = ['away 1', 'away 2', 'away 3', 'away 4', 'away 5'];
    for (const t of typed) await sendMessage(C, t);
    await gw.startAgain();
    await waitOnline(C, 60000);
    await waitOnline(D, 60000);
    await incoming(D, 'away 5').waitFor({ timeout: 30000 });
    await allDelivered(C, 6);

    const expected = ['before', ...typed];
    assert.deepEqual(await threadTexts(D), expected.map((t) => `< ${t}`), 'the receiver sees send order');
    assert.deepEqual(await threadTexts(C), expected.map((t) => `> ${t}`), 'the sender sees send order');

    assertNoConsoleProblems(C, DOWNTIME_NOISE);
    assertNoConsoleProblems(D, DOWNTIME_NOISE);
    await C.context().close();
    await D.context().close();
  });
});
