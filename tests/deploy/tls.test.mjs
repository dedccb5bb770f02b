// tls.test.mjs - TLS without a proxy: --tls-cert/--tls-key make the gateway
// serve https and wss itself (lws with OpenSSL), TLS 1.2 and 1.3 only.
// The certificate is made here with openssl for 127.0.0.1.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import {
  Env, Gateway, RawStomp, WebSocket, withTimeout, buildFrame, sleep,
} from '../integration/lib/harness.mjs';
import { selfSignedCert } from './lib/deploy.mjs';

/** The harness's Gateway, probed for readiness over https. */
class TlsGateway extends Gateway {
  get origin() { return `https://127.0.0.1:${this.port}`; }

  async waitReady(timeout = 30000) {
    const end = Date.now() + timeout;
    let last = 'no answer';
    while (Date.now() < end) {
      if (this.proc.exitInfo) throw new Error(`exited early ${JSON.stringify(this.proc.exitInfo)}`);
      try {
        const r = await new Promise((resolve, reject) => {
          https.get({ host: '127.0.0.1', port: this.port, path: '/readyz', ca }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          }).on('error', reject);
        });
        if (r === 200) return;
        last = `HTTP ${r}`;
      } catch (e) {
        last = e.message;
      }
      await sleep(100);
    }
    throw new Error(`https readyz not 200 within ${timeout} ms (last: ${last})`);
  }
}

let env;
let gw;
let ca;

before(async () => {
  env = new Env('deploy_tls');
  await env.init();
  const c = selfSignedCert(path.join(env.dir, 'certs'));
  ca = fs.readFileSync(c.cert);
  gw = new TlsGateway(env, { name: 'tls', args: ['--tls-cert', c.cert, '--tls-key', c.key],
    redisUrl: env.redis.url });
  env.gateways.push(gw);
  await gw.start();
});
afterEach(() => env?.check());
after(async () => { await env?.close(); });

function get(p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: gw.port, path: p, ca, ...opts }, (res) => {
      const tls = res.socket.getProtocol();
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, tls }));
    });
    req.on('error', reject);
    if (opts.body) req.end(opts.body); else req.end();
  });
}

/** openssl s_client with one protocol version; resolves {ok, out}. */
function sClient(version) {
  // SECLEVEL=0 lets the client offer TLS 1.1 at all (OpenSSL 3 refuses it
  // on its own otherwise), so a failure is the server's refusal.
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${gw.port}`, `-${version}`,
    '-cipher', 'DEFAULT@SECLEVEL=0', '-servername', '127.0.0.1'], { input: '', encoding: 'utf8', timeout: 10000 });
  const out = r.stdout + r.stderr;
  return { ok: r.status === 0 && /Cipher is (?!\(NONE\))/.test(out), out };
}

test('the gateway serves https (readyz answered over TLS)', async () => {
  const r = await get('/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok\n');
  assert.match(r.tls, /^TLSv1\.[23]$/);
  assert.match(gw.stderr(), /listening on https:\/\//);
});

test('TLS 1.2 and 1.3 are accepted, TLS 1.1 is refused by the server', () => {
  const v13 = sClient('tls1_3');
  assert.ok(v13.ok, v13.out);
  assert.match(v13.out, /New, TLSv1\.3, Cipher is /);
  const v12 = sClient('tls1_2');
  assert.ok(v12.ok, v12.out);
  assert.match(v12.out, /New, TLSv1\.2, Cipher is /);
  const v11 = sClient('tls1_1');
  assert.ok(!v11.ok, 'TLS 1.1 handshake must fail');
  assert.match(v11.out, /alert protocol version|unsupported protocol|no protocols available/i);
});

test('the HTTP API and STOMP over wss work', async () => {
  const reg = await get('/api/register', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: `tls_${Date.now() % 100000}`, password: 'secret-pw-1' }),
  });
  assert.equal(reg.status, 201, reg.body);
  const name = JSON.parse(reg.body).username;
  const login = await get('/api/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: name, password: 'secret-pw-1' }),
  });
  assert.equal(login.status, 200);
  const { token, uid } = JSON.parse(login.body);

  const url = `wss://127.0.0.1:${gw.port}/client?srect=${token}`;
  const ws = new WebSocket(url, ['v12.stomp'], { ca });
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 5000, 'wss open');
  assert.equal(ws.protocol, 'v12.stomp');
  const r = new RawStomp(ws, url);
  await r.connect();
  await r.subscribe(`/user/${name}/recive`, 'rc');
  r.send(buildFrame('SEND', { destination: '/socket/chat/send' },
    JSON.stringify({ msgID: `tlsmsg${Date.now()}`, reciverId: uid, content: 'over TLS' })));
  const m = await r.message('rc');
  assert.equal(m.json.content, 'over TLS');
  await r.terminate();
});

test('plain HTTP on the TLS port is not served', async () => {
  const res = await fetch(`http://127.0.0.1:${gw.port}/healthz`).then((x) => x.status, () => 'refused');
  assert.notEqual(res, 200);
});
