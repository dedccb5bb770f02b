// deploy.mjs - helpers for the deployment tests (tests/deploy, issue #6),
// next to tests/integration/lib/harness.mjs, whose Env, Gateway and clients
// they reuse:
//
//   Nginx          Debian's nginx as an unprivileged foreground process,
//                  from docker/nginx.conf with the ports, upstreams, paths
//                  and certificate filled in (renderNginxConf)
//   Front          "a gateway at nginx's address": harness clients
//                  (StompSession, SockJS helpers, the HTTP API) go through
//                  nginx when handed a Front instead of a Gateway
//   parsePrometheus  a strict parser of the Prometheus text format 0.0.4
//   parseYaml      the YAML subset docker-compose.yml uses
//   parseDockerfile  stages and instructions of a Dockerfile
//   ClusterClient  a RESP client that follows MOVED/ASK redirects, and
//                  startCluster(): a 3-master Redis Cluster on loopback
//   nodeOfUser     which gateway serves a user, from the gateways' logs
//   selfSignedCert an openssl-made certificate for 127.0.0.1
//
// Environment (CTest sets them; defaults for running by hand):
//   NGINX        nginx binary (default: nginx on PATH, or /usr/sbin/nginx)
//   REDIS_CLI    redis-cli (default: redis-cli on PATH)
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import {
  REPO_ROOT, Gateway, freePort, sleep, withTimeout, redisBinary, until,
} from '../../integration/lib/harness.mjs';

export const NGINX_CONF = path.join(REPO_ROOT, 'docker', 'nginx.conf');

export function nginxBinary() {
  if (process.env.NGINX) return process.env.NGINX;
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (fs.existsSync(p)) return p;
  return 'nginx';
}

export function redisCliBinary() {
  return process.env.REDIS_CLI || 'redis-cli';
}

/* ------------------------------------------------------------------ */
/* processes                                                           */
/* ------------------------------------------------------------------ */

const procs = new Set();
process.on('exit', () => {
  for (const p of procs) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

/** spawn with output to files; dies with the test process (setpriv). */
export function spawnTracked(cmd, args, { outFile, errFile, env } = {}) {
  const out = outFile ? fs.openSync(outFile, 'a') : 'ignore';
  const err = errFile ? fs.openSync(errFile, 'a') : 'ignore';
  const argv = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(argv[0], argv[1], { stdio: ['ignore', out, err], env: env || process.env });
  if (typeof out === 'number') fs.closeSync(out);
  if (typeof err === 'number') fs.closeSync(err);
  procs.add(child);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      procs.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
  });
  child.once('error', (e) => { child.spawnError = e; });
  return child;
}

