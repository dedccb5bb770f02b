#!/usr/bin/env node
// check_links.mjs - the repository's Markdown links and PROTOCOL.md
// citations resolve inside the repository. Offline: no network, node 20
// built-ins only. Run from anywhere: `node tests/docs/check_links.mjs
// [FILE ...]` (files not yet tracked by git may be named to check them too).
//
// Checks, over the files git tracks (node_modules excluded; a tree without
// git is walked instead):
//   1. every relative link and image in every *.md file ([t](x), ![a](x),
//      [r]: x, <a href>, <img src>) names a file or directory that exists
//      inside the repository;
//   2. every #anchor of such a link (or of a link within the same file)
//      names a heading of the target Markdown file, by GitHub's slug rules,
//      or an explicit <a name>/id;
//   3. every "PROTOCOL.md section N" ("sections N and M", "§N", "PROTOCOL.md
//      N", "PROTOCOL.md appendix") in any tracked text file names a section
//      that docs/PROTOCOL.md has, and every quoted name right after
//      ARCHITECTURE.md, OPERATIONS.md or PROTOCOL.md (as in: see
//      ARCHITECTURE.md, then a heading in double quotes) starts a heading
//      of that file;
//   4. no tracked file links to or mentions the old out-of-tree copies of
//      the documents (the shared directory next to the repository).
// Each problem is printed as file:line: what; the exit status is 1 if there
// was any, else 0. A quoted README heading that the README does not have
// counts as a problem too.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROTOCOL = 'docs/PROTOCOL.md';
const NAMED_DOCS = {
  'PROTOCOL.md': 'docs/PROTOCOL.md',
  'ARCHITECTURE.md': 'docs/ARCHITECTURE.md',
  'OPERATIONS.md': 'docs/OPERATIONS.md',
};
// Spelled in pieces so that this file does not mention them itself.
const FORBIDDEN = ['..' + '/shared/', 'shared' + '/PROTOCOL.md'];
const SKIP_DIRS = new Set(['node_modules', '.git', 'build']);

const problems = [];
const problem = (file, line, what) => problems.push(`${file}:${line}: ${what}`);
// Stale pointers into the README's headings: reported, not failed on (the
// README keeps only the first screen; the rest moved to docs/).

// ---- files -----------------------------------------------------------------

function trackedFiles() {
  try {
    const out = execFileSync('git', ['-C', ROOT, 'ls-files', '-z'], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\0').filter((f) => f && !f.split('/').includes('node_modules'));
  } catch {
    const files = [];
    const walk = (dir) => {
      for (const e of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (!SKIP_DIRS.has(e.name)) walk(rel);
        } else if (e.isFile()) {
          files.push(rel);
        }
      }
    };
    walk('');
    return files;
  }
}

const textCache = new Map();
/** The file's text, or null for a binary or unreadable file. */
function readText(rel) {
  if (textCache.has(rel)) return textCache.get(rel);
  let text = null;
  try {
    const buf = readFileSync(path.join(ROOT, rel));
    if (!buf.subarray(0, 8192).includes(0)) text = buf.toString('utf8');
  } catch {
    text = null;
  }
  textCache.set(rel, text);
  return text;
}

const lineOf = (text, index) => {
  let n = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) n++;
  return n;
};

// ---- Markdown ----------------------------------------------------------------

/** Lines of a Markdown file with fenced code blocks blanked out (kept as
 * empty lines so line numbers stay right). */
function proseLines(text) {
  const lines = text.split('\n');
  let fence = null;
  return lines.map((l) => {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(l);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && !/\S/.test(l.slice(l.indexOf(m[1]) + m[1].length))) fence = null;
      return '';
    }
    if (m) {
      fence = m[1];
      return '';
    }
    return l;
  });
}

/** Inline code spans replaced by spaces of the same length. */
const withoutCode = (l) => l.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (s) => ' '.repeat(s.length));

/** GitHub's heading slug (github-slugger): lower case, punctuation and
 * symbols dropped (letters, marks, digits, connector punctuation such as
 * '_', '-' and spaces stay), spaces to '-'. */
