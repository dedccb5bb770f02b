// Issue 14, bug 8: after logging in the focus is in the conversation
// search; http(s) links in messages are clickable, opening in a new tab
// with rel="noopener noreferrer", and nothing else becomes a link (no
// javascript:, no markup): the rest stays plain text, exactly as sent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  twoSignedIn,
  useWebEnv, openPage, login, openChatWith, openConversation, sendMessage,
  waitState, incoming, outgoing, assertNoConsoleProblems, waitOnline,
} from './lib/e2e.mjs';

const T = { timeout: 120000 };

const TEXT = 'Docs: https://example.com/docs?a=1&b=2. See (http://example.org/wiki/Foo_(bar)), '
  + 'not javascript:alert(1) nor JaVaScRiPt:alert(2)//http://x or <a href="javascript:alert(3)">x</a> '
  + 'or <b>bold</b> or ftp://example.net/file or data:text/html,hi; '
  + 'end: https://example.com/path#frag!';

const LINKS = [
  ['https://example.com/docs?a=1&b=2', 'https://example.com/docs?a=1&b=2'],
  ['http://example.org/wiki/Foo_(bar)', 'http://example.org/wiki/Foo_(bar)'],
  ['http://x/', 'http://x'],
  ['https://example.com/path#frag', 'https://example.com/path#frag'],
];

async function bubbleLinks(li) {
  return li.locator('.bubble a').evaluateAll((as) => as.map((a) => ({
    href: a.href, text: a.textContent, rel: a.rel, target: a.target,
  })));
}

describe('focus after login, links in messages', () => {
  const h = useWebEnv('e2e-focus-links');

  it('focus lands in the conversation search after logging in', T, async () => {
    const { gw, browser } = h;
    const alice = await gw.newUser('alice');
    const A = await openPage(browser, gw, { name: 'alice' });
    await login(A, alice);
    assert.equal(await A.evaluate(() => document.activeElement?.id), 'find-input');
    // the label a screen reader announces with it
    assert.equal(await A.getByLabel('Find a contact by name or uid').evaluate((e) => e === document.activeElement), true);
    await A.reload();
    await waitOnline(A);
    assert.equal(await A.evaluate(() => document.activeElement?.id), 'find-input', 'also when the session resumes');
    assertNoConsoleProblems(A);
    await A.context().close();
  });

  it('http(s) links are clickable and safe; the rest stays plain text', T, async () => {
    const { gw, browser } = h;
    const [alice, bob, A, B] = await twoSignedIn(gw, browser, 'alice', 'bob');
    await openChatWith(A, bob.username);
    const mine = await sendMessage(A, TEXT);
    await waitState(mine, 'delivered');
    await openConversation(B, alice.username);
    const theirs = incoming(B, TEXT);
    await theirs.waitFor();

    for (const li of [mine, theirs]) {
      assert.equal(await li.locator('.bubble').textContent(), TEXT, 'the text is unchanged');
      const links = await bubbleLinks(li);
      assert.deepEqual(links.map((l) => [l.href, l.text]), LINKS);
      for (const l of links) {
        assert.equal(l.rel, 'noopener noreferrer');
        assert.equal(l.target, '_blank');
        assert.match(l.href, /^https?:\/\//);
      }
      assert.equal(await li.locator('.bubble b, .bubble [href^="javascript" i], .bubble [onclick]').count(), 0);
    }

    // a click opens the link in a new tab (no navigation of the chat itself)
    const [popup] = await Promise.all([
      B.context().waitForEvent('page'),
      theirs.locator('.bubble a').first().click(),
    ]);
    assert.equal(B.url(), gw.url('/'));
    await popup.close();
    assert.equal(await outgoing(A, TEXT).count(), 1);

    assertNoConsoleProblems(A);
    assertNoConsoleProblems(B);
    await A.context().close();
    await B.context().close();
  });
});
