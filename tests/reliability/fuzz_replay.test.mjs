// The fuzz corpora replayed over the network at the sanitizer build of the
// gateway (issue #8: "the corpus replayed over the network at a sanitizer
// build of the server").
//
// Corpora: the seeds in tests/fuzz/corpus/{stomp_parse,chat_json} and, when
// a fuzz build has run (`make test` / `make fuzz`), what libFuzzer grew in
// build/fuzz/tests/fuzz/corpus/<target> (override the directory with
// CHATGATE_FUZZ_CORPUS). The short form replays every seed and an evenly
// spaced sample of SAMPLE grown inputs per target; the long form all.
//
// stomp_parse inputs (also the roundtrip target's) are "config byte, n,
// n chunk sizes, stream" (tests/fuzz/fuzz_stomp_parse.c): the stream is
// sent cut into WebSocket messages of exactly those chunk sizes, as binary
// messages (any bytes), three ways:
//   - first thing on a fresh authenticated-handshake /client connection
//     (the pre-CONNECT path: unauthenticated limits, CONNECT parsing);
//   - after a valid CONNECT on /client (every command handler);
//   - as SockJS messages (the JSON array framing) on a SockJS websocket,
//     after a valid CONNECT there.
// chat_json inputs are request bodies: each is sent, after CONNECT and the
// status subscriptions, to /socket/chat/send, /recive, /sync and /init with
// a receipt; each must be answered (the RECEIPT follows the answer) and the
// connection must stay open.
// Every HEALTH_EVERY inputs, and at the end, a fresh client must still log
// in and chat; afterwards the harness finds no ASan/UBSan report in the
// gateway's stderr and the gateway exits 0 on SIGTERM.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { useEnv, REPO_ROOT, buildFrame, sleep, WebSocket, withTimeout } from '../integration/lib/harness.mjs';
import { RawClient } from './lib/raw.mjs';
import { reported } from './lib/checker.mjs';
import { pick, secrets, newUser, pool } from './lib/util.mjs';

const SAMPLE = pick(400, Infinity);
const HEALTH_EVERY = 100;
const CONCURRENCY = 8;

secrets.use('fuzz_replay');

function listDir(dir) {
  try {
    return fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => path.join(dir, f))
      .filter((p) => fs.statSync(p).isFile());
  } catch { return []; }
}

function sample(files, n) {
  if (files.length <= n) return files;
  const out = [];
  for (let i = 0; i < n; i++) out.push(files[Math.floor((i * files.length) / n)]);
  return out;
}

const grownRoot = process.env.CHATGATE_FUZZ_CORPUS || path.join(REPO_ROOT, 'build/fuzz/tests/fuzz/corpus');
const STOMP_FILES = [
  ...listDir(path.join(REPO_ROOT, 'tests/fuzz/corpus/stomp_parse')),
  ...sample(listDir(path.join(grownRoot, 'fuzz_stomp_parse')), SAMPLE),
  ...sample(listDir(path.join(grownRoot, 'fuzz_stomp_roundtrip')), SAMPLE),
];
const JSON_FILES = [
  ...listDir(path.join(REPO_ROOT, 'tests/fuzz/corpus/chat_json')),
  ...sample(listDir(path.join(grownRoot, 'fuzz_chat_json')), SAMPLE),
];

/** A stomp_parse input as [chunks of the stream]. */
function chunksOf(buf) {
  if (buf.length < 2) return [buf.subarray(buf.length)];
  const n = buf[1] % 16;
  const sizes = [...buf.subarray(2, 2 + n)].map((b) => b + 1);
  const stream = buf.subarray(Math.min(buf.length, 2 + n));
  if (!sizes.length) return [stream];
  const out = [];
  for (let pos = 0, i = 0; pos < stream.length; i++) {
    const k = sizes[i % sizes.length];
    out.push(stream.subarray(pos, pos + k));
    pos += k;
  }
  return out.length ? out : [stream];
}

const CONNECT = buildFrame('CONNECT', { 'accept-version': '1.2,1.1,1.0', host: 'localhost', 'heart-beat': '0,0' });

async function replayWs(gw, token, chunks, { connect }) {
  let c;
  try {
    c = await RawClient.open(gw, { token });
  } catch (e) {
    return `open: ${e.message}`;
  }
  try {
    if (connect) await c.connect();
    for (const ch of chunks) {
      if (!c.open) break;
      c.ws.send(ch, { binary: true });
    }
    await Promise.race([c.closed, sleep(30)]);
    return c.closeInfo ? `closed ${c.closeInfo.code}` : 'open';
  } catch (e) {
    return `error ${e.message}`;
  } finally {
    await c.terminate();
  }
}

