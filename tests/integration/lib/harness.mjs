// harness.mjs - runs the real chatgate binary against a private, real
// redis-server and drives it with real clients (PROTOCOL.md is the contract).
//
// Each test file starts its own Env (one redis-server in a fresh directory,
// one or more gateways on it), so ctest can run files in parallel. The Env
// tracks every process and client it starts and tears everything down at
// the end, also when a test fails or the runner is interrupted:
//   - children are started through `setpriv --pdeathsig KILL` when setpriv
//     exists, so they die with the test process even on SIGKILL;
//   - a process 'exit' handler SIGKILLs whatever is still running.
// A gateway is stopped with SIGTERM and must exit 0; its stderr (kept in a
// file) must not contain an ASan/UBSan/LSan report. Both are checked again
// after every test (Env.check) so the test that triggered a crash fails.
//
// Environment:
//   CHATGATE_BIN      the gateway binary (CMake passes $<TARGET_FILE:chatgate>);
//                     without it, the newest build/*/gateway/chatgate is used
//   REDIS_SERVER      redis-server to run (default: redis-server on PATH)
//   CHATGATE_IT_TMPDIR where to keep each file's logs (kept after the run);
//                     without it, a temporary directory removed at the end
//   CHATGATE_IT_VERBOSE=1  print the gateways' stderr paths as they start
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { before, after, afterEach } from 'node:test';

import WebSocket from 'ws';
import { Client as StompJsClient } from '@stomp/stompjs';

const require = createRequire(import.meta.url);
// The classic client of the original Mimi page (stompjs 2.3.3, Stomp.over).
// index.js (not lib/stomp.js) also installs Stomp.setInterval for node.
const ClassicStomp = require('stompjs');

if (typeof globalThis.WebSocket === 'undefined') {
  Object.assign(globalThis, { WebSocket });
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../..');

export { WebSocket, ClassicStomp };

/* ------------------------------------------------------------------ */
/* small utilities                                                     */
/* ------------------------------------------------------------------ */

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with `what` when p has not settled within ms. */
export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls fn() until it returns a truthy value (returned), or throws. */
export async function until(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timeout after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

export function sha1hex(s) {
  return crypto.createHash('sha1').update(s, 'utf8').digest('hex');
}

const usedMsgKeys = new Set();
/**
 * msgID as the page makes it: SHA1 hex of (content + Date.now()). Two sends
 * of the same content in the same millisecond would collide (the gateway
 * then treats the second as a retry, or answers 409 when it goes to another
 * receiver), so a repeated key gets a counter.
 */
export function msgId(content = '') {
  let key = String(content) + Date.now();
  while (usedMsgKeys.has(key)) key += '#';
  usedMsgKeys.add(key);
  return sha1hex(key);
}

/** A fresh valid username: prefix + '_' + 8 random hex chars (<= 32). */
export function uniqueName(prefix = 'u') {
  return `${prefix.slice(0, 20)}_${crypto.randomBytes(4).toString('hex')}`;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tail(file, bytes = 6000) {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.max(0, buf.length - bytes)).toString('utf8');
  } catch {
    return '(no output file)';
  }
}

/* ------------------------------------------------------------------ */
/* process bookkeeping                                                 */
/* ------------------------------------------------------------------ */

const liveProcs = new Set();
function killAllSync() {
  for (const p of liveProcs) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  liveProcs.clear();
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] || 0));
  });
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try {
    return fs.existsSync(p) &&
      spawnSync(p, ['--pdeathsig', 'KILL', '--', 'true']).status === 0;
  } catch { return false; }
});

/** spawn with stdout/stderr to files; dies with us where setpriv allows. */
function spawnLogged(cmd, args, { outFile, errFile, env }) {
  const out = fs.openSync(outFile, 'a');
  const err = fs.openSync(errFile, 'a');
  const argv = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(argv[0], argv[1], { stdio: ['ignore', out, err], env: env || process.env });
  fs.closeSync(out);
  fs.closeSync(err);
  liveProcs.add(child);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      liveProcs.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
  });
  child.once('error', (e) => {
    child.spawnError = e;
  });
  return child;
}

/* ------------------------------------------------------------------ */
/* binaries                                                            */
/* ------------------------------------------------------------------ */

export function gatewayBinary() {
  if (process.env.CHATGATE_BIN) return process.env.CHATGATE_BIN;
  const buildDir = path.join(REPO_ROOT, 'build');
  let best = null;
  try {
    for (const d of fs.readdirSync(buildDir)) {
      const p = path.join(buildDir, d, 'gateway', 'chatgate');
      try {
        const st = fs.statSync(p);
        if (!best || st.mtimeMs > best.mtimeMs) best = { p, mtimeMs: st.mtimeMs };
      } catch { /* none here */ }
    }
  } catch { /* no build dir */ }
  if (!best) throw new Error('no gateway binary: set CHATGATE_BIN or build build/*/gateway/chatgate');
  return best.p;
}

export function redisBinary() {
  return process.env.REDIS_SERVER || 'redis-server';
}

/* ------------------------------------------------------------------ */
/* a minimal RESP client (readiness checks; tests use the gateway)     */
/* ------------------------------------------------------------------ */

export function redisCommand(target, args, timeout = 2000) {
  return new Promise((resolve, reject) => {
    const sock = typeof target === 'string'
      ? net.createConnection({ path: target })
      : net.createConnection({ host: '127.0.0.1', port: target });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('redis timeout')); }, timeout);
    const done = (err, val) => { clearTimeout(timer); sock.destroy(); err ? reject(err) : resolve(val); };
    sock.on('error', (e) => done(e));
    sock.on('connect', () => {
      let s = `*${args.length}\r\n`;
      for (const a of args) s += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
      sock.write(s);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.subarray(1, eol).toString();
      switch (buf[0]) {
        case 0x2b: return done(null, line);                       // +
        case 0x2d: return done(new Error(line));                  // -
        case 0x3a: return done(null, Number(line));               // :
        case 0x24: {                                              // $
          const n = Number(line);
          if (n < 0) return done(null, null);
          if (buf.length < eol + 2 + n + 2) return undefined;
          return done(null, buf.subarray(eol + 2, eol + 2 + n).toString());
        }
        default: return done(null, buf.toString());
      }
    });
  });
}

/* ------------------------------------------------------------------ */
/* redis-server                                                        */
/* ------------------------------------------------------------------ */

