// Issue 14, bug 3: when the network goes away the page says so at once
// (the browser's offline event), not 20-30 s later when the STOMP
// heart-beats finally time out; the contact's "online" is not shown while
// this page is offline; a message typed meanwhile waits, and everything
// goes on once the network is back (the online event reconnects at once).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn, useWebEnv, openChatWith, openConversation, sendMessage, waitState, incoming,
  assertNoConsoleProblems, waitOnline, until, DOWNTIME_NOISE,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

describe('the network goes away', () => {
  const h = useWebEnv('e2e-offline');

  it('shows Offline at once, and comes back online with the network', T, async () => {
    const { gw, browser } = h;
    const [alice, bob, A, B] = await twoSignedIn(gw, browser, 'alice', 'bob');
    await openChatWith(A, bob.username);
    await waitState(await sendMessage(A, 'still here'), 'delivered');
    await until(async () => (await A.locator('#thread-sub').textContent()) === 'online',
      { timeout: 20000, what: 'bob shown online' });

    await A.context().setOffline(true);
    // "at once": well within one heart-beat interval (10 s)
    await A.locator('#conn[data-state="offline"]').waitFor({ timeout: 5000 });
    assert.match(await A.locator('#conn-text').textContent(), /Offline/);
    assert.notEqual(await A.locator('#thread-sub').textContent(), 'online', 'no stale "online" for the contact');
    assert.match(await A.locator('#thread-sub').textContent(), /Offline/);
    assert.equal(await A.locator('#conn-banner').isVisible(), true);

    const typed = await sendMessage(A, 'typed without a network');
    assert.notEqual(await typed.getAttribute('data-state'), 'delivered');

    await A.context().setOffline(false);
    await waitOnline(A, 30000);
    await waitState(typed, 'delivered', 30000);
    await openConversation(B, alice.username);
    await incoming(B, 'typed without a network').waitFor();
    await sendMessage(B, 'welcome back');
    await incoming(A, 'welcome back').waitFor();

    assertNoConsoleProblems(A, [...DOWNTIME_NOISE, /ERR_INTERNET_DISCONNECTED/]);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });
});