export function portOpen(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.createConnection({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/* ------------------------------------------------------------------ */
/* nginx                                                               */
/* ------------------------------------------------------------------ */

/**
 * docker/nginx.conf with the test's values: every line marked
 * "deploy-test: <what>" is rewritten, and each must be found exactly once
 * (so the test notices when nginx.conf and this function drift apart).
 * upstreams: [port, ...] of gateways on 127.0.0.1.
 */
export function renderNginxConf(src, { dir, httpPort, httpsPort, upstreams, cert, key }) {
  const rules = [
    ['temp paths are inserted here', () => [
      `client_body_temp_path ${dir}/tmp/body;`,
      `proxy_temp_path ${dir}/tmp/proxy;`,
      `fastcgi_temp_path ${dir}/tmp/fastcgi;`,
      `uwsgi_temp_path ${dir}/tmp/uwsgi;`,
      `scgi_temp_path ${dir}/tmp/scgi;`,
    ].join(' ')],
    ['deploy-test: access_log', () => `access_log ${dir}/access.log chatgate;`],
    ['deploy-test: listen http', () => `listen 127.0.0.1:${httpPort};`],
    ['deploy-test: listen https', () => `listen 127.0.0.1:${httpsPort} ssl;`],
    ['deploy-test: certificate', () => `ssl_certificate ${cert};`],
    ['deploy-test: key', () => `ssl_certificate_key ${key};`],
  ];
  const lines = src.split('\n');
  for (const [marker, make] of rules) {
    const re = new RegExp(`${marker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w])`);
    const idx = lines.map((l, i) => (re.test(l) ? i : -1)).filter((i) => i >= 0);
    if (idx.length !== 1) throw new Error(`docker/nginx.conf: expected one line with "${marker}", found ${idx.length}`);
    const i = idx[0];
    const indent = lines[i].match(/^\s*/)[0];
    // A comment-only marker line (the temp paths) is kept and followed by
    // the directives; a directive line is replaced.
    if (lines[i].trim().startsWith('#')) {
      let j = i;
      while (j + 1 < lines.length && lines[j + 1].trim().startsWith('#')) j++;
      lines.splice(j + 1, 0, indent + make());
    } else {
      lines[i] = indent + make();
    }
  }
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, lines.join('\n'));
  fs.writeFileSync(path.join(dir, 'chatgate-upstream.conf'),
    upstreams.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;\n`).join(''));
  return conf;
}

export class Nginx {
  constructor(dir) {
    this.dir = dir;
    this.proc = null;
    this.httpPort = null;
    this.httpsPort = null;
  }

  get errorLog() { return path.join(this.dir, 'error.log'); }
  get accessLog() { return path.join(this.dir, 'access.log'); }

  globals() {
    return `daemon off; master_process on; pid ${this.dir}/nginx.pid; error_log ${this.errorLog} notice;`;
  }

  /** Renders the config (see renderNginxConf), checks it with nginx -t and starts nginx. */
  async start({ upstreams, cert, key }) {
    fs.mkdirSync(this.dir, { recursive: true });
    this.httpPort = await freePort();
    this.httpsPort = await freePort();
    this.conf = renderNginxConf(fs.readFileSync(NGINX_CONF, 'utf8'), {
      dir: this.dir, httpPort: this.httpPort, httpsPort: this.httpsPort, upstreams, cert, key,
    });
    const t = spawnSync(nginxBinary(), ['-t', '-p', this.dir, '-c', this.conf, '-g', this.globals()],
      { encoding: 'utf8' });
    if (t.status !== 0) throw new Error(`nginx -t failed:\n${t.stderr}`);
    this.proc = spawnTracked(nginxBinary(), ['-p', this.dir, '-c', this.conf, '-g', this.globals()], {
      outFile: path.join(this.dir, 'nginx.stdout'), errFile: path.join(this.dir, 'nginx.stderr'),
    });
    await until(async () => {
      if (this.proc.exitInfo) throw new Error(`nginx exited ${JSON.stringify(this.proc.exitInfo)}: ${this.log()}`);
      return (await portOpen(this.httpPort)) && (await portOpen(this.httpsPort));
    }, { timeout: 10000, what: 'nginx listening' });
    return this;
  }

  log() {
    try { return fs.readFileSync(this.errorLog, 'utf8').slice(-4000); } catch { return ''; }
  }

  /** Graceful stop (SIGQUIT), SIGKILL after 5 s. */
  async stop() {
    if (!this.proc || this.proc.exitInfo) return;
    this.proc.kill('SIGQUIT');
    try {
      await withTimeout(this.proc.exited, 5000, 'nginx stop');
    } catch {
      this.proc.kill('SIGKILL');
      await this.proc.exited;
    }
  }
}

/**
 * nginx seen as one gateway: the harness clients only use url(), wsUrl(),
 * env and the HTTP API helpers, so they work through nginx unchanged.
 */
export class Front {
  constructor(env, port, { scheme = 'http' } = {}) {
    this.env = env;
    this.port = port;
    this.scheme = scheme;
    this.basePath = '';
    this.name = `nginx:${port}`;
  }

  get origin() { return `${this.scheme}://127.0.0.1:${this.port}`; }
  url(p = '') { return `${this.origin}${this.basePath}${p}`; }
  wsUrl(p = '/client') { return `${this.scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${this.port}${this.basePath}${p}`; }
}
for (const m of ['api', 'register', 'login', 'newUser', 'loginToken', 'stomp', 'mimi', 'raw']) {
  Front.prototype[m] = Gateway.prototype[m];
}

/* ------------------------------------------------------------------ */
/* which node serves whom                                              */
/* ------------------------------------------------------------------ */

/**
 * The gateways (of gws) whose current log shows a session of username
 * that connected and has not closed yet: session_connect.c logs
 * "[s#N u=NAME ADDR TRANSPORT] connected: ..." and session.c "... closed: ...".
 */
export function nodesOfUser(gws, username) {
  const out = [];
  for (const gw of gws) {
    const text = gw.stderr();
    const open = new Set();
    const re = new RegExp(`\\[s#(\\d+) u=${username.replace(/[.]/g, '\\.')} [^\\]]*\\] (connected|closed)`, 'g');
    for (const m of text.matchAll(re)) {
      if (m[2] === 'connected') open.add(m[1]); else open.delete(m[1]);
    }
    if (open.size) out.push(gw);
  }
  return out;
}

/** The one gateway serving username (waits until the log shows it). */
export async function nodeOfUser(gws, username, timeout = 5000) {
  return until(() => {
    const n = nodesOfUser(gws, username);
    return n.length === 1 ? n[0] : null;
  }, { timeout, what: `the gateway serving ${username}` });
}

/* ------------------------------------------------------------------ */
/* Prometheus text format 0.0.4, strictly                              */
/* ------------------------------------------------------------------ */

const METRIC_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === 'NaN') return NaN;
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/.test(s)) {
    throw new Error(`${where}: bad sample value ${JSON.stringify(s)}`);
  }
  return Number(s);
}

