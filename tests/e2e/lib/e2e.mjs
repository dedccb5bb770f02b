// e2e.mjs - the web client (web/) in a real Chromium, against the real
// gateway and a real redis-server (tests/integration/lib/harness.mjs).
//
// playwright-core drives Debian's Chromium (/usr/bin/chromium, installed by
// .ci/deps.sh); nothing is downloaded. Each test file starts its own Env
// (redis-server + gateway on free ports) and its own browser.
//
// Environment (CTest sets them; see tests/e2e/CMakeLists.txt):
//   CHATGATE_BIN              the gateway binary (as for the integration tests)
//   CHATGATE_WEB_ROOT         the built web client (default: the binary's
//                             build tree, <build>/web)
//   CHROMIUM                  the browser (default /usr/bin/chromium)
//   CHATGATE_E2E_SCREENSHOTS  where screenshots go (default build/e2e-screenshots)
//   CHATGATE_E2E_HEADFUL=1    show the browser (needs a display)
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { before, after, afterEach } from 'node:test';
import { chromium } from 'playwright-core';

import {
  Env, Gateway, REPO_ROOT, gatewayBinary, sleep, until, httpRequest,
} from '../../integration/lib/harness.mjs';

export { sleep, until, httpRequest, REPO_ROOT };

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function webRoot() {
  if (process.env.CHATGATE_WEB_ROOT) return process.env.CHATGATE_WEB_ROOT;
  return path.resolve(path.dirname(gatewayBinary()), '..', 'web');
}

export function screenshotDir() {
  const d = process.env.CHATGATE_E2E_SCREENSHOTS || path.join(REPO_ROOT, 'build', 'e2e-screenshots');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`${executablePath} not found: apt-get install chromium (.ci/deps.sh does it)`);
  }
  const args = process.env.CHATGATE_E2E_HEADFUL
    ? CHROMIUM_ARGS.filter((a) => !a.startsWith('--headless')) : CHROMIUM_ARGS;
  return chromium.launch({ executablePath, args, headless: !process.env.CHATGATE_E2E_HEADFUL });
}

/**
 * A gateway that comes back on the same port when restarted, so a page
 * loaded from it can reconnect (the harness picks a new port each start).
 */
export class PinnedGateway extends Gateway {
  get port() { return this._port; }
  set port(v) { if (this.pinnedPort == null) this._port = v; }

  /** SIGKILL (a crash), then start again on the same port and Redis. */
  async crashAndRestart({ downMs = 0 } = {}) {
    await this.kill('SIGKILL');
    if (downMs) await sleep(downMs);
    await this.startAgain();
  }

  async startAgain() {
    this.pinnedPort = this._port;
    try {
      for (let i = 0; ; i++) {
        try {
          await this.start();
          return this;
        } catch (e) {
          if (i >= 20 || !/in use|bind/i.test(e.message)) throw e;
          await sleep(500);
        }
      }
    } finally {
      this.pinnedPort = null;
    }
  }
}

/**
 * Declares the hooks of a test file: an Env with one PinnedGateway serving
 * the built web client (plus `gatewayArgs`), a browser, and after each test
 * the harness checks (crash, sanitizer report). Returns a holder
 * {env, gw, browser} filled in by `before`.
 */
export function useWebEnv(name, { gatewayArgs = [] } = {}) {
  const h = { env: null, gw: null, browser: null, pages: [] };
  before(async () => {
    h.env = new Env(name);
    await h.env.init();
    h.gw = await startWebGateway(h.env, gatewayArgs);
    h.browser = await launchBrowser();
  });
  afterEach(() => { h.env?.check(); });
  after(async () => {
    await h.browser?.close().catch(() => {});
    if (h.env) await h.env.close();
  });
  return h;
}

export async function startWebGateway(env, args = [], { name } = {}) {
  const gw = new PinnedGateway(env, {
    name: name || `gw${env.gateways.length}`,
    args: ['--web-root', webRoot(), ...args],
    redisUrl: env.redis.url,
  });
  env.gateways.push(gw);
  await gw.start();
  return gw;
}

/* ------------------------------------------------------------------ */
/* pages                                                               */
/* ------------------------------------------------------------------ */

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A fresh browser context (its own localStorage and sessionStorage: one
 * device) with one page at the gateway's {base}/. Console errors and
 * warnings, page errors and failed requests are collected in page.problems.
 */
