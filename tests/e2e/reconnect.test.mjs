// The gateway dies mid-conversation (SIGKILL) and comes back on the same
// port and Redis. The pages say they are offline and when they retry,
// reconnect by themselves (exponential backoff with jitter), and catch up:
//  - a message typed while offline is sent, with its msgID, once back;
//  - a message sent to the page's user while it was away (through a second
//    gateway node on the same Redis) arrives through init/sync;
//  - nothing is shown twice.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, startWebGateway, openPage, login, openChatWith, openConversation, sendMessage,
  waitState, incoming, outgoing, threadTexts, conversationButton, assertNoConsoleProblems,
  shot, waitOnline, until, DOWNTIME_NOISE,
} from './lib/e2e.mjs';

const T = { timeout: 180000 };

describe('web client across a gateway crash', () => {
  const h = useWebEnv('e2e-reconnect');

  it('reconnects after kill -9 + restart, resends and catches up', T, async () => {
    const { env, gw, browser } = h;
    const other = await startWebGateway(env, [], { name: 'other' });
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const carol = await gw.newUser('carol');

    const A = await openPage(browser, gw, { name: 'alice' });
    const B = await openPage(browser, gw, { name: 'bob' });
    await login(A, alice);
    await login(B, bob);
    await openChatWith(A, bob.username);
    await waitState(await sendMessage(A, 'before the crash'), 'delivered');
    await openConversation(B, alice.username);
    await incoming(B, 'before the crash').waitFor();

    // crash
    await gw.kill('SIGKILL');
    for (const p of [A, B]) {
      await p.locator('#conn[data-state="offline"]').waitFor({ timeout: 15000 });
    }
    assert.match(await A.locator('#conn-countdown').textContent(), /Retrying in \d+ s/);
    assert.equal(await A.getByRole('button', { name: 'Retry now' }).isVisible(), true);
    assert.match(await A.locator('#thread-sub').textContent(), /Offline/);

    // typed while offline: shows "sending", then the red mark once 10 s pass
    const offline = await sendMessage(A, 'typed while offline');
    assert.equal(await offline.getAttribute('data-state'), 'sending');
    assert.equal(await offline.getByRole('img', { name: 'sending' }).count(), 1);

    // carol writes to alice through the other node while alice is away
    const C = await other.stomp(carol);
    const r = await C.chat(alice, 'sent while you were away');
    assert.equal(r.code, 200);
    await shot(A, 'desktop-offline');

    await waitState(offline, 'failed', 20000);
    await offline.getByRole('button', { name: 'Resend' }).waitFor();

    // restart on the same port; the pages come back by themselves
    await gw.startAgain();
    await waitOnline(A, 45000);
    await waitOnline(B, 45000);

    // the unconfirmed message went again, with the same msgID, by itself
    await waitState(offline, 'delivered', 20000);
    await incoming(B, 'typed while offline').waitFor();
    // carol's message came through init/sync
    await conversationButton(A, carol.username).waitFor();
    await openConversation(A, carol.username);
    await incoming(A, 'sent while you were away').waitFor();
    await C.delivered.waitFor((d) => d.json?.msgID === r.msgID, 10000);

    // chatting goes on, nothing twice
    await openConversation(A, bob.username);
    await sendMessage(B, 'welcome back');
    await incoming(A, 'welcome back').waitFor();
    await A.waitForTimeout(1000);
    assert.deepEqual(await threadTexts(B), ['< before the crash', '< typed while offline', '> welcome back']);
    assert.deepEqual(await threadTexts(A), ['> before the crash', '> typed while offline', '< welcome back']);
    assert.equal(await outgoing(A, 'typed while offline').count(), 1);

    // while the gateway was down the browser itself logs failed connections
    assertNoConsoleProblems(A, DOWNTIME_NOISE);
    assertNoConsoleProblems(B, DOWNTIME_NOISE);
    await A.context().close();
    await B.context().close();
    await C.close();
  });
});