function parseLabels(s, where) {
  // s is the text between { and } ; values are "..." with \\ \" \n escapes
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL_RE.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} repeated`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value must be quoted`);
    let j = eq + 2;
    let v = '';
    for (;;) {
      if (j >= s.length) throw new Error(`${where}: unterminated label value`);
      const c = s[j];
      if (c === '\\') {
        const n = s[j + 1];
        if (n === '\\') v += '\\'; else if (n === '"') v += '"'; else if (n === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${n}`);
        j += 2;
      } else if (c === '"') {
        j++;
        break;
      } else if (c === '\n') {
        throw new Error(`${where}: newline in label value`);
      } else {
        v += c;
        j++;
      }
    }
    labels[name] = v;
    if (j === s.length) break;
    if (s[j] !== ',') throw new Error(`${where}: expected ',' after label ${name}`);
    i = j + 1;
    if (i === s.length) break;         // a trailing comma is allowed
  }
  return labels;
}

function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suf)) {
      const base = name.slice(0, -suf.length);
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suf !== '_bucket'))) return base;
    }
  }
  return null;
}

/**
 * Parses an exposition; throws on anything the format does not allow or
 * that we never emit: a sample without a preceding TYPE, a family split in
 * two, duplicate series, bad names/labels/values, histograms whose buckets
 * are not cumulative or lack +Inf == _count, or that lack _sum.
 * Returns { families: Map(name -> {name, type, help, samples}), value(name, labels), sum(name, filter) }.
 */
export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map();
  const seen = new Set();
  const closed = new Set();
  let current = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return;                  // a plain comment
      const [, kw, name, rest] = m;
      if (!METRIC_RE.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      let f = families.get(name);
      if (!f) {
        if (closed.has(name)) throw new Error(`${where}: family ${name} split in two`);
        f = { name, type: null, help: null, samples: [] };
        families.set(name, f);
      } else if (f.samples.length) {
        throw new Error(`${where}: ${kw} for ${name} after its samples`);
      }
      if (current && current !== name) closed.add(current);
      current = name;
      if (kw === 'HELP') {
        if (f.help !== null) throw new Error(`${where}: second HELP for ${name}`);
        f.help = rest;
      } else {
        if (f.type !== null) throw new Error(`${where}: second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^]*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${JSON.stringify(line)}`);
    const [, name, , labelText, valueText] = m;
    const labels = labelText !== undefined ? parseLabels(labelText, where) : {};
    const value = parseValue(valueText, where);
    const fam = familyOf(name, families);
    if (!fam) throw new Error(`${where}: sample ${name} has no TYPE before it`);
    const f = families.get(fam);
    if (f.type === null) throw new Error(`${where}: sample ${name} has no TYPE before it`);
    if (closed.has(fam)) throw new Error(`${where}: family ${fam} split in two`);
    if (current !== fam) { if (current) closed.add(current); current = fam; }
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: duplicate series ${name}${labelText ? `{${labelText}}` : ''}`);
    seen.add(key);
    if ((f.type === 'counter' || name.endsWith('_count') || name.endsWith('_bucket')) && !(value >= 0)) {
      throw new Error(`${where}: ${name} must be a non-negative number`);
    }
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (f.type === null) throw new Error(`family ${f.name} has no TYPE`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  const match = (s, want) => Object.keys(want).length === Object.keys(s.labels).length &&
    Object.entries(want).every(([k, v]) => s.labels[k] === v);
  const api = {
    families,
    /** The value of the one sample named name with exactly these labels. */
    value(name, labels = {}) {
      const fam = families.get(familyOf(name, families));
      const s = fam?.samples.find((x) => x.name === name && match(x, labels));
      if (!s) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
      return s.value;
    },
    /** Sum of the samples named name whose labels include filter. */
    sum(name, filter = {}) {
      const fam = families.get(familyOf(name, families));
      if (!fam) throw new Error(`no family for ${name}`);
      return fam.samples.filter((x) => x.name === name &&
        Object.entries(filter).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
    },
  };
  return api;
}

function checkHistogram(f) {
  const groups = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: null, count: null });
    const g = groups.get(k);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`);
      g.buckets.push({ le: parseValue(le, `${f.name} le`), value: s.value });
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${s.name} in histogram ${f.name}`);
  }
  for (const g of groups.values()) {
    if (g.sum === null || g.count === null) throw new Error(`histogram ${f.name} lacks _sum or _count`);
    let prevLe = -Infinity;
    let prev = 0;
    for (const b of g.buckets) {
      if (!(b.le > prevLe)) throw new Error(`histogram ${f.name}: le not increasing`);
      if (b.value < prev) throw new Error(`histogram ${f.name}: buckets not cumulative`);
      prevLe = b.le;
      prev = b.value;
    }
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last.le !== Infinity) throw new Error(`histogram ${f.name} lacks le="+Inf"`);
    if (last.value !== g.count) throw new Error(`histogram ${f.name}: +Inf ${last.value} != _count ${g.count}`);
  }
}

