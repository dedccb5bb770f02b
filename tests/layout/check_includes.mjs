// The include arrows of docs/ARCHITECTURE.md ("Parts and arrows"), checked
// over every #include "part/name.h" under gateway/: a part includes its own
// headers and those of the parts below it, never one above it, and every
// project header is named by its part ("core/log.h", not "log.h" or
// "../core/log.h"). Exits non-zero and prints file:line for each breach.
//
//   node tests/layout/check_includes.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Bottom to top. Each part may include the parts listed for it; "stomp" is
// the pure codec in stomp/ and include/stomp/, "longlink" the pure codec in
// longlink/ and include/longlink/.
export const ALLOWED = {
  core: [],
  store: ['core'],
  chat: ['store', 'core'],
  session: ['chat', 'store', 'core', 'stomp', 'longlink'],
  http: ['session', 'chat', 'store', 'core'],
  transport: ['http', 'session', 'chat', 'store', 'core', 'stomp', 'longlink'],
  server: ['transport', 'http', 'session', 'chat', 'store', 'core', 'stomp', 'longlink'],
};
// Headers outside gateway/ that any part may include: the feature-test
// macros, and the codec's string view (libc only; the gateway's one view).
const SHARED = new Set(['fmacros.h', 'stomp/str.h']);
// The pure codecs: each in <name>/ with its headers in include/<name>/.
const CODECS = ['stomp', 'longlink'];

function* sources(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.[ch]$/.test(e.name)) yield p;
  }
}

const errors = [];
const gw = path.join(ROOT, 'gateway');
const parts = new Set(fs.readdirSync(gw, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name));
for (const p of parts) {
  if (!(p in ALLOWED)) errors.push(`gateway/${p}/: a folder that is no part of ALLOWED (add it here and to docs/ARCHITECTURE.md)`);
}
for (const e of fs.readdirSync(gw, { withFileTypes: true })) {
  if (e.isFile() && /\.[ch]$/.test(e.name)) errors.push(`gateway/${e.name}: every source belongs to a part's folder`);
}
let checked = 0;
for (const file of sources(gw)) {
  const rel = path.relative(ROOT, file);
  const part = rel.split(path.sep)[1];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    const m = /^\s*#\s*include\s+"([^"]+)"/.exec(line);
    if (!m) return;
    checked++;
    const inc = m[1];
    const where = `${rel}:${i + 1}: #include "${inc}"`;
    if (SHARED.has(inc)) return;
    const seg = inc.split('/');
    if (seg.length !== 2 || inc.includes('..')) {
      errors.push(`${where}: name a project header as "part/name.h"`);
      return;
    }
    const [to] = seg;
    if (to === part) {
      if (!fs.existsSync(path.join(gw, inc))) errors.push(`${where}: no such header`);
      return;
    }
    if (!(ALLOWED[part] || []).includes(to)) {
      errors.push(`${where}: ${part} may include only ${[part, ...(ALLOWED[part] || [])].join(', ')}`);
    } else if (!CODECS.includes(to) && !fs.existsSync(path.join(gw, inc))) {
      errors.push(`${where}: no such header`);
    }
  });
}
// The codecs stay pure: nothing of the gateway, nor of each other (the
// string view stomp/str.h is the gateway's, not longlink's).
for (const codec of CODECS) {
  for (const dir of [codec, path.join('include', codec)]) {
    for (const file of sources(path.join(ROOT, dir))) {
      fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        const m = /^\s*#\s*include\s+"([^"]+)"/.exec(line);
        if (m && m[1].includes('/') && !m[1].startsWith(`${codec}/`) &&
            !(codec === 'stomp' && SHARED.has(m[1]))) {
          errors.push(`${path.relative(ROOT, file)}:${i + 1}: ${codec}/ includes only its own headers`);
        }
      });
    }
  }
}

for (const e of errors) console.error(e);
console.log(`${checked} includes checked in gateway/: ${errors.length} breach${errors.length === 1 ? '' : 'es'}`);
process.exit(errors.length ? 1 : 0);