function slug(headingText) {
  const plain = headingText
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')   // images: their alt text
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')    // links: their text
    .replace(/<[^>]+>/g, '')                    // inline HTML tags
    .replace(/`/g, '')
    .trim();
  return plain.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '').replace(/ /g, '-');
}

const anchorCache = new Map();
/** {anchors: Set of slugs and explicit ids, headings: [text]} of a Markdown file. */
function anchorsOf(rel) {
  if (anchorCache.has(rel)) return anchorCache.get(rel);
  const text = readText(rel) ?? '';
  const anchors = new Set();
  const headings = [];
  const seen = new Map();
  const lines = proseLines(text);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    let h = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(l)?.[1];
    // setext headings: a line underlined by === or ---
    if (h === undefined && i + 1 < lines.length && /^ {0,3}(=+|-+)[ \t]*$/.test(lines[i + 1]) &&
        /\S/.test(l) && !/^ {0,3}([-*+>]|\d+[.)])\s/.test(l) && !l.includes('|')) h = l.trim();
    if (h !== undefined) {
      headings.push(h.replace(/`/g, '').trim());
      const base = slug(h);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of l.matchAll(/<[a-z][^>]*?\s(?:id|name)\s*=\s*["']([^"']+)["']/gi)) anchors.add(m[1]);
  }
  const r = { anchors, headings };
  anchorCache.set(rel, r);
  return r;
}

/** Every link target of one Markdown line: [{target, col}]. */
function linksIn(line) {
  const l = withoutCode(line);
  const out = [];
  // [text](target "title") and ![alt](target); the target may be <...>
  for (const m of l.matchAll(/!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]*(?:\([^\s)]*\)[^\s)]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g)) {
    out.push({ target: m[1].replace(/^<|>$/g, ''), col: m.index });
  }
  // [label]: target
  const def = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(l);
  if (def) out.push({ target: def[1].replace(/^<|>$/g, ''), col: 0 });
  // <a href="..."> and <img src="...">
  for (const m of l.matchAll(/<(?:a|img|source)\b[^>]*?\s(?:href|src)\s*=\s*["']([^"']*)["']/gi)) {
    out.push({ target: m[1], col: m.index });
  }
  return out;
}