export class RedisServer {
  constructor(dir, sockDir) {
    this.dir = dir;
    this.socket = path.join(sockDir, 'redis.sock');
    this.port = null;
    this.proc = null;
    this.starts = 0;
  }

  get url() { return `redis://127.0.0.1:${this.port}/0`; }
  get unixUrl() { return `unix://${this.socket}`; }
  get logFile() { return path.join(this.dir, 'redis.log'); }

  async start() {
    for (let attempt = 0; ; attempt++) {
      const fixedPort = this.port !== null;
      if (!fixedPort) this.port = await freePort();
      const args = [
        '--port', String(this.port), '--bind', '127.0.0.1',
        '--unixsocket', this.socket, '--unixsocketperm', '700',
        '--dir', this.dir, '--daemonize', 'no', '--logfile', this.logFile,
        '--appendonly', 'yes', '--appendfsync', 'always',
        '--maxmemory-policy', 'noeviction', '--save', '',
      ];
      this.starts++;
      this.proc = spawnLogged(redisBinary(), args, {
        outFile: path.join(this.dir, 'redis.stdout'),
        errFile: path.join(this.dir, 'redis.stderr'),
      });
      try {
        await this.waitReady(15000);
        return this;
      } catch (e) {
        const log = tail(this.logFile, 3000);
        try { this.proc.kill('SIGKILL'); } catch { /* gone */ }
        await this.proc.exited;
        if (!fixedPort && attempt < 3 && /in use|bind/i.test(log)) {
          this.port = null;
          continue;
        }
        throw new Error(`redis-server did not come up: ${e.message}\n--- redis.log ---\n${log}`);
      }
    }
  }

  async waitReady(timeout) {
    const end = Date.now() + timeout;
    let last = 'no answer';
    while (Date.now() < end) {
      if (this.proc.exitInfo || this.proc.spawnError) {
        throw new Error(`redis-server exited (${JSON.stringify(this.proc.exitInfo)} ${this.proc.spawnError || ''})`);
      }
      try {
        const r = await redisCommand(this.port, ['PING'], 1000);
        if (r === 'PONG') return;
        last = r;
      } catch (e) {
        last = e.message;   // ECONNREFUSED, or LOADING while the AOF loads
      }
      await sleep(50);
    }
    throw new Error(`no PONG within ${timeout} ms (last: ${last})`);
  }

  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitInfo) return;
    this.proc.kill(signal);
    await withTimeout(this.proc.exited, 15000, `redis-server exit after ${signal}`);
  }

  /** SIGKILL, then start again on the same directory and port. */
  async restart() {
    await this.kill('SIGKILL');
    await this.start();
  }

  command(...args) { return redisCommand(this.port, args); }
}

/* ------------------------------------------------------------------ */
/* the gateway                                                         */
/* ------------------------------------------------------------------ */

const SANITIZER_RE =
  /(ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|UndefinedBehaviorSanitizer|runtime error:|SUMMARY: \w+Sanitizer|==\d+==\s*WARNING: (Address|Leak)Sanitizer)/;

export class Gateway {
  constructor(env, { name, args = [], redisUrl, port = null }) {
    this.env = env;
    this.name = name;
    this.extraArgs = args;
    this.redisUrl = redisUrl;
    this.fixedPort = port;     // a given port (--reuse-port tests); else a free one
    this.port = null;
    this.metricsPort = null;   // --metrics-listen's port (a free one), or null
    this.proc = null;
    this.stopping = false;
    this.unexpected = null;
    this.generation = 0;
    const i = args.indexOf('--base-path');
    this.basePath = i >= 0 ? args[i + 1] : '';
  }

  get errFile() { return path.join(this.env.dir, `${this.name}.${this.generation}.stderr`); }
  get outFile() { return path.join(this.env.dir, `${this.name}.${this.generation}.stdout`); }
  get origin() { return `http://127.0.0.1:${this.port}`; }
  /** http://127.0.0.1:PORT{base}{p} */
  url(p = '') { return `${this.origin}${this.basePath}${p}`; }
  /** http://127.0.0.1:METRICS_PORT/metrics (the metrics listener), or the
   * main port's {base}/metrics when a test set --metrics-listen "". */
  metricsUrl() {
    return this.metricsPort ? `http://127.0.0.1:${this.metricsPort}/metrics` : this.url('/metrics');
  }
  /** ws://127.0.0.1:PORT{base}{p} */
  wsUrl(p = '/client') { return `ws://127.0.0.1:${this.port}${this.basePath}${p}`; }

  async start() {
    const bin = gatewayBinary();
    for (let attempt = 0; ; attempt++) {
      this.generation++;
      this.port = this.fixedPort ?? await freePort();
      // Every gateway its own metrics port, unless the test chose one.
      const mi = this.extraArgs.indexOf('--metrics-listen');
      const ownMetrics = mi >= 0 ? this.extraArgs[mi + 1] : null;
      this.metricsPort = ownMetrics === null ? await freePort()
        : Number(/:(\d+)$/.exec(ownMetrics)?.[1]) || null;
      this.stopping = false;
      this.unexpected = null;
      const args = [
        '--listen', `127.0.0.1:${this.port}`,
        ...(ownMetrics === null ? ['--metrics-listen', `127.0.0.1:${this.metricsPort}`] : []),
        '--redis', this.redisUrl,
        '--password-iterations', '1000',
        // Tests register many users from 127.0.0.1; the registration limit
        // has its own test (reliability/hostile_register), which sets it.
        '--register-addr-max', '100000000', '--register-max', '100000000',
        '--log-level', 'info',
        ...this.extraArgs,
      ];
      const env = { ...process.env };
      env.ASAN_OPTIONS ||= 'detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1';
      env.UBSAN_OPTIONS ||= 'print_stacktrace=1:halt_on_error=1';
      if (process.env.CHATGATE_IT_VERBOSE) console.error(`[harness] ${this.name}: ${bin} ${args.join(' ')} (stderr ${this.errFile})`);
      fs.writeFileSync(this.errFile, `# ${bin} ${args.join(' ')}\n`);
      this.proc = spawnLogged(bin, args, { outFile: this.outFile, errFile: this.errFile, env });
      const proc = this.proc;
      proc.exited.then((info) => {
        if (!this.stopping && proc === this.proc) this.unexpected = info;
      });
      try {
        await this.waitReady(30000);
        return this;
      } catch (e) {
        const err = tail(this.errFile);
        if (!proc.exitInfo) {
          this.stopping = true;
          try { proc.kill('SIGKILL'); } catch { /* gone */ }
          await proc.exited;
        }
        if (attempt < 2 && /address already in use|EADDRINUSE|ERR_BIND|failed to bind|bind\(\)/i.test(err)) continue;
        throw new Error(`gateway ${this.name} not ready: ${e.message}\n--- ${this.errFile} ---\n${err}`);
      }
    }
  }

