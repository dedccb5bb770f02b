// Hostile input (issue 13, findings 5, 8 and 9): account creation, names
// that collide with uids, and what the timing of a login tells.
//
// - Registrations are limited per client address and overall, every
//   attempt counted (docs/PROTOCOL.md 1.4): past the limit 429 with
//   Retry-After, and nothing is created; another address still registers.
// - While a burst of registrations hashes passwords, a login is answered
//   before the burst is done: registrations wait in their own queue and
//   take at most two of the thread pool's threads. Asserted by order, not by
//   time: with one shared FIFO the login would wait behind every hash.
// - A login for an unknown name runs the same password hash as a wrong
//   password (chatgate_password_checks_total counts both), so its timing
//   does not tell which names exist.
// - A name that is all digits, or only dots, cannot be registered (400
//   with the reason); /api/users/{digits} is the uid form and only in its
//   canonical spelling ("0001" is no one).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, uniqueName, httpRequest } from '../integration/lib/harness.mjs';
import { secrets } from './lib/util.mjs';

const T = { timeout: 240000 };

secrets.use('hostile_register');

/** The value of one counter in the gateway's /metrics. */
async function counter(gw, name) {
  const r = await httpRequest(gw.metricsUrl());
  assert.equal(r.status, 200);
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

/** POST /api/register from one given client address. */
function registerFrom(gw, addr, username, password = 'password-123') {
  return gw.api('POST', '/api/register', { username, password }, undefined, { localAddress: addr });
}

describe('registration limit', () => {
  // 4 per address per minute, 10 in all per minute.
  const h = useEnv('hostile_register_limit', {
    gatewayArgs: ['--register-addr-max', '4', '--register-addr-window-s', '60',
      '--register-max', '10', '--register-window-s', '60'],
  });

  it('one address: the 5th registration in the window is 429 with Retry-After and creates nothing; other addresses go on; then the overall limit', T, async () => {
    const gw = h.env.gw;
    for (let i = 0; i < 4; i++) {
      const r = await registerFrom(gw, '127.60.0.1', uniqueName('lim'));
      assert.equal(r.status, 201, r.text);
    }
    const before = await counter(gw, 'chatgate_register_limited_total');
    const name = uniqueName('over');
    const r = await registerFrom(gw, '127.60.0.1', name);
    assert.equal(r.status, 429, r.text);
    assert.deepEqual(Object.keys(r.json), ['error']);
    const after = Number(r.headers['retry-after']);
    assert.ok(after >= 1 && after <= 60, `Retry-After ${r.headers['retry-after']}`);
    assert.equal(await counter(gw, 'chatgate_register_limited_total'), before + 1);
    // nothing was created: the name is free for an address with room left
    const again = await registerFrom(gw, '127.60.0.2', name);
    assert.equal(again.status, 201, again.text);
    // attempts count, successful or not: a taken name still uses a slot
    for (let i = 0; i < 3; i++) {
      assert.equal((await registerFrom(gw, '127.60.0.2', name)).status, 409);
    }
    assert.equal((await registerFrom(gw, '127.60.0.2', uniqueName('full'))).status, 429);
    // The overall window counts what the address windows let through:
    // 4 + 4 so far. Two more from a third address fill it; then every
    // address is refused.
    for (let i = 0; i < 2; i++) {
      assert.equal((await registerFrom(gw, '127.60.0.3', uniqueName('all'))).status, 201);
    }
    const r3 = await registerFrom(gw, '127.60.0.4', uniqueName('all'));
    assert.equal(r3.status, 429, r3.text);
    assert.match(r3.json.error, /too many/);
    assert.ok(Number(r3.headers['retry-after']) >= 1);
  });
});

describe('registrations do not starve logins', () => {
  // Real work per hash: 20 000 rounds of PBKDF2.
  const h = useEnv('hostile_register_pool', {
    gatewayArgs: ['--password-iterations', '20000'],
  });
  const N = 24;
  // A busy machine may take long over the hashes: wait for answers, not
  // for a clock.
  const post = (gw, p, body) => httpRequest(gw.url(p), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), timeout: 90000,
  });

  it(`a login started behind ${N} registrations is answered before most of them`, T, async () => {
    const gw = h.env.gw;
    const user = { username: uniqueName('early'), password: 'password-123' };
    assert.equal((await gw.register(user.username, user.password)).status, 201);
    const done = [];
    const regs = [];
    for (let i = 0; i < N; i++) {
      regs.push(post(gw, '/api/register', { username: uniqueName('burst'), password: 'password-123' }).then((r) => {
        assert.equal(r.status, 201, r.text);
        done.push('register');
      }));
    }
    // let the registrations reach the gateway first
    await new Promise((resolve) => setTimeout(resolve, 200));
    const login = post(gw, '/api/login', user).then((r) => {
      assert.equal(r.status, 200, r.text);
      secrets.add('token', r.json.token);
      done.push('login');
    });
    await Promise.all([...regs, login]);
    const at = done.indexOf('login');
    assert.ok(at < N / 2, `the login was answered after ${at} of ${N} registrations`);
  });
});

describe('logins and names', () => {
  const h = useEnv('hostile_register_names');

  it('an unknown name costs the same password hash as a wrong password', T, async () => {
    const gw = h.env.gw;
    const user = { username: uniqueName('known'), password: 'password-123' };
    assert.equal((await gw.register(user.username, user.password)).status, 201);
    const c0 = await counter(gw, 'chatgate_password_checks_total');
    assert.equal((await gw.login(user.username, 'wrong-password')).status, 401);
    const c1 = await counter(gw, 'chatgate_password_checks_total');
    const unknown = await gw.login(uniqueName('nobody'), 'wrong-password');
    assert.equal(unknown.status, 401);
    assert.deepEqual(unknown.json, { error: 'wrong username or password' });
    const c2 = await counter(gw, 'chatgate_password_checks_total');
    assert.equal(c1 - c0, 1, 'a wrong password: one hash');
    assert.equal(c2 - c1, 1, 'an unknown name: one hash too');
  });

  it('names that are all digits or only dots are refused with the reason; /api/users/{digits} is a canonical uid', T, async () => {
    const gw = h.env.gw;
    for (const name of ['0001', '1', '42', '.', '..', '...']) {
      const r = await gw.register(name, 'password-123');
      assert.equal(r.status, 400, `${name}: ${r.text}`);
      assert.match(r.json.error, name.startsWith('.') ? /dots/ : /digits/, name);
    }
    for (const name of ['a1', '1a', '1.5', '.a', '-1']) {
      assert.equal((await gw.register(`${name}${uniqueName('').slice(1, 5)}`, 'password-123')).status, 201, name);
    }
    const u = await gw.newUser('lookup');
    secrets.add('token', u.token);
    const byUid = await gw.api('GET', `/api/users/${u.uid}`, undefined, u.token);
    assert.equal(byUid.status, 200, byUid.text);
    assert.equal(byUid.json.username, u.username);
    const padded = await gw.api('GET', `/api/users/0${u.uid}`, undefined, u.token);
    assert.equal(padded.status, 404, `0${u.uid} is no uid: ${padded.text}`);
    const byName = await gw.api('GET', `/api/users/${u.username.toUpperCase()}`, undefined, u.token);
    assert.equal(byName.status, 200);
    assert.equal(byName.json.uid, u.uid);
  });
});