/* ------------------------------------------------------------------ */
/* YAML, the subset docker-compose.yml uses                            */
/* ------------------------------------------------------------------ */

function yamlScalar(s, where) {
  s = s.trim();
  if (s === '') return null;
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new Error(`${where}: unterminated "string"`);
    return JSON.parse(s);
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new Error(`${where}: unterminated 'string'`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new Error(`${where}: unterminated [list]`);
    const inner = s.slice(1, -1).trim();
    if (inner === '') return [];
    const items = [];
    let cur = '';
    let q = null;
    for (const c of inner) {
      if (q) { cur += c; if (c === q) q = null; continue; }
      if (c === '"' || c === "'") { q = c; cur += c; continue; }
      if (c === ',') { items.push(yamlScalar(cur, where)); cur = ''; continue; }
      cur += c;
    }
    items.push(yamlScalar(cur, where));
    return items;
  }
  if (s.startsWith('{') || s.startsWith('&') || s.startsWith('*') || s.startsWith('|') || s.startsWith('>')) {
    throw new Error(`${where}: YAML feature not in the supported subset: ${s}`);
  }
  if (/^(true|false)$/.test(s)) return s === 'true';
  if (/^-?\d+$/.test(s)) return Number(s);
  return s;
}

/** Strips a comment that starts outside quotes. */
function yamlStripComment(line) {
  let q = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) { if (c === q) q = null; continue; }
    if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