  async waitReady(timeout = 30000) {
    const end = Date.now() + timeout;
    let last = 'no answer';
    while (Date.now() < end) {
      if (this.proc.exitInfo || this.proc.spawnError) {
        throw new Error(`exited early ${JSON.stringify(this.proc.exitInfo)} ${this.proc.spawnError || ''}`);
      }
      try {
        const r = await httpRequest(this.url('/readyz'), { timeout: 2000 });
        // With --reuse-port another process on the same port may answer:
        // ready means this process says it listens and its store is up.
        const own = tail(this.errFile, 1 << 20);
        if (r.status === 200 && / listening on /.test(own) && /store ready/.test(own)) return;
        last = r.status === 200 ? 'HTTP 200 from the port, but this process has not logged "listening on" and "store ready"'
          : `HTTP ${r.status} ${r.text.slice(0, 200)}`;
      } catch (e) {
        last = e.message;
      }
      await sleep(100);
    }
    throw new Error(`GET ${this.basePath}/readyz not 200 within ${timeout} ms (last: ${last})`);
  }

  get alive() { return !!this.proc && !this.proc.exitInfo; }

  stderr() { return tail(this.errFile, 1 << 20); }

  sanitizerReport() {
    const s = this.stderr();
    const m = SANITIZER_RE.exec(s);
    return m ? s.slice(Math.max(0, m.index - 200), m.index + 8000) : null;
  }

  /** Throws if the gateway crashed, exited by itself or reported an error.
   * The first time, the report also goes to our stderr: node:test shows only
   * a test's first error, which is then often just ECONNRESET. */
  check() {
    const rep = this.sanitizerReport();
    let msg = null;
    if (rep) msg = `sanitizer report in ${this.errFile}:\n${rep}`;
    else if (this.unexpected) {
      msg = `gateway ${this.name} exited unexpectedly ${JSON.stringify(this.unexpected)}\n--- ${this.errFile} ---\n${tail(this.errFile)}`;
    }
    if (!msg) return;
    if (!this.reported) {
      this.reported = true;
      console.error(`\n[harness] ${msg}\n`);
    }
    throw new Error(msg);
  }

  /** SIGTERM, wait, assert exit code 0 and no sanitizer report. */
  async stop({ timeout = 25000 } = {}) {
    if (!this.proc) return;
    if (this.proc.exitInfo) { this.check(); return; }
    this.stopping = true;
    this.proc.kill('SIGTERM');
    try {
      await withTimeout(this.proc.exited, timeout, `gateway ${this.name} exit after SIGTERM`);
    } catch (e) {
      try { this.proc.kill('SIGKILL'); } catch { /* gone */ }
      await this.proc.exited;
      throw new Error(`${e.message}\n--- stderr ---\n${tail(this.errFile)}`);
    }
    const rep = this.sanitizerReport();
    if (rep) throw new Error(`sanitizer report in ${this.errFile}:\n${rep}`);
    const { code, signal } = this.proc.exitInfo;
    if (code !== 0) {
      throw new Error(`gateway ${this.name} exited with ${JSON.stringify({ code, signal })} after SIGTERM (expected 0)\n--- stderr ---\n${tail(this.errFile)}`);
    }
  }

  /** Kill with a signal (SIGKILL: a crash) and wait; checks the signal. */
  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitInfo) throw new Error(`gateway ${this.name} is not running`);
    this.stopping = true;
    this.proc.kill(signal);
    const info = await withTimeout(this.proc.exited, 15000, `gateway ${this.name} exit after ${signal}`);
    if (signal === 'SIGKILL' && info.signal !== 'SIGKILL') {
      throw new Error(`gateway ${this.name}: expected death by SIGKILL, got ${JSON.stringify(info)}`);
    }
    const rep = this.sanitizerReport();
    if (rep) throw new Error(`sanitizer report in ${this.errFile}:\n${rep}`);
    return info;
  }

  /* ---- HTTP API ------------------------------------------------ */

  /**
   * api('POST', '/api/login', {username, password}) -> {status, headers, text, json}
   * body: object (sent as JSON), string/Buffer (sent as is) or undefined.
   * token: sent as `Authorization: Bearer`, or opts.tokenVia 'srect'|'token'
   * puts it in the query string. Each call comes from a random loopback
   * address unless opts.localAddress is given (see loopbackAddress).
   */
  api(method, p, body, token, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    let url = this.url(p);
    if (token !== undefined && token !== null) {
      const via = opts.tokenVia || 'bearer';
      if (via === 'bearer') headers.Authorization = `Bearer ${token}`;
      else url += (url.includes('?') ? '&' : '?') + `${via}=${encodeURIComponent(token)}`;
    }
    let data;
    if (body !== undefined) {
      data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      headers['Content-Type'] ||= 'application/json';
    }
    return httpRequest(url, { method, headers, body: data, localAddress: opts.localAddress || loopbackAddress() });
  }

  register(username, password) { return this.api('POST', '/api/register', { username, password }); }
  login(username, password) { return this.api('POST', '/api/login', { username, password }); }

  /** Registers and logs in a fresh user: {uid, username, password, token}. */
  async newUser(prefix = 'u', password = 'pässwörd-123') {
    const username = uniqueName(prefix);
    const r = await this.register(username, password);
    if (r.status !== 201) throw new Error(`register ${username}: HTTP ${r.status} ${r.text}`);
    const l = await this.login(username, password);
    if (l.status !== 200) throw new Error(`login ${username}: HTTP ${l.status} ${l.text}`);
    return { uid: r.json.uid, username, password, token: l.json.token };
  }

  /** A second token for an existing user. */
  async loginToken(user) {
    const l = await this.login(user.username, user.password);
    if (l.status !== 200) throw new Error(`login ${user.username}: HTTP ${l.status} ${l.text}`);
    return l.json.token;
  }

  /* ---- clients -------------------------------------------------- */

  /** @stomp/stompjs 7 client over a plain WebSocket; see StompSession. */
  async stomp(user, opts = {}) {
    const s = new StompSession(this, user, opts);
    this.env.track(s);
    await s.connect();
    return s;
  }

  /** The original Mimi page's code (stompjs 2.3.3); see MimiPage. */
  async mimi(user, opts = {}) {
    const p = new MimiPage(this, user, opts);
    this.env.track(p);
    await p.open();
    return p;
  }

  /** A raw WebSocket for hand-made frames; see RawStomp. */
  async raw(opts = {}) {
    const r = await RawStomp.open(this, opts);
    this.env.track(r);
    return r;
  }
}

