/**
 * Every citation of a document resolves (docs/style.md "Habits"; docs/README.md "Citing these
 * documents"). The convention:
 *
 * - a document is named by its path from the repository root (`docs/spike-api.md`), or, inside
 *   Markdown, relative to the citing file (`spiffe.md` from docs/); the file must exist;
 * - `§N` / `§N.M` (also `§4–5`) is a numbered heading of the document it follows; a list
 *   (`docs/spike-api.md §3, §4 and §7`, also `§1.2; §8 rows 39–40`) stays with that document;
 *   any other bare `§N` refers to the file's main document: the first document with numbered
 *   sections named in it, normally in its header comment. Every other document is named at each
 *   use (architecture.md and style.md have no numbered sections and are cited by item). Inside
 *   docs/, a bare `§N` is a section of the citing file;
 * - after a document or section, `rule|row|decision|invariant|step N` (lists and ranges allowed)
 *   is a numbered table row or list item inside that section (without a section: inside the
 *   heading named after the kind, e.g. "Decisions", "Invariants", "Rules");
 * - after a document or section, a quoted name (`§9 "Keeper routes"`) must occur in that section;
 * - documents of other projects (the SPIFFE standards, gRPC's docs) and sections of RFCs or of
 *   those documents are not checked: {@link EXTERNAL_DOCS} lists them.
 *
 * The scan covers the whole text of source files (comments, and strings such as help text) in
 * src/, cli/, schema/, tests/ and .ci/, plus the Markdown at the top level and in docs/.
 */
import { describe, expect, it } from 'bun:test';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const root = join(import.meta.dir, '..');

/** Documents of other projects, cited by their own names; never expected in this repository. */
const EXTERNAL_DOCS = new Set([
  'doc/PROTOCOL-HTTP2.md',
  'doc/statuscodes.md',
  'PROTOCOL-HTTP2.md',
  'statuscodes.md',
  'SPIFFE-ID.md',
  'X509-SVID.md',
  'JWT-SVID.md',
  'SPIFFE_Workload_API.md',
  'SPIFFE_Workload_Endpoint.md',
  'SPIFFE_Trust_Domain_and_Bundle.md',
]);

/** A `§` right after one of these belongs to someone else's document (`RFC 5280 §4.2`). */
const EXTERNAL_SECTION_OWNER =
  /(?:\bRFC\s?\d+|\bWorkload API|\bgRPC|PROTOCOL-HTTP2\.md|statuscodes\.md|SPIFFE[\w-]*\.md|-SVID\.md)[`'"]?\s*[,(]?\s*$/;

const SOURCE_DIRS = ['src', 'cli', 'schema', 'tests', '.ci'];
const SOURCE_EXT = /\.(?:[cm]?[jt]s|tsx|go|sql|sh|ya?ml)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'meta']);
const THIS_FILE = 'tests/citations.test.ts';
const MISSING = '\0missing';

interface Section {
  number: string;
  title: string;
  /** The heading and its body, subsections included. */
  text: string;
}

interface ParsedDoc {
  text: string;
  sections: Map<string, Section>;
  /** Level-2/3 headings by title, for numbered items cited without a section. */
  headings: Section[];
}

export interface CitationFailure {
  file: string;
  line: number;
  missing: string;
}

const docCache = new Map<string, ParsedDoc>();

function parseDoc(path: string): ParsedDoc {
  const cached = docCache.get(path);
  if (cached) return cached;
  const text = readFileSync(join(root, path), 'utf8');
  const lines = text.split('\n');
  const heads: { level: number; number: string; title: string; line: number }[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^(#{1,6})\s+(?:(\d+(?:\.\d+)*)\.?\s+)?(.*)$/.exec(line);
    if (m) heads.push({ level: m[1]!.length, number: m[2] ?? '', title: m[3]!.trim(), line: i });
  }
  const sections = new Map<string, Section>();
  const headings: Section[] = [];
  for (const [k, h] of heads.entries()) {
    let end = lines.length;
    for (const next of heads.slice(k + 1)) {
      if (next.level <= h.level) {
        end = next.line;
        break;
      }
    }
    const section = { number: h.number, title: h.title, text: lines.slice(h.line, end).join('\n') };
    if (h.number) sections.set(h.number, section);
    headings.push(section);
  }
  const doc = { text, sections, headings };
  docCache.set(path, doc);
  return doc;
}

/** Lower case, Markdown emphasis and code marks dropped, whitespace collapsed. */
function flatten(s: string): string {
  return s.replace(/[*`_]/g, '').replace(/\s+/g, ' ').toLowerCase().trim();
}