/**
 * Block mappings and sequences by indentation, plain / quoted / flow-list
 * scalars, comments. Anchors, multi-line scalars, flow maps and tabs are
 * refused rather than misread.
 */
export function parseYaml(text) {
  const lines = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.includes('\t')) throw new Error(`line ${i + 1}: tab in YAML`);
    const l = yamlStripComment(raw).replace(/\s+$/, '');
    if (l.trim() === '' || l.trim() === '---') return;
    lines.push({ n: i + 1, indent: l.match(/^ */)[0].length, text: l.trim() });
  });
  let pos = 0;
  function parseBlock(indent) {
    const first = lines[pos];
    if (first.text.startsWith('- ') || first.text === '-') {
      const arr = [];
      while (pos < lines.length && lines[pos].indent === indent &&
             (lines[pos].text.startsWith('- ') || lines[pos].text === '-')) {
        const l = lines[pos];
        const rest = l.text === '-' ? '' : l.text.slice(2);
        if (rest === '') {
          pos++;
          arr.push(parseBlock(lines[pos].indent));
        } else if (/^[^"'[][^:]*:( |$)/.test(rest)) {
          // "- key: value" starts a mapping at indent + 2
          lines[pos] = { n: l.n, indent: indent + 2, text: rest };
          arr.push(parseBlock(indent + 2));
        } else {
          arr.push(yamlScalar(rest, `line ${l.n}`));
          pos++;
        }
      }
      return arr;
    }
    const obj = {};
    while (pos < lines.length && lines[pos].indent === indent) {
      const l = lines[pos];
      if (l.text.startsWith('- ')) throw new Error(`line ${l.n}: list item inside a mapping`);
      const m = /^("[^"]*"|'[^']*'|[^:]+):( (.*))?$/.exec(l.text);
      if (!m) throw new Error(`line ${l.n}: expected "key: value"`);
      const key = yamlScalar(m[1], `line ${l.n}`);
      if (Object.prototype.hasOwnProperty.call(obj, key)) throw new Error(`line ${l.n}: duplicate key ${key}`);
      pos++;
      if (m[3] !== undefined && m[3].trim() !== '') {
        obj[key] = yamlScalar(m[3], `line ${l.n}`);
      } else if (pos < lines.length && lines[pos].indent > indent) {
        obj[key] = parseBlock(lines[pos].indent);
      } else if (pos < lines.length && lines[pos].indent === indent && lines[pos].text.startsWith('- ')) {
        obj[key] = parseBlock(indent);   // a list at the key's own indent
      } else {
        obj[key] = null;
      }
    }
    if (pos < lines.length && lines[pos].indent > indent) {
      throw new Error(`line ${lines[pos].n}: unexpected indentation`);
    }
    return obj;
  }
  if (lines.length === 0) return null;
  const doc = parseBlock(lines[0].indent);
  if (pos !== lines.length) throw new Error(`line ${lines[pos].n}: unexpected dedent`);
  return doc;
}

/* ------------------------------------------------------------------ */
/* Dockerfile                                                          */
/* ------------------------------------------------------------------ */

/**
 * [{from, as, instructions: [{cmd, args, line}]}] - continuation lines
 * joined, comments and parser directives dropped.
 */