/* ------------------------------------------------------------------ */
/* Env: one redis-server + gateways, torn down at the end              */
/* ------------------------------------------------------------------ */

export class Env {
  constructor(name) {
    this.name = name;
    this.gateways = [];
    this.clients = new Set();
    this.redis = null;
    this.keepDir = false;
  }

  /** The first gateway started. */
  get gw() { return this.gateways[0]; }

  async init() {
    const root = process.env.CHATGATE_IT_TMPDIR;
    if (root) {
      fs.mkdirSync(root, { recursive: true });
      this.dir = path.join(root, this.name);
      fs.rmSync(this.dir, { recursive: true, force: true });
      fs.mkdirSync(this.dir, { recursive: true });
      this.keepDir = true;
    } else {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `chatgate-it-${this.name}-`));
    }
    // unix socket paths are limited to ~107 bytes: keep the socket short.
    this.sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cgit-'));
    this.redis = new RedisServer(this.dir, this.sockDir);
    await this.redis.start();
    return this;
  }

  /** Starts a gateway on this Env's Redis (TCP unless redisUrl is given),
   * on a free port unless port is given. */
  async startGateway(args = [], { name, redisUrl, port } = {}) {
    const gw = new Gateway(this, {
      name: name || `gw${this.gateways.length}`,
      args,
      redisUrl: redisUrl || this.redis.url,
      port,
    });
    this.gateways.push(gw);
    await gw.start();
    return gw;
  }

  /** SIGKILL redis-server and start it again on the same dir and port. */
  async restartRedis() { await this.redis.restart(); }

  async killGateway(gw = this.gw, signal = 'SIGKILL') { return gw.kill(signal); }

  track(c) {
    this.clients.add(c);
    return c;
  }

  check() {
    for (const gw of this.gateways) gw.check();
  }

  async closeClients() {
    const cs = [...this.clients];
    this.clients.clear();
    await Promise.all(cs.map((c) => c.terminate().catch(() => {})));
  }

  async stopGateway(gw) {
    this.gateways = this.gateways.filter((g) => g !== gw);
    await gw.stop();
  }

  async close() {
    const errors = [];
    await this.closeClients();
    for (const gw of this.gateways) {
      try {
        if (gw.alive) await gw.stop();
        else if (!gw.stopping) gw.check();
      } catch (e) { errors.push(e); }
    }
    try { await this.redis?.kill('SIGTERM'); } catch (e) { errors.push(e); }
    fs.rmSync(this.sockDir, { recursive: true, force: true });
    if (!this.keepDir && errors.length === 0) fs.rmSync(this.dir, { recursive: true, force: true });
    if (errors.length) {
      throw new Error(`teardown (${this.dir}):\n${errors.map((e) => e.message).join('\n\n')}`);
    }
  }
}

export async function startEnv(name, { gatewayArgs = [] } = {}) {
  const env = new Env(name);
  try {
    await env.init();
    if (gatewayArgs !== null) await env.startGateway(gatewayArgs);
  } catch (e) {
    await env.close().catch(() => {});
    throw e;
  }
  return env;
}

/**
 * Declares before/afterEach/after hooks in the current suite: an Env with one
 * gateway started with gatewayArgs (none when null), checked after each test
 * (crash or sanitizer report fails that test) and torn down at the end.
 * Returns a holder whose .env is set once `before` ran.
 */
export function useEnv(name, opts = {}) {
  const holder = { env: null };
  before(async () => { holder.env = await startEnv(name, opts); });
  afterEach(() => { holder.env?.check(); });
  after(async () => { if (holder.env) await holder.env.close(); });
  return holder;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

/**
 * A random loopback source address (127.x.y.z): each simulated user talks
 * from its own address, as real users do. The gateway rate-limits logins
 * per client address (not in PROTOCOL.md); a whole suite of users logging in
 * from 127.0.0.1 would trip it.
 */
export function loopbackAddress() {
  const b = crypto.randomBytes(3);
  return `127.${b[0]}.${b[1]}.${(b[2] % 254) + 1}`;
}

/**
 * One request on a fresh connection. Resolves {status, headers, text, json}
 * (json undefined when the body is not JSON). A server that answers early
 * (413) and closes while the body is still being written is fine.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeout = 10000, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout, localAddress });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', () => {});
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`HTTP ${method} ${url}: timeout`)));
    req.on('error', (e) => { if (!answered) reject(e); });
    if (body !== undefined) req.end(body); else req.end();
  });
}

/* ------------------------------------------------------------------ */
/* mailboxes: what a client received, awaitable                        */
/* ------------------------------------------------------------------ */

/** A list of received items that can be awaited with a predicate. */
export class Mailbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    const idx = this.items.length - 1;
    for (const w of [...this.waiters]) {
      if (idx >= w.since && w.pred(item)) w.resolve(item);
    }
  }

  /** Index to pass as `since` to ignore what arrived so far. */
  mark() { return this.items.length; }

  find(pred = () => true, since = 0) {
    return this.items.slice(since).find(pred);
  }

  filter(pred = () => true, since = 0) {
    return this.items.slice(since).filter(pred);
  }

  count(pred = () => true, since = 0) { return this.filter(pred, since).length; }

  /** First item (since `since`) matching pred, waiting up to timeout ms. */
  waitFor(pred = () => true, timeout = 5000, { since = 0, what = '' } = {}) {
    const have = this.find(pred, since);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = { pred, since, resolve: null };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const recent = this.items.slice(-5).map((i) => JSON.stringify(i.json ?? i.body ?? i).slice(0, 300));
        reject(new Error(`timeout after ${timeout} ms waiting on ${this.name}${what ? ` for ${what}` : ''}; ` +
          `${this.items.length} item(s) received, last: [${recent.join(', ')}]`));
      }, timeout);
      w.resolve = (item) => {
        clearTimeout(timer);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        resolve(item);
      };
      this.waiters.push(w);
    });
  }

  /** Waits until n items (since `since`) match pred; returns them. */
  async waitCount(n, pred = () => true, timeout = 5000, { since = 0, what = '' } = {}) {
    const end = Date.now() + timeout;
    while (this.count(pred, since) < n) {
      const left = end - Date.now();
      if (left <= 0) {
        throw new Error(`timeout after ${timeout} ms waiting on ${this.name} for ${n} ${what || 'items'}; have ${this.count(pred, since)}`);
      }
      const seen = this.items.length;
      await this.waitFor((_, i) => true, left, { since: seen, what }).catch(() => {});
    }
    return this.filter(pred, since);
  }
}

