// sockjs_throughput.mjs - chat messages/s delivered through each SockJS
// transport, against the plain WebSocket at {base}/client, for the same
// load (issue #4 asks for xhr-streaming vs websocket).
//
//   node bench/sockjs_throughput.mjs [--pairs 8] [--messages 1000]
//        [--window 64] [--transports client,websocket,xhr-streaming,...]
//
// Starts its own redis-server and gateway (the harness of the integration
// tests; CHATGATE_BIN picks the binary, a Release build measures the
// gateway and not ASan). For each transport: `pairs` sender/receiver user
// pairs, all connected with @stomp/stompjs 7 (over SockJS with that one
// transport, or over ws for "client"); every sender sends `messages` chats
// to its receiver, keeping at most `window` unanswered (send/status);
// the figures are messages delivered (MESSAGE at the receiver) per second,
// from the first SEND to the last delivery, and the gateway's own CPU time
// per 1000 messages (from /proc: the node clients share the machine, so
// msgs/s also measures them; CPU/msg is the gateway's cost alone). The gateway's per-connection
// send rate limit is lifted for the run. NODE_PATH must reach the repo's
// node_modules (run from the repo root: NODE_PATH=node_modules).
import fs from 'node:fs';

import { startEnv } from '../tests/integration/lib/harness.mjs';
import { sockjsStomp } from '../tests/integration/lib/sockjs.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const PAIRS = Number(arg('pairs', 8));
const MESSAGES = Number(arg('messages', 1000));
const WINDOW = Number(arg('window', 64));
const TRANSPORTS = arg('transports', 'client,websocket,xhr-streaming,eventsource,xhr-polling').split(',');

async function connect(gw, user, transport, subscribe) {
  const opts = { heartbeat: [0, 0], subscribe };
  if (transport === 'client') return gw.stomp(user, opts);
  return sockjsStomp(gw, user, { ...opts, transport });
}

/** CPU seconds (user + system) the gateway process used so far. */
function cpuSecs(gw) {
  const f = fs.readFileSync(`/proc/${gw.proc.pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(v[11]) + Number(v[12])) / 100;
}

async function runOne(gw, transport) {
  const users = [];
  for (let i = 0; i < PAIRS * 2; i++) users.push(await gw.newUser(`b${i}`));
  const senders = [];
  const receivers = [];
  for (let i = 0; i < PAIRS; i++) {
    senders.push(await connect(gw, users[2 * i], transport, true));
    receivers.push(await connect(gw, users[2 * i + 1], transport, true));
  }
  let delivered = 0;
  let lastAt = 0;
  const total = PAIRS * MESSAGES;
  const allDelivered = new Promise((resolve) => {
    for (const r of receivers) {
      r.recive.push = () => {            // count only; keep no copies
        delivered++;
        const now = Date.now();
        if (lastAt && now - lastAt > 1000 && process.env.BENCH_VERBOSE) {
          console.error(`${transport}: no delivery for ${now - lastAt} ms (at ${delivered}/${total})`);
        }
        lastAt = now;
        if (delivered === total) resolve();
      };
    }
  });
  const t0 = Date.now();
  const c0 = cpuSecs(gw);
  await Promise.all(senders.map(async (s, i) => {
    let sent = 0;
    let acked = 0;
    let wake = null;
    s.sendStatus.push = (m) => {
      acked++;
      if (!/"code":200/.test(m.body || '')) console.error(`send failed: ${m.body}`);
      if (wake) { const w = wake; wake = null; w(); }
    };
    while (sent < MESSAGES) {
      if (sent - acked >= WINDOW) {
        const w0 = Date.now();
        await new Promise((r) => { wake = r; });
        if (Date.now() - w0 > 1000 && process.env.BENCH_VERBOSE) {
          console.error(`${transport}: sender ${i} waited ${Date.now() - w0} ms for send/status (sent ${sent}, answered ${acked})`);
        }
        continue;
      }
      s.sendChat(users[2 * i + 1].uid, `m${sent} of ${transport} ${'x'.repeat(64)}`);
      sent++;
      if (sent % WINDOW === 0) await new Promise((r) => setImmediate(r));
    }
  }));
  await allDelivered;
  const secs = (lastAt - t0) / 1000;
  const cpu = cpuSecs(gw) - c0;
  for (const c of [...senders, ...receivers]) await c.close().catch(() => {});
  return { transport, messages: total, secs, rate: total / secs, cpuPerK: (cpu * 1000 / total) * 1000 };
}

const env = await startEnv('bench-sockjs', {
  gatewayArgs: ['--send-rate', '100000', '--send-burst', '100000', '--log-level', 'warn',
    '--max-pending', '1000000'],
});
try {
  const rows = [];
  for (const t of TRANSPORTS) {
    const r = await runOne(env.gw, t);
    rows.push(r);
    console.log(`${t.padEnd(14)} ${String(r.messages).padStart(7)} msgs in ${r.secs.toFixed(2).padStart(6)} s = ` +
      `${r.rate.toFixed(0).padStart(7)} msgs/s, gateway CPU ${r.cpuPerK.toFixed(1).padStart(6)} ms per 1000 msgs`);
  }
} finally {
  await env.close();
}
