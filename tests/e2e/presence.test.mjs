// Issue 14, bug 6: the contact's presence under the name of an open
// conversation stays current. A confirmation (✓) or a live message from
// the contact shows "online" at once, with no request; otherwise the page
// asks GET {base}/api/users/{uid} every 15 s while the conversation is
// open and the page visible (a bounded poll, not a request per message).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, openChatWith, sendMessage, waitState,
  assertNoConsoleProblems, until,
} from './lib/e2e.mjs';
import { uniqueName } from '../integration/lib/harness.mjs';

const T = { timeout: 180000 };

async function sub(page) {
  return page.locator('#thread-sub').textContent();
}

describe('presence of the open conversation', () => {
  const h = useWebEnv('e2e-presence');

  it('follows the contact: online on a ✓, then offline and online again by the poll', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const bob = { username: uniqueName('bob'), password: 'bob-password-1' };
    await gw.register(bob.username, bob.password);

    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);
    let userRequests = 0;
    A.on('request', (r) => { if (/\/api\/users\//.test(r.url())) userRequests++; });
    await openChatWith(A, bob.username);
    await until(async () => (await sub(A)) === 'offline', { timeout: 15000, what: 'bob offline' });
    const li = await sendMessage(A, 'ping me when you are back');
    await waitState(li, 'sent');

    // bob logs in: his page confirms, alice gets the ✓ and sees him online
    const B = await openPage(browser, gw, { name: 'bob' });
    await login(B, bob);
    await waitState(li, 'delivered', 20000);
    await until(async () => (await sub(A)) === 'online',
      { timeout: 3000, what: '"online" with the ✓ (no poll needed)' });

    // bob leaves: the poll notices within one period
    await B.context().close();
    await until(async () => (await sub(A)) === 'offline', { timeout: 45000, interval: 250, what: 'bob offline again' });

    // bob is back (a native client this time, sending nothing): the poll again
    const Bn = await gw.stomp({ ...bob, token: (await gw.login(bob.username, bob.password)).json.token });
    await until(async () => (await sub(A)) === 'online', { timeout: 45000, interval: 250, what: 'bob online again' });

    // cheap: a handful of requests over the whole test, not one per message
    assert.ok(userRequests <= 12, `${userRequests} presence requests`);

    assertNoConsoleProblems(A);
    await A.context().close();
    await Bn.close();
  });
});