/** waitFor(mailbox, predicate, timeout) as the brief names it. */
export function waitFor(box, pred, timeout = 5000, opts = {}) {
  return box.waitFor(pred, timeout, opts);
}

function parseJson(s) {
  try { return JSON.parse(s); } catch { return undefined; }
}

/* ------------------------------------------------------------------ */
/* @stomp/stompjs 7 over ws                                            */
/* ------------------------------------------------------------------ */

export const STATUS_TOPICS = {
  status: '/user/queue/status',
  sendStatus: '/user/queue/send/status',
  reciveStatus: '/user/queue/recive/status',
  delivered: '/user/queue/delivered',
  initStatus: '/user/queue/init/status',
};

/**
 * A chat session with @stomp/stompjs 7 (`Client`, webSocketFactory with the
 * `ws` package). By default it subscribes to the user's recive destination
 * (by name; byUid: by uid) and to every status topic, the last SUBSCRIBE
 * with a receipt, and connect() resolves once that RECEIPT arrived, so the
 * subscriptions are in effect.
 *
 * opts: path ('/client'), tokenVia ('srect' | 'token' | 'bearer' | 'passcode'
 *       | 'header' | 'none'), protocols (['v12.stomp','v11.stomp','v10.stomp']),
 *       heartbeat ([out, in], default [10000, 10000]), subscribe (true),
 *       byUid (false), connectHeaders ({}), splitLargeFrames, chunkSize.
 *
 * Every frame received gets a per-session sequence number `seq`, so tests can
 * check the order of frames across destinations.
 */
export class StompSession {
  constructor(gw, user, opts = {}) {
    this.gw = gw;
    this.user = user;
    this.opts = opts;
    this.seq = 0;
    this.recive = new Mailbox(`${user?.username} recive`);
    this.status = new Mailbox(`${user?.username} ${STATUS_TOPICS.status}`);
    this.sendStatus = new Mailbox(`${user?.username} ${STATUS_TOPICS.sendStatus}`);
    this.reciveStatus = new Mailbox(`${user?.username} ${STATUS_TOPICS.reciveStatus}`);
    this.delivered = new Mailbox(`${user?.username} ${STATUS_TOPICS.delivered}`);
    this.initStatus = new Mailbox(`${user?.username} ${STATUS_TOPICS.initStatus}`);
    this.errors = new Mailbox(`${user?.username} ERROR`);
    this.receipts = new Mailbox(`${user?.username} RECEIPT`);
    this.other = new Mailbox(`${user?.username} unhandled`);
    this.closeInfo = null;
    this.closed = new Promise((r) => { this._onClosed = r; });
    this.connectedFrame = null;
  }

  _wrap(frame) {
    return {
      seq: ++this.seq,
      command: frame.command,
      headers: { ...frame.headers },
      body: frame.body,
      json: parseJson(frame.body),
    };
  }

  /**
   * How this session reaches the gateway: the stomp.js webSocketFactory and
   * the CONNECT headers. A plain `ws` WebSocket here; SockJSStompSession
   * (sockjs.mjs) swaps in SockJS and keeps everything else.
   */
  _transport(fail) {
    const o = this.opts;
    const via = o.tokenVia || 'srect';
    let url = this.gw.wsUrl(o.path || '/client');
    const wsOpts = { ...(o.wsOptions || {}) };
    const connectHeaders = { ...(o.connectHeaders || {}) };
    const token = this.user?.token;
    if (token) {
      if (via === 'srect' || via === 'token') url += `?${via}=${encodeURIComponent(token)}`;
      else if (via === 'bearer') wsOpts.headers = { ...(wsOpts.headers || {}), Authorization: `Bearer ${token}` };
      else if (via === 'passcode') { connectHeaders.login = this.user.username; connectHeaders.passcode = token; }
      else if (via === 'header') connectHeaders.token = token;
    }
    const protocols = o.protocols === undefined ? ['v12.stomp', 'v11.stomp', 'v10.stomp'] : o.protocols;
    const factory = () => {
      this.ws = new WebSocket(url, protocols, wsOpts);
      this.ws.on('unexpected-response', (req, res) => {
        fail(new Error(`WebSocket handshake to ${url} answered HTTP ${res.statusCode}`));
        req.destroy();
      });
      this.ws.on('error', (e) => fail(e));
      return this.ws;
    };
    return { factory, connectHeaders };
  }