/** Numbers of the table rows (`| 12 |`) and list items (`12. `) in `text`. */
function numberedItems(text: string): Set<number> {
  const found = new Set<number>();
  for (const m of text.matchAll(/^\s*(?:\|\s*(\d+)\s*\||(\d+)\.\s)/gm)) {
    found.add(Number(m[1] ?? m[2]));
  }
  return found;
}

/** `1–18, 21 and 27` → [1..18, 21, 27]. */
function expandList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(/\s*(?:,|\band\b)\s*/)) {
    const m = /^(\d+)(?:\s*[–-]\s*(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = Number(m[2] ?? m[1]);
    for (let n = from; n <= to && n - from < 100; n++) out.push(n);
  }
  return out;
}

const KIND_HEADING: Record<string, RegExp> = {
  decision: /decision/i,
  invariant: /invariant/i,
  rule: /^rules\b/i,
};

/** Resolves a cited document path for `file`, or undefined when it does not exist. */
function resolveDoc(file: string, cited: string): string | undefined {
  const candidates = [normalize(join(dirname(file), cited)), normalize(cited)];
  for (const c of candidates) {
    if (c.startsWith('..')) continue;
    if (existsSync(join(root, c)) && statSync(join(root, c)).isFile()) return c;
  }
  return undefined;
}

const TOKEN =
  /(?<![\w/.$}-])((?:\.{1,2}\/)*(?:[\w.-]+\/)*[\w.-]+\.md)(?![\w/-])|§\s?(\d+(?:\.\d+)*)(?:\s*[–-]\s*(\d+(?:\.\d+)*))?/g;
const TAIL_QUOTE = /^\s*[,:;]?\s*"([^"\n]{1,120})"/;
const TAIL_ITEMS =
  /^\s*[,:;]?\s*(rules?|rows?|decisions?|invariants?|steps?)\s+(\d+(?:\s*[–-]\s*\d+)?(?:\s*(?:,|\band\b)\s*\d+(?:\s*[–-]\s*\d+)?)*)/;

/**
 * The citation failures of one file's text. Lines are joined after their comment leaders are
 * stripped, so a citation may wrap (`§3 rule` / ` * 14`).
 */
