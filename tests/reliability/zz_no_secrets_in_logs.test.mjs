// After the whole suite: no token and no password in any log (issue #8;
// gateway/chat/auth.c: "tokens are never logged"; PROTOCOL.md 1: only a hash of
// each token is stored).
//
// CTest runs this file last (tests/reliability/CMakeLists.txt makes it
// DEPEND on every integration, e2e, deploy and reliability test, so under
// `ctest -j` it starts once they have all finished). It reads every log the
// harness kept: each gateway's stderr and stdout and each redis.log under
// the run directories in CHATGATE_LOG_DIRS (colon-separated; CMake passes
// the integration, e2e, deploy and reliability `runs` directories). With no
// gateway log there it FAILS: a check that read nothing proves nothing (run
// the suite first; alone after a run, it reads that run's logs). It looks
// for:
//   - every token and password the reliability tests recorded
//     (lib/util.mjs `secrets`, $CHATGATE_IT_TMPDIR/secrets/*.txt);
//   - the passwords the integration tests use: string literals next to
//     "password" or passed to register()/login()/newUser() in
//     tests/integration and tests/e2e sources, and the harness's default;
//   - any token of any test, known or not: every 43-character base64url
//     word in a log is hashed (SHA-256, as the gateway does) and looked up
//     in every Redis AOF of the runs (`cg:tok:<hash>` keys): a hit is a real
//     token in a log;
//   - a "password" JSON member with a value.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT } from '../integration/lib/harness.mjs';

function walk(dir, out = []) {
  let ents;
  try { ents = fs.readdirSync(dir, { withFileTypes: true }); } catch { return out; }
  for (const e of ents) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function literalPasswords() {
  const found = new Set(['pässwörd-123']);           // harness.mjs newUser()'s default
  const srcs = [...walk(path.join(REPO_ROOT, 'tests/integration')), ...walk(path.join(REPO_ROOT, 'tests/e2e'))]
    .filter((f) => /\.m?js$/.test(f));
  const res = [
    /password['"]?\s*[:=,]\s*(['"`])([^'"`\n]{8,128})\1/gi,
    /\b(?:register|newUser|login|newUserE2e)\(\s*[^,()]+,\s*(['"`])([^'"`\n]{8,128})\1/g,
  ];
  for (const f of srcs) {
    const s = fs.readFileSync(f, 'utf8');
    for (const re of res) for (const m of s.matchAll(re)) if (!m[2].includes('${')) found.add(m[2]);
  }
  return found;
}

/** A gateway's own log (the harness names them <name>.<generation>.stderr
 * and .stdout; redis-server's are redis.*). */
const isGatewayLog = (f) => /\.(stderr|stdout)$/.test(f) && !path.basename(f).startsWith('redis.');

/** Scans the run directories; returns {logs, gatewayLogs, leaks, stats}. */
function scan(dirs, extraPasswords = []) {
  const files = dirs.flatMap((d) => walk(d));
  const logs = files.filter((f) => /\.(stderr|stdout)$/.test(f) || path.basename(f) === 'redis.log');
  const aofs = files.filter((f) => /\.aof$/.test(f) || /appendonly/.test(path.basename(f)));
  const secrets = { token: new Set(), password: new Set(extraPasswords) };
  for (const f of files.filter((x) => /[/\\]secrets[/\\][^/\\]+\.txt$/.test(x))) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
      const i = line.indexOf(' ');
      if (i > 0) secrets[line.slice(0, i)]?.add(line.slice(i + 1));
    }
  }
  // every cg:tok:<hash> any run ever stored
  const tokenHashes = new Set();
  for (const f of aofs) {
    const s = fs.readFileSync(f, 'latin1');
    for (const m of s.matchAll(/cg:tok:([0-9a-f]{64})/g)) tokenHashes.add(m[1]);
  }
  const leaks = [];
  let bytes = 0;
  const b64 = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g;
  for (const f of logs) {
    const s = fs.readFileSync(f, 'utf8');
    bytes += s.length;
    for (const kind of ['token', 'password']) {
      for (const v of secrets[kind]) {
        if (v.length >= 8 && s.includes(v)) leaks.push(`${kind} ${kind === 'token' ? `${v.slice(0, 6)}...` : JSON.stringify(v)} in ${f}`);
      }
    }
    for (const m of s.matchAll(b64)) {
      const hsh = crypto.createHash('sha256').update(m[0]).digest('hex');
      if (tokenHashes.has(hsh)) leaks.push(`a live token (sha256 ${hsh.slice(0, 12)}..., found in an AOF) in ${f}`);
    }
    if (/"password"\s*:\s*"[^"]/.test(s)) leaks.push(`a "password" JSON member in ${f}`);
  }
  const gatewayLogs = logs.filter(isGatewayLog);
  return {
    logs, gatewayLogs, leaks: [...new Set(leaks)],
    stats: { logs: logs.length, gatewayLogs: gatewayLogs.length, mib: (bytes / 1048576).toFixed(1), aofs: aofs.length, tokenHashesInAofs: tokenHashes.size,
      knownTokens: secrets.token.size, passwords: secrets.password.size },
  };
}

