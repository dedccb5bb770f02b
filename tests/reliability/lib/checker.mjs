// checker.mjs - the verdict of a reliability test (issue #8), in the spirit
// of Jepsen's checkers: it never looks at the server, only at what clients
// did and saw.
//
// A History holds three logs, filled by the load driver (load.mjs) or by a
// test by hand:
//
//   sends       one record per logical message (sender, msgID): receiver,
//               content, its place in the sender's queue for that receiver
//               (seq), and every attempt: when it was issued, on which
//               connection, and its outcome (200 with id and time, another
//               code, 'timeout' = no answer in time, 'lost' = connection
//               gone before an answer). A late answer after a timeout is
//               recorded on the attempt too.
//   deliveries  every chat MESSAGE any receiver's socket got: receiver,
//               connection, chatID, id, sender, senderId, reciverId,
//               content, time, the redelivered header, and whether the
//               connection had finished its catch-up (init + sync) before
//               it arrived (phase 'live') or not ('catchup').
//   app         per receiver, what its dedupe layer passed on to the
//               application (dedupe by senderId:chatID, as web/app.js).
//
// check(history) reports:
//   sent         logical messages the clients wanted to send
//   confirmed    messages answered 200 at least once
//   delivered    distinct messages that reached their receiver's app
//   lost         confirmed but never delivered to the receiver's app
//   dup          duplicates the application would see or the store made:
//                  appDup: the same senderId:chatID passed twice by the
//                          dedupe layer (its output, not the socket);
//                  storedTwice: one (sender, msgID) delivered or confirmed
//                          under two different ids (the server stored a
//                          retry again);
//                  idCollision: two different messages delivered to one
//                          receiver with the same id;
//                  retryMismatch: two 200 answers of one message with
//                          different ids.
//   unexpected   delivered but never sent (unknown senderId:chatID), or
//                delivered with another receiver, sender or content than
//                sent, or delivered to the wrong receiver
//   inversions   per (sender, receiver):
//                  sendOrder: confirmed messages sorted by the sender's
//                          queue order must have strictly increasing ids
//                          (PROTOCOL.md 4: one sender to one receiver keeps
//                          send order). The load driver keeps one message in
//                          flight per conversation (a window of 1, as a
//                          chat client's send queue), so its queue order is
//                          the order the server saw.
//                  liveOrder: on one receiver connection, the pushes that
//                          arrived after its catch-up must have strictly
//                          increasing ids per sender (pub/sub order). Not
//                          counted: what arrived between a fault and the
//                          end of a re-read of the inbox the gateway started
//                          by itself after it (an init/status the client did
//                          not ask for: session.c cg_session_resync), where
//                          pushes and the re-read interleave by design.
//   recovered    delivered although some attempt timed out, was lost with
//                its connection, or failed with 503 (informational: the
//                indeterminate outcomes of Jepsen's checkers that turned
//                out to have happened, or were retried successfully)
//   storedByUnansweredAttempt  of those, the ones an attempt that never got
//                its answer had stored (the retry got the first id back)
//   unconfirmed  never answered 200 (the driver retries until it is; after
//                the faults stop and the drain ends this must be 0)
//   failed       answered a definite failure other than 503/429 and given
//                up (400, 404, 409, 413, 507): never expected under load
//
// A fault test passes only with lost = dup = unexpected = inversions = 0
// (assertClean); most also require unconfirmed = failed = 0.
import fs from 'node:fs';
import path from 'node:path';

export class History {
  constructor(name = 'history') {
    this.name = name;
    this.sends = new Map();      // `${fromUid}:${msgID}` -> send record
    this.deliveries = [];        // every MESSAGE on a recive subscription
    this.app = new Map();        // receiverUid -> [delivery passed by dedupe]
    this.faults = [];            // {kind, at, until, ...} for the report
    this.resyncs = [];           // {conn, at}: an init/status the client did not ask for
    this.notes = [];
  }

  static key(fromUid, msgID) { return `${fromUid}:${msgID}`; }

  /** A new logical message; returns its record. */
  addSend({ from, fromName, to, msgID, content, seq, createdAt = Date.now() }) {
    const key = History.key(from, msgID);
    if (this.sends.has(key)) throw new Error(`history: send ${key} recorded twice`);
    const rec = { key, from, fromName, to, msgID, content, seq, createdAt, attempts: [], confirmed: null, failed: null };
    this.sends.set(key, rec);
    return rec;
  }

