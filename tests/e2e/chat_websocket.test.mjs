// The web client over plain WebSocket: register, log in, find a contact by
// name and by uid, chat both ways with "sending" -> sent -> ✓ delivered,
// unread counts, reload (history from localStorage, no duplicates), a
// message to an offline user that shows up when they log in, and the phone
// layout (list and thread as two screens). Screenshots of each main screen.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, register, openChatWith, openConversation, sendMessage,
  waitState, incoming, outgoing, threadTexts, conversationButton, assertNoConsoleProblems,
  shot, waitOnline, PHONE, until,
} from './lib/e2e.mjs';
import { uniqueName } from '../integration/lib/harness.mjs';

const T = { timeout: 120000 };

describe('web client over WebSocket', () => {
  const h = useWebEnv('e2e-websocket');

  it('two users chat both ways; ticks, unread counts, reload', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const bob = { username: uniqueName('bob'), password: 'bob-password-1' };

    const A = await openPage(browser, gw, { name: 'alice' });
    const B = await openPage(browser, gw, { name: 'bob' });
    await shot(B, 'desktop-login');

    // bob creates his account in the page; alice logs in.
    await register(B, bob);
    await login(A, alice);
    assert.match(await A.locator('#conn-text').textContent(), /Online · WebSocket/);
    assert.equal(await A.locator('#me-name').textContent(), alice.username);
    await shot(A, 'desktop-empty');

    // alice finds bob by name and writes.
    await openChatWith(A, bob.username);
    const first = await sendMessage(A, 'Hi Bob! 👋');
    // sending -> sent (200) -> delivered (bob's page confirmed it)
    await waitState(first, 'delivered');
    assert.equal(await first.getByRole('img', { name: 'delivered' }).count(), 1);

    // bob: a conversation with one unread message, not yet opened.
    const conv = conversationButton(B, alice.username);
    await conv.waitFor();
    await until(async () => (await conv.locator('.badge').textContent().catch(() => '')) === '1',
      { what: 'unread badge 1' });
    assert.match(await B.title(), /^\(1\) chatgate$/);
    await openConversation(B, alice.username);
    await incoming(B, 'Hi Bob! 👋').waitFor();
    assert.equal(await conv.locator('.badge').count(), 0, 'opening the thread clears the unread count');

    // bob answers (two lines), alice sees it.
    const reply = await sendMessage(B, 'Hello Alice.\nAll good here.');
    await waitState(reply, 'delivered');
    await incoming(A, 'Hello Alice.\nAll good here.').waitFor();

    // a few more both ways, in order.
    for (let i = 1; i <= 3; i++) {
      await sendMessage(A, `ping ${i}`);
      await incoming(B, `ping ${i}`).waitFor();
      await sendMessage(B, `pong ${i}`);
      await incoming(A, `pong ${i}`).waitFor();
    }
    const expected = ['> Hi Bob! 👋', '< Hello Alice.\nAll good here.',
      '> ping 1', '< pong 1', '> ping 2', '< pong 2', '> ping 3', '< pong 3'];
    await until(async () => JSON.stringify(await threadTexts(A)) === JSON.stringify(expected),
      { what: 'alice thread in order' });
    assert.deepEqual(await threadTexts(B), expected.map((t) => (t[0] === '>' ? `<${t.slice(1)}` : `>${t.slice(1)}`)));
    for (const t of ['ping 1', 'ping 2', 'ping 3']) await waitState(outgoing(A, t), 'delivered');
    await shot(A, 'desktop-thread');

    // find by uid opens the same conversation.
    const bobUid = (await gw.api('GET', `/api/users/${bob.username}`, undefined, alice.token)).json.uid;
    await openChatWith(A, String(bobUid), bob.username);
    assert.equal(await A.locator('#conv-list button.conv').count(), 1);

    // reload: still logged in (sessionStorage), history from localStorage,
    // and the sync after reconnect adds no duplicate.
    await B.reload();
    await waitOnline(B);
    await openConversation(B, alice.username);
    await B.waitForTimeout(1000);
    assert.deepEqual(await threadTexts(B), expected.map((t) => (t[0] === '>' ? `<${t.slice(1)}` : `>${t.slice(1)}`)));

    // log out from the settings dialog
    await B.getByRole('button', { name: 'Settings' }).click();
    await B.getByRole('button', { name: 'Log out' }).click();
    await B.getByRole('button', { name: 'Log in' }).waitFor();

    assertNoConsoleProblems(A);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });

  it('a message sent to an offline user shows up when they log in', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const carol = await gw.newUser('carol');
    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);
    await openChatWith(A, carol.username);
    const li = await sendMessage(A, 'Are you there, Carol?');
    await waitState(li, 'sent');               // stored: 200, but nobody confirmed it
    const li2 = await sendMessage(A, 'Call me when you are back.');
    await waitState(li2, 'sent');
    await A.waitForTimeout(500);
    assert.equal(await li.getAttribute('data-state'), 'sent');

    const C = await openPage(browser, gw, { name: 'carol' });
    await login(C, carol);
    const conv = conversationButton(C, alice.username);
    await conv.waitFor();
    await until(async () => (await conv.locator('.badge').textContent().catch(() => '')) === '2',
      { what: 'unread badge 2' });
    await openConversation(C, alice.username);
    assert.deepEqual(await threadTexts(C), ['< Are you there, Carol?', '< Call me when you are back.']);
    // ... and alice gets her ticks.
    await waitState(li, 'delivered');
    await waitState(li2, 'delivered');

    assertNoConsoleProblems(A);
    assertNoConsoleProblems(C);
    await A.context().close();
    await C.context().close();
  });

  it('phone width: the list and the thread are two screens', T, async () => {
    const { gw, browser } = h;
    const dan = await gw.newUser('dan');
    const erin = await gw.newUser('erin');
    const D = await openPage(browser, gw, { name: 'dan-phone', viewport: PHONE, phone: true });
    await shot(D, 'phone-login');
    await login(D, dan);
    const E = await openPage(browser, gw, { name: 'erin' });
    await login(E, erin);
    await openChatWith(E, dan.username);
    await sendMessage(E, 'Lunch at noon?');

    const conv = conversationButton(D, erin.username);
    await conv.waitFor();
    assert.equal(await D.locator('#thread').isVisible(), false, 'the thread is its own screen');
    await shot(D, 'phone-list');
    await conv.click();
    await incoming(D, 'Lunch at noon?').waitFor();
    assert.equal(await D.locator('.sidebar').isVisible(), false, 'the list is hidden behind the thread');
    const li = await sendMessage(D, 'Sure, see you there.');
    await waitState(li, 'delivered');
    await incoming(E, 'Sure, see you there.').waitFor();
    await shot(D, 'phone-thread');
    await D.getByRole('button', { name: 'Back to conversations' }).click();
    await conv.waitFor({ state: 'visible' });
    assert.equal(await D.locator('#thread').isVisible(), false);

    assertNoConsoleProblems(D);
    assertNoConsoleProblems(E);
    await D.context().close();
    await E.context().close();
  });
});