export function scanCitations(file: string, source: string): CitationFailure[] {
  const failures: CitationFailure[] = [];
  const lines = source.split('\n');
  const starts: number[] = [];
  let stream = '';
  for (const line of lines) {
    starts.push(stream.length);
    stream += `${line.replace(/^\s*(?:\/\/+|\/\*+|\*+(?!\/)|#+|--)\s?/, '')} `;
  }
  const lineAt = (offset: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const fail = (offset: number, missing: string) =>
    failures.push({ file, line: lineAt(offset), missing });

  // A bare § refers to the first named document that has numbered sections (the file's main
  // document); inside docs/, to the citing document itself. A § right after a document name, or continuing a list of sections
  // (`§3, §4 and §7`), belongs to that document.
  const self =
    file.startsWith('docs/') && file.endsWith('.md') && parseDoc(file).sections.size > 0
      ? file
      : undefined;
  let current: string | undefined = self;
  let currentName = self ? (file.split('/').at(-1) ?? file) : '';
  let adjacent: { doc: string; name: string; end: number } | undefined;
  for (const m of stream.matchAll(TOKEN)) {
    const at = m.index;
    let doc: string | undefined;
    let section: Section | undefined;
    let citedName: string;
    let tailFrom = at + m[0].length;
    if (m[1] !== undefined) {
      const cited = m[1];
      const base = cited.split('/').at(-1)!;
      const resolved = resolveDoc(file, cited);
      if (!resolved) {
        if (!EXTERNAL_DOCS.has(cited) && !EXTERNAL_DOCS.has(base)) {
          fail(at, `document ${cited} does not exist`);
          adjacent = { doc: MISSING, name: cited, end: tailFrom };
          if (!current) currentName = MISSING; // its bare § are not reported a second time
        }
        continue;
      }
      if (!resolved.endsWith('.md')) continue;
      doc = resolved;
      citedName = cited;
      const hasSections = parseDoc(resolved).sections.size > 0;
      if (hasSections && !current) {
        current = resolved;
        currentName = cited;
      }
      adjacent = { doc: resolved, name: cited, end: tailFrom };
      // `docs/spike-api.md §4`: the section token that follows carries the tail.
      if (/^[\s,)\]]*§/.test(stream.slice(tailFrom, tailFrom + 6))) continue;
    } else {
      if (EXTERNAL_SECTION_OWNER.test(stream.slice(Math.max(0, at - 40), at))) continue;
      const between = adjacent ? stream.slice(adjacent.end, at) : undefined;
      if (adjacent && between !== undefined && /^[\s,;)\]]*(?:and\s+|or\s+)?$/.test(between)) {
        doc = adjacent.doc;
        citedName = adjacent.name;
      } else {
        doc = current;
        citedName = currentName;
      }
      if (doc === MISSING || (!doc && currentName === MISSING)) continue;
      if (!doc) {
        fail(at, `§${m[2]} names no document (none cited earlier in the file)`);
        continue;
      }
      const parsed = parseDoc(doc);
      for (const n of [m[2]!, m[3]].filter((x): x is string => x !== undefined)) {
        section = parsed.sections.get(n);
        if (!section) fail(at, `${citedName} has no §${n}`);
      }
      if (m[3] !== undefined) section = undefined; // a range: tails are not checked against it
      adjacent = { doc, name: citedName, end: tailFrom };
      if (!parsed.sections.get(m[2]!)) continue;
    }

    // The tail: quoted names and numbered items, in any order.
    const parsed = parseDoc(doc);
    const where = section ? `${citedName} §${section.number}` : citedName;
    let rest = stream.slice(tailFrom, tailFrom + 400);
    for (;;) {
      const q = TAIL_QUOTE.exec(rest);
      if (q) {
        const scope = section ? section.text : parsed.text;
        if (!flatten(scope).includes(flatten(q[1]!))) fail(at, `${where} has no "${q[1]}"`);
        rest = rest.slice(q[0].length);
        tailFrom += q[0].length;
        continue;
      }
      const items = TAIL_ITEMS.exec(rest);
      if (items) {
        const kind = items[1]!.replace(/s$/, '');
        let scope = section?.text;
        if (!scope) {
          const heading = KIND_HEADING[kind];
          scope =
            (heading && parsed.headings.find((h) => heading.test(h.title))?.text) || parsed.text;
        }
        const have = numberedItems(scope);
        for (const n of expandList(items[2]!)) {
          if (!have.has(n)) fail(at, `${where} has no ${kind} ${n}`);
        }
        rest = rest.slice(items[0].length);
        tailFrom += items[0].length;
        continue;
      }
      break;
    }
    if (adjacent) adjacent.end = tailFrom;
  }
  return failures;
}

function walk(dir: string, out: string[]): void {
  if (!existsSync(join(root, dir))) return;
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) walk(path, out);
    } else if (SOURCE_EXT.test(entry.name) || dir.startsWith('.ci') || entry.name.endsWith('.md')) {
      out.push(path);
    }
  }
}

/** Every file the convention covers, as paths from the repository root. */
function citingFiles(): string[] {
  const files: string[] = [];
  for (const dir of SOURCE_DIRS) walk(dir, files);
  walk('docs', files);
  for (const entry of readdirSync(root)) {
    if (entry.endsWith('.md') || entry === 'compose.yaml') files.push(entry);
  }
  return files.filter((f) => relative('.', f) !== THIS_FILE).sort();
}

