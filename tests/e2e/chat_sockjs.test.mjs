// The web client over SockJS ({base}/socketServer, sockjs-client 1.x):
// chosen on the login screen, switched to from WebSocket in the settings
// dialog of a running page (it reconnects at once), and chosen by itself
// ("Automatic") when plain WebSockets to {base}/client are blocked while
// the server answers HTTP. Users chat both ways with the same guarantees
// as over WebSocket.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn,
  useWebEnv, openPage, login, openChatWith, openConversation, sendMessage,
  waitState, incoming, threadTexts, conversationButton, assertNoConsoleProblems,
  shot, waitOnline, until,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

async function transportOf(page) {
  return page.locator('#conn').getAttribute('data-transport');
}

describe('web client over SockJS', () => {
  const h = useWebEnv('e2e-sockjs');

  it('two users chosen SockJS on the login screen chat both ways', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const A = await openPage(browser, gw, { name: 'alice' });
    const B = await openPage(browser, gw, { name: 'bob' });
    await login(A, alice, { transport: 'sockjs' });
    await login(B, bob, { transport: 'sockjs' });
    assert.equal(await transportOf(A), 'sockjs');
    assert.equal(await transportOf(B), 'sockjs');
    assert.match(await A.locator('#conn-text').textContent(), /Online · SockJS/);

    await openChatWith(A, bob.username);
    const m1 = await sendMessage(A, 'Over SockJS, hello!');
    await waitState(m1, 'delivered');
    await conversationButton(B, alice.username).waitFor();
    await openConversation(B, alice.username);
    await incoming(B, 'Over SockJS, hello!').waitFor();
    const m2 = await sendMessage(B, 'Loud and clear.');
    await waitState(m2, 'delivered');
    await incoming(A, 'Loud and clear.').waitFor();
    for (let i = 1; i <= 3; i++) {
      await sendMessage(B, `sockjs ${i}`);
    }
    await incoming(A, 'sockjs 3').waitFor();
    assert.deepEqual(await threadTexts(A),
      ['> Over SockJS, hello!', '< Loud and clear.', '< sockjs 1', '< sockjs 2', '< sockjs 3']);
    await shot(A, 'desktop-sockjs');

    // the choice is remembered on this device
    await A.reload();
    await waitOnline(A);
    assert.equal(await transportOf(A), 'sockjs');

    assertNoConsoleProblems(A);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });

  it('switching to SockJS in the settings reconnects and keeps chatting', T, async () => {
    const { gw, browser } = h;
    const [carol, dave, C, D] = await twoSignedIn(gw, browser, 'carol', 'dave');
    assert.equal(await transportOf(C), 'websocket');
    await openChatWith(C, dave.username);
    await waitState(await sendMessage(C, 'first over WebSocket'), 'delivered');

    await C.getByRole('button', { name: 'Settings' }).click();
    await C.locator('#settings-transport').selectOption('sockjs');
    await until(async () => (await transportOf(C)) === 'sockjs' &&
      (await C.locator('#conn').getAttribute('data-state')) === 'online', { timeout: 20000, what: 'online over SockJS' });
    await C.getByRole('button', { name: 'Close' }).click();

    await waitState(await sendMessage(C, 'then over SockJS'), 'delivered');
    await openConversation(D, carol.username);
    await incoming(D, 'then over SockJS').waitFor();
    await sendMessage(D, 'got both');
    await incoming(C, 'got both').waitFor();
    assert.deepEqual(await threadTexts(D), ['< first over WebSocket', '< then over SockJS', '> got both']);

    assertNoConsoleProblems(C);
    assertNoConsoleProblems(D);
    await C.context().close();
    await D.context().close();
  });

  it('Automatic falls back to SockJS when WebSockets to /client are blocked', T, async () => {
    const { gw, browser } = h;
    const erin = await gw.newUser('erin');
    const frank = await gw.newUser('frank');
    const E = await openPage(browser, gw, { name: 'erin' });
    // a proxy that drops plain WebSockets to {base}/client (SockJS's own
    // websocket URL, /socketServer/.../websocket, goes through)
    let blocked = 0;
    await E.routeWebSocket(/\/client\?/, (ws) => { blocked++; ws.close({ code: 1011, reason: 'blocked' }); });
    await login(E, erin);                      // waits for "online"
    assert.equal(await transportOf(E), 'sockjs');
    assert.ok(blocked >= 2, `WebSocket tried ${blocked} times first`);
    assert.match(await E.locator('#conn-text').textContent(), /Online · SockJS/);

    const F = await openPage(browser, gw, { name: 'frank' });
    await login(F, frank);
    await openChatWith(E, frank.username);
    await waitState(await sendMessage(E, 'through the fallback'), 'delivered');
    await openConversation(F, erin.username);
    await incoming(F, 'through the fallback').waitFor();
    await sendMessage(F, 'and back');
    await incoming(E, 'and back').waitFor();

    assertNoConsoleProblems(E);
    assertNoConsoleProblems(F);
    await E.context().close();
    await F.context().close();
  });
});
