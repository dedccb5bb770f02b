// Issue 14, bug 2: changing the transport in the settings of a connected
// page reconnects once, over the new transport, and then stays connected
// (it used to tear down each new connection about every 0.75 s, for ever:
// connect() dropped the old client before it advanced its generation, so
// the old client's close counted as the current one's and scheduled a
// reconnect). Checked both ways: WebSocket -> SockJS -> WebSocket.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn, useWebEnv, openChatWith, openConversation, sendMessage, waitState, incoming,
  assertNoConsoleProblems, until,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

// The loop of the bug reconnected every 0.5-1 s; in this window it would
// open several new connections. No new connection may open in it.
const QUIET_MS = 6000;

async function switchTransport(page, to) {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('dialog', { name: 'Settings' }).getByLabel('Transport').selectOption(to);
  await until(async () => (await page.locator('#conn').getAttribute('data-transport')) === to &&
    (await page.locator('#conn').getAttribute('data-state')) === 'online',
  { timeout: 30000, what: `online over ${to}` });
  await page.getByRole('button', { name: 'Close' }).click();
}

/** Resolves the number of connections the page opened, and the connection
 * states it showed, during QUIET_MS. */
async function watchQuiet(page) {
  await page.evaluate(() => {
    window.__states = [];
    const conn = document.getElementById('conn');
    new MutationObserver(() => window.__states.push(conn.dataset.state))
      .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
  });
  let opened = 0;
  const onSocket = () => { opened++; };
  page.on('websocket', onSocket);
  // an event-based wait for a new connection; the bug makes one in < 1 s
  await page.waitForEvent('websocket', { timeout: QUIET_MS }).catch(() => {});
  page.off('websocket', onSocket);
  const states = await page.evaluate(() => window.__states);
  return { opened, states };
}

describe('changing the transport in the settings', () => {
  const h = useWebEnv('e2e-transport-switch');

  it('reconnects once over the new transport, then stays connected', T, async () => {
    const { gw, browser } = h;
    const [carol, dave, C, D] = await twoSignedIn(gw, browser, 'carol', 'dave');
    await openChatWith(C, dave.username);
    await waitState(await sendMessage(C, 'over WebSocket'), 'delivered');
    await openConversation(D, carol.username);

    for (const [to, text] of [['sockjs', 'then over SockJS'], ['websocket', 'back on WebSocket']]) {
      await switchTransport(C, to);
      const quiet = await watchQuiet(C);
      assert.equal(quiet.opened, 0, `no new connection after the switch to ${to} (states: ${quiet.states.join(' ')})`);
      assert.deepEqual(quiet.states, [], `the page stayed online over ${to}`);
      assert.match(await C.locator('#conn-text').textContent(), to === 'sockjs' ? /Online · SockJS/ : /Online · WebSocket/);
      await waitState(await sendMessage(C, text), 'delivered');
      await incoming(D, text).waitFor();
    }

    assertNoConsoleProblems(C);
    assertNoConsoleProblems(D);
    await C.context().close();
    await D.context().close();
  });
});