export async function openPage(browser, gw, { viewport = DESKTOP, phone = false, path: p = '/', name = 'page' } = {}) {
  const context = await browser.newContext({
    viewport,
    deviceScaleFactor: phone ? 2 : 1,
    isMobile: phone,
    hasTouch: phone,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const page = await context.newPage();
  page.label = name;
  page.problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') page.problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(15000);
  await page.goto(gw.url(p));
  await page.waitForLoadState('load');
  return page;
}

/**
 * Asserts the page logged no error or warning. `allow` lists regexps of
 * messages expected in this scenario (e.g. the browser's own "WebSocket
 * connection failed" while the gateway is down on purpose).
 */
export function assertNoConsoleProblems(page, allow = []) {
  const bad = page.problems.filter((p) => !allow.some((re) => re.test(p)));
  assert.deepEqual(bad, [], `${page.label}: console problems`);
}

/** Network noise a browser prints while the server is down on purpose. */
export const DOWNTIME_NOISE = [
  /WebSocket connection to .* failed/i,
  /Failed to load resource: net::ERR_CONNECTION_(REFUSED|RESET|CLOSED)/i,
  // a connection the kernel had accepted for the process being killed, and
  // reset with it: Chromium's ENOTCONN (seen once in CI's e2e/order)
  /Failed to load resource: net::ERR_SOCKET_NOT_CONNECTED/i,
  /Failed to load resource: the server responded with a status of 503/i,
];

export async function shot(page, name) {
  const file = path.join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/* ------------------------------------------------------------------ */
/* what a user does                                                    */
/* ------------------------------------------------------------------ */

export async function fillLogin(page, user) {
  await page.getByLabel('Username').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
}

export async function login(page, user, { transport } = {}) {
  if (transport) {
    await page.getByText('Connection settings').click();
    await page.locator('#login-transport').selectOption(transport);
  }
  await fillLogin(page, user);
  await page.getByRole('button', { name: 'Log in' }).click();
  await waitOnline(page);
}

/**
 * Two new users, each on a page of its own, both logged in: what most
 * scenarios start from. Resolves [userA, userB, pageA, pageB]; the pages'
 * labels are the names given.
 */
export async function twoSignedIn(gw, browser, nameA, nameB) {
  const a = await gw.newUser(nameA);
  const b = await gw.newUser(nameB);
  const A = await openPage(browser, gw, { name: nameA });
  const B = await openPage(browser, gw, { name: nameB });
  await login(A, a);
  await login(B, b);
  return [a, b, A, B];
}

export async function register(page, user) {
  await fillLogin(page, user);
  await page.getByRole('button', { name: 'Create account' }).click();
  await waitOnline(page);
}

export async function waitOnline(page, timeout = 20000) {
  await page.locator('#conn[data-state="online"]').waitFor({ timeout });
}

/** Find a contact by name or uid; the thread with them opens. */
export async function openChatWith(page, nameOrUid, expectName = String(nameOrUid)) {
  await page.getByLabel('Find a contact by name or uid').fill(String(nameOrUid));
  await page.getByRole('button', { name: 'Find' }).click();
  await assertThreadTitle(page, expectName);
}

export async function assertThreadTitle(page, name) {
  await page.locator('#thread-title', { hasText: name }).waitFor();
  assert.equal(await page.locator('#thread-title').textContent(), name);
}

/** Opens an existing conversation from the list. */
export async function openConversation(page, name) {
  await page.locator('#conv-list button.conv', { has: page.locator('.conv-name', { hasText: name }) }).click();
  await assertThreadTitle(page, name);
}

export function conversationButton(page, name) {
  return page.locator('#conv-list button.conv', { has: page.locator('.conv-name').getByText(name, { exact: true }) });
}

/** Types text into the composer and presses Enter; returns its <li>. */
export async function sendMessage(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  const li = outgoing(page, text);
  await li.waitFor();
  return li;
}

export function outgoing(page, text) {
  return page.locator('#messages li.msg.out').filter({ has: page.getByText(text, { exact: true }) });
}

export function incoming(page, text) {
  return page.locator('#messages li.msg.in').filter({ has: page.getByText(text, { exact: true }) });
}

/** Waits until the <li> of an outgoing message shows state (sent, delivered, failed, sending). */
export async function waitState(li, state, timeout = 15000) {
  await until(async () => (await li.getAttribute('data-state')) === state,
    { timeout, what: `message state ${state}` });
}

/** The thread's text in order: ["> hi", "< hello"] (> mine, < theirs). */
export async function threadTexts(page) {
  return page.locator('#messages li.msg').evaluateAll((lis) => lis.map((li) =>
    `${li.classList.contains('out') ? '>' : '<'} ${li.querySelector('.bubble').textContent}`));
}

/* ------------------------------------------------------------------ */
/* more of what a user does, and what a test watches                   */
/* ------------------------------------------------------------------ */

/**
 * Sends each text with the page's own composer (value + Enter's
 * requestSubmit), all in one task: as fast as a user can paste and press
 * Enter, faster than any round trip. `perTask` splits a long list into
 * tasks of that many sends, yielding to the page in between.
 */
export async function sendBurst(page, texts, { perTask = texts.length } = {}) {
  await page.evaluate(async ([list, n]) => {
    const ta = document.getElementById('composer-input');
    const form = document.getElementById('composer');
    for (let i = 0; i < list.length; i++) {
      ta.value = list[i];
      form.requestSubmit();
      if ((i + 1) % n === 0) await new Promise((r) => setTimeout(r, 0));
    }
  }, [texts, perTask]);
}

/** The conversations in the list, top to bottom, by name. */
export async function conversationNames(page) {
  return page.locator('#conv-list .conv-name').allTextContents();
}

/** Scrolls the open thread to its top until `text` is rendered (older
 * messages load on scroll); returns how many scroll steps it took. */
export async function scrollUpUntil(page, text, { timeout = 30000 } = {}) {
  const target = page.locator('#messages li.msg .bubble').getByText(text, { exact: true });
  let steps = 0;
  await until(async () => {
    if (await target.count()) return true;
    steps++;
    await page.locator('#message-log').evaluate((box) => { box.scrollTop = 0; });
    return false;
  }, { timeout, interval: 100, what: `"${text}" rendered after scrolling up` });
  return steps;
}

/**
 * Records the page's main-thread tasks from now until stop(): the Long
 * Tasks API (wall time of every task over 50 ms) and, through the DevTools
 * protocol, a trace of every task with its wall time (dur) and the
 * renderer main thread's CPU time in it (tdur). CPU time is what the page's
 * own code costs; wall time also counts the time the OS gave the CPU to
 * someone else (a busy 2-core machine). stop() resolves
 *   {longTasks: [ms...], tasks: [{dur, tdur}...] (ms), worstWall, worstCpu,
 *    worstBreakdown: "what the worst task spent its time on (ms, nested)"}.
 */
export async function watchMainThread(page) {
  await page.evaluate(() => {
    window.__e2eLongTasks = [];
    window.__e2eLongTaskObserver?.disconnect();
    window.__e2eLongTaskObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__e2eLongTasks.push(e.duration);
    });
    window.__e2eLongTaskObserver.observe({ type: 'longtask' });
  });
  const cdp = await page.context().newCDPSession(page);
  const events = [];
  cdp.on('Tracing.dataCollected', (d) => { for (const e of d.value) events.push(e); });
  await cdp.send('Tracing.start', {
    traceConfig: {
      recordMode: 'recordAsMuchAsPossible',
      includedCategories: ['disabled-by-default-devtools.timeline', 'devtools.timeline', 'toplevel'],
      enableSampling: false,
    },
    transferMode: 'ReportEvents',
  });
  return {
    async stop() {
      const longTasks = await page.evaluate(() => {
        window.__e2eLongTaskObserver?.disconnect();
        return window.__e2eLongTasks;
      });
      const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
      await cdp.send('Tracing.end');
      await done;
      await cdp.detach().catch(() => {});
      // the renderer main threads ("CrRendererMain"): this page's renderer
      // and possibly an idle spare one; counting both is only stricter
      const mains = new Set(events
        .filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
        .map((e) => `${e.pid}:${e.tid}`));
      const onMain = events.filter((e) => e.ph === 'X' && mains.has(`${e.pid}:${e.tid}`));
      const runs = onMain.filter((e) => e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask');
      const tasks = runs.map((e) => ({ dur: e.dur / 1000, tdur: (e.tdur ?? e.dur) / 1000 }));
      const worstWall = Math.max(0, ...longTasks, ...tasks.map((t) => t.dur));
      const worstCpu = Math.max(0, ...tasks.map((t) => t.tdur));
      // what the worst task (by CPU) spent its time on, by event name
      let worstBreakdown = '';
      const worst = runs.reduce((a, e) => ((e.tdur ?? e.dur) > ((a?.tdur ?? a?.dur) ?? -1) ? e : a), null);
      if (worst) {
        const by = new Map();
        for (const e of onMain) {
          if (e === worst || e.pid !== worst.pid || e.tid !== worst.tid) continue;
          if (e.ts < worst.ts || e.ts + e.dur > worst.ts + worst.dur) continue;
          by.set(e.name, (by.get(e.name) || 0) + e.dur / 1000);
        }
        worstBreakdown = [...by].sort((a, b) => b[1] - a[1]).slice(0, 8)
          .map(([n, d]) => `${n} ${d.toFixed(1)}`).join(', ');
      }
      return { longTasks, tasks, worstWall, worstCpu, worstBreakdown };
    },
  };
}
