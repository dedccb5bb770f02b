// docker_files.test.mjs - docker/Dockerfile, docker/docker-compose.yml and
// docker/nginx.conf, checked without Docker (it cannot run here):
//
//   - the Dockerfile's stages, user, port, health check and entry point;
//     its runtime package list is exactly the Debian packages of the
//     libraries the built binary links (NEEDED, recursively) and maps at
//     run time (the libwebsockets event-loop plugin is dlopen'ed), minus
//     what debian:12-slim already has; the HEALTHCHECK command itself is
//     run against a live gateway
//   - the compose file (parsed as YAML): redis with a password, AOF and
//     noeviction, not published; two gateways on that Redis with distinct
//     node ids, trusting exactly nginx's address; nginx the only service
//     published (80 and 443), with the config and certificates mounted
//     where nginx.conf expects them
//   - nginx.conf's routing, headers, buffering and log format
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, useEnv, gatewayBinary } from '../integration/lib/harness.mjs';
import {
  parseDockerfile, aptPackages, parseYaml, nginxDirectives, nginxDurationMs, defaultConfig,
} from './lib/deploy.mjs';

const DOCKER = path.join(REPO_ROOT, 'docker');
const read = (f) => fs.readFileSync(path.join(DOCKER, f), 'utf8');
const stages = parseDockerfile(read('Dockerfile'));
const compose = parseYaml(read('docker-compose.yml'));
const nginx = nginxDirectives(read('nginx.conf'));

// In debian:12-slim already (apt, dpkg and bash need them); installing
// them again would be a no-op, so the list leaves them out.
const BASE_IMAGE = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g']);
// Only in this sanitizer build: not in a Release image.
const SANITIZER = /^lib(asan|ubsan|lsan|tsan)\d*$/;

const h = useEnv('deploy_docker_files');

const runtime = () => stages.find((s) => s.as === 'runtime') || stages[stages.length - 1];
const ins = (stage, cmd) => stage.instructions.filter((i) => i.cmd === cmd);

/** Debian package of each file: one dpkg -S for all. Debian 12 merged
 * /lib into /usr/lib, but dpkg records the path the package shipped, so
 * each file is asked for under both spellings and its real path. */
function packagesOf(files) {
  const variants = new Map();
  for (const f of files) {
    const v = new Set([f, fs.realpathSync(f)]);
    for (const x of [...v]) {
      if (x.startsWith('/usr/lib/')) v.add(x.slice(4));
      else if (x.startsWith('/lib/')) v.add(`/usr${x}`);
    }
    variants.set(f, v);
  }
  const all = [...new Set([...variants.values()].flatMap((v) => [...v]))];
  const owner = new Map();
  const out = spawnSync('dpkg', ['-S', ...all], { encoding: 'utf8' }).stdout;
  for (const line of out.split('\n')) {
    const m = /^([^:\s]+)(?::\S+)?: (\/.*)$/.exec(line);
    if (m) owner.set(m[2], m[1]);
  }
  const result = new Map();
  for (const [f, v] of variants) {
    const pkg = [...v].map((x) => owner.get(x)).find(Boolean);
    if (!pkg) throw new Error(`no Debian package owns ${f}`);
    result.set(f, pkg);
  }
  return result;
}

/** soname -> path for the binary's whole closure, from ldd. */
function lddMap(bin) {
  const map = new Map();
  for (const line of execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*(\S+) => (\/\S+)/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

function needed(file) {
  return execFileSync('objdump', ['-p', file], { encoding: 'utf8' }).split('\n')
    .map((l) => /^\s*NEEDED\s+(\S+)/.exec(l)?.[1]).filter(Boolean);
}

/** Packages of the libraries bin links, walking NEEDED, sanitizers skipped. */
function linkedPackages(bin) {
  const where = lddMap(bin);
  const seen = new Set();
  const files = [];
  const walk = (file) => {
    for (const so of needed(file)) {
      if (seen.has(so) || /^lib(asan|ubsan)\.so/.test(so)) continue;
      seen.add(so);
      const p = where.get(so);
      if (!p) continue;                  // the dynamic loader itself
      files.push(p);
      walk(p);
    }
  };
  walk(bin);
  return new Set(packagesOf(files).values());
}

test('Dockerfile: a Debian 12 build stage and a debian:12-slim runtime stage', () => {
  assert.equal(stages.length, 2);
  const [build, run] = stages;
  assert.equal(build.from, 'debian:12');
  assert.equal(build.as, 'build');
  assert.equal(run.from, 'debian:12-slim');
  // The build stage has what .ci/deps.sh lists for building.
  const buildPkgs = new Set(aptPackages(build));
  const deps = fs.readFileSync(path.join(REPO_ROOT, '.ci', 'deps.sh'), 'utf8');
  const libs = /# libraries[^\n]*\n([^#]*)#/.exec(deps)[1].split(/\s+/).filter(Boolean);
  for (const p of [...libs, 'cmake', 'pkg-config', 'gcc', 'nodejs', 'npm']) {
    assert.ok(buildPkgs.has(p), `build stage lacks ${p}`);
  }
  const runs = ins(build, 'RUN').map((i) => i.args).join('\n');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /-DCMAKE_BUILD_TYPE=Release/);
  assert.match(runs, /-DCHATGATE_TESTS=OFF/);
  // No compiler or -dev package at run time.
  for (const p of aptPackages(run)) assert.doesNotMatch(p, /-dev$|^gcc|^cmake|^nodejs|^npm/);
});

test('Dockerfile: runtime packages are exactly the libraries the binary loads', async () => {
  const bin = gatewayBinary();
  const linked = linkedPackages(bin);
  // What the running process maps: NEEDED plus dlopen'ed plugins.
  const maps = fs.readFileSync(`/proc/${h.env.gw.proc.pid}/maps`, 'utf8');
  const files = new Set(maps.split('\n').map((l) => l.split(/\s+/)[5])
    .filter((f) => f && /\.so(\.|$)/.test(f) && !f.includes('ld-linux')));
  const mapped = new Set(packagesOf([...files]).values());
  const want = new Set([...linked, ...mapped].filter((p) => !BASE_IMAGE.has(p) && !SANITIZER.test(p)));
  assert.ok(want.has('libwebsockets-evlib-uv'), 'the libuv event-loop plugin is loaded at run time');
  const have = new Set(aptPackages(runtime()));
  const missing = [...want].filter((p) => !have.has(p));
  const extra = [...have].filter((p) => !want.has(p));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] },
    `runtime stage installs ${[...have].join(' ')}; the binary needs ${[...want].join(' ')}`);
});