  /** An attempt of rec issued now on connection `conn`. */
  addAttempt(rec, conn, at = Date.now()) {
    const a = { n: rec.attempts.length + 1, at, conn, outcome: null, answeredAt: null, code: null, id: null, time: null, late: null };
    rec.attempts.push(a);
    return a;
  }

  /** An answer (send/status JSON) to attempt a of rec. */
  answer(rec, a, json, at = Date.now()) {
    const ans = { code: json.code, id: json.id ?? null, time: json.time ?? null, at };
    if (a.outcome === 'timeout' || a.outcome === 'lost') {
      a.late = ans;
    } else {
      a.outcome = json.code;
      a.code = json.code;
      a.id = ans.id;
      a.time = ans.time;
      a.answeredAt = at;
    }
    if (json.code === 200 && !rec.confirmed) rec.confirmed = { id: json.id, time: json.time, at };
  }

  /** A chat MESSAGE received by receiver `rcv` on connection `conn`. */
  addDelivery(d) {
    this.deliveries.push(d);
    return d;
  }

  /** The dedupe layer passed d on to the application of receiver uid. */
  addApp(uid, d) {
    let l = this.app.get(uid);
    if (!l) this.app.set(uid, (l = []));
    l.push(d);
  }

  fault(kind, at = Date.now(), extra = {}) {
    const f = { kind, at, ...extra };
    this.faults.push(f);
    return f;
  }
}

const FAILED_HARD = new Set([400, 404, 409, 413, 507]);

