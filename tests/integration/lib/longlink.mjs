// longlink.mjs - a small native long-link client for the integration tests
// (PROTOCOL.md section 9): packets over a plain TCP socket.
//
//   const ll = await LongLink.open(gw.longlinkPort);     // TCP connected
//   await ll.auth(user.token);                           // auth_answer 200
//   const st = await ll.chat(bob, 'hi');                 // send_status JSON
//   await ll.pushes.waitFor((p) => p.json.chatID === id);
//
// Every packet received goes to `packets` and to the mailbox of its
// operation (pushes: push and push_again), with its header fields, its body
// text and its JSON. Requests get sequence numbers 1, 2, ... and the
// helpers wait for the answer that carries theirs.
import net from 'node:net';

import { Mailbox, msgId } from './harness.mjs';

export const OP = {
  auth: 1, auth_answer: 2, send: 3, send_status: 4, push: 5, confirm: 6,
  confirm_status: 7, init: 8, init_end: 9, sync: 10, sync_end: 11, notify: 12,
  heartbeat: 13, heartbeat_answer: 14, close: 15, push_again: 16, delivered: 17,
};
const NAME = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** One packet: a Buffer of the 16-byte header and the body. Every field
 * may be overridden to build malformed packets. */
export function packet(op, seq, body = '', { length, headerLength = 16, version = 1 } = {}) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const h = Buffer.alloc(16);
  h.writeUInt32BE(length ?? 16 + b.length, 0);
  h.writeUInt16BE(headerLength, 4);
  h.writeUInt16BE(version, 6);
  h.writeUInt32BE(op, 8);
  h.writeUInt32BE(seq, 12);
  return Buffer.concat([h, b]);
}

export class LongLink {
  constructor(sock) {
    this.sock = sock;
    this.seq = 0;
    this.buf = Buffer.alloc(0);
    this.packets = new Mailbox('long link packets');
    this.boxes = {};
    for (const name of Object.keys(OP)) this.boxes[name] = new Mailbox(`long link ${name}`);
    this.pushes = new Mailbox('long link pushes');
    this.closeInfo = null;           // the close packet's JSON, when one came
    this.ended = new Promise((r) => { this._onEnd = r; });
    this.endInfo = null;             // {hadError, at} once the socket ended
    sock.on('data', (d) => this._data(d));
    sock.on('error', () => {});
    sock.on('close', (hadError) => {
      this.endInfo = { hadError, at: Date.now() };
      this._onEnd(this.endInfo);
    });
  }

  static open(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      sock.setNoDelay(true);
      sock.once('connect', () => resolve(new LongLink(sock)));
      sock.once('error', reject);
    });
  }

  _data(d) {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt32BE(0);
      if (len < 16) throw new Error(`server sent a packet length ${len}`);
      if (this.buf.length < len) break;
      const p = {
        length: len,
        headerLength: this.buf.readUInt16BE(4),
        version: this.buf.readUInt16BE(6),
        op: this.buf.readUInt32BE(8),
        seq: this.buf.readUInt32BE(12),
        body: this.buf.subarray(16, len).toString('utf8'),
      };
      p.name = NAME[p.op] || `op${p.op}`;
      try { p.json = p.body ? JSON.parse(p.body) : undefined; } catch { p.json = undefined; }
      this.buf = this.buf.subarray(len);
      this.packets.push(p);
      if (this.boxes[p.name]) this.boxes[p.name].push(p);
      if (p.op === OP.push || p.op === OP.push_again) this.pushes.push(p);
      if (p.op === OP.close) this.closeInfo = p.json;
    }
  }

  /** Writes raw bytes (a Buffer, or several packets concatenated). */
  write(bytes) { this.sock.write(bytes); }

  /** Sends a request; returns its sequence number. */
  request(op, body = '') {
    const seq = ++this.seq;
    this.write(packet(op, seq, body));
    return seq;
  }

  /** The answer of op `answer` carrying sequence seq. */
  answer(answer, seq, timeout = 10000) {
    return this.boxes[answer].waitFor((p) => p.seq === seq, timeout, { what: `${answer} #${seq}` });
  }

  async auth(token, timeout = 10000) {
    const seq = this.request(OP.auth, { token });
    const p = await Promise.race([
      this.answer('auth_answer', seq, timeout),
      this.boxes.close.waitFor(() => true, timeout).then((c) => {
        throw new Error(`auth refused: ${c.body}`);
      }),
    ]);
    return p.json;
  }

  /** send; returns the send_status JSON plus msgID. */
  async chat(to, content, { msgID, timeout = 10000 } = {}) {
    const id = msgID ?? msgId(content);
    const seq = this.request(OP.send, { msgID: id, reciverId: typeof to === 'object' ? to.uid : to, content });
    const p = await this.answer('send_status', seq, timeout);
    return { ...p.json, msgID: id, seq: p.seq };
  }

  async confirm(msgID, timeout = 10000) {
    const seq = this.request(OP.confirm, { msgID });
    return (await this.answer('confirm_status', seq, timeout)).json;
  }

  /** init; resolves {messages (push packets before the end), status}. */
  async init(timeout = 15000) {
    const since = this.pushes.mark();
    const seq = this.request(OP.init, '');
    const end = await this.answer('init_end', seq, timeout);
    const at = this.packets.items.indexOf(end);
    const messages = this.pushes.filter((p) => this.packets.items.indexOf(p) < at, since);
    return { messages, status: end.json, end };
  }

  async sync(syncKey, timeout = 15000) {
    const since = this.pushes.mark();
    const seq = this.request(OP.sync, { syncKey });
    const end = await this.answer('sync_end', seq, timeout);
    const at = this.packets.items.indexOf(end);
    const messages = this.pushes.filter((p) => this.packets.items.indexOf(p) < at, since);
    return { messages, status: end.json, end };
  }

  async heartbeat(timeout = 10000) {
    const seq = this.request(OP.heartbeat);
    return this.answer('heartbeat_answer', seq, timeout);
  }

  /** Resolves the close packet's JSON (or null) once the server closed. */
  async closedByServer(timeout = 10000) {
    let timer;
    await Promise.race([
      this.ended,
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`server did not close within ${timeout} ms`)), timeout); }),
    ]).finally(() => clearTimeout(timer));
    return this.closeInfo;
  }

  async close() {
    this.sock.end();
    await Promise.race([this.ended, new Promise((r) => setTimeout(r, 2000))]);
    this.sock.destroy();
  }

  async terminate() { this.sock.destroy(); }
}