  connect() {
    const o = this.opts;
    const [hbOut, hbIn] = o.heartbeat || [10000, 10000];

    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e) => { if (!settled) { settled = true; reject(e); } };
      const { factory, connectHeaders } = this._transport(fail);
      const client = new StompJsClient({
        webSocketFactory: factory,
        connectHeaders,
        reconnectDelay: 0,
        heartbeatOutgoing: hbOut,
        heartbeatIncoming: hbIn,
        splitLargeFrames: !!o.splitLargeFrames,
        maxWebSocketChunkSize: o.chunkSize || 8 * 1024,
        debug: () => {},
        onConnect: (frame) => {
          this.connectedFrame = this._wrap(frame);
          if (o.subscribe === false) {
            settled = true;
            resolve(this);
            return;
          }
          this._subscribeDefaults().then(() => { settled = true; resolve(this); }, fail);
        },
        onStompError: (frame) => {
          const f = this._wrap(frame);
          this.errors.push(f);
          fail(new Error(`ERROR frame: ${f.headers.message || ''} ${f.body || ''}`));
        },
        onUnhandledMessage: (m) => this.other.push(this._wrap(m)),
        onUnhandledReceipt: (r) => this.receipts.push(this._wrap(r)),
        onUnhandledFrame: (f) => this.other.push(this._wrap(f)),
        onWebSocketClose: (evt) => {
          this.closeInfo = { code: evt.code, reason: evt.reason, at: Date.now() };
          this._onClosed(this.closeInfo);
          fail(new Error(`connection closed before CONNECTED/receipt: ${evt.code} ${evt.reason}`));
        },
      });
      this.client = client;
      client.activate();
    });
  }

  async _subscribeDefaults() {
    const u = this.user;
    this.reciveDest = `/user/${this.opts.byUid ? u.uid : u.username}/recive`;
    this.subscribeBox(this.reciveDest, this.recive, { id: 'recive' });
    this.subscribeBox(STATUS_TOPICS.status, this.status, { id: 'status' });
    this.subscribeBox(STATUS_TOPICS.sendStatus, this.sendStatus, { id: 'send-status' });
    this.subscribeBox(STATUS_TOPICS.reciveStatus, this.reciveStatus, { id: 'recive-status' });
    this.subscribeBox(STATUS_TOPICS.delivered, this.delivered, { id: 'delivered' });
    const receipt = `sub-ready-${crypto.randomBytes(3).toString('hex')}`;
    this.subscribeBox(STATUS_TOPICS.initStatus, this.initStatus, { id: 'init-status', receipt });
    await this.receipts.waitFor((r) => r.headers['receipt-id'] === receipt, 10000,
      { what: `RECEIPT ${receipt} for the default SUBSCRIBEs` });
  }

  /** SUBSCRIBE dest; MESSAGEs go to box (a new Mailbox if omitted). */
  subscribeBox(dest, box = new Mailbox(`${this.user?.username} ${dest}`), headers = {}) {
    const sub = this.client.subscribe(dest, (m) => box.push(this._wrap(m)), headers);
    box.subscription = sub;
    box.destination = dest;
    return box;
  }

  /** SEND dest with a body (objects as JSON) and extra headers. */
  publish(destination, body = '', headers = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    this.client.publish({ destination, body: text, headers });
  }

  /** SEND /socket/chat/send; returns the msgID used. */
  sendChat(to, content, { msgID, extra = {}, headers = {}, field = 'reciverId' } = {}) {
    const id = msgID ?? msgId(content);
    const toId = typeof to === 'object' ? to.uid : to;
    this.publish('/socket/chat/send', { msgID: id, [field]: toId, content, ...extra }, headers);
    return id;
  }

  /** sendChat, then the send/status answer for that msgID: its JSON fields
   * (code, status, id, time, ...) plus msgID and frame (the MESSAGE). */
  async chat(to, content, opts = {}) {
    const since = this.sendStatus.mark();
    const id = this.sendChat(to, content, opts);
    const st = await this.sendStatus.waitFor((s) => s.json?.msgID === id, opts.timeout || 10000,
      { since, what: `send/status for ${id}` });
    return { ...st.json, msgID: id, frame: st };
  }

  /** /socket/chat/recive for a msgID; resolves the recive/status answer. */
  async confirm(msgID, timeout = 10000) {
    const since = this.reciveStatus.mark();
    this.publish('/socket/chat/recive', { msgID });
    const st = await this.reciveStatus.waitFor((s) => s.json?.msgID === msgID, timeout,
      { since, what: `recive/status for ${msgID}` });
    return st.json;
  }

  /** /socket/chat/init; resolves {messages, status} once init/status came. */
  async init(timeout = 15000) {
    const since = this.recive.mark();
    const sinceSt = this.initStatus.mark();
    this.publish('/socket/chat/init', '');
    const st = await this.initStatus.waitFor(() => true, timeout, { since: sinceSt, what: 'init/status' });
    return { messages: this.recive.filter((m) => m.seq < st.seq, since), status: st.json, statusFrame: st };
  }

  /** /socket/chat/sync from key; resolves {messages, status}. */
  async sync(syncKey, timeout = 15000) {
    const since = this.recive.mark();
    const sinceSt = this.initStatus.mark();
    this.publish('/socket/chat/sync', { syncKey });
    const st = await this.initStatus.waitFor(() => true, timeout, { since: sinceSt, what: 'sync init/status' });
    return { messages: this.recive.filter((m) => m.seq < st.seq, since), status: st.json, statusFrame: st };
  }

  get open() { return !this.closeInfo; }

  /** DISCONNECT with receipt, then close (bounded); forced after 5 s. */
  async close() {
    if (this.closeInfo) return;
    try {
      await withTimeout(this.client.deactivate(), 5000, 'graceful DISCONNECT');
    } catch {
      await this.client.deactivate({ force: true }).catch(() => {});
    }
  }

  /** Drop the connection without DISCONNECT. */
  async terminate() {
    if (this.closeInfo) return;
    await withTimeout(this.client.deactivate({ force: true }), 3000, 'deactivate').catch(() => {});
    try { this.ws?.terminate(); } catch { /* ignore */ }
  }
}

/* ------------------------------------------------------------------ */
/* the original Mimi page (stompjs 2.3.3, Stomp.over)                   */
/* ------------------------------------------------------------------ */

/**
 * What the original page does, call for call (PROTOCOL.md appendix):
 *   var stomp = Stomp.over(new WebSocket(base + "/client?srect=" + token));
 *   stomp.connect({}, function () { subscribe x4; send init with null });
 * The recive callback confirms every message (autoConfirm, as the page).
 * ready() adds one confirmation of an unknown msgID and waits for its 404
 * on recive/status: frames are handled in order, so the SUBSCRIBEs before it
 * are then in effect (the page itself has no such barrier).
 */
export class MimiPage {
  constructor(gw, user, { byUid = false, autoConfirm = true, label = 'page' } = {}) {
    this.gw = gw;
    this.user = user;
    this.byUid = byUid;
    this.autoConfirm = autoConfirm;
    this.seq = 0;
    this.chats = new Mailbox(`${user.username} ${label} chats`);
    this.status = new Mailbox(`${user.username} ${label} status`);
    this.sendStatus = new Mailbox(`${user.username} ${label} send/status`);
    this.reciveStatus = new Mailbox(`${user.username} ${label} recive/status`);
    this.errors = [];
    this.closeInfo = null;
    this.closed = new Promise((r) => { this._onClosed = r; });
  }

  _wrap(m) {
    return { seq: ++this.seq, headers: { ...m.headers }, body: m.body, json: parseJson(m.body) };
  }

