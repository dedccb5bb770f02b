// bench/chat_lua_cpu.mjs - Redis CPU per stored message of chat.lua alone
// (no gateway), old layout vs the current one:
//   git show <rev>:gateway/store/lua/chat.lua > /tmp/old_chat.lua
//   OLD_LUA=/tmp/old_chat.lua node bench/chat_lua_cpu.mjs old,new,old,new
// "old" runs the script of OLD_LUA with the send-only layout of before the
// claim (KEYS user,msg,pending,seq); "send" runs gateway/store/lua/chat.lua
// as the gateway does by default (send only, with the digest and the
// per-sender count); "new" adds a claim batch before each send batch, as
// with --msgid-unique-per-sender. Run from the repo root.
//
// Redis CPU per stored message: chat.lua before (one send op) and after
// (a claim op on the sender's keys + the send op), batches of B ops per
// EVALSHA as the store sends them, appendfsync always, one connection.
import fs from 'node:fs';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { RedisPipe } from '../tests/reliability/lib/redis.mjs';
const N = 20000, B = 16, SENDERS = 50, RECV = 50;
const DATA = fs.mkdtempSync('/tmp/cg-lua-cpu-');
const digest = (c) => crypto.createHash('sha1').update(c).digest('hex').slice(0, 16);
async function run(which) {
  fs.rmSync(DATA, { recursive: true, force: true }); fs.mkdirSync(DATA);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', DATA, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const r = await RedisPipe.connect(port);
  const sha = await r.call('SCRIPT', 'LOAD', fs.readFileSync(which === 'old' ? process.env.OLD_LUA : 'gateway/store/lua/chat.lua', 'utf8'));
  for (let u = 1; u <= RECV; u++) await r.call('HSET', `{u:${1000 + u}}:user`, 'name', `r${u}`);
  const cpu = async () => { const t = await r.call('INFO', 'cpu'); const g = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(t)[1]); return g('used_cpu_user') + g('used_cpu_sys'); };
  const c0 = await cpu(); const t0 = Date.now();
  for (let i = 0; i < N; i += B * 8) {
    const cmds = [];
    for (let j = i; j < Math.min(N, i + B * 8); j += B) {
      const claimKeys = [], claimArgs = [], keys = [], args = [];
      for (let k = j; k < Math.min(N, j + B); k++) {
        const s = 1 + (k % SENDERS), to = 1001 + (k % RECV), msgID = crypto.randomBytes(20).toString('hex');
        const content = `message ${k} ${'x'.repeat(60)}`;
        claimKeys.push(`{u:${s}}:sent`, `{u:${s}}:sent.old`); claimArgs.push('claim', msgID, `${to}:${digest(content)}`);
        const p1 = `,"chatID":"${msgID}","sender":"s${s}","reciver":"`, p2 = `","content":${JSON.stringify(content)},"time":`, p3 = `,"senderId":${s},"reciverId":${to}}`;
        if (which === 'old') { keys.push(...['user', 'msg', 'pending', 'seq'].map((x) => `{u:${to}}:${x}`)); args.push('send', String(s), msgID, '100000', '1000', `cg:u:${to}`, p1, p2, p3, '0'); }
        else { keys.push(...['user', 'msg', 'pending', 'seq', 'psend'].map((x) => `{u:${to}}:${x}`)); args.push('send', String(s), msgID, '100000', '1000', '1000', `cg:u:${to}`, p1, p2, p3, '0', digest(content)); }
      }
      if (which === 'new') cmds.push(['EVALSHA', sha, claimKeys.length, ...claimKeys, ...claimArgs]);
      cmds.push(['EVALSHA', sha, keys.length, ...keys, ...args]);
    }
    const reps = await r.pipeline(cmds);
    for (const x of reps) if (x instanceof Error) throw x;
  }
  const c1 = await cpu(); const ms = Date.now() - t0;
  r.close(); p.kill();
  return { which, usPerMsg: ((c1 - c0) * 1e6 / N).toFixed(1), wallMs: ms };
}
for (const w of (process.argv[2] || 'old,new').split(',')) console.log(JSON.stringify(await run(w)));
