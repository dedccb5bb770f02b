// metrics.test.mjs - GET {base}/metrics, parsed by a strict Prometheus text
// format parser, against exactly the traffic this test sends to one
// gateway: sends by result code (200, 400, 404, 413, 429), rate-limit hits,
// deliveries and redeliveries (init after a reconnect), confirmations, the
// latency histograms' counts, sessions by transport, auth failures, and the
// sampled pending-inbox gauges (depth and age of the oldest message).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { useEnv, sleep, until, msgId } from '../integration/lib/harness.mjs';
import { parsePrometheus } from './lib/deploy.mjs';

const h = useEnv('deploy_metrics', {
  gatewayArgs: ['--metrics-sample-ms', '200', '--send-rate', '2', '--send-burst', '8',
    '--max-content-bytes', '100', '--base-path', '/Mimi'],
});

async function scrape() {
  const r = await fetch(h.env.gw.metricsUrl());
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheus(await r.text());
}

test('the parser is strict: what the format forbids is refused', () => {
  const ok = '# HELP a_total x\n# TYPE a_total counter\na_total{k="v\\"\\\\\\n"} 1\n';
  assert.equal(parsePrometheus(ok).value('a_total', { k: 'v"\\\n' }), 1);
  const bad = {
    'no TYPE': 'a 1\n',
    'no final newline': '# TYPE a gauge\na 1',
    'duplicate series': '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
    'split family': '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
    'bad value': '# TYPE a gauge\na one\n',
    'bad escape': '# TYPE a gauge\na{x="\\q"} 1\n',
    'negative counter': '# TYPE a_total counter\na_total -1\n',
    'unquoted label': '# TYPE a gauge\na{x=1} 1\n',
    'histogram not cumulative': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'histogram +Inf != count': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n',
    'histogram without +Inf': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
  };
  for (const [what, text] of Object.entries(bad)) {
    assert.throws(() => parsePrometheus(text), undefined, what);
  }
});

test('counters and gauges match the traffic sent', async () => {
  const gw = h.env.gw;
  const m0 = await scrape();
  assert.equal(m0.value('chatgate_sends_total', { code: '200' }), 0);
  assert.equal(m0.value('chatgate_draining'), 0);
  assert.match(m0.families.get('chatgate_info').samples[0].labels.node, /\S/);

  const alice = await gw.newUser('alice');
  const bob = await gw.newUser('bob');
  const a = await gw.stomp(alice);
  let b = await gw.stomp(bob);

  // A well-formed token nobody was given: one auth failure.
  const forged = await gw.raw({ token: 'x'.repeat(43) });
  forged.send('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  assert.match((await forged.waitError()).headers.message, /^401/);

  // Sends with every outcome but 409/503/507, then a burst past the rate
  // limit (bucket of 8, 2/s): the answers are the tally.
  const want = { 200: 0, 400: 0, 404: 0, 413: 0, 429: 0 };
  const toBob = [];
  const answers = [];
  a.sendStatus.items.length = 0;
  a.publish('/socket/chat/send', '{"msgID": not json');
  a.sendChat(999999, 'nobody');
  a.sendChat(bob, 'x'.repeat(101));
  for (let i = 0; i < 12; i++) toBob.push(a.sendChat(bob, `hello ${i}`, { msgID: msgId(`m${i}`) }));
  await a.sendStatus.waitCount(15, () => true, 10000, { what: 'send/status answers' });
  for (const st of a.sendStatus.items) {
    answers.push(st.json);
    want[st.json.code]++;
  }
  assert.equal(want[400], 1);
  assert.equal(want[404], 1);
  assert.equal(want[413], 1);
  // The 404 took a token too (the store decides it): 7 of the 8 for bob.
  assert.ok(want[429] >= 1 && want[200] >= 7, JSON.stringify(want));
  const stored = answers.filter((x) => x.code === 200 && toBob.includes(x.msgID)).map((x) => x.msgID);
  assert.equal(stored.length, want[200]);
  await b.recive.waitCount(stored.length, () => true, 10000, { what: 'pushes at bob' });

  // bob has not confirmed anything: the sample sees his inbox.
  await until(async () => {
    const m = await scrape();
    return m.value('chatgate_pending_messages') === stored.length &&
      m.value('chatgate_pending_sampled_users') === 2;
  }, { timeout: 5000, what: 'pending gauge = unconfirmed messages' });
  await sleep(300);
  let m = await scrape();
  const age = m.value('chatgate_pending_oldest_age_seconds');
  assert.ok(age > 0.2 && age < 60, `oldest age ${age}`);

  for (const code of Object.keys(want)) {
    assert.equal(m.value('chatgate_sends_total', { code }), want[code], `sends code ${code}`);
  }
  assert.equal(m.value('chatgate_rate_limited_total'), want[429]);
  assert.equal(m.value('chatgate_deliveries_total'), stored.length);
  assert.equal(m.value('chatgate_send_ack_seconds_count'), want[200]);
  assert.equal(m.value('chatgate_send_deliver_seconds_count'), stored.length);
  assert.equal(m.value('chatgate_auth_failures_total'), 1);
  assert.equal(m.value('chatgate_connections', { transport: 'ws' }), 2);
  assert.equal(m.value('chatgate_sessions'), 2);
  assert.equal(m.value('chatgate_users'), 2);

  // bob comes back on a new connection: init pushes them again, as
  // redeliveries; then he confirms them all.
  await b.close();
  b = await gw.stomp(bob);
  const { messages } = await b.init();
  assert.equal(messages.length, stored.length);
  assert.ok(messages.every((x) => x.headers.redelivered === 'true'));
  for (const id of stored) assert.equal((await b.confirm(id)).code, 200);
  await until(async () => {
    const x = await scrape();
    return x.value('chatgate_pending_messages') === 0;
  }, { timeout: 5000, what: 'pending gauge back to 0' });
  m = await scrape();
  assert.equal(m.value('chatgate_pending_oldest_age_seconds'), 0);
  assert.equal(m.value('chatgate_deliveries_total'), 2 * stored.length);
  assert.equal(m.value('chatgate_redeliveries_total'), stored.length);
  assert.equal(m.value('chatgate_confirmations_total'), stored.length);
  assert.equal(m.value('chatgate_confirm_seconds_count'), stored.length);
  // alice, bob twice, and the forged token's connection.
  assert.equal(m.value('chatgate_connections_total', { transport: 'ws' }), 4);
  assert.equal(m.value('chatgate_connections', { transport: 'ws' }), 2);
  assert.ok(m.value('chatgate_frames_total', { direction: 'in' }) >= 15 + stored.length);
  assert.ok(m.value('chatgate_redis_rtt_seconds_count') >= want[200] + stored.length);
  assert.equal(m.value('chatgate_redis_errors_total'), 0);
  assert.equal(m.value('chatgate_redis_ready'), 1);
  // Latency sums are in seconds and plausible.
  const ack = m.value('chatgate_send_ack_seconds_sum') / m.value('chatgate_send_ack_seconds_count');
  assert.ok(ack > 0 && ack < 5, `mean send->200 ${ack}s`);
});
