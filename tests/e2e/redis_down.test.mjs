// A send while Redis is down: the gateway cannot store it, so it answers
// 503 (or nothing in time) and the page shows the red exclamation mark
// ("Resend"). Once Redis is back, Resend sends the same msgID again: it
// succeeds, gets its tick, and the receiver sees it exactly once, also
// after a reload (dedupe by chatID, sync from the stored key).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn, useWebEnv, openChatWith, openConversation, sendMessage, waitState, incoming,
  threadTexts, assertNoConsoleProblems, shot, waitOnline, until, httpRequest, DOWNTIME_NOISE,
} from './lib/e2e.mjs';

const T = { timeout: 180000 };

describe('web client while Redis is down', () => {
  const h = useWebEnv('e2e-redis-down');

  it('shows the red mark, resends with the same msgID once Redis is back, delivered once', T, async () => {
    const { env, gw, browser } = h;
    const [alice, bob, A, B] = await twoSignedIn(gw, browser, 'alice', 'bob');
    await openChatWith(A, bob.username);
    await waitState(await sendMessage(A, 'Redis is up'), 'delivered');
    await openConversation(B, alice.username);
    await incoming(B, 'Redis is up').waitFor();

    await env.redis.kill('SIGKILL');
    await until(async () => (await httpRequest(gw.url('/readyz'))).status === 503,
      { timeout: 15000, what: 'readyz 503 once Redis is gone' });

    const li = await sendMessage(A, 'sent while Redis is down');
    const msgID = await li.getAttribute('data-msgid');
    assert.match(msgID, /^[0-9a-f]{40}$/);
    await waitState(li, 'failed', 20000);
    const resend = li.getByRole('button', { name: 'Resend' });
    await resend.waitFor();
    await shot(A, 'desktop-failed');
    assert.equal(await incoming(B, 'sent while Redis is down').count(), 0);

    await env.redis.start();
    await until(async () => (await httpRequest(gw.url('/readyz'))).status === 200,
      { timeout: 30000, what: 'readyz 200 once Redis is back' });
    await waitOnline(A, 45000);

    await resend.click();
    await waitState(li, 'delivered', 20000);
    assert.equal(await li.getAttribute('data-msgid'), msgID, 'resent with the same msgID');
    assert.equal(await li.getByRole('button', { name: 'Resend' }).count(), 0);
    await incoming(B, 'sent while Redis is down').waitFor();

    // exactly once, now and after a reload of the receiver's page
    await B.waitForTimeout(1500);
    const expected = ['< Redis is up', '< sent while Redis is down'];
    assert.deepEqual(await threadTexts(B), expected);
    await B.reload();
    await waitOnline(B);
    await openConversation(B, alice.username);
    await B.waitForTimeout(1500);
    assert.deepEqual(await threadTexts(B), expected);

    // the conversation goes on
    await sendMessage(B, 'got it once');
    await incoming(A, 'got it once').waitFor();

    assertNoConsoleProblems(A, DOWNTIME_NOISE);
    assertNoConsoleProblems(B, DOWNTIME_NOISE);
    console.log('alice console:', A.problems, 'bob console:', B.problems);
    await A.context().close();
    await B.context().close();
  });
});