/** The checker. Returns counts plus up to `examples` examples of each kind. */
export function check(h, { examples = 5 } = {}) {
  const ex = {};
  const note = (kind, v) => {
    const l = ex[kind] || (ex[kind] = []);
    if (l.length < examples) l.push(v);
  };

  const res = {
    sent: h.sends.size, confirmed: 0, delivered: 0, lost: 0,
    dup: 0, appDup: 0, storedTwice: 0, idCollision: 0, retryMismatch: 0,
    unexpected: 0, inversions: 0, sendOrderInversions: 0, liveOrderInversions: 0,
    recovered: 0, storedByUnansweredAttempt: 0, unconfirmed: 0, failed: 0,
    attempts: 0, timeouts: 0, lostAttempts: 0, code503: 0, code429: 0,
    socketDeliveries: h.deliveries.length, redeliveredFlagged: 0,
    examples: ex,
  };

  // ---- sends ------------------------------------------------------------
  for (const s of h.sends.values()) {
    res.attempts += s.attempts.length;
    const ids = new Set();
    for (const a of s.attempts) {
      if (a.outcome === 'timeout') res.timeouts++;
      if (a.outcome === 'lost') res.lostAttempts++;
      if (a.code === 503) res.code503++;
      if (a.code === 429) res.code429++;
      for (const ans of [a.code === 200 ? a : null, a.late?.code === 200 ? a.late : null]) {
        if (ans) ids.add(ans.id);
      }
    }
    if (ids.size > 1) {
      res.retryMismatch++;
      note('retryMismatch', { key: s.key, ids: [...ids] });
    }
    if (s.confirmed) res.confirmed++;
    else if (s.failed && FAILED_HARD.has(s.failed.code)) res.failed++;
    else res.unconfirmed++;
    if (s.failed && FAILED_HARD.has(s.failed.code)) note('failed', { key: s.key, code: s.failed.code });
  }

  // ---- deliveries at the socket ----------------------------------------
  const bad = new WeakSet();          // deliveries that are not what was sent
  const deliveredIds = new Map();     // send key -> Set of ids seen delivered
  const idOwner = new Map();          // `${rcv}:${id}` -> send key
  for (const d of h.deliveries) {
    if (d.redelivered) res.redeliveredFlagged++;
    const key = History.key(d.senderId, d.chatID);
    const s = h.sends.get(key);
    if (!s) {
      bad.add(d);
      res.unexpected++;
      note('unexpected', { why: 'never sent', key, rcv: d.rcv, id: d.id });
      continue;
    }
    if (d.reciverId !== s.to || d.rcv !== s.to || d.content !== s.content ||
        (s.fromName !== undefined && d.sender !== s.fromName)) {
      bad.add(d);
      res.unexpected++;
      note('unexpected', { why: 'differs from what was sent', key, rcv: d.rcv, to: s.to, reciverId: d.reciverId,
        sender: d.sender, fromName: s.fromName, contentMatches: d.content === s.content });
      continue;
    }
    let set = deliveredIds.get(key);
    if (!set) deliveredIds.set(key, (set = new Set()));
    set.add(d.id);
    const ok = `${d.rcv}:${d.id}`;
    const owner = idOwner.get(ok);
    if (owner === undefined) idOwner.set(ok, key);
    else if (owner !== key) {
      res.idCollision++;
      note('idCollision', { rcv: d.rcv, id: d.id, a: owner, b: key });
    }
    if (s.confirmed && d.id !== s.confirmed.id) set.add(s.confirmed.id);
  }
  for (const [key, set] of deliveredIds) {
    if (set.size > 1) {
      res.storedTwice++;
      note('storedTwice', { key, ids: [...set] });
    }
  }

  // ---- the application's view (dedupe output) --------------------------
  const appSeen = new Set();
  for (const [uid, list] of h.app) {
    const mine = new Set();
    for (const d of list) {
      const key = History.key(d.senderId, d.chatID);
      if (mine.has(key)) {
        res.appDup++;
        note('appDup', { rcv: uid, key, id: d.id });
        continue;
      }
      mine.add(key);
      const s = h.sends.get(key);
      if (s && s.to === uid && !bad.has(d)) appSeen.add(key);
    }
  }
  res.delivered = appSeen.size;
  for (const s of h.sends.values()) {
    const got = appSeen.has(s.key);
    if (s.confirmed && !got) {
      res.lost++;
      note('lost', { key: s.key, to: s.to, id: s.confirmed.id, confirmedAt: s.confirmed.at, attempts: s.attempts.length });
    }
    if (got && s.attempts.some((a) => a.outcome === 'timeout' || a.outcome === 'lost' || a.code === 503)) {
      res.recovered++;
    }
    // an attempt without an answer that had in fact stored the message: the
    // store time (Redis TIME, same clock) is before the next attempt left
    if (s.confirmed) {
      const i = s.attempts.findIndex((a) => (a.outcome === 'timeout' || a.outcome === 'lost') &&
        s.attempts[s.attempts.indexOf(a) + 1] && s.confirmed.time < s.attempts[s.attempts.indexOf(a) + 1].at);
      if (i >= 0) res.storedByUnansweredAttempt++;
    }
  }

  // ---- order -------------------------------------------------------------
  const convs = new Map();
  for (const s of h.sends.values()) {
    if (!s.confirmed || s.seq === undefined || s.seq === null) continue;
    const k = `${s.from}>${s.to}`;
    let l = convs.get(k);
    if (!l) convs.set(k, (l = []));
    l.push(s);
  }
  for (const [k, l] of convs) {
    l.sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < l.length; i++) {
      if (!(l[i].confirmed.id > l[i - 1].confirmed.id)) {
        res.sendOrderInversions++;
        note('sendOrder', { conv: k, prev: { seq: l[i - 1].seq, id: l[i - 1].confirmed.id }, next: { seq: l[i].seq, id: l[i].confirmed.id } });
      }
    }
  }
  const live = new Map();              // `${rcv}|${conn}|${senderId}` -> last id
  const faultTimes = h.faults.map((f) => f.at).sort((a, b) => a - b);
  const resyncs = new Map();           // conn -> [times], ascending
  for (const r of h.resyncs) {
    if (!resyncs.has(r.conn)) resyncs.set(r.conn, []);
    resyncs.get(r.conn).push(r.at);
  }
  for (const l of resyncs.values()) l.sort((a, b) => a - b);
  // d is in a re-read window: the first resync of its connection at or after
  // it was preceded by a fault at or before it
  const inResync = (d) => {
    const r = resyncs.get(d.conn)?.find((t) => t >= d.at);
    if (r === undefined) return false;
    let f;
    for (const t of faultTimes) { if (t <= r) f = t; else break; }
    return f !== undefined && d.at >= f;
  };
  for (const d of h.deliveries) {
    if (d.phase !== 'live' || (h.resyncs.length && inResync(d))) continue;
    const k = `${d.rcv}|${d.conn}|${d.senderId}`;
    const last = live.get(k);
    if (last !== undefined && !(d.id > last)) {
      res.liveOrderInversions++;
      note('liveOrder', { rcv: d.rcv, conn: d.conn, senderId: d.senderId, last, id: d.id });
    }
    if (last === undefined || d.id > last) live.set(k, d.id);
  }

  res.dup = res.appDup + res.storedTwice + res.idCollision + res.retryMismatch;
  res.inversions = res.sendOrderInversions + res.liveOrderInversions;
  return res;
}

