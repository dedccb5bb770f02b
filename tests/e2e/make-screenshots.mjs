// Makes the two screenshots of the README (docs/screenshot-desktop.png,
// 1280x800, and docs/screenshot-phone.png, 390x844) from a real run: a
// private redis-server and gateway, two browser pages, a few node clients.
// Not a test (CTest runs *.test.mjs only); run it by hand after a build:
//
//   node tests/e2e/make-screenshots.mjs [outdir]     (default: docs/)
//
// CHATGATE_BIN / CHATGATE_WEB_ROOT as for the tests (default: the newest
// build/*/gateway/chatgate and its build tree's web/).
import path from 'node:path';

import { Env } from '../integration/lib/harness.mjs';
import {
  REPO_ROOT, startWebGateway, launchBrowser, openPage, login, openChatWith, openConversation,
  sendMessage, waitState, incoming, conversationButton, until, httpRequest, DESKTOP, PHONE,
} from './lib/e2e.mjs';

const out = path.resolve(process.argv[2] || path.join(REPO_ROOT, 'docs'));
const PASSWORD = 'demo-password-1';

const env = new Env('screenshots');
await env.init();
let browser;
try {
  const gw = await startWebGateway(env);
  browser = await launchBrowser();
  const users = {};
  for (const name of ['alice', 'bob', 'carol', 'dave']) {
    const r = await gw.register(name, PASSWORD);
    const l = await gw.login(name, PASSWORD);
    users[name] = { uid: r.json.uid, username: name, password: PASSWORD, token: l.json.token };
  }
  const { alice, bob, carol, dave } = users;

  // dave wrote to alice earlier (she reads it), carol writes later (unread).
  const D = await gw.stomp(dave);
  await D.chat(alice, 'Thanks again for the help with the deploy!');
  await D.chat(alice, 'Coffee is on me on Friday.');

  const A = await openPage(browser, gw, { name: 'alice', viewport: DESKTOP });
  const B = await openPage(browser, gw, { name: 'bob', viewport: PHONE, phone: true });
  await login(A, alice);
  await login(B, bob);
  await conversationButton(A, 'dave').waitFor();
  await openConversation(A, 'dave');
  await sendMessage(A, 'Deal, see you then!');

  await openChatWith(A, 'bob');
  const talk = [
    ['A', 'Hi Bob! Are we still on for the design review at 3?'],
    ['B', 'Yes! I’ll bring the new mock-ups.'],
    ['A', 'Great. Could you add them to https://wiki.example.com/design-review beforehand?'],
    ['B', 'Sure, give me ten minutes.\nStill polishing the phone layout.'],
    ['A', 'No rush. See you at 3!'],
  ];
  for (const [who, text] of talk) {
    if (who === 'A') {
      await waitState(await sendMessage(A, text), 'delivered');
      if (!(await B.locator('#thread-view').isVisible())) await openConversation(B, 'alice');
      await incoming(B, text).waitFor();
    } else {
      await waitState(await sendMessage(B, text), 'delivered');
      await incoming(A, text).waitFor();
    }
  }

  const C = await gw.stomp(carol);
  await C.chat(alice, 'Lunch tomorrow?');
  await C.chat(alice, 'The new noodle place on 5th?');
  await until(async () => (await conversationButton(A, 'carol').locator('.badge').textContent().catch(() => '')) === '2',
    { what: 'carol unread 2' });
  await A.locator('#composer-input').blur();
  await A.mouse.move(0, 0);
  await A.screenshot({ path: path.join(out, 'screenshot-desktop.png') });

  // bob on his phone: a message sent while Redis is down waits for Resend.
  await env.redis.kill('SIGKILL');
  await until(async () => (await httpRequest(gw.url('/readyz'))).status === 503, { what: 'readyz 503' });
  const failed = await sendMessage(B, 'On my way, 5 min late');
  await waitState(failed, 'failed', 20000);
  await B.locator('#composer-input').blur();
  await B.screenshot({ path: path.join(out, 'screenshot-phone.png') });
  await env.redis.start();

  console.log(`wrote ${out}/screenshot-desktop.png and ${out}/screenshot-phone.png`);
  await D.close();
  await C.close();
} finally {
  await browser?.close();
  await env.close();
}