test('Dockerfile: non-root user, port 8080 on all addresses, health check, entry point', async () => {
  const run = runtime();
  const user = ins(run, 'USER').at(-1)?.args;
  assert.ok(user && user !== 'root' && user !== '0', `USER ${user}`);
  assert.match(ins(run, 'RUN').map((i) => i.args).join('\n'), new RegExp(`useradd\\b.*\\b${user}\\b`));
  assert.deepEqual(ins(run, 'EXPOSE').map((i) => i.args), ['8080']);
  const env = ins(run, 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /CHATGATE_LISTEN=0\.0\.0\.0:8080/);
  const webRoot = /CHATGATE_WEB_ROOT=(\S+)/.exec(env)[1];
  const copies = ins(run, 'COPY').map((i) => i.args);
  assert.ok(copies.some((c) => /^--from=build \S+\/web \S+$/.test(c) && c.endsWith(` ${webRoot}`)), 'web files copied to the web root');
  const entry = JSON.parse(ins(run, 'ENTRYPOINT').at(-1).args);
  assert.ok(copies.some((c) => /^--from=build \S+\/gateway\/chatgate /.test(c) && c.endsWith(` ${entry[0]}`)), 'binary copied to the entry point');
  assert.notEqual(ins(run, 'STOPSIGNAL')[0]?.args, 'SIGKILL');

  // HEALTHCHECK: the exact command, pointed at a live gateway, passes; at
  // a closed port it fails.
  const hc = ins(run, 'HEALTHCHECK').at(-1).args;
  assert.match(hc, /--interval=\d+s/);
  const cmd = JSON.parse(/CMD\s+(\[.*\])$/.exec(hc)[1]);
  assert.match(cmd.join(' '), /\/healthz/);
  const live = cmd.map((a) => a.replace('/8080', `/${h.env.gw.port}`));
  assert.equal(spawnSync(live[0], live.slice(1), { timeout: 5000 }).status, 0, 'health check against a live gateway');
  const dead = cmd.map((a) => a.replace('/8080', '/1'));
  assert.notEqual(spawnSync(dead[0], dead.slice(1), { timeout: 5000 }).status, 0, 'health check against nothing');
});