/** True when the four numbers a fault test must keep at 0 are 0. */
export function clean(res) {
  return res.lost === 0 && res.dup === 0 && res.unexpected === 0 && res.inversions === 0;
}

/** Throws with the examples unless clean (and, by default, fully confirmed). */
export function assertClean(res, { allowUnconfirmed = false, allowFailed = false, what = '' } = {}) {
  const problems = [];
  if (res.lost) problems.push(`lost ${res.lost}`);
  if (res.dup) problems.push(`dup ${res.dup} (app ${res.appDup}, stored twice ${res.storedTwice}, id collisions ${res.idCollision}, retry mismatches ${res.retryMismatch})`);
  if (res.unexpected) problems.push(`unexpected ${res.unexpected}`);
  if (res.inversions) problems.push(`inversions ${res.inversions} (send order ${res.sendOrderInversions}, live order ${res.liveOrderInversions})`);
  if (!allowUnconfirmed && res.unconfirmed) problems.push(`unconfirmed ${res.unconfirmed}`);
  if (!allowFailed && res.failed) problems.push(`failed ${res.failed}`);
  if (problems.length) {
    throw new Error(`checker${what ? ` (${what})` : ''}: ${problems.join(', ')}\nexamples: ${JSON.stringify(res.examples, null, 1).slice(0, 4000)}`);
  }
}

/* ------------------------------------------------------------------ */
/* the one-line summary row                                            */
/* ------------------------------------------------------------------ */

export const SUMMARY_HEADER =
  '| test | load | faults injected | sent / confirmed / delivered | lost / dup / unexpected / inversions | recovered | result |\n' +
  '|---|---|---|---|---|---|---|';

/**
 * Prints (and appends to $CHATGATE_IT_TMPDIR/summary.md) one table row:
 * test, load, faults injected, sent/confirmed/delivered,
 * lost/dup/unexpected/inversions, recovered, result.
 */
export function summaryRow(test, load, faults, res, result) {
  const r = res || {};
  const n = (v) => (v === undefined || v === null ? '-' : String(v));
  const row = `| ${test} | ${load} | ${faults} | ${n(r.sent)} / ${n(r.confirmed)} / ${n(r.delivered)} | ` +
    `${n(r.lost)} / ${n(r.dup)} / ${n(r.unexpected)} / ${n(r.inversions)} | ${n(r.recovered)} | ${result} |`;
  console.log(`[summary] ${row}`);
  const root = process.env.CHATGATE_IT_TMPDIR;
  if (root) {
    try {
      fs.mkdirSync(root, { recursive: true });
      const f = path.join(root, 'summary.md');
      if (!fs.existsSync(f)) fs.writeFileSync(f, `${SUMMARY_HEADER}\n`);
      fs.appendFileSync(f, `${row}\n`);
    } catch { /* the row is on stdout anyway */ }
  }
  return row;
}

/**
 * Runs fn(rep) and prints the summary row from what it put in rep
 * ({load, faults, res}), with PASS, or FAIL and the first line of the error.
 */
export async function reported(test, fn) {
  const rep = { load: '-', faults: '-', res: null };
  try {
    const out = await fn(rep);
    summaryRow(test, rep.load, rep.faults, rep.res, 'PASS');
    return out;
  } catch (e) {
    summaryRow(test, rep.load, rep.faults, rep.res, `FAIL: ${String(e.message).split('\n')[0].slice(0, 120)}`);
    throw e;
  }
}