describe('citations of documents', () => {
  it('every cited document, section, numbered item and quoted name exists', () => {
    const failures: string[] = [];
    for (const file of citingFiles()) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const f of scanCitations(file, text))
        failures.push(`${f.file}:${f.line} → ${f.missing}`);
    }
    expect(failures).toEqual([]);
  });

  it('the markers [U] and [Ours] are defined in docs/spike-api.md', () => {
    const api = readFileSync(join(root, 'docs/spike-api.md'), 'utf8');
    expect(api).toMatch(/\*\*\[U\]\*\* — upstream behaviour/);
    expect(api).toMatch(/\*\*\[Ours\]\*\* — a deliberate change/);
  });
});

describe('the citation scanner', () => {
  const scan = (text: string) => scanCitations('src/x.ts', text).map((f) => f.missing);

  it('accepts canonical citations', () => {
    expect(
      scan(
        [
          '/** Keeper client (docs/spike-api.md §9 "Keeper routes", §12 "Limits"). */',
          '// docs/spiffe.md §3 rule',
          '// 14, §8 rows 1–18, 21 and 27; §1.4, §1.6 "Socket errors"',
          '// docs/architecture.md decision 2, invariant 1; docs/style.md rule 8',
          '// docs/architecture.md "The flows that matter"; RFC 5280 §4.2; gRPC doc/statuscodes.md',
        ].join('\n'),
      ),
    ).toEqual([]);
  });

  it('resolves a bare § to the main document, a list to the document it started from', () => {
    expect(
      scan(
        [
          '/** Nexus (docs/spike-api.md §3; docs/spiffe.md §1.2, §1.6; §8 rows 40–46). */',
          '// a bare §13 belongs to the main document, although another was named last',
          '// docs/vault-kv2.md §4.5, then §12 (the main document again)',
        ].join('\n'),
      ),
    ).toEqual([]);
    expect(scan('// docs/spike-api.md §1; docs/spiffe.md §3 rule 14. Later: §8 row 12')).toEqual([
      'docs/spike-api.md §8 has no row 12',
    ]);
    expect(scan('// docs/spiffe.md §2, docs/vault-kv2.md §1 and §4.5')).toEqual([]);
    expect(scan('// no document named, yet §6')).toEqual([
      '§6 names no document (none cited earlier in the file)',
    ]);
  });

  it('reads a bare § inside docs/ as a section of the citing document', () => {
    const inDocs = (text: string) => scanCitations('docs/vault-kv2.md', text).map((f) => f.missing);
    expect(inDocs('[spike-api.md](spike-api.md) §12, then our own §4.5 and §7')).toEqual([]);
    expect(inDocs('spiffe.md §8; our own §8')).toEqual(['vault-kv2.md has no §8']);
  });

  it('reports missing documents, sections, numbered items and names', () => {
    expect(
      scan(
        [
          '// spec/spike-api.md §4; ARCHITECTURE.md decision 2; ../shared/STYLE.md',
          '// docs/spike-api.md §14 and §9 "No such part"',
          '// docs/spiffe.md §8 row 47; docs/architecture.md decision 12',
        ].join('\n'),
      ),
    ).toEqual([
      'document spec/spike-api.md does not exist',
      'document ARCHITECTURE.md does not exist',
      'document ../shared/STYLE.md does not exist',
      'docs/spike-api.md has no §14',
      'docs/spike-api.md §9 has no "No such part"',
      'docs/spiffe.md §8 has no row 47',
      'docs/architecture.md has no decision 12',
    ]);
  });

  it('reports the line of a failure', () => {
    const [failure] = scanCitations('src/x.ts', 'a\n/**\n * see docs/nope.md\n */');
    expect(failure).toEqual({
      file: 'src/x.ts',
      line: 3,
      missing: 'document docs/nope.md does not exist',
    });
  });
});