test('compose: Redis with a password, AOF always and noeviction, not published', () => {
  const s = compose.services;
  assert.deepEqual(Object.keys(s).sort(), ['gateway1', 'gateway2', 'nginx', 'redis']);
  const r = s.redis;
  assert.equal(r.ports, undefined, 'redis must not be published');
  const cmd = r.command.join(' ');
  assert.match(cmd, /--requirepass \$\{REDIS_PASSWORD:\?/);
  const confMount = r.volumes.find((v) => v.startsWith('./redis.conf:'));
  const confPath = confMount.split(':')[1];
  assert.ok(r.command.includes(confPath), 'redis-server reads the mounted redis.conf');
  const conf = read('redis.conf');
  assert.match(conf, /^appendonly yes$/m);
  assert.match(conf, /^appendfsync always$/m);
  assert.match(conf, /^maxmemory-policy noeviction$/m);
  assert.ok(r.volumes.some((v) => /^[\w-]+:\/data$/.test(v)), 'data on a named volume');
  assert.ok(compose.volumes && Object.keys(compose.volumes).length >= 1);
  assert.deepEqual(r.healthcheck.test.slice(0, 2), ['CMD', 'redis-cli']);
});

test('compose: two gateways on that Redis, distinct node ids, trusting nginx only', () => {
  const s = compose.services;
  const drainDefault = defaultConfig(gatewayBinary()).drain_ms;
  const nginxIp = s.nginx.networks.chatgate.ipv4_address;
  const ids = new Set();
  for (const name of ['gateway1', 'gateway2']) {
    const g = s[name];
    assert.equal(g.ports, undefined, `${name} must not be published (nginx is the way in)`);
    assert.deepEqual(g.build, { context: '..', dockerfile: 'docker/Dockerfile' });
    assert.ok(fs.existsSync(path.join(DOCKER, '..', g.build.dockerfile)));
    assert.equal(g.environment.CHATGATE_REDIS_URL, 'redis://:${REDIS_PASSWORD}@redis:6379/0');
    ids.add(g.environment.CHATGATE_NODE_ID);
    assert.equal(g.environment.CHATGATE_TRUSTED_PROXIES, nginxIp);
    const drain = Number(g.environment.CHATGATE_DRAIN_MS ?? drainDefault);
    assert.ok(nginxDurationMs(g.stop_grace_period) > drain, `${name}: stop_grace_period must exceed drain_ms`);
    assert.equal(g.depends_on.redis.condition, 'service_healthy');
  }
  assert.equal(ids.size, 2);
});

test('compose: nginx is the only published service, 80 and 443, config where nginx.conf expects it', () => {
  const n = compose.services.nginx;
  assert.deepEqual(n.ports, ['80:80', '443:443']);
  const mounts = Object.fromEntries(n.volumes.map((v) => { const [src, dst] = v.split(':'); return [dst, src]; }));
  assert.equal(mounts['/etc/nginx/nginx.conf'], './nginx.conf');
  assert.equal(mounts['/etc/nginx/chatgate-upstream.conf'], './chatgate-upstream.conf');
  const cert = nginx.find((d) => d.name === 'ssl_certificate').args[0];
  const key = nginx.find((d) => d.name === 'ssl_certificate_key').args[0];
  assert.ok(mounts[cert], `certificate ${cert} mounted`);
  assert.ok(mounts[key], `key ${key} mounted`);
  // The upstream file names every gateway service at the port it exposes.
  const ups = read('chatgate-upstream.conf');
  for (const g of ['gateway1', 'gateway2']) {
    assert.match(ups, new RegExp(`^server ${g}:${compose.services[g].expose[0]} `, 'm'));
    assert.equal(n.depends_on[g].condition, 'service_healthy');
  }
  const listens = nginx.filter((d) => d.name === 'listen').map((d) => d.args.join(' '));
  assert.deepEqual(listens, ['80', '443 ssl']);
});

test('nginx.conf: routing, upgrade, client address, no buffering, no tokens in the log', () => {
  const one = (name, ctx) => {
    const d = nginx.filter((x) => x.name === name && (!ctx || x.ctx.startsWith(ctx)));
    assert.equal(d.length, 1, `${name}: ${d.length} found`);
    return d[0].args;
  };
  const headers = Object.fromEntries(nginx.filter((d) => d.name === 'proxy_set_header').map((d) => d.args));
  assert.equal(headers.Upgrade, '$http_upgrade');
  assert.match(headers.Connection, /^\$\w+$/);
  assert.equal(headers['X-Forwarded-For'], '$proxy_add_x_forwarded_for');
  assert.equal(headers['X-Real-IP'], '$remote_addr');
  assert.equal(headers.Host, '$http_host');
  assert.deepEqual(one('proxy_http_version'), ['1.1']);
  assert.deepEqual(one('proxy_buffering'), ['off']);
  // SockJS: hashed on the server segment, consistently.
  const hash = nginx.find((d) => d.name === 'hash');
  assert.deepEqual(hash.args.slice(1), ['consistent']);
  const mapOf = nginx.find((d) => d.name === 'map' && d.args[1] === hash.args[0]);
  assert.ok(mapOf, `a map defines ${hash.args[0]}`);
  const sockjsLoc = nginx.find((d) => d.name === 'location' && /socketServer/.test(d.args.join(' ')));
  assert.ok(sockjsLoc);
  // The map's regex picks the {server} segment of every SockJS transport URL.
  const entry = nginx.find((d) => d.ctx.includes(`map ${mapOf.args.join(' ')}`) && d.name.startsWith('~'));
  const re = new RegExp(entry.name.slice(1).replace(/\(\?<(\w+)>/g, '(?<$1>'));
  for (const t of ['xhr', 'xhr_send', 'xhr_streaming', 'eventsource', 'websocket', 'htmlfile', 'jsonp']) {
    assert.equal(re.exec(`/Mimi/socketServer/123/abcdef/${t}`)?.groups.cg_srv, '123', t);
  }
  assert.equal(re.exec('/socketServer/info'), null);
  // The access log never writes the raw request line or query.
  const fmt = nginx.filter((d) => d.name === 'log_format');
  assert.equal(fmt.length, 1);
  const text = fmt[0].args.slice(1).join('');
  for (const v of ['$request ', '$request_uri', '$args', '$query_string', '$arg_', '$http_authorization']) {
    assert.ok(!text.includes(v) && !text.endsWith(v.trim()), `log_format uses ${v}`);
  }
  assert.deepEqual(nginx.filter((d) => d.name === 'access_log').map((d) => d.args[1]), [fmt[0].args[0]]);
});