  open() {
    const uname = this.user.username;
    const token = this.user.token;
    const wsUrl = this.gw.wsUrl('');
    return new Promise((resolve, reject) => {
      // --- the page's code -------------------------------------------
      const sock = new WebSocket(wsUrl + '/client?srect=' + token);
      this.ws = sock;
      sock.on('unexpected-response', (req, res) => {
        reject(new Error(`handshake answered HTTP ${res.statusCode}`));
        req.destroy();
      });
      sock.on('error', (e) => reject(e));
      sock.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        this._onClosed(this.closeInfo);
      });
      this._pageConnect(ClassicStomp.over(sock), uname, resolve, reject);
      // ------------------------------------------------------------------
    });
  }

  /** The page's stomp.connect(): subscribe x4, then init with null. */
  _pageConnect(stomp, uname, resolve, reject) {
    this.stomp = stomp;
    stomp.connect({}, (frame) => {
      this.connectedFrame = { command: frame.command, headers: { ...frame.headers } };
      stomp.subscribe('/user/' + (this.byUid ? this.user.uid : uname) + '/recive', (m) => {
        this.chats.push(this._wrap(m));
        const chat = JSON.parse(m.body);
        if (this.autoConfirm) stomp.send('/socket/chat/recive', {}, JSON.stringify({ msgID: chat.chatID }));
      });
      stomp.subscribe('/user/queue/status', (m) => this.status.push(this._wrap(m)));
      stomp.subscribe('/user/queue/send/status', (m) => this.sendStatus.push(this._wrap(m)));
      stomp.subscribe('/user/queue/recive/status', (m) => this.reciveStatus.push(this._wrap(m)));
      stomp.send('/socket/chat/init', {}, null);
      resolve(this);
    }, (err) => {
      this.errors.push(err);
      reject(new Error(`stompjs error: ${typeof err === 'string' ? err : `${err.headers?.message} ${err.body}`}`));
    });
  }

  /** Barrier: see the class comment. */
  async ready(timeout = 10000) {
    const probe = sha1hex(`probe${Math.random()}${Date.now()}`);
    this.stomp.send('/socket/chat/recive', {}, JSON.stringify({ msgID: probe }));
    const st = await this.reciveStatus.waitFor((s) => s.json?.msgID === probe, timeout, { what: `probe ${probe}` });
    return st.json;
  }

  /** The page's send: data = {reciverId, content}; data.msgID = sha1(...). */
  send(reciverId, content) {
    const data = { reciverId, content };
    data.msgID = msgId(content);
    this.stomp.send('/socket/chat/send', {}, JSON.stringify(data));
    return data.msgID;
  }

  async chat(reciverId, content, timeout = 10000) {
    const since = this.sendStatus.mark();
    const id = this.send(reciverId, content);
    const st = await this.sendStatus.waitFor((s) => s.json?.msgID === id, timeout, { since, what: `send/status ${id}` });
    return { msgID: id, ...st.json };
  }

  get open_() { return !this.closeInfo; }

  /** The page's stomp.disconnect(): DISCONNECT, then close the socket. */
  async close() {
    if (this.closeInfo) return;
    this.stomp.disconnect(() => {});
    await withTimeout(this.closed, 5000, 'page close').catch(() => this.ws.terminate());
  }

  async terminate() {
    if (this.closeInfo) return;
    try { this.stomp._cleanUp(); } catch { /* ignore */ }
    this.ws.terminate();
    await withTimeout(this.closed, 2000, 'terminate').catch(() => {});
  }
}

/* ------------------------------------------------------------------ */
/* raw WebSocket + a small STOMP frame reader                          */
/* ------------------------------------------------------------------ */

function unescapeHeader(s) {
  return s.replace(/\\([nrc\\])/g, (_, c) => ({ n: '\n', r: '\r', c: ':', '\\': '\\' }[c]));
}

/**
 * Incremental reader of server frames: push() bytes, get complete frames.
 * Bare EOLs between frames are heart-beats (counted via onHeartbeat).
 */
export class FrameReader {
  constructor({ onFrame, onHeartbeat }) {
    this.buf = Buffer.alloc(0);
    this.onFrame = onFrame;
    this.onHeartbeat = onHeartbeat;
    this.escaping = true;
  }

  push(data) {
    this.buf = Buffer.concat([this.buf, Buffer.isBuffer(data) ? data : Buffer.from(data)]);
    for (;;) {
      const b = this.buf;
      if (b.length === 0) return;
      if (b[0] === 0x0a) { this.buf = b.subarray(1); this.onHeartbeat(); continue; }
      if (b[0] === 0x0d) {
        if (b.length < 2) return;
        if (b[1] === 0x0a) { this.buf = b.subarray(2); this.onHeartbeat(); continue; }
      }
      // header block: up to the first empty line
      let pos = 0;
      const lines = [];
      let end = -1;
      for (;;) {
        const nl = b.indexOf(0x0a, pos);
        if (nl < 0) break;
        let line = b.subarray(pos, nl).toString('utf8');
        if (line.endsWith('\r')) line = line.slice(0, -1);
        pos = nl + 1;
        if (line === '') { end = pos; break; }
        lines.push(line);
      }
      if (end < 0) return;
      const command = lines.shift();
      const headers = {};
      const headerList = [];
      const esc = this.escaping && command !== 'CONNECTED';
      for (const l of lines) {
        const i = l.indexOf(':');
        const k = esc ? unescapeHeader(l.slice(0, i)) : l.slice(0, i);
        const v = esc ? unescapeHeader(l.slice(i + 1)) : l.slice(i + 1);
        headerList.push([k, v]);
        if (!(k in headers)) headers[k] = v;
      }
      let body;
      let next;
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (b.length < end + n + 1) return;
        body = b.subarray(end, end + n);
        next = end + n + 1;
      } else {
        const nul = b.indexOf(0x00, end);
        if (nul < 0) return;
        body = b.subarray(end, nul);
        next = nul + 1;
      }
      this.buf = b.subarray(next);
      this.onFrame({ command, headers, headerList, body: body.toString('utf8'), bytes: body });
    }
  }
}

