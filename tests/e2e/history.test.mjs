// Issue 14, bug 5: the page keeps every message it received or sent (it
// used to keep the last 500 of a conversation), renders the newest ones
// and loads older ones as the thread scrolls up; read state is kept per
// conversation. On a new device the history the server still syncs comes
// back as read (it was confirmed on another device), while what nobody
// confirmed yet counts as unread. What the previous version of the page
// kept in localStorage is carried over.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  useWebEnv, openPage, login, openConversation, incoming, threadTexts, conversationButton,
  conversationNames, assertNoConsoleProblems, waitOnline, until, scrollUpUntil,
} from './lib/e2e.mjs';

const T = { timeout: 240000 };
const N = 650;

async function badge(page, name) {
  const b = conversationButton(page, name).locator('.badge');
  return (await b.count()) ? b.textContent() : '';
}

describe('history and read state', () => {
  // a fast sender: 650 messages are sent in a second or two
  const h = useWebEnv('e2e-history', { gatewayArgs: ['--send-rate', '5000', '--send-burst', '5000'] });

  it(`keeps all ${N} messages of a conversation, loads older ones on scroll, keeps read state`, T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const carol = await gw.newUser('carol');
    const dave = await gw.newUser('dave');
    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);

    const C = await gw.stomp(carol);
    const since = C.sendStatus.mark();
    for (let i = 1; i <= N; i++) C.sendChat(alice, `old ${i}`);
    await C.sendStatus.waitCount(N, (s) => s.json?.code === 200, 60000, { since, what: `${N} stored` });
    await C.delivered.waitCount(N, () => true, 60000, { what: `${N} confirmed by alice's page` });
    const D = await gw.stomp(dave);
    for (const t of ['unread 1', 'unread 2', 'unread 3']) await D.chat(alice, t);
    await D.delivered.waitCount(3, () => true, 30000, { what: 'dave confirmed' });

    // read carol's conversation, not dave's
    await openConversation(A, carol.username);
    await incoming(A, `old ${N}`).waitFor();
    await until(async () => (await badge(A, carol.username)) === '', { what: 'carol read' });
    assert.equal(await badge(A, dave.username), '3');

    // same device, after a reload: every message, the older ones on scroll
    await A.reload();
    await waitOnline(A);
    assert.equal(await badge(A, carol.username), '', 'carol stays read');
    assert.equal(await badge(A, dave.username), '3', 'dave stays unread');
    await openConversation(A, carol.username);
    await incoming(A, `old ${N}`).waitFor();
    const rendered = await A.locator('#messages li.msg').count();
    assert.ok(rendered < N, `not every message is rendered at once (${rendered})`);
    await scrollUpUntil(A, 'old 1', { timeout: 60000 });
    const texts = await threadTexts(A);
    assert.equal(texts.length, N);
    assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `< old ${i + 1}`));
    // scrolling up kept the reader's place: the newest message is below the view
    assert.equal(await A.locator('#message-log').evaluate((b) => b.scrollTop < b.scrollHeight - b.clientHeight - 100), true);

    assertNoConsoleProblems(A);
    await A.context().close();
    await C.close();
    await D.close();
  });

  it('on a new device the synced history is read; what nobody confirmed is unread', T, async () => {
    const { gw, browser } = h;
    const erin = await gw.newUser('erin');
    const frank = await gw.newUser('frank');
    const E = await openPage(browser, gw, { name: 'erin' });
    await login(E, erin);
    const F = await gw.stomp(frank);
    for (let i = 1; i <= 40; i++) F.sendChat(erin, `seen ${i}`);
    await F.delivered.waitCount(40, () => true, 30000, { what: "40 confirmed by erin's page" });
    await openConversation(E, frank.username);
    await incoming(E, 'seen 40').waitFor();
    await E.context().close();

    // a new device (a fresh browser context)
    const E2 = await openPage(browser, gw, { name: 'erin-2' });
    await login(E2, erin);
    const conv = conversationButton(E2, frank.username);
    await conv.waitFor({ timeout: 30000 });
    await until(async () => (await conv.locator('.conv-preview').textContent()) === 'seen 40',
      { timeout: 30000, what: 'the history synced' });
    assert.equal(await badge(E2, frank.username), '', 'old messages are not unread on a new device');
    // a message nobody confirmed yet is unread there
    await F.chat(erin, 'new one');
    await until(async () => (await badge(E2, frank.username)) === '1', { timeout: 20000, what: 'new one unread' });

    // and one that arrived for nobody: pending, unread on the next device too
    await E2.context().close();
    await F.chat(erin, 'while away');
    const E3 = await openPage(browser, gw, { name: 'erin-3' });
    await login(E3, erin);
    await until(async () => (await conversationButton(E3, frank.username).locator('.conv-preview').textContent()
      .catch(() => '')) === 'while away', { timeout: 30000, what: 'the pending message' });
    assert.equal(await badge(E3, frank.username), '1', 'only the message confirmed by no device is unread');

    assertNoConsoleProblems(E3);
    await E3.context().close();
    await F.close();
  });

  it("carries over what the previous version kept in localStorage", T, async () => {
    const { gw, browser } = h;
    const gina = await gw.newUser('gina');
    const hank = await gw.newUser('hank');
    const ivan = await gw.newUser('ivan');
    const G = await openPage(browser, gw, { name: 'gina' });
    const t0 = Date.now() - 3600000;
    // the old layout: chatgate:{base}:u:{uid}:convs, :msgs:{peer}, :seen, :syncKey
    await G.evaluate(({ me, peer, other, t0 }) => {
      const k = (...p) => ['chatgate:/', 'u', me, ...p].join(':');
      localStorage.setItem(k('convs'), JSON.stringify([
        { uid: peer.uid, username: peer.username, unread: 1, lastTime: t0 + 1000, lastText: 'and the reply', lastMine: false },
        { uid: other.uid, username: other.username, unread: 0, lastTime: t0, lastText: '', lastMine: false },
      ]));
      localStorage.setItem(k('msgs', peer.uid), JSON.stringify([
        { key: `out:${'a'.repeat(40)}`, mine: true, msgID: 'a'.repeat(40), id: 1, content: 'kept from before', time: t0, state: 'delivered' },
        { key: `in:${peer.uid}:${'b'.repeat(40)}`, mine: false, msgID: 'b'.repeat(40), id: 7, content: 'and the reply', time: t0 + 1000, state: 'received' },
      ]));
      localStorage.setItem(k('msgs', other.uid), '[]');
      localStorage.setItem(k('seen'), JSON.stringify([`${peer.uid}:${'b'.repeat(40)}`]));
      localStorage.setItem(k('syncKey'), '0');
    }, { me: gina.uid, peer: hank, other: ivan, t0 });
    await login(G, gina);
    assert.deepEqual(await conversationNames(G), [hank.username], 'the empty conversation of an old Find is not carried over');
    assert.equal(await badge(G, hank.username), '1');
    await openConversation(G, hank.username);
    assert.deepEqual(await threadTexts(G), ['> kept from before', '< and the reply']);
    await until(async () => (await G.evaluate(() => Object.keys(localStorage).filter((k) => k.includes(':u:')).length)) === 0,
      { what: 'the old keys removed once stored' });
    await G.reload();
    await waitOnline(G);
    await openConversation(G, hank.username);
    assert.deepEqual(await threadTexts(G), ['> kept from before', '< and the reply']);
    assertNoConsoleProblems(G);
    await G.context().close();
  });
});