async function replaySockjs(gw, token, chunks) {
  const url = `${gw.wsUrl('/socketServer')}/000/${Math.random().toString(36).slice(2, 10)}/websocket?srect=${encodeURIComponent(token)}`;
  const ws = new WebSocket(url, [], { perMessageDeflate: false });
  ws.on('error', () => {});
  const closed = new Promise((r) => ws.on('close', r));
  try {
    await withTimeout(new Promise((res, rej) => { ws.on('open', res); ws.on('unexpected-response', () => rej(new Error('refused'))); }), 5000, 'sockjs open');
    ws.send(JSON.stringify([CONNECT.toString('utf8')]));
    for (const ch of chunks) {
      if (ws.readyState !== WebSocket.OPEN) break;
      ws.send(JSON.stringify([ch.toString('utf8')]));
    }
    await Promise.race([closed, sleep(30)]);
    return 'ok';
  } catch (e) {
    return `error ${e.message}`;
  } finally {
    ws.terminate();
  }
}

describe('fuzz corpora replayed over the network (sanitizer build)', () => {
  const h = useEnv('fuzz_replay');

  it(`${STOMP_FILES.length} STOMP stream inputs (3 ways) and ${JSON_FILES.length} chat JSON bodies (4 destinations)`, { timeout: pick(300000, 3600000) }, async () => {
    await reported('fuzz corpus replay', async (rep) => {
      const gw = h.env.gw;
      const alice = await newUser(gw, 'alice');
      const bob = await newUser(gw, 'bob');
      const outcomes = {};
      let done = 0;
      const health = async () => {
        h.env.check();
        const s = await gw.stomp(alice);
        const r = await s.chat(bob, `still serving after ${done} inputs`);
        assert.equal(r.code, 200, `the gateway still serves after ${done} inputs: ${JSON.stringify(r)}`);
        await s.close();
      };

      await pool(CONCURRENCY, STOMP_FILES, async (file) => {
        const chunks = chunksOf(fs.readFileSync(file));
        for (const [mode, fn] of [
          ['pre-CONNECT', () => replayWs(gw, alice.token, chunks, { connect: false })],
          ['post-CONNECT', () => replayWs(gw, alice.token, chunks, { connect: true })],
          ['sockjs', () => replaySockjs(gw, alice.token, chunks)],
        ]) {
          const o = await fn();
          const k = `${mode}: ${o}`;
          outcomes[k] = (outcomes[k] || 0) + 1;
        }
        if (++done % HEALTH_EVERY === 0) await health();
      });
      await health();

      // chat JSON bodies, on one connection per 50 inputs
      const dests = ['/socket/chat/send', '/socket/chat/recive', '/socket/chat/sync', '/socket/chat/init'];
      let answered = 0;
      for (let i = 0; i < JSON_FILES.length; i += 50) {
        const c = await RawClient.open(gw, { token: alice.token });
        await c.connect();
        await c.subscribe([[`/user/${alice.username}/recive`, 'r'], ['/user/queue/status', 's1'], ['/user/queue/send/status', 's2'],
          ['/user/queue/recive/status', 's3'], ['/user/queue/init/status', 's4']]);
        for (const file of JSON_FILES.slice(i, i + 50)) {
          const body = fs.readFileSync(file);
          for (const d of dests) {
            const receipt = `r${answered}`;
            const p = c.next((f) => (f.command === 'RECEIPT' && f.headers['receipt-id'] === receipt) || f.command === 'ERROR', 15000, `receipt for ${path.basename(file)} on ${d}`);
            c.send(buildFrame('SEND', { destination: d, receipt }, body));
            const f = await p;
            assert.equal(f.command, 'RECEIPT', `${path.basename(file)} on ${d}: ${f.headers.message} ${f.body}`);
            answered++;
          }
          done++;
        }
        assert.ok(c.open, 'the connection stays open through bad bodies');
        await c.terminate();
        await health();
      }
      rep.load = `${STOMP_FILES.length} STOMP inputs x 3 paths, ${JSON_FILES.length} JSON bodies x 4 destinations`;
      rep.faults = `${STOMP_FILES.length * 3 + answered} hostile payloads`;
      console.log(`[fuzz replay] ${JSON.stringify({ stompInputs: STOMP_FILES.length, jsonInputs: JSON_FILES.length, jsonAnswered: answered, grownCorpus: grownRoot, outcomes })}`);
      h.env.check();
    });
  });
});
