// The backend API (PROTOCOL.md section 8): API keys with scopes, users
// (create, disable, enable, delete), minted tokens, and the operator view
// of one user's pending inbox (count, page, redeliver, purge).
//
// The keys come from a file (--api-keys @file), so no secret is on the
// gateway's command line (the harness logs it).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { useEnv, uniqueName, until, msgId } from './lib/harness.mjs';

const T = { timeout: 60000 };
const secret = () => crypto.randomBytes(24).toString('base64url');
const KEYS = {
  all: secret(),
  users: secret(),
  pending: secret(),
  mint: secret(),
};

function writeKeys(dir, name, entries) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, ['# backend keys of the test', ...entries, ''].join('\n'), { mode: 0o600 });
  return f;
}

function assertJsonError(r, status, what) {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.text}`);
  assert.equal(typeof r.json?.error, 'string', `${what}: {"error"} body: ${r.text}`);
}

describe('backend API', () => {
  const h = useEnv('backend_api', { gatewayArgs: null });
  let gw;
  const B = (method, p, body, key = KEYS.all) => gw.api(method, `/api/backend${p}`, body, key);

  before(async () => {
    const f = writeKeys(h.env.dir, 'keys.txt', [
      `ops:users:write,tokens:mint,pending:read,pending:write:${KEYS.all}`,
      `crm:users:write:${KEYS.users}`,
      `support:pending:read:${KEYS.pending}`,
      `app:tokens:mint:${KEYS.mint}`,
    ]);
    gw = await h.env.startGateway(['--api-keys', `@${f}`, '--api-rate', '1000', '--api-burst', '1000']);
  });

  it('no key or an unknown key is 401; a key without the scope is 403; no key in the query', T, async () => {
    assertJsonError(await gw.api('POST', '/api/backend/users', { username: uniqueName('k') }), 401, 'no key');
    assertJsonError(await B('POST', '/users', { username: uniqueName('k') }, secret()), 401, 'unknown key');
    assertJsonError(await B('POST', '/users', { username: uniqueName('k') }, 'short'), 401, 'short key');
    assertJsonError(await gw.api('POST', '/api/backend/users', { username: uniqueName('k') }, KEYS.all,
      { tokenVia: 'token' }), 401, 'key in the query string');
    const r = await B('POST', '/users', { username: uniqueName('k') }, KEYS.pending);
    assertJsonError(r, 403, 'pending:read key creating a user');
    assert.match(r.json.error, /users:write/);
    assertJsonError(await B('GET', '/users/nobody/pending', undefined, KEYS.users), 403, 'users key reading pending');
    assertJsonError(await B('POST', '/users/nobody/tokens', {}, KEYS.users), 403, 'users key minting');
    assertJsonError(await B('POST', '/users/nobody/pending/purge', {}, KEYS.pending), 403, 'read key purging');
    // a user's login token is no API key
    const u = await gw.newUser('notakey');
    assertJsonError(await B('GET', `/users/${u.uid}`, undefined, u.token), 401, 'a login token');
    // unknown action 404, wrong method 405; without a key, 401 first
    assertJsonError(await gw.api('GET', '/api/backend/users/x/nothing'), 401, 'unknown action, no key');
    assertJsonError(await gw.api('GET', '/api/backend/users/x/disable'), 401, 'wrong method, no key');
    assertJsonError(await B('GET', '/users/x/nothing'), 404, 'unknown action');
    assertJsonError(await B('GET', '/users/x/disable'), 405, 'GET of a POST action');
    // the secret never reaches the log; the key's name does
    const log = gw.stderr();
    for (const s of Object.values(KEYS)) assert.ok(!log.includes(s), 'a key secret in the log');
    assert.match(log, /backend: key crm: \/api\/backend\/users\/nobody\/tokens refused: no scope tokens:mint/);
  });

  it('creates users with the register name rules, with or without a password', T, async () => {
    const name = uniqueName('Be');
    const r = await B('POST', '/users', { username: name, password: 'backend-pw-1' });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ['uid', 'username']);
    assert.equal(r.json.username, name);
    assert.equal((await gw.login(name, 'backend-pw-1')).status, 200, 'the password works');
    assertJsonError(await B('POST', '/users', { username: name.toLowerCase() }), 409, 'taken (any case)');
    assertJsonError(await B('POST', '/users', { username: '12345' }), 400, 'all digits');
    assertJsonError(await B('POST', '/users', { username: 'a b' }), 400, 'a space');
    assertJsonError(await B('POST', '/users', { username: uniqueName('p'), password: 'short' }), 400, 'short password');
    assertJsonError(await B('POST', '/users', '[1]'), 400, 'not an object');
    const n2 = uniqueName('nopw');
    const r2 = await B('POST', '/users', { username: n2 }, KEYS.users);
    assert.equal(r2.status, 201, r2.text);
    assert.equal((await gw.login(n2, 'any-password-1')).status, 401, 'no password: no password login');
    const g = await B('GET', `/users/${n2}`);
    assert.equal(g.status, 200, g.text);
    assert.deepEqual(g.json, { uid: r2.json.uid, username: n2, disabled: false });
  });

  it('mints a token (same format, optional shorter TTL) that connects over STOMP', T, async () => {
    const name = uniqueName('mint');
    const c = await B('POST', '/users', { username: name });
    const before = Date.now();
    const m = await B('POST', `/users/${name}/tokens`, { ttlSeconds: 120 }, KEYS.mint);
    assert.equal(m.status, 201, m.text);
    assert.match(m.json.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(m.json.uid, c.json.uid);
    assert.ok(Math.abs(m.json.expiresAt - (before + 120000)) < 5000, `expiresAt ${m.json.expiresAt}`);
    const s = await gw.stomp({ uid: c.json.uid, username: name, token: m.json.token });
    assert.equal(s.connectedFrame.headers['user-name'], name);
    const d = await B('POST', `/users/${c.json.uid}/tokens`, {});
    assert.equal(d.status, 201, d.text);
    assert.ok(d.json.expiresAt - Date.now() > 6 * 86400000, 'default TTL: token_ttl_s');
    assertJsonError(await B('POST', `/users/${name}/tokens`, { ttlSeconds: 0 }), 400, 'ttl 0');
    assertJsonError(await B('POST', `/users/${name}/tokens`, { ttlSeconds: 'x' }), 400, 'ttl not a number');
    assertJsonError(await B('POST', '/users/nobody-here/tokens', {}), 404, 'unknown user');
    await s.close();
  });

  it('disable closes live sessions and refuses logins and old tokens; enable lets new logins in', T, async () => {
    const u = await gw.newUser('dis');
    const s = await gw.stomp(u);
    const raw = await gw.raw({ token: await gw.loginToken(u) });
    await raw.connect();
    const d = await B('POST', `/users/${u.username}/disable`, {}, KEYS.users);
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.json, { uid: u.uid, username: u.username, disabled: true });
    const c = await raw.waitClose(5000);
    assert.equal(c.code, 1008);
    assert.equal(c.reason, 'account disabled');
    await until(() => s.closeInfo, { what: 'the stompjs session closed' });
    assertJsonError(await gw.login(u.username, u.password), 403, 'login of a disabled user');
    assertJsonError(await gw.api('GET', `/api/users/${u.uid}`, undefined, u.token), 401, 'old token over HTTP');
    await assert.rejects(gw.stomp(u), 'old token at CONNECT');
    assertJsonError(await B('POST', `/users/${u.uid}/tokens`, {}), 403, 'mint for a disabled user');
    assert.equal((await B('GET', `/users/${u.uid}`)).json.disabled, true);

    const e = await B('POST', `/users/${u.uid}/enable`, {});
    assert.equal(e.status, 200, e.text);
    assert.equal(e.json.disabled, false);
    assertJsonError(await gw.api('GET', `/api/users/${u.uid}`, undefined, u.token), 401,
      'a token issued before the disable stays revoked');
    const l = await gw.login(u.username, u.password);
    assert.equal(l.status, 200, l.text);
    const s2 = await gw.stomp({ ...u, token: l.json.token });
    await s2.close();
  });

  it('delete closes sessions, revokes tokens, frees the name and drops the inbox', T, async () => {
    const u = await gw.newUser('del');
    const sender = await gw.newUser('delsnd');
    const ss = await gw.stomp(sender);
    await ss.chat(u.uid, 'kept until the delete');
    const raw = await gw.raw({ token: u.token });
    await raw.connect();
    const r = await B('POST', `/users/${u.username}/delete`, {});
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { uid: u.uid, username: u.username, deleted: true });
    const c = await raw.waitClose(5000);
    assert.equal(c.code, 1008);
    assert.equal(c.reason, 'account deleted');
    assertJsonError(await gw.api('GET', `/api/users/${u.uid}`, undefined, sender.token).then((x) => x), 404,
      'the user is gone');
    assertJsonError(await gw.api('GET', `/api/users/${sender.uid}`, undefined, u.token), 401, 'its token');
    for (const k of ['user', 'msg', 'pending', 'seq']) {
      assert.equal(await h.env.redis.command('EXISTS', `{u:${u.uid}}:${k}`), 0, `{u:${u.uid}}:${k} left`);
    }
    const again = await gw.register(u.username, 'a new password');
    assert.equal(again.status, 201, `the name is free: ${again.text}`);
    assert.ok(again.json.uid > u.uid, 'a new uid');
    assertJsonError(await gw.api('GET', `/api/users/${sender.uid}`, undefined, u.token), 401,
      'the old token does not become the new user');
    assertJsonError(await B('POST', `/users/${u.uid}/delete`, {}), 404, 'deleting again');
    // a send to the deleted uid is 404 like any unknown receiver
    const id = msgId('gone');
    const since = ss.sendStatus.mark();
    ss.sendChat(u.uid, 'to nobody', { msgID: id });
    const st = await ss.sendStatus.waitFor((x) => x.json?.msgID === id, 5000, { since });
    assert.equal(st.json.code, 404, `send to a deleted user: ${JSON.stringify(st.json)}`);
    await ss.close();
  });

  describe('pending', () => {
    const N = 20000;
    let rcv;

    /** Stores n pending messages for user rcv in one server-side loop,
     * exactly as chat.lua's send leaves them (store.h). */
    async function fill(user, n, senderId) {
      const lua = `
        local n, r, s, name = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
        local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 - 3600000
        for i = 1, n do
          local id = redis.call('INCR', KEYS[4])
          local sid = string.format('%d', id)
          local cid = 'bulk' .. string.format('%08d', id)
          local body = '{"id":' .. sid .. ',"chatID":"' .. cid .. '","sender":"s","reciver":"' .. name ..
            '","content":"x","time":' .. string.format('%d', now + i) .. ',"senderId":' .. s .. ',"reciverId":' .. r .. '}'
          redis.call('HSET', KEYS[2], sid, body, 'm:' .. cid, s .. ':' .. sid .. ':' .. string.format('%d', now + i) .. ':0')
          redis.call('ZADD', KEYS[3], sid, sid)
        end
        redis.call('HSET', KEYS[1], 'trimmed', string.format('%d', math.max(0, n - 1000)))
        return n`;
      const k = (x) => `{u:${user.uid}}:${x}`;
      return h.env.redis.command('EVAL', lua, 4, k('user'), k('msg'), k('pending'), k('seq'),
        n, user.uid, senderId, user.username);
    }

    before(async () => {
      rcv = await gw.newUser('pend');
      const t0 = Date.now();
      assert.equal(await fill(rcv, N, 1), N);
      assert.ok(Date.now() - t0 < 20000, 'filled fast');
    });

    it('count and oldest age; a bounded page with a cursor; metadata only', T, async () => {
      const c = await B('GET', `/users/${rcv.username}/pending`, undefined, KEYS.pending);
      assert.equal(c.status, 200, c.text);
      assert.equal(c.json.count, N);
      assert.equal(c.json.uid, rcv.uid);
      assert.ok(c.json.oldestAgeMs >= 3500000 && c.json.oldestAgeMs < 3700000, `oldestAgeMs ${c.json.oldestAgeMs}`);
      const p1 = await B('GET', `/users/${rcv.uid}/pending/messages?limit=100`, undefined, KEYS.pending);
      assert.equal(p1.status, 200, p1.text);
      assert.equal(p1.json.messages.length, 100);
      assert.equal(p1.json.messages[0].id, 1);
      assert.deepEqual(Object.keys(p1.json.messages[0]).sort(), ['bytes', 'id', 'msgID', 'sender', 'senderId', 'time']);
      assert.equal(p1.json.next, 100);
      const p2 = await B('GET', `/users/${rcv.uid}/pending/messages?after=${p1.json.next}&limit=3`, undefined, KEYS.pending);
      assert.deepEqual(p2.json.messages.map((m) => m.id), [101, 102, 103]);
      const last = await B('GET', `/users/${rcv.uid}/pending/messages?after=${N - 2}&limit=5`, undefined, KEYS.pending);
      assert.deepEqual(last.json.messages.map((m) => m.id), [N - 1, N]);
      assert.equal(last.json.next, null, 'a short page is the last');
      assertJsonError(await B('GET', `/users/${rcv.uid}/pending/messages?limit=101`), 400, 'limit over 100');
      assertJsonError(await B('GET', `/users/${rcv.uid}/pending/messages?after=-1`), 400, 'negative cursor');
      assertJsonError(await B('GET', '/users/nobody-at-all/pending'), 404, 'unknown user');
    });

    it('purges in bounded chunks across calls, with an audit line', T, async () => {
      const t0 = Date.now();
      const a = await B('POST', `/users/${rcv.username}/pending/purge`, { max: 15000 });
      assert.equal(a.status, 200, a.text);
      assert.deepEqual({ p: a.json.purged, r: a.json.remaining, d: a.json.done }, { p: 15000, r: N - 15000, d: false });
      const b = await B('POST', `/users/${rcv.username}/pending/purge`, {});
      assert.deepEqual({ p: b.json.purged, r: b.json.remaining, d: b.json.done }, { p: N - 15000, r: 0, d: true });
      assert.ok(Date.now() - t0 < 30000, `purge of ${N} took ${Date.now() - t0} ms`);
      const c = await B('GET', `/users/${rcv.username}/pending`);
      assert.equal(c.json.count, 0);
      assert.equal(c.json.oldestAgeMs, null);
      // out of the history (history_max 1000): bodies and msgID entries are gone
      assert.ok(await h.env.redis.command('HLEN', `{u:${rcv.uid}}:msg`) <= 2 * 1100, 'the inbox hash shrank');
      assert.match(gw.stderr(), new RegExp(`backend: audit: key ops purged 15000 pending messages of user ${rcv.username} \\(uid ${rcv.uid}\\); 5000 remain`));
      assertJsonError(await B('POST', `/users/${rcv.uid}/pending/purge`, { max: 0 }), 400, 'max 0');
    });

    it("a purge gives each sender its share of the inbox back (max_pending_per_sender)", T, async () => {
      const r = await gw.newUser('share');
      const snd = await gw.newUser('sharesnd');
      const S = await gw.stomp(snd);
      for (let i = 0; i < 3; i++) assert.equal((await S.chat(r.uid, `m${i}`)).code, 200);
      assert.equal(String(await h.env.redis.command('HGET', `{u:${r.uid}}:psend`, String(snd.uid))), '3');
      const p = await B('POST', `/users/${r.uid}/pending/purge`, {});
      assert.deepEqual({ p: p.json.purged, r: p.json.remaining }, { p: 3, r: 0 });
      assert.equal(await h.env.redis.command('HGET', `{u:${r.uid}}:psend`, String(snd.uid)), null,
        'the count left with the messages');
      await S.close();
    });

    it('redeliver makes live sessions read their pending inbox again (redelivered)', T, async () => {
      const u = await gw.newUser('redo');
      const snd = await gw.newUser('redosnd');
      const ss = await gw.stomp(snd);
      const s = await gw.stomp(u);
      const id = msgId('redo');
      await ss.chat(u.uid, 'please again', { msgID: id });
      const first = await s.recive.waitFor((m) => m.json?.chatID === id, 5000);
      assert.notEqual(first.headers.redelivered, 'true');
      const mark = s.recive.mark();
      const imark = s.initStatus.mark();
      const r = await B('POST', `/users/${u.username}/pending/redeliver`, {});
      assert.equal(r.status, 202, r.text);
      assert.equal(r.json.nodes, 1);
      const again = await s.recive.waitFor((m) => m.json?.chatID === id, 5000, { since: mark });
      assert.equal(again.json.content, 'please again');
      assert.equal(again.headers.redelivered, 'true');
      const st = await s.initStatus.waitFor((x) => x.json?.code === 200, 5000, { since: imark });
      assert.equal(st.json.count, 1);
      await s.close();
      await ss.close();
    });
  });
});

describe('backend API rate limit', () => {
  const h = useEnv('backend_api_rate', { gatewayArgs: null });

  it('a key over api_rate gets 429 with Retry-After', T, async () => {
    const k = secret();
    const f = writeKeys(h.env.dir, 'keys.txt', [`slow:users:write:${k}`]);
    const gw = await h.env.startGateway(['--api-keys', `@${f}`, '--api-rate', '1', '--api-burst', '2']);
    const codes = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await gw.api('GET', '/api/backend/users/nobody', undefined, k);
      codes.push(last.status);
    }
    assert.deepEqual(codes.slice(0, 2), [404, 404]);
    assert.equal(codes[3], 429);
    assert.ok(Number(last.headers['retry-after']) >= 1, `Retry-After ${last.headers['retry-after']}`);
    assert.match(gw.stderr(), /backend: key slow: .* refused: over api_rate/);
  });
});
