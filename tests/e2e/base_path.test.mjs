// The page under a context path (--base-path /Mimi, the original URLs):
// it derives {base} from the URL it was loaded from, so the API, the
// WebSocket and the libraries resolve under /Mimi. Opening "/Mimi" without
// the slash works too.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, openChatWith, openConversation, sendMessage,
  waitState, incoming, assertNoConsoleProblems,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

describe('web client under --base-path /Mimi', () => {
  const h = useWebEnv('e2e-base-path', { gatewayArgs: ['--base-path', '/Mimi'] });

  it('loads from /Mimi and /Mimi/, logs in and chats', T, async () => {
    const { gw, browser } = h;
    assert.equal(gw.basePath, '/Mimi');
    const alice = await gw.newUser('alice');
    const bob = await gw.newUser('bob');
    const A = await openPage(browser, gw, { name: 'alice', path: '' });       // .../Mimi
    assert.equal(new URL(A.url()).pathname, '/Mimi/');
    const B = await openPage(browser, gw, { name: 'bob', path: '/' });        // .../Mimi/
    await login(A, alice);
    await login(B, bob);
    await openChatWith(A, bob.username);
    await waitState(await sendMessage(A, 'hello from /Mimi'), 'delivered');
    await openConversation(B, alice.username);
    await incoming(B, 'hello from /Mimi').waitFor();
    await sendMessage(B, 'hello back');
    await incoming(A, 'hello back').waitFor();
    assertNoConsoleProblems(A);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });
});