describe('no secret in any log', () => {
  it('the scan finds planted leaks (a checker that cannot fail proves nothing)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-leak-'));
    try {
      const known = crypto.randomBytes(32).toString('base64url');
      const unknown = crypto.randomBytes(32).toString('base64url');
      fs.mkdirSync(path.join(dir, 'env', 'appendonlydir'), { recursive: true });
      fs.mkdirSync(path.join(dir, 'secrets'));
      fs.writeFileSync(path.join(dir, 'secrets', 'x.txt'), `token ${known}\npassword hunter2-secret\n`);
      fs.writeFileSync(path.join(dir, 'env', 'appendonlydir', 'appendonly.aof.1.incr.aof'),
        `*3\r\n$3\r\nSET\r\n$71\r\ncg:tok:${crypto.createHash('sha256').update(unknown).digest('hex')}\r\n`);
      fs.writeFileSync(path.join(dir, 'env', 'gw.1.stderr'),
        `x token=${known} y\nlogin {"password":"p"}\nsrect=${unknown}&z\nhunter2-secret\nok ${crypto.randomBytes(32).toString('base64url')}\n`);
      fs.writeFileSync(path.join(dir, 'env', 'redis.stderr'), '');
      assert.equal(scan([path.join(dir, 'secrets')]).gatewayLogs.length, 0, 'no gateway log: the check below fails');
      const r = scan([dir]);
      assert.deepEqual(r.gatewayLogs, [path.join(dir, 'env', 'gw.1.stderr')]);
      assert.equal(r.leaks.length, 4, r.leaks.join('\n'));
      assert.ok(r.leaks.some((l) => l.startsWith('token ')));
      assert.ok(r.leaks.some((l) => l.startsWith('password ')));
      assert.ok(r.leaks.some((l) => l.startsWith('a live token')));
      assert.ok(r.leaks.some((l) => l.startsWith('a "password"')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('no token or password the suite used appears in any gateway or Redis log', { timeout: 120000 }, () => {
    const dirs = (process.env.CHATGATE_LOG_DIRS || process.env.CHATGATE_IT_TMPDIR || '').split(':').filter(Boolean);
    const r = scan(dirs, literalPasswords());
    assert.ok(r.gatewayLogs.length > 0,
      `no gateway log to check under ${dirs.join(', ') || '(CHATGATE_LOG_DIRS and CHATGATE_IT_TMPDIR are unset)'}: `
      + 'this check reads the logs that the integration, e2e, deploy and reliability tests leave there, '
      + 'so run them first (ctest runs it after them; `ctest -R zz_no_secrets` alone works after a run)');
    console.log(`[no secrets] ${JSON.stringify({ dirs, ...r.stats, leaks: r.leaks.length })}`);
    assert.deepEqual(r.leaks.slice(0, 20), [], 'secrets in logs');
    assert.ok(r.stats.knownTokens > 0 || r.stats.tokenHashesInAofs > 0, 'there were tokens to look for');
  });
});
