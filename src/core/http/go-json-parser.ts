/**
 * The JSON parser under ./go-json.ts: text to a tree of nodes, with Go's `encoding/json` syntax
 * rules (a byte-order mark is a syntax error, lone surrogate escapes become U+FFFD, nesting is
 * bounded). Mapping the tree onto a schema is ./go-json.ts's job.
 *
 * Every failure is `SpikeError('api_bad_request')`, never naming the input. Portable: no runtime
 * APIs.
 */
import { SpikeError } from '../errors.ts';

/** Go's decoder limit on nesting (encoding/json `maxNestingDepth`). */
const MAX_NESTING_DEPTH = 10_000;

export type Node =
  | { readonly t: 'object'; readonly entries: [string, Node][] }
  | { readonly t: 'array'; readonly items: Node[] }
  | { readonly t: 'string'; readonly v: string }
  | { readonly t: 'number'; readonly raw: string }
  | { readonly t: 'bool'; readonly v: boolean }
  | { readonly t: 'null' };

export function syntaxError(): SpikeError {
  return new SpikeError('api_bad_request', 'request body is not valid JSON');
}

export class Parser {
  readonly #s: string;
  #i = 0;
  #depth = 0;

  constructor(s: string) {
    this.#s = s;
  }

  parseDocument(): Node {
    this.#ws();
    const node = this.#value();
    this.#ws();
    if (this.#i !== this.#s.length) throw syntaxError();
    return node;
  }

  #ws(): void {
    const s = this.#s;
    while (this.#i < s.length) {
      const c = s.charCodeAt(this.#i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.#i++;
    }
  }

  #value(): Node {
    const c = this.#s[this.#i];
    switch (c) {
      case '{':
        return this.#object();
      case '[':
        return this.#array();
      case '"':
        return { t: 'string', v: this.#string() };
      case 't':
        return this.#literal('true', { t: 'bool', v: true });
      case 'f':
        return this.#literal('false', { t: 'bool', v: false });
      case 'n':
        return this.#literal('null', { t: 'null' });
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.#number();
        throw syntaxError();
    }
  }

  #literal(word: string, node: Node): Node {
    if (!this.#s.startsWith(word, this.#i)) throw syntaxError();
    this.#i += word.length;
    return node;
  }

  #enter(): void {
    if (++this.#depth > MAX_NESTING_DEPTH) throw syntaxError();
  }

  /**
   * The members of an object or array: from its opening bracket to `close`, comma-separated, each
   * read by `member` (which starts at the member's first character).
   */
  #members(close: '}' | ']', member: () => void): void {
    this.#enter();
    this.#i++; // the opening bracket
    this.#ws();
    if (this.#s[this.#i] === close) {
      this.#i++;
    } else {
      for (;;) {
        this.#ws();
        member();
        this.#ws();
        const c = this.#s[this.#i++];
        if (c === close) break;
        if (c !== ',') throw syntaxError();
      }
    }
    this.#depth--;
  }

  #object(): Node {
    const entries: [string, Node][] = [];
    this.#members('}', () => {
      if (this.#s[this.#i] !== '"') throw syntaxError();
      const key = this.#string();
      this.#ws();
      if (this.#s[this.#i] !== ':') throw syntaxError();
      this.#i++;
      this.#ws();
      entries.push([key, this.#value()]);
    });
    return { t: 'object', entries };
  }

  #array(): Node {
    const items: Node[] = [];
    this.#members(']', () => items.push(this.#value()));
    return { t: 'array', items };
  }

  #number(): Node {
    const s = this.#s;
    const start = this.#i;
    if (s[this.#i] === '-') this.#i++;
    if (s[this.#i] === '0') {
      this.#i++;
    } else if (this.#digits() === 0) {
      throw syntaxError();
    }
    if (s[this.#i] === '.') {
      this.#i++;
      if (this.#digits() === 0) throw syntaxError();
    }
    if (s[this.#i] === 'e' || s[this.#i] === 'E') {
      this.#i++;
      if (s[this.#i] === '+' || s[this.#i] === '-') this.#i++;
      if (this.#digits() === 0) throw syntaxError();
    }
    return { t: 'number', raw: s.slice(start, this.#i) };
  }

  #digits(): number {
    const start = this.#i;
    while (this.#i < this.#s.length) {
      const c = this.#s.charCodeAt(this.#i);
      if (c < 0x30 || c > 0x39) break;
      this.#i++;
    }
    return this.#i - start;
  }

  #string(): string {
    const s = this.#s;
    this.#i++; // opening quote
    let out = '';
    let runStart = this.#i;
    for (;;) {
      if (this.#i >= s.length) throw syntaxError();
      const c = s.charCodeAt(this.#i);
      if (c === 0x22) {
        out += s.slice(runStart, this.#i);
        this.#i++;
        return out;
      }
      if (c < 0x20) throw syntaxError();
      if (c !== 0x5c) {
        this.#i++;
        continue;
      }
      out += s.slice(runStart, this.#i);
      this.#i++;
      const e = s[this.#i++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u':
          out += this.#unicodeEscape();
          break;
        default:
          throw syntaxError();
      }
      runStart = this.#i;
    }
  }

  /** After `\u`: one code point; surrogate halves that do not pair become U+FFFD (as Go). */
  #unicodeEscape(): string {
    const hi = this.#hex4();
    if (hi < 0xd800 || hi > 0xdfff) return String.fromCharCode(hi);
    if (hi <= 0xdbff && this.#s.startsWith('\\u', this.#i)) {
      const save = this.#i;
      this.#i += 2;
      const lo = this.#hex4();
      if (lo >= 0xdc00 && lo <= 0xdfff) return String.fromCharCode(hi, lo);
      // Not a low surrogate: Go emits U+FFFD for the lone half and decodes the next escape anew.
      this.#i = save;
    }
    return '\uFFFD';
  }

  #hex4(): number {
    const h = this.#s.slice(this.#i, this.#i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw syntaxError();
    this.#i += 4;
    return Number.parseInt(h, 16);
  }
}
