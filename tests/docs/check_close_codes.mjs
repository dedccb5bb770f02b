#!/usr/bin/env node
// check_close_codes.mjs - the close-code table of docs/PROTOCOL.md section 6
// (the contract) and enum cg_close_code in gateway/session/close_codes.h
// (the code) say the same thing. Offline, node built-ins only:
//
//   node tests/docs/check_close_codes.mjs
//
// Checks:
//   1. every code of the table is a value of the enum, and every value of
//      the enum is a code of the table;
//   2. every reason the table gives a code (`client disconnected`, the
//      c[3000,"Go away!"] frame, "(the detail)") is named in the comment of
//      an enumerator with that value: in double quotes, as the frame itself,
//      or as "the detail" / "the message".
// Each problem is printed on its own line; the exit status is 1 if there
// was any, else 0.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC = 'docs/PROTOCOL.md';
const HEADER = 'gateway/session/close_codes.h';
const problems = [];

// ---- the enum: value -> comments of the enumerators with that value --------

const header = readFileSync(path.join(ROOT, HEADER), 'utf8');
const body = /enum\s+cg_close_code\s*\{([\s\S]*?)\};/.exec(header);
if (!body) {
  console.error(`${HEADER}: no enum cg_close_code`);
  process.exit(1);
}
const comments = new Map();       // value -> [comment text, ...]
let pending = '';
for (const tok of body[1].matchAll(/\/\*([\s\S]*?)\*\/|(CG_\w+)\s*=\s*(\d+)\s*,?/g)) {
  if (tok[1] !== undefined) {
    pending += ' ' + tok[1].replace(/\s*\n\s*\*\s?/g, ' ');
    continue;
  }
  const value = Number(tok[3]);
  if (!comments.has(value)) comments.set(value, []);
  comments.get(value).push(pending.replace(/\s+/g, ' ').trim());
  if (!pending.trim()) problems.push(`${HEADER}: ${tok[2]} has no comment saying when it is sent`);
  pending = '';
}

// ---- the table: rows of section 6 --------------------------------------------

const doc = readFileSync(path.join(ROOT, DOC), 'utf8').split('\n');
const start = doc.findIndex((l) => /^## 6\. /.test(l));
if (start < 0) {
  console.error(`${DOC}: no section 6`);
  process.exit(1);
}
const rows = [];
for (let i = start + 1; i < doc.length && !/^## /.test(doc[i]); i++) {
  const cells = doc[i].split('|').map((c) => c.trim());
  if (cells.length < 3 || cells[0] !== '' || /^-+$/.test(cells[1]) || cells[1].startsWith('code')) continue;
  const cell = cells[1];
  let m;
  if ((m = /^`(c\[(\d+),"([^"]*)"\])`$/.exec(cell))) {
    rows.push({ line: i + 1, code: Number(m[2]), names: [m[1]] });
  } else if ((m = /^(\d+)(?:\s+`([^`]+)`|\s+\((the \w+)\))?$/.exec(cell))) {
    rows.push({ line: i + 1, code: Number(m[1]), names: m[2] ? [`"${m[2]}"`] : m[3] ? [m[3]] : [] });
  } else {
    problems.push(`${DOC}:${i + 1}: cannot read the code of "${cell}"`);
  }
}
if (rows.length === 0) problems.push(`${DOC}: section 6 has no close-code table`);

// ---- compare -----------------------------------------------------------------

const docCodes = new Set(rows.map((r) => r.code));
for (const value of comments.keys()) {
  if (!docCodes.has(value)) problems.push(`${HEADER}: ${value} is not in the table of ${DOC} section 6`);
}
for (const r of rows) {
  const texts = comments.get(r.code);
  if (!texts) {
    problems.push(`${DOC}:${r.line}: ${r.code} is not a value of enum cg_close_code (${HEADER})`);
    continue;
  }
  for (const name of r.names) {
    if (!texts.some((t) => t.includes(name))) {
      problems.push(`${DOC}:${r.line}: no comment of ${r.code} in ${HEADER} names ${name}`);
    }
  }
}

for (const p of problems) console.log(p);
if (problems.length) {
  console.log(`${problems.length} problem(s): ${DOC} section 6 and ${HEADER} differ`);
  process.exit(1);
}
console.log(`close codes: ${rows.length} rows of ${DOC} section 6 match ${HEADER}`);
