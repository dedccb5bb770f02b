// raw.mjs - a lean STOMP-over-WebSocket client for the reliability tests:
// frames go to a callback (no mailbox scanning, so 100 000 frames cost
// O(n)), the socket can be paused (a slow reader: the `ws` package stops
// reading from TCP, the kernel buffers fill, and the gateway's output queue
// grows), and sends are written as fast as the caller likes (pipelined).
// Uses the harness's FrameReader and buildFrame.
import { WebSocket, FrameReader, buildFrame, withTimeout } from '../../integration/lib/harness.mjs';

export { buildFrame };

export class RawClient {
  /**
   * opts: token, path ('/client'), onFrame(frame), protocols (['v12.stomp']),
   * origin, query.
   */
  static open(gw, opts = {}) {
    const { token, path = '/client', protocols = ['v12.stomp'], origin, query } = opts;
    let url = gw.wsUrl(path);
    const q = [];
    if (token) q.push(`srect=${encodeURIComponent(token)}`);
    if (query) q.push(query);
    if (q.length) url += `?${q.join('&')}`;
    const headers = {};
    if (origin !== undefined) headers.Origin = origin;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false, maxPayload: 256 << 20 });
      let done = false;
      ws.on('unexpected-response', (req, res) => {
        if (!done) { done = true; reject(Object.assign(new Error(`handshake HTTP ${res.statusCode}`), { status: res.statusCode })); }
        req.destroy();
      });
      ws.on('error', (e) => { if (!done) { done = true; reject(e); } });
      ws.on('open', () => {
        done = true;
        const c = new RawClient(ws, opts);
        gw.env?.track?.(c);           // torn down with the Env, also when a test fails
        resolve(c);
      });
    });
  }

  constructor(ws, opts) {
    this.ws = ws;
    this.onFrame = opts.onFrame || (() => {});
    this.frames = 0;
    this.bytes = 0;
    this.closeInfo = null;
    this.closed = new Promise((r) => { this._onClosed = r; });
    this.waiters = [];
    this.reader = new FrameReader({
      onFrame: (f) => {
        this.frames++;
        f.at = Date.now();
        if (f.command === 'MESSAGE' || f.command === 'ERROR') {
          try { f.json = JSON.parse(f.body); } catch { f.json = undefined; }
        }
        if (f.command === 'CONNECTED' && f.headers.version === '1.0') this.reader.escaping = false;
        this.onFrame(f);
        for (const w of [...this.waiters]) {
          if (w.pred(f)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(f); }
        }
      },
      onHeartbeat: () => {},
    });
    ws.on('message', (data) => {
      this.bytes += data.length;
      this.reader.push(data);
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
      for (const w of this.waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason} while waiting for ${w.what}`));
      this._onClosed(this.closeInfo);
    });
  }

  get open() { return !this.closeInfo && this.ws.readyState === WebSocket.OPEN; }

  /** The next frame (from now on) matching pred. */
  next(pred, timeout = 10000, what = 'a frame') {
    if (this.closeInfo) return Promise.reject(new Error(`closed before ${what}`));
    return withTimeout(new Promise((resolve, reject) => this.waiters.push({ pred, resolve, reject, what })), timeout, what);
  }

  send(data) { this.ws.send(data); }

  frame(command, headers = {}, body = '') { this.ws.send(buildFrame(command, headers, body)); }

  async connect(headers = {}) {
    const p = this.next((f) => f.command === 'CONNECTED' || f.command === 'ERROR', 10000, 'CONNECTED');
    this.frame('CONNECT', { 'accept-version': '1.2', host: 'localhost', 'heart-beat': '0,0', ...headers });
    const f = await p;
    if (f.command !== 'CONNECTED') throw new Error(`CONNECT: ERROR ${f.headers.message} ${f.body}`);
    return f;
  }

  /** SUBSCRIBEs [[destination, id], ...], the last with a receipt; resolves on the RECEIPT. */
  async subscribe(list) {
    const receipt = `sub-${Math.random().toString(36).slice(2)}`;
    const p = this.next((f) => (f.command === 'RECEIPT' && f.headers['receipt-id'] === receipt) || f.command === 'ERROR', 10000, receipt);
    list.forEach(([destination, id], i) => {
      this.frame('SUBSCRIBE', { id, destination, ...(i === list.length - 1 ? { receipt } : {}) });
    });
    const f = await p;
    if (f.command !== 'RECEIPT') throw new Error(`SUBSCRIBE: ERROR ${f.headers.message} ${f.body}`);
  }

  pause() { this.ws.pause(); }
  resume() { this.ws.resume(); }

  waitClose(timeout = 5000) { return withTimeout(this.closed, timeout, 'close'); }

  terminate() { if (!this.closeInfo) this.ws.terminate(); return withTimeout(this.closed, 3000, 'terminate').catch(() => {}); }
}

/** A SEND of a chat message as a Buffer. */
export function sendFrame(msgID, to, content, extra = {}) {
  return buildFrame('SEND', { destination: '/socket/chat/send', ...extra }, JSON.stringify({ msgID, reciverId: to, content }));
}
