// util.mjs - small helpers of the reliability tests (issue #8), next to the
// integration harness they reuse (tests/integration/lib/harness.mjs).
//
//   SOAK              true with CHATGATE_SOAK=1 (`make soak`): long forms
//   pick(short, long) the short or the long value
//   rssKiB(pid)       VmRSS of a process from /proc/<pid>/status
//   RssSampler        samples a process's VmRSS every interval (peak, last)
//   readyzWatch(gw)   polls {base}/readyz, records every status change
//   secrets           tokens and passwords a test used, kept for the final
//                     "no secret in any log" test (zz_no_secrets_in_logs)
//   newUser(gw, ...)  gw.newUser() that records its password and token
import fs from 'node:fs';
import path from 'node:path';

import { httpRequest, sleep } from '../../integration/lib/harness.mjs';

export const SOAK = /^(1|true|yes|on)$/i.test(process.env.CHATGATE_SOAK || '');
export const pick = (short, long) => (SOAK ? long : short);

/** VmRSS in KiB, or null when the process is gone. */
export function rssKiB(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Samples VmRSS of pid every `interval` ms until stop(): {first, peak, last, samples}. */
export class RssSampler {
  constructor(pid, interval = 100) {
    this.pid = pid;
    this.first = rssKiB(pid);
    this.peak = this.first;
    this.last = this.first;
    this.samples = 1;
    this.timer = setInterval(() => this.sample(), interval);
    this.timer.unref();
  }

  sample() {
    const v = rssKiB(this.pid);
    if (v === null) return;
    this.samples++;
    this.last = v;
    if (this.peak === null || v > this.peak) this.peak = v;
  }

  stop() {
    clearInterval(this.timer);
    this.sample();
    return { first: this.first, peak: this.peak, last: this.last, samples: this.samples };
  }
}

/**
 * Polls gw's /readyz every `interval` ms and records each change of status:
 * changes = [{at, status}] (status 0 = no answer). waitStatus(code, since)
 * resolves the time of the first poll at or after `since` that saw `code`.
 */
export class ReadyzWatch {
  constructor(gw, interval = 50) {
    this.gw = gw;
    this.changes = [];
    this.polls = [];
    this.stopped = false;
    this.interval = interval;
    this.loop = this.run();
  }

  async run() {
    let last = null;
    while (!this.stopped) {
      const t = Date.now();
      let status = 0;
      try {
        status = (await httpRequest(this.gw.url('/readyz'), { timeout: 1000 })).status;
      } catch { status = 0; }
      const at = Date.now();
      this.polls.push({ sent: t, at, status });
      if (this.polls.length > 20000) this.polls.splice(0, 10000);
      if (status !== last) { this.changes.push({ at, sent: t, status }); last = status; }
      await sleep(Math.max(0, this.interval - (Date.now() - t)));
    }
  }

  /** First poll sent at or after `since` that answered `status`: its answer time. */
  firstAfter(status, since) {
    const p = this.polls.find((x) => x.sent >= since && x.status === status);
    return p ? p.at : null;
  }

  async waitFor(status, since, timeout = 10000) {
    const end = Date.now() + timeout;
    for (;;) {
      const at = this.firstAfter(status, since);
      if (at) return at;
      if (Date.now() > end) return null;
      await sleep(20);
    }
  }

  async stop() {
    this.stopped = true;
    await this.loop;
  }
}

/* ------------------------------------------------------------------ */
/* secrets: every token and password a test used                       */
/* ------------------------------------------------------------------ */

/**
 * Appends secrets to $CHATGATE_IT_TMPDIR/secrets/<file>.txt (one per line,
 * "kind value"), so zz_no_secrets_in_logs.test.mjs can grep every gateway
 * log for them after the whole suite. Nothing is written without
 * CHATGATE_IT_TMPDIR (a run by hand without ctest).
 */
export const secrets = {
  file: null,
  buffer: [],
  use(name) {
    const root = process.env.CHATGATE_IT_TMPDIR;
    if (!root) return;
    const dir = path.join(root, 'secrets');
    fs.mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, `${name}.txt`);
    fs.writeFileSync(this.file, '');
  },
  add(kind, value) {
    if (!value || !this.file) return;
    fs.appendFileSync(this.file, `${kind} ${value}\n`);
  },
};

/** gw.newUser that records the password and the token as secrets. */
export async function newUser(gw, prefix = 'u', password) {
  const u = password === undefined ? await gw.newUser(prefix) : await gw.newUser(prefix, password);
  secrets.add('password', u.password);
  secrets.add('token', u.token);
  return u;
}

/** gw.loginToken that records the token. */
export async function loginToken(gw, user) {
  const t = await gw.loginToken(user);
  secrets.add('token', t);
  return t;
}

/** Runs fns with at most n at a time; resolves their results in order. */
export async function pool(n, items, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Percentile of an array of numbers (p in 0..100). */
export function percentile(values, p) {
  if (!values.length) return null;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

export const fmtMiB = (kib) => (kib === null || kib === undefined ? '?' : `${(kib / 1024).toFixed(1)} MiB`);