function checkLink(file, lineNo, target) {
  if (target === '' || /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return;  // external
  let [p, anchor] = target.split('#', 2);
  try {
    p = decodeURIComponent(p.split('?')[0]);
    anchor = anchor === undefined ? undefined : decodeURIComponent(anchor);
  } catch {
    problem(file, lineNo, `malformed link ${target}`);
    return;
  }
  let dest = file;
  if (p !== '') {
    const abs = p.startsWith('/') ? path.join(ROOT, p) : path.resolve(ROOT, path.dirname(file), p);
    const rel = path.relative(ROOT, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      problem(file, lineNo, `link ${target} points outside the repository`);
      return;
    }
    if (!existsSync(abs)) {
      problem(file, lineNo, `link ${target}: ${rel} does not exist`);
      return;
    }
    dest = rel.split(path.sep).join('/');
    if (statSync(abs).isDirectory()) {
      if (anchor !== undefined) problem(file, lineNo, `link ${target}: an anchor on a directory`);
      return;
    }
  }
  if (anchor === undefined || anchor === '' || !dest.toLowerCase().endsWith('.md')) return;
  if (!anchorsOf(dest).anchors.has(anchor)) {
    problem(file, lineNo, `link ${target}: no heading #${anchor} in ${dest}`);
  }
}

function checkMarkdown(file) {
  const text = readText(file);
  if (text === null) return;
  proseLines(text).forEach((l, i) => {
    for (const { target } of linksIn(l)) checkLink(file, i + 1, target);
  });
}

// ---- citations -----------------------------------------------------------------

/** The section numbers docs/PROTOCOL.md has ("0", "1", "1.3", ...) and
 * whether it has an appendix. */
function protocolSections() {
  const numbers = new Set();
  let appendix = false;
  if (readText(PROTOCOL) === null) return { numbers, appendix, missing: true };
  for (const h of anchorsOf(PROTOCOL).headings) {
    const m = /^(\d+(?:\.\d+)*)\.?(?:\s|$)/.exec(h);
    if (m) numbers.add(m[1]);
    if (/^appendix\b/i.test(h)) appendix = true;
  }
  return { numbers, appendix, missing: false };
}

// What may stand between the words of a citation that a comment wraps:
// spaces, line breaks and the comment leaders of the next line.
const GAP = String.raw`(?:[ \t]*\r?\n[ \t]*(?:\/\/+|\*|#+|--|;+)?)?[ \t]*`;
const NUM = String.raw`\d+(?:\.\d+)*`;
const CITE = new RegExp(
  String.raw`PROTOCOL\.md` + GAP +
  String.raw`(?:(sections?|§)${GAP}(${NUM}(?:${GAP}(?:,|and|or|&)${GAP}${NUM})*)` +  // section N [and M]
  String.raw`|(${NUM})(?![\w.]*\w)` +                                                 // PROTOCOL.md N
  String.raw`|(appendix))`, 'gi');
const NAMED = /\b(PROTOCOL|ARCHITECTURE|OPERATIONS)\.md[ \t]+"([^"\n]+)"/g;
const README_NAMED = /\bREADME(?:\.md)?(?:'s)?[ \t]+"([^"\n]+)"/g;

const hasHeading = (doc, name) => {
  const want = name.toLowerCase();
  return anchorsOf(doc).headings.some((h) => h.toLowerCase().replace(/^\d+(\.\d+)*\.?\s+/, '').startsWith(want));
};

function checkCitations(file, text, sections) {
  for (const m of text.matchAll(CITE)) {
    const line = lineOf(text, m.index);
    if (sections.missing) {
      problem(file, line, `cites ${PROTOCOL}, which does not exist`);
      continue;
    }
    if (m[4]) {
      if (!sections.appendix) problem(file, line, `cites the appendix of ${PROTOCOL}, which has none`);
      continue;
    }
    const list = m[2] ?? m[3];
    for (const n of list.match(new RegExp(NUM, 'g'))) {
      if (!sections.numbers.has(n)) problem(file, line, `cites PROTOCOL.md section ${n}, which ${PROTOCOL} does not have`);
    }
  }
  for (const m of text.matchAll(NAMED)) {
    const doc = NAMED_DOCS[`${m[1]}.md`];
    const line = lineOf(text, m.index);
    if (readText(doc) === null) {
      problem(file, line, `cites ${m[1]}.md "${m[2]}", but ${doc} does not exist`);
      continue;
    }
    if (!hasHeading(doc, m[2])) problem(file, line, `cites ${m[1]}.md "${m[2]}", but ${doc} has no such heading`);
  }
  for (const m of text.matchAll(README_NAMED)) {
    if (!hasHeading('README.md', m[1])) {
      problem(file, lineOf(text, m.index), `cites the README heading "${m[1]}", which README.md does not have (see docs/)`);
    }
  }
  for (const bad of FORBIDDEN) {
    for (let i = text.indexOf(bad); i !== -1; i = text.indexOf(bad, i + 1)) {
      problem(file, lineOf(text, i), `mentions ${bad}: the documents live in docs/ now`);
    }
  }
}

// ---- main ------------------------------------------------------------------------

// Files named on the command line are checked too (new, not yet tracked).
const files = [...new Set([...trackedFiles(), ...process.argv.slice(2).map((f) =>
  path.relative(ROOT, path.resolve(f)).split(path.sep).join('/'))])];
const sections = protocolSections();
for (const f of files) {
  if (f.toLowerCase().endsWith('.md')) checkMarkdown(f);
  const text = readText(f);
  if (text !== null) checkCitations(f, text, sections);
}
for (const p of problems) console.log(p);
if (problems.length > 0) {
  console.log(`\n${problems.length} broken link(s) or citation(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`ok: links, anchors and PROTOCOL.md citations of ${files.length} files resolve`);