export function parseDockerfile(text) {
  const stages = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const t = raw.trim();
    if (buf === '' && (t === '' || t.startsWith('#'))) return;
    if (buf !== '' && t.startsWith('#')) return;   // comments inside a continued RUN
    if (buf === '') start = i + 1;
    if (t.endsWith('\\')) { buf += `${t.slice(0, -1)} `; return; }
    buf += t;
    const m = /^([A-Za-z]+)\s+([^]*)$/.exec(buf);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse ${buf}`);
    const cmd = m[1].toUpperCase();
    const args = m[2].trim();
    if (cmd === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ from: f[1], as: f[2] || null, instructions: [], line: start });
    } else {
      if (!stages.length) { if (cmd !== 'ARG') throw new Error(`Dockerfile line ${start}: ${cmd} before FROM`); }
      else stages[stages.length - 1].instructions.push({ cmd, args, line: start });
    }
    buf = '';
  });
  if (buf !== '') throw new Error('Dockerfile ends inside a continued line');
  return stages;
}

/** Packages of every "apt-get install" in a RUN, minus options. */
export function aptPackages(stage) {
  const pkgs = [];
  for (const ins of stage.instructions) {
    if (ins.cmd !== 'RUN') continue;
    for (const part of ins.args.split(/&&|;/)) {
      const m = /apt-get\s+(?:-\S+\s+)*install\s+([^]*)$/.exec(part.trim());
      if (!m) continue;
      for (const w of m[1].split(/\s+/)) if (w && !w.startsWith('-')) pkgs.push(w);
    }
  }
  return pkgs;
}

/* ------------------------------------------------------------------ */
/* Redis Cluster                                                       */
/* ------------------------------------------------------------------ */

function respEncode(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    s += `$${b.length}\r\n${b.toString('binary')}\r\n`;
  }
  return Buffer.from(s, 'binary');
}

function respParse(buf, pos) {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (buf[pos]) {
    case 0x2b: return [line, next];
    case 0x2d: return [Object.assign(new Error(line), { redis: true }), next];
    case 0x3a: return [Number(line), next];
    case 0x24: {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case 0x2a: {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = respParse(buf, p);
        if (!r) return null;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default: throw new Error(`RESP: unexpected byte ${buf[pos]}`);
  }
}

/** One connection; replies in order; pushes (pub/sub) go to onPush. */
export class RespConn {
  static open(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ host, port });
      s.once('error', reject);
      s.once('connect', () => { s.removeListener('error', reject); resolve(new RespConn(s, port)); });
    });
  }

  constructor(sock, port) {
    this.sock = sock;
    this.port = port;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.onPush = null;
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      let pos = 0;
      for (;;) {
        const r = respParse(this.buf, pos);
        if (!r) break;
        pos = r[1];
        const v = r[0];
        if (this.onPush && Array.isArray(v) && (v[0] === 'message' || v[0] === 'subscribe')) {
          this.onPush(v);
          if (v[0] === 'message') continue;
        }
        const w = this.waiting.shift();
        if (w) w(v);
      }
      this.buf = this.buf.subarray(pos);
    });
    sock.on('error', () => {});
  }

  /** Resolves the reply (an Error object for an error reply). */
  call(...args) {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.sock.write(respEncode(args));
    });
  }

  close() { this.sock.destroy(); }
}

/** CRC16/XMODEM of the key's hash tag, mod 16384 (Redis Cluster's slot). */
export function keySlot(key) {
  let k = key;
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) k = k.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(k)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * A cluster client that knows nothing in advance: each command goes to a
 * node (the slot map learnt so far, else the first node) and follows
 * -MOVED (learns the slot's owner) and -ASK (one ASKING + retry) replies,
 * as a cluster-aware client must. Counts the redirects it followed.
 */
export class ClusterClient {
  constructor(ports) {
    this.ports = ports;
    this.conns = new Map();
    this.slots = new Map();
    this.moved = 0;
    this.asked = 0;
  }

  async conn(port) {
    if (!this.conns.has(port)) this.conns.set(port, await RespConn.open(port));
    return this.conns.get(port);
  }

  /** args: the command; key: the key that routes it (first KEYS entry). */
  async call(key, ...args) {
    let port = (key !== null && this.slots.get(keySlot(key))) || this.ports[0];
    let asking = false;
    for (let hop = 0; hop < 5; hop++) {
      const c = await this.conn(port);
      if (asking) await c.call('ASKING');
      const r = await c.call(...args);
      if (r instanceof Error && /^(MOVED|ASK) /.test(r.message)) {
        const [kind, slot, addr] = r.message.split(' ');
        port = Number(addr.slice(addr.lastIndexOf(':') + 1));
        if (kind === 'MOVED') { this.moved++; this.slots.set(Number(slot), port); asking = false; }
        else { this.asked++; asking = true; }
        continue;
      }
      return r;
    }
    throw new Error(`too many redirects for ${args[0]} ${key}`);
  }

  close() { for (const c of this.conns.values()) c.close(); }
}

/**
 * Three redis-server in cluster mode on loopback (ports whose bus port,
 * port + 10000, is free too), joined with redis-cli --cluster create, no
 * replicas. Resolves {ports, procs, stop()} once cluster_state is ok.
 */
export async function startCluster(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const ports = [];
  while (ports.length < 3) {
    const p = await freePort();
    if (p > 55000 || ports.includes(p)) continue;
    if (await portOpen(p + 10000)) continue;
    ports.push(p);
  }
  const procs = ports.map((p) => {
    const d = path.join(dir, String(p));
    fs.mkdirSync(d, { recursive: true });
    return spawnTracked(redisBinary(), [
      '--port', String(p), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(d, 'nodes.conf'), '--cluster-node-timeout', '5000',
      '--dir', d, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
      '--daemonize', 'no', '--logfile', path.join(d, 'redis.log'),
    ]);
  });
  const stop = async () => {
    for (const p of procs) if (!p.exitInfo) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
  };
  try {
    for (const p of ports) {
      await until(async () => {
        const c = await RespConn.open(p).catch(() => null);
        if (!c) return false;
        const r = await c.call('PING');
        c.close();
        return r === 'PONG';
      }, { timeout: 10000, what: `redis-server ${p}` });
    }
    const create = spawnSync(redisCliBinary(), [
      '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '0', '--cluster-yes',
    ], { encoding: 'utf8', timeout: 30000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    await until(async () => {
      for (const p of ports) {
        const c = await RespConn.open(p);
        const info = await c.call('CLUSTER', 'INFO');
        c.close();
        if (!/cluster_state:ok/.test(info)) return false;
      }
      return true;
    }, { timeout: 15000, what: 'cluster_state:ok on every node' });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ports, procs, stop };
}

/* ------------------------------------------------------------------ */
/* misc                                                                */
/* ------------------------------------------------------------------ */

/** A self-signed certificate for 127.0.0.1 (and localhost): {cert, key}. */
export function selfSignedCert(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { cert, key };
}

/** The gateway's effective default configuration (chatgate --print-config). */
export function defaultConfig(bin) {
  return JSON.parse(execFileSync(bin, ['--print-config'], { encoding: 'utf8', env: { PATH: process.env.PATH } }));
}

/** nginx duration ("360s", "6m", "1h", "500ms", "30") in milliseconds. */
export function nginxDurationMs(v) {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v);
  if (!m) throw new Error(`not an nginx duration: ${v}`);
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2] || 's'];
  return Number(m[1]) * mult;
}

/**
 * The first-level directives of nginx.conf, flattened: [{name, args, ctx}]
 * where ctx is the block path ("http/server/location ..."). Comments and
 * quoted strings are handled; enough to look up what a test checks.
 */
export function nginxDirectives(text) {
  const out = [];
  const stack = [];
  let tok = '';
  let words = [];
  let q = null;
  const flush = () => { if (tok !== '') { words.push(tok); tok = ''; } };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '\\' && i + 1 < text.length) { tok += c + text[++i]; continue; }
      if (c === q) { q = null; continue; }
      tok += c;
      continue;
    }
    if (c === '#') { while (i < text.length && text[i] !== '\n') i++; flush(); continue; }
    if (c === '"' || c === "'") { q = c; continue; }
    if (/\s/.test(c)) { flush(); continue; }
    if (c === ';') { flush(); if (words.length) out.push({ name: words[0], args: words.slice(1), ctx: stack.join('/') }); words = []; continue; }
    if (c === '{') { flush(); stack.push(words.join(' ')); out.push({ name: words[0], args: words.slice(1), ctx: stack.slice(0, -1).join('/'), block: true }); words = []; continue; }
    if (c === '}') { flush(); stack.pop(); words = []; continue; }
    tok += c;
  }
  return out;
}


