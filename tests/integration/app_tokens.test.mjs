// Tokens issued by the app (PROTOCOL.md section 1.5): JWTs the app signs
// itself (HS256 with a shared secret, RS256 / ES256 with a configured
// public key), accepted wherever the gateway's own tokens are; every
// failed check refused with the same answer; jti revocation through the
// backend API; create-on-first-sight on and off; a disabled or deleted
// user's JWT refused.
//
// Two gateways on one Redis: "gw" takes HS256 and RS256 with aud and iss
// checked and unknown users refused; "gw2" takes ES256 and creates users
// on first sight. Secrets and keys come from files, so none is on a
// command line (the harness logs it), and the tokens and the HS256 secret
// are recorded for zz_no_secrets_in_logs.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { useEnv, uniqueName, until, HandshakeError } from './lib/harness.mjs';
import { sockjsStomp } from './lib/sockjs.mjs';

const T = { timeout: 60000 };
const AUD = 'chat';
const ISS = 'https://app.example';
const HS_SECRET = crypto.randomBytes(32).toString('base64url');
const API_KEY = crypto.randomBytes(24).toString('base64url');
const USERS_KEY = crypto.randomBytes(24).toString('base64url');
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa2 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPubPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
const JWKS = {
  keys: [
    { ...rsa2.publicKey.export({ format: 'jwk' }), kid: 'app-2026', alg: 'RS256', use: 'sig' },
    { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256' },
  ],
};

/* Every token made here, for the no-secrets check after the suite. */
let secretsFile = null;
function recordSecret(kind, v) {
  if (secretsFile) fs.appendFileSync(secretsFile, `${kind} ${v}\n`);
}

const b64u = (x) => Buffer.from(x).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A JWT of claims signed with alg (HS256: with key or the shared secret;
 * RS256/ES256: with key or the test's private key). */
function jwt(alg, claims, { key, header } = {}) {
  const input = `${b64u(JSON.stringify(header ?? { alg, typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  let sig = Buffer.alloc(0);
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key ?? HS_SECRET).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key ?? rsa.privateKey);
  else if (alg === 'ES256') {
    sig = crypto.sign('sha256', Buffer.from(input), { key: key ?? ec.privateKey, dsaEncoding: 'ieee-p1363' });
  }
  const t = `${input}.${sig.toString('base64url')}`;
  recordSecret('token', t);
  return t;
}

/** The claims gw wants for user name, with extra members. */
const claims = (sub, extra = {}) => ({
  sub, aud: AUD, iss: ISS, iat: now(), exp: now() + 300, jti: crypto.randomUUID(), ...extra,
});

describe('app tokens (JWT)', () => {
  const h = useEnv('app_tokens', { gatewayArgs: null });
  let gw, gw2;
  const B = (g, method, p, body, key = API_KEY) => g.api(method, `/api/backend${p}`, body, key);

  /** A user made by the backend API (no password): {uid, username}. */
  async function backendUser(prefix) {
    const username = uniqueName(prefix);
    const r = await B(gw, 'POST', '/users', { username });
    assert.equal(r.status, 201, r.text);
    return { uid: r.json.uid, username };
  }

  /** CONNECT with token as passcode on a raw WebSocket; the ERROR or CONNECTED frame. */
  async function connectFrame(g, token) {
    const raw = await g.raw();
    raw.send(`CONNECT\naccept-version:1.2\nhost:localhost\nlogin:x\npasscode:${token}\n\n\0`);
    const f = await raw.frames.waitFor((x) => x.command === 'CONNECTED' || x.command === 'ERROR', 10000,
      { what: 'CONNECTED or ERROR' });
    raw.close();
    return f;
  }

  async function assertRefused(g, token, what) {
    const f = await connectFrame(g, token);
    assert.equal(f.command, 'ERROR', `${what}: CONNECT accepted`);
    assert.equal(f.headers.message, '401 unauthorized', `${what}: ${f.headers.message}`);
    const r = await g.api('GET', '/api/users/1', undefined, token);
    assert.equal(r.status, 401, `${what}: HTTP ${r.status} ${r.text}`);
    assert.deepEqual(r.json, { error: 'missing, invalid or expired token' }, `${what}: the same answer as any bad token`);
  }

  before(async () => {
    const dir = h.env.dir;
    if (process.env.CHATGATE_IT_TMPDIR) {
      fs.mkdirSync(path.join(process.env.CHATGATE_IT_TMPDIR, 'secrets'), { recursive: true });
      secretsFile = path.join(process.env.CHATGATE_IT_TMPDIR, 'secrets', 'app_tokens.txt');
      fs.writeFileSync(secretsFile, '');
      recordSecret('password', HS_SECRET);
      recordSecret('password', API_KEY);
      recordSecret('password', USERS_KEY);
    }
    const w = (name, data) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, data, { mode: 0o600 });
      return f;
    };
    const keys = w('keys.txt', `ops:users:write,tokens:revoke:${API_KEY}\ncrm:users:write:${USERS_KEY}\n`);
    const secret = w('hs256.txt', `${HS_SECRET}\n`);
    const rsaPem = w('rsa.pem', rsaPubPem);
    const ecPem = w('ec.pem', ec.publicKey.export({ type: 'spki', format: 'pem' }));
    const jwks = w('jwks.json', JSON.stringify(JWKS));
    const common = ['--api-keys', `@${keys}`, '--api-rate', '1000', '--api-burst', '1000', '--log-level', 'debug'];
    gw = await h.env.startGateway([...common, '--jwt-hs256-secret', `@${secret}`, '--jwt-public-key', rsaPem,
      '--jwt-alg', 'RS256', '--jwt-audience', AUD, '--jwt-issuer', ISS]);
    gw2 = await h.env.startGateway([...common, '--jwt-public-key', ecPem, '--jwt-alg', 'ES256',
      '--jwt-jwks', jwks, '--jwt-create-users'], { name: 'gw2' });
  });

  it('an app-signed JWT connects over STOMP WebSocket and SockJS and chats; Bearer works on HTTP', T, async () => {
    const alice = await backendUser('JwtA');
    const bob = await backendUser('jwtb');
    // HS256 in the query, RS256 as the CONNECT passcode; sub matched without case
    const ta = jwt('HS256', claims(alice.username.toLowerCase()));
    const tb = jwt('RS256', claims(bob.username.toUpperCase()));
    const sa = await gw.stomp({ ...alice, token: ta });
    const sb = await gw.stomp({ ...bob, token: tb }, { tokenVia: 'passcode' });
    assert.equal(sa.connectedFrame.headers['user-name'], alice.username, 'the name as registered');
    assert.equal(sb.connectedFrame.headers['user-name'], bob.username);
    const st = await sa.chat(bob.uid, 'hello from an app token');
    assert.equal(st.code, 200, JSON.stringify(st));
    const m = await sb.recive.waitFor((x) => x.json?.chatID === st.msgID, 5000);
    assert.equal(m.json.sender, alice.username);
    assert.equal(m.json.content, 'hello from an app token');
    assert.equal((await sb.confirm(st.msgID)).code, 200);
    // HTTP Bearer
    const u = await gw.api('GET', `/api/users/${bob.uid}`, undefined, ta);
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json.username, bob.username);
    // SockJS, the token on the URL as sockjs-client sends it
    const sj = await sockjsStomp(gw, { ...alice, token: jwt('HS256', claims(alice.username)) });
    assert.equal(sj.connectedFrame.headers['user-name'], alice.username);
    await sj.close();
    await sa.close();
    await sb.close();
  });

  it('a JWT of up to 4096 bytes fits the handshake header and CONNECT', T, async () => {
    const u = await backendUser('big');
    let t = '';
    for (let pad = 2400; pad < 3200; pad++) {
      const c = jwt('RS256', claims(u.username, { pad: 'x'.repeat(pad) }));
      if (c.length > 4096) break;
      t = c;
    }
    assert.ok(t.length > 4000 && t.length <= 4096, `token of ${t.length} bytes`);
    const s = await gw.stomp({ ...u, token: t }, { tokenVia: 'bearer' });
    await s.close();
    const s2 = await gw.stomp({ ...u, token: t }, { tokenVia: 'passcode' });
    await s2.close();
    const r = await gw.api('GET', `/api/users/${u.uid}`, undefined, t);
    assert.equal(r.status, 200, r.text);
    // one past the cap is refused like any bad token
    const past = jwt('RS256', claims(u.username, { pad: 'x'.repeat(3200) }));
    assert.ok(past.length > 4096);
    const f = await connectFrame(gw, past);
    assert.equal(f.command, 'ERROR');
    assert.equal(f.headers.message, '401 unauthorized');
  });

  it('every failed check is refused with the same answer, and its reason is logged at debug', T, async () => {
    const u = await backendUser('bad');
    const n = u.username;
    const good = claims(n);
    const tampered = jwt('HS256', good).replace(/\.[^.]*$/, (s) => `.${s[1] === 'A' ? 'B' : 'A'}${s.slice(2)}`);
    const cases = [
      ['a bad signature', tampered, 'bad HS256 signature'],
      ['alg none', jwt('none', good, { header: { alg: 'none' } }), 'alg is not HS256, RS256 or ES256'],
      ['HS256 keyed with the RSA public key', jwt('HS256', good, { key: rsaPubPem }), 'bad HS256 signature'],
      ['ES256 where RS256 is configured', jwt('ES256', good), 'no key configured for alg ES256'],
      ['expired', jwt('HS256', claims(n, { exp: now() - 60 })), 'expired'],
      ['not yet valid', jwt('HS256', claims(n, { nbf: now() + 120 })), 'not valid yet'],
      ['wrong aud', jwt('HS256', claims(n, { aud: 'other' })), 'aud does not name jwt_audience'],
      ['wrong iss', jwt('RS256', claims(n, { iss: 'https://evil.example' })), 'iss is not jwt_issuer'],
      ['no exp', jwt('HS256', { sub: n, aud: AUD, iss: ISS }), 'no exp claim'],
      ['padding', `${jwt('HS256', good)}=`, null],
      ['junk in base64url', jwt('HS256', good).replace('.', '.+'), null],
      ['payload not JSON', (() => {
        const input = `${b64u('{"alg":"HS256"}')}.${b64u('not json')}`;
        const t = `${input}.${crypto.createHmac('sha256', HS_SECRET).update(input).digest('base64url')}`;
        recordSecret('token', t);
        return t;
      })(), 'payload is not a JSON object'],
      ['an unknown user (create off)', jwt('HS256', claims(uniqueName('nobody'))), 'no such user'],
    ];
    for (const [what, t, reason] of cases) {
      await assertRefused(gw, t, what);
      if (reason) {
        await until(() => gw.stderr().includes(reason), { what: `"${reason}" in the debug log (${what})` });
      }
    }
    // the handshake refuses a JWT that fails its checks at once, as a malformed token
    await assert.rejects(gw.raw({ token: tampered }), (e) => e instanceof HandshakeError && e.status === 401);
    // no token ever reaches the log
    const log = gw.stderr();
    for (const [what, t] of cases) assert.ok(!log.includes(t.split('.')[2] || t), `${what}: token in the log`);
    assert.ok(!log.includes(HS_SECRET), 'the HS256 secret in the log');
  });

  it('a revoked jti is refused through the backend API; other tokens go on', T, async () => {
    const u = await backendUser('rev');
    const c = claims(u.username);
    const t = jwt('HS256', c);
    const other = jwt('HS256', claims(u.username));
    const s = await gw.stomp({ ...u, token: t });
    await s.close();
    const noScope = await B(gw, 'POST', '/tokens/revoke', { jti: c.jti, exp: c.exp }, USERS_KEY);
    assert.equal(noScope.status, 403, noScope.text);
    assert.match(noScope.json.error, /tokens:revoke/);
    assert.equal((await B(gw, 'POST', '/tokens/revoke', { jti: c.jti })).status, 400, 'exp required');
    assert.equal((await B(gw, 'POST', '/tokens/revoke', { jti: '', exp: c.exp })).status, 400, 'empty jti');
    assert.equal((await B(gw, 'GET', '/tokens/revoke')).status, 405, 'GET');
    const r = await B(gw, 'POST', '/tokens/revoke', { jti: c.jti, exp: c.exp });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { revoked: true, until: (c.exp + 30) * 1000 });
    await assertRefused(gw, t, 'a revoked jti');
    await assertRefused(gw2, jwt('ES256', { ...c }), 'the same jti on another node');
    const ttl = await h.env.redis.command('PTTL',
      `cg:jwt:rev:${crypto.createHash('sha256').update(c.jti).digest('hex')}`);
    assert.ok(ttl > 300000 && ttl <= 330000, `the revocation lives until exp + leeway: ${ttl} ms`);
    const s2 = await gw.stomp({ ...u, token: other });
    await s2.close();
    assert.match(gw.stderr(), /backend: audit: key ops revoked an app token's jti/);
  });

  it('a JWKS picks the key by kid and holds each key to its alg', T, async () => {
    const u = await backendUser('kid');
    const c = () => ({ sub: u.username, exp: now() + 300 });
    const s1 = await gw2.stomp({ ...u, token: jwt('RS256', c(), { key: rsa2.privateKey, header: { alg: 'RS256', kid: 'app-2026' } }) });
    assert.equal(s1.connectedFrame.headers['user-name'], u.username);
    await s1.close();
    const s2 = await gw2.stomp({ ...u, token: jwt('ES256', c(), { header: { alg: 'ES256', kid: 'ec-1' } }) });
    await s2.close();
    await assertRefused(gw2, jwt('RS256', c(), { header: { alg: 'RS256', kid: 'app-2026' } }), 'another RSA key under the kid');
    await assertRefused(gw2, jwt('RS256', c(), { key: rsa2.privateKey, header: { alg: 'RS256', kid: 'ec-1' } }), "another key's kid");
    await assertRefused(gw2, jwt('RS256', c(), { key: rsa2.privateKey, header: { alg: 'RS256', kid: 'nope' } }), 'an unknown kid');
    await assertRefused(gw2, jwt('RS256', c(), { key: rsa2.privateKey }), 'no kid: RS256 has no single key on gw2');
    await until(() => gw2.stderr().includes('no key in jwt_jwks has its kid'), { what: 'the kid reason in the log' });
    assert.match(gw2.stderr(), /alg RS256 is not the alg of key ec-1 \(ES256\)/);
  });

  it('creates the user on first sight only when jwt_create_users is on', T, async () => {
    const name = uniqueName('Fresh');
    // gw: off
    await assertRefused(gw, jwt('HS256', claims(name)), 'an unknown sub on gw');
    assert.equal((await B(gw, 'GET', `/users/${name}`)).status, 404, 'not created');
    // gw2: on (ES256; no aud or iss configured there)
    const s = await gw2.stomp({ username: name, token: jwt('ES256', { sub: name, exp: now() + 300 }) });
    assert.equal(s.connectedFrame.headers['user-name'], name);
    const g = await B(gw2, 'GET', `/users/${name.toLowerCase()}`);
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.username, name);
    assert.equal(g.json.disabled, false);
    assert.equal((await gw2.login(name, 'any-password-1')).status, 401, 'no password: no password login');
    // the second sight finds the same user; and gw now knows it too
    const s2 = await gw2.stomp({ username: name, token: jwt('ES256', { sub: name.toUpperCase(), exp: now() + 300 }) });
    assert.equal(s2.connectedFrame.headers['user-name'], name);
    const s3 = await gw.stomp({ username: name, token: jwt('HS256', claims(name)) });
    await s3.close();
    // a sub that cannot be registered (all digits) is not created
    await assertRefused(gw2, jwt('ES256', { sub: '98765', exp: now() + 300 }), 'an all-digit sub');
    // a sub that is no username at all
    await assertRefused(gw2, jwt('ES256', { sub: 'a b', exp: now() + 300 }), 'a sub with a space');
    await s.close();
    await s2.close();
  });

  it("a disabled or deleted user's JWT is refused", T, async () => {
    const u = await backendUser('dis');
    const t1 = jwt('RS256', claims(u.username, { iat: now() - 5 }));
    const s = await gw.stomp({ ...u, token: t1 });
    assert.equal((await B(gw, 'POST', `/users/${u.username}/disable`)).status, 200);
    await until(() => s.closeInfo, { what: 'the session closed at the disable' });
    await assertRefused(gw, t1, 'a disabled user');
    await assertRefused(gw, jwt('RS256', claims(u.username)), 'a new JWT while disabled');
    assert.equal((await B(gw, 'POST', `/users/${u.username}/enable`)).status, 200);
    await assertRefused(gw, t1, 'a JWT issued before the disable, after the enable');
    // issued after the enable (iat in the next second, within the leeway)
    const t2 = jwt('RS256', claims(u.username, { iat: now() + 2 }));
    const s2 = await gw.stomp({ ...u, token: t2 });
    await s2.close();
    // a JWT without iat counts as issued at 0: refused once the user was ever disabled
    await assertRefused(gw, jwt('RS256', { sub: u.username, aud: AUD, iss: ISS, exp: now() + 300 }), 'no iat');
    assert.equal((await B(gw, 'POST', `/users/${u.username}/delete`)).status, 200);
    await assertRefused(gw, t2, 'a deleted user');
  });
});
