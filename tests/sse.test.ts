/**
 * The Server-Sent Events parser (src/core/sse.ts) against hand-written streams: the watch stream
 * of Nexus as the contract spells it, cut into chunks at every position (inside CRLF, inside a
 * multi-byte character), CR/LF/CRLF line ends, comments, multi-line data, `id` kept across
 * events, `retry`, BOM, and the partial event at the end that must be dropped.
 */
import { describe, expect, it } from 'bun:test';
import { createSseParser, type SseEvent } from '../src/core/sse.ts';

interface Seen {
  events: SseEvent[];
  comments: string[];
  retries: number[];
}

function parse(chunks: readonly (string | Uint8Array)[], end = true): Seen {
  const seen: Seen = { events: [], comments: [], retries: [] };
  const parser = createSseParser({
    onEvent: (e) => seen.events.push(e),
    onComment: (c) => seen.comments.push(c),
    onRetry: (ms) => seen.retries.push(ms),
  });
  for (const chunk of chunks) parser.push(chunk);
  if (end) parser.end();
  return seen;
}

const WATCH_STREAM =
  ': heartbeat\n' +
  'id: 43\nevent: change\n' +
  'data: {"seq":43,"path":"secrets/app/db","version":3,"kind":"put","time":"2026-12-02T16:40:00.000Z"}\n\n' +
  ': heartbeat\n\n' +
  'id: 44\r\nevent: change\r\ndata: {"seq":44,"path":"secrets/app/é","version":1,"kind":"delete","time":"2026-12-02T16:40:01.000Z"}\r\n\r\n';

const EXPECTED: SseEvent[] = [
  {
    type: 'change',
    id: '43',
    data: '{"seq":43,"path":"secrets/app/db","version":3,"kind":"put","time":"2026-12-02T16:40:00.000Z"}',
  },
  {
    type: 'change',
    id: '44',
    data: '{"seq":44,"path":"secrets/app/é","version":1,"kind":"delete","time":"2026-12-02T16:40:01.000Z"}',
  },
];

describe('SSE parser', () => {
  it('reads the watch stream of the contract in one piece', () => {
    const seen = parse([WATCH_STREAM]);
    expect(seen.events).toEqual(EXPECTED);
    expect(seen.comments).toEqual([' heartbeat', ' heartbeat']);
  });

  it('gives the same events for every split into two byte chunks (CRLF and UTF-8 cut)', () => {
    const bytes = new TextEncoder().encode(WATCH_STREAM);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const seen = parse([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(seen.events, `cut at ${cut}`).toEqual(EXPECTED);
      expect(seen.comments.length).toBe(2);
    }
  });

  it('gives the same events fed one byte at a time', () => {
    const bytes = new TextEncoder().encode(WATCH_STREAM);
    const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
    expect(parse(chunks).events).toEqual(EXPECTED);
  });

  it('a lone CR ends a line, also at the end of a chunk', () => {
    const seen = parse(['data: a\r', 'data: b\r\r', 'data: c\r\n\r\n']);
    expect(seen.events.map((e) => e.data)).toEqual(['a\nb', 'c']);
  });

  it('joins multi-line data with LF and keeps empty data lines', () => {
    const seen = parse(['data: one\ndata:two\ndata\ndata:  three\n\n']);
    expect(seen.events).toEqual([{ type: 'message', data: 'one\ntwo\n\n three', id: '' }]);
  });

  it('an empty line without data dispatches nothing and resets the event type', () => {
    const seen = parse(['event: change\n\n', 'data: x\n\n']);
    expect(seen.events).toEqual([{ type: 'message', data: 'x', id: '' }]);
  });

  it('keeps the last id across events; an id with NUL is ignored; an empty id clears it', () => {
    const seen = parse([
      'id: 7\ndata: a\n\n',
      'data: b\n\n',
      'id: 8\0\ndata: c\n\n',
      'id\ndata: d\n\n',
    ]);
    expect(seen.events.map((e) => [e.data, e.id])).toEqual([
      ['a', '7'],
      ['b', '7'],
      ['c', '7'],
      ['d', ''],
    ]);
  });

  it('reads retry (digits only) and ignores unknown fields', () => {
    const seen = parse(['retry: 2500\nretry: 1s\nfoo: bar\ndata: x\n\n']);
    expect(seen.retries).toEqual([2500]);
    expect(seen.events).toEqual([{ type: 'message', data: 'x', id: '' }]);
  });

  it('drops a leading BOM, once', () => {
    const seen = parse(['\uFEFFdata: a\n\n']);
    expect(seen.events.map((e) => e.data)).toEqual(['a']);
    const second = parse(['\uFEFF', 'data: a\n\n']);
    expect(second.events.map((e) => e.data)).toEqual(['a']);
  });

  it('discards an event cut off by the end of the stream', () => {
    const seen = parse(['id: 1\ndata: whole\n\n', 'id: 2\ndata: cut']);
    expect(seen.events.map((e) => e.data)).toEqual(['whole']);
    const noBlank = parse(['data: no blank line\n']);
    expect(noBlank.events).toEqual([]);
  });

  it('reports the last event id', () => {
    const parser = createSseParser({ onEvent: () => {} });
    parser.push('id: 12\ndata: x\n\nid: 13\n');
    expect(parser.lastEventId()).toBe('13');
  });
});
