// redis.mjs - a pipelining RESP client for the tests that must put data
// into Redis faster than any client could through the gateway (the 100 000
// message backlog), and a mirror of what the store hands to chat.lua.
//
// fillInbox() runs gateway/store/lua/chat.lua itself (SCRIPT LOAD of the source
// file, then EVALSHA with the KEYS and ARGV chat.c's send_submit() builds),
// so the stored messages are byte for byte what a send through the gateway
// would have stored: same ids, pending inbox, history, dedupe entry and
// PUBLISH. Only the gateway's own checks in front of the script (JSON
// decoding, rate limit) are skipped, which is what the backlog test wants.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { REPO_ROOT } from '../../integration/lib/harness.mjs';

function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const s = String(a);
    parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
  }
  return parts.join('');
}

/** Parses one RESP value at buf[pos]; returns [value, next] or null if incomplete. */
function parse(buf, pos) {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 0x2b: return [line, next];                                    // +
    case 0x2d: return [new Error(line), next];                         // -
    case 0x3a: return [Number(line), next];                            // :
    case 0x24: {                                                       // $
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case 0x2a: {                                                       // *
      const n = Number(line);
      if (n < 0) return [null, next];
      const out = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default: throw new Error(`RESP: unexpected byte ${type} at ${pos}`);
  }
}

export class RedisPipe {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ host: '127.0.0.1', port });
      s.once('error', reject);
      s.once('connect', () => { s.removeListener('error', reject); resolve(new RedisPipe(s)); });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      let pos = 0;
      for (;;) {
        const r = parse(this.buf, pos);
        if (!r) break;
        pos = r[1];
        const w = this.waiting.shift();
        if (w) w(r[0]);
      }
      this.buf = this.buf.subarray(pos);
    });
    sock.on('error', (e) => { for (const w of this.waiting.splice(0)) w(e); });
  }

  /** Sends many commands in one write; resolves their replies in order. */
  pipeline(cmds) {
    const replies = cmds.map(() => new Promise((r) => this.waiting.push(r)));
    this.sock.write(cmds.map(encode).join(''));
    return Promise.all(replies);
  }

  async call(...args) {
    const [r] = await this.pipeline([args]);
    if (r instanceof Error) throw r;
    return r;
  }

  close() { this.sock.destroy(); }
}

const SEND_KEYS = ['user', 'msg', 'pending', 'seq', 'psend'];

/** The EVALSHA of chat.lua that the store would issue for this message as a
 * batch of one send operation (chat.c's send_submit; the claim before it,
 * on the sender's keys, is skipped: fillInbox's msgIDs are fresh).
 * maxPerSender defaults to maxPending, as --max-pending-per-sender set to
 * --max-pending would. */
export function sendScriptArgs(sha, { sender, msgID, to, content, maxPending, maxPerSender = maxPending, historyMax = 1000 }) {
  const keys = SEND_KEYS.map((k) => `{u:${to}}:${k}`);
  const digest = crypto.createHash('sha1').update(content).digest('hex').slice(0, 16);
  const p1 = `,"chatID":${JSON.stringify(msgID)},"sender":${JSON.stringify(sender.username)},"reciver":"`;
  const p2 = `","content":${JSON.stringify(content)},"time":`;
  const p3 = `,"senderId":${sender.uid},"reciverId":${to}}`;
  return ['EVALSHA', sha, keys.length, ...keys, 'send', String(sender.uid), msgID, String(maxPending),
    String(maxPerSender), String(historyMax), `cg:u:${to}`, p1, p2, p3, '1', digest];
}

/**
 * Stores `count` messages from sender to receiver uid `to` by running
 * chat.lua directly (one send per call), `batch` calls per pipeline. Returns
 * [{msgID, content, id, time}] in order. Throws on any non-200.
 */
export async function fillInbox(port, { sender, to, count, maxPending, maxPerSender = maxPending, historyMax = 1000, batch = 2000, prefix = 'bl' }) {
  const r = await RedisPipe.connect(port);
  try {
    const src = fs.readFileSync(path.join(REPO_ROOT, 'gateway/store/lua/chat.lua'), 'utf8');
    const sha = await r.call('SCRIPT', 'LOAD', src);
    const out = [];
    for (let i = 0; i < count; i += batch) {
      const cmds = [];
      const msgs = [];
      for (let k = i; k < Math.min(count, i + batch); k++) {
        const msgID = `${prefix}${String(k).padStart(10, '0')}${Math.random().toString(36).slice(2, 10)}`;
        const content = `backlog #${k + 1} for ${to}`;
        msgs.push({ msgID, content });
        cmds.push(sendScriptArgs(sha, { sender, msgID, to, content, maxPending, maxPerSender, historyMax }));
      }
      const replies = await r.pipeline(cmds);
      replies.forEach((batchRep, k) => {
        const rep = Array.isArray(batchRep) ? batchRep[0] : batchRep;
        if (!Array.isArray(rep) || rep[0] !== 200) throw new Error(`chat.lua answered ${rep instanceof Error ? rep.message : JSON.stringify(rep)} for message ${i + k + 1}`);
        out.push({ ...msgs[k], id: rep[1], time: rep[2] });
      });
    }
    return out;
  } finally {
    r.close();
  }
}
