// Issue 14, bug 7: Find no longer leaves an empty conversation ("No
// messages yet") behind for ever. The conversation Find opens is listed
// while it is open; left without a message, it goes away, and nothing
// empty is stored (a reload lists none). Once a message is in it, it stays.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, openChatWith, sendMessage, waitState, conversationNames,
  assertNoConsoleProblems, waitOnline, until, PHONE,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

describe('conversations opened by Find', () => {
  const h = useWebEnv('e2e-empty-convs');

  it('an empty conversation goes away when left; one with a message stays', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const carol = await gw.newUser('carol');
    const dave = await gw.newUser('dave');
    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);

    await openChatWith(A, bob.username);
    assert.deepEqual(await conversationNames(A), [bob.username], 'the open conversation is listed');
    await openChatWith(A, carol.username);
    await openChatWith(A, dave.username);
    assert.deepEqual(await conversationNames(A), [dave.username], 'only the open one, not bob and carol');

    await waitState(await sendMessage(A, 'hi Dave'), 'sent');
    await openChatWith(A, carol.username);
    assert.deepEqual(await conversationNames(A), [carol.username, dave.username]);

    await A.reload();
    await waitOnline(A);
    assert.deepEqual(await conversationNames(A), [dave.username], 'nothing empty was stored');

    assertNoConsoleProblems(A);
    await A.context().close();
  });

  it('on a phone, Back from an empty conversation removes it', T, async () => {
    const { gw, browser } = h;
    const erin = await gw.newUser('erin');
    const frank = await gw.newUser('frank');
    const E = await openPage(browser, gw, { name: 'erin-phone', viewport: PHONE, phone: true });
    await login(E, erin);
    await openChatWith(E, frank.username);
    await E.getByRole('button', { name: 'Back to conversations' }).click();
    await until(async () => (await conversationNames(E)).length === 0, { what: 'no conversation left' });
    assert.equal(await E.locator('#conv-empty').isVisible(), true);
    assertNoConsoleProblems(E);
    await E.context().close();
  });
});