/** Result of a refused WebSocket handshake. */
export class HandshakeError extends Error {
  constructor(status, body, headers) {
    super(`WebSocket handshake refused: HTTP ${status} ${body}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/**
 * A plain WebSocket for hand-made STOMP frames.
 *   const r = await gw.raw({ token, protocols, origin, headers, path });
 *   r.send('CONNECT\naccept-version:1.2\n\n\0');
 *   const f = await r.frames.waitFor((f) => f.command === 'CONNECTED');
 *   const c = await r.waitClose();   // {code, reason}
 * RawStomp.open() rejects with HandshakeError when the upgrade is refused.
 * Every frame gets `seq`; heart-beats are recorded in `heartbeats` (times).
 */
export class RawStomp {
  static open(gw, opts = {}) {
    const { token, tokenVia = 'srect', protocols = [], origin, headers = {}, path: p = '/client', query } = opts;
    let url = typeof p === 'string' && p.startsWith('ws') ? p : gw.wsUrl(p);
    const q = [];
    if (token && (tokenVia === 'srect' || tokenVia === 'token')) q.push(`${tokenVia}=${encodeURIComponent(token)}`);
    if (query) q.push(query);
    if (q.length) url += (url.includes('?') ? '&' : '?') + q.join('&');
    const h = { ...headers };
    if (token && tokenVia === 'bearer') h.Authorization = `Bearer ${token}`;
    if (origin !== undefined) h.Origin = origin;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers: h, perMessageDeflate: false, maxPayload: 64 << 20 });
      let done = false;
      ws.on('unexpected-response', (req, res) => {
        const chunks = [];
        const finish = () => {
          clearTimeout(timer);
          if (!done) {
            done = true;
            reject(new HandshakeError(res.statusCode, Buffer.concat(chunks).toString('utf8'), res.headers));
          }
          req.destroy();
        };
        // a refusal without Content-Length may never end: give it 2 s
        const timer = setTimeout(finish, 2000);
        res.on('data', (c) => chunks.push(c));
        res.on('end', finish);
        res.on('error', finish);
        req.on('error', () => {});
      });
      ws.on('error', (e) => { if (!done) { done = true; reject(e); } });
      ws.on('open', () => {
        done = true;
        resolve(new RawStomp(ws, url));
      });
    });
  }

  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.seq = 0;
    this.frames = new Mailbox(`raw ${url} frames`);
    this.heartbeats = [];
    this.wsMessages = 0;
    this.closeInfo = null;
    this.closed = new Promise((r) => { this._onClosed = r; });
    this.reader = new FrameReader({
      onFrame: (f) => {
        f.seq = ++this.seq;
        f.at = Date.now();
        f.json = parseJson(f.body);
        if (f.command === 'CONNECTED' && f.headers.version === '1.0') this.reader.escaping = false;
        this.frames.push(f);
      },
      onHeartbeat: () => this.heartbeats.push(Date.now()),
    });
    ws.on('message', (data, isBinary) => {
      this.wsMessages++;
      this.lastBinary = isBinary;
      this.reader.push(data);
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
      this._onClosed(this.closeInfo);
    });
  }

  get protocol() { return this.ws.protocol; }
  get open() { return !this.closeInfo && this.ws.readyState === WebSocket.OPEN; }

  /** Sends one WebSocket message (text unless binary or a Buffer). */
  send(data, { binary } = {}) {
    this.ws.send(data, { binary: binary ?? Buffer.isBuffer(data) });
  }

  /** Sends data as one WebSocket message per `size` bytes. */
  async sendInPieces(data, size = 1) {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
    for (let i = 0; i < b.length; i += size) {
      await new Promise((res, rej) => this.ws.send(b.subarray(i, i + size), { binary: true }, (e) => (e ? rej(e) : res())));
    }
  }

  /** CONNECT (headers added to accept-version/host/heart-beat defaults). */
  async connect(headers = {}, timeout = 10000) {
    const h = { 'accept-version': '1.2,1.1,1.0', host: 'localhost', 'heart-beat': '0,0', ...headers };
    for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
    this.send(buildFrame('CONNECT', h));
    const f = await this.frames.waitFor((x) => x.command === 'CONNECTED' || x.command === 'ERROR', timeout,
      { what: 'CONNECTED' });
    if (f.command !== 'CONNECTED') throw new Error(`CONNECT answered ERROR: ${f.headers.message} ${f.body}`);
    return f;
  }

  /** SUBSCRIBE with a receipt; resolves when the RECEIPT came. */
  async subscribe(destination, id, timeout = 10000) {
    const receipt = `r-${id}`;
    this.send(buildFrame('SUBSCRIBE', { id, destination, receipt }));
    await this.frames.waitFor((f) => (f.command === 'RECEIPT' && f.headers['receipt-id'] === receipt) || f.command === 'ERROR',
      timeout, { what: `RECEIPT ${receipt}` });
    const err = this.frames.find((f) => f.command === 'ERROR');
    if (err) throw new Error(`SUBSCRIBE ${destination} answered ERROR: ${err.headers.message} ${err.body}`);
  }

  /** The next MESSAGE on a subscription id. */
  message(sub, pred = () => true, timeout = 10000, since = 0) {
    return this.frames.waitFor((f) => f.command === 'MESSAGE' && f.headers.subscription === sub && pred(f),
      timeout, { since, what: `MESSAGE on ${sub}` });
  }

  waitError(timeout = 5000) {
    return this.frames.waitFor((f) => f.command === 'ERROR', timeout, { what: 'ERROR frame' });
  }

  waitClose(timeout = 5000) {
    return withTimeout(this.closed, timeout, `close of ${this.url}`);
  }

  close() {
    if (!this.closeInfo) this.ws.close();
  }

  async terminate() {
    if (!this.closeInfo) this.ws.terminate();
    await withTimeout(this.closed, 2000, 'terminate').catch(() => {});
  }
}

/**
 * A STOMP frame as a Buffer. headers: object or [[name, value], ...] (kept
 * as given: no escaping). body: string or Buffer. contentLength: true (add
 * the right one, default when a body is given), false, or a literal value.
 */
export function buildFrame(command, headers = {}, body = '', { contentLength, eol = '\n' } = {}) {
  const list = Array.isArray(headers) ? [...headers] : Object.entries(headers);
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const cl = contentLength === undefined ? b.length > 0 : contentLength;
  if (cl === true) list.push(['content-length', String(b.length)]);
  else if (cl !== false) list.push(['content-length', String(cl)]);
  let head = command + eol;
  for (const [k, v] of list) head += `${k}:${v}${eol}`;
  head += eol;
  return Buffer.concat([Buffer.from(head, 'utf8'), b, Buffer.from([0])]);
}

/** The JSON body of a chat send. */
export function chatBody(to, content, msgID = msgId(content)) {
  return JSON.stringify({ msgID, reciverId: to, content });
}
