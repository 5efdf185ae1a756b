/**
 * The SDK's watch iterator (src/sdk/watch.ts) against hand-written event streams served by a
 * real loopback HTTP server (Bun.serve), read through `fetch` as the edge client does: resume
 * with `Last-Event-ID` after the server ends a stream, no duplicates when a resumed stream
 * repeats events, one `reset` on `410 watch_cursor_expired`, reconnection after a 503, a fatal
 * 401, an idle stream replaced, and abort ending the iteration cleanly with the connection
 * closed. The end-to-end test against Nexus itself is tests/watch-delivery.test.ts.
 */
import { afterEach, describe, expect, it } from 'bun:test';
import { fromFetchResponse, type WatchEvent, watchChanges } from '../src/sdk/watch.ts';

interface Seen {
  readonly lastEventId: string | null;
  readonly body: unknown;
}

type Answer = (seen: Seen, n: number) => Response;

let server: ReturnType<typeof Bun.serve> | undefined;
let openStreams = 0;

afterEach(() => {
  server?.stop(true);
  server = undefined;
});

const event = (seq: number, path = 'app/db', kind = 'put') =>
  `id: ${seq}\nevent: change\ndata: ${JSON.stringify({ seq, path, version: seq, kind, time: '2026-12-02T16:40:00.000Z' })}\n\n`;

/** An SSE answer that sends `text` and then ends, or stays open when `hold`. */
function sse(text: string, hold = false): Response {
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      openStreams++;
      controller.enqueue(new TextEncoder().encode(text));
      if (!hold) {
        openStreams--;
        controller.close();
      } else {
        timer = setInterval(() => {}, 1000);
      }
    },
    cancel() {
      openStreams--;
      clearInterval(timer);
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
}

/** Serves answer(n) for the n-th request (0-based); records what each request carried. */
function serve(answer: Answer): { seen: Seen[]; open: Parameters<typeof watchChanges>[0] } {
  const seen: Seen[] = [];
  server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const s = { lastEventId: request.headers.get('last-event-id'), body: await request.json() };
      seen.push(s);
      return answer(s, seen.length - 1);
    },
  });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    seen,
    open: async (path, body, headers, signal) =>
      fromFetchResponse(await fetch(`${url}${path}`, { method: 'POST', headers, body, signal })),
  };
}

const fast = { reconnect: { initialMs: 5, maxMs: 20 } };

async function take(iter: AsyncGenerator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const e of iter) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

describe('watch iterator', () => {
  it('resumes with Last-Event-ID after each stream end and skips repeated events', async () => {
    const { seen, open } = serve((_, n) => {
      if (n === 0) return sse(event(1) + event(2));
      // The resumed stream repeats seq 2 (at-least-once server): the iterator drops it.
      if (n === 1) return sse(`${event(2)}${event(3)}: heartbeat\n\n`);
      return sse(event(4) + event(5), true);
    });
    const events = await take(watchChanges(open, 'app/', fast), 5);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events[0]).toEqual({
      seq: 1,
      path: 'app/db',
      version: 1,
      kind: 'put',
      time: new Date('2026-12-02T16:40:00.000Z'),
    });
    expect(seen.map((s) => s.lastEventId)).toEqual([null, '2', '3']);
    expect(seen.map((s) => s.body)).toEqual([
      { prefix: 'app/' },
      { prefix: 'app/', after: 2 },
      { prefix: 'app/', after: 3 },
    ]);
    // `break` closed the held stream.
    await Bun.sleep(50);
    expect(openStreams).toBe(0);
  });

  it('starts after `after` when given', async () => {
    const { seen, open } = serve(() => sse(event(8), true));
    const [first] = await take(watchChanges(open, '', { ...fast, after: 7 }), 1);
    expect(first?.seq).toBe(8);
    expect(seen[0]).toEqual({ lastEventId: '7', body: { prefix: '', after: 7 } });
  });

  it('yields one reset on 410 and continues from the head without a cursor', async () => {
    const { seen, open } = serve((_, n) => {
      if (n === 0) return Response.json({ err: 'watch_cursor_expired' }, { status: 410 });
      return sse(event(100), true);
    });
    const events = await take(watchChanges(open, 'app/', { ...fast, after: 3 }), 2);
    expect(events[0]?.kind).toBe('reset');
    expect(events[0]?.seq).toBe(0);
    expect(events[0]?.path).toBe('app/');
    expect(events[1]?.seq).toBe(100);
    expect(seen.map((s) => s.lastEventId)).toEqual(['3', null]);
  });

  it('retries a 503 and ends with the error on 401', async () => {
    const retried = serve((_, n) =>
      n < 2 ? Response.json({ err: 'state_not_ready' }, { status: 503 }) : sse(event(1), true),
    );
    const reconnects: number[] = [];
    const events = await take(
      watchChanges(retried.open, '', { ...fast, onReconnect: (a) => reconnects.push(a) }),
      1,
    );
    expect(events.map((e) => e.seq)).toEqual([1]);
    expect(reconnects).toEqual([1, 2]);
    server?.stop(true);

    const denied = serve(() => Response.json({ err: 'access_unauthorized' }, { status: 401 }));
    let caught: unknown;
    try {
      await take(watchChanges(denied.open, '', fast), 1);
    } catch (error) {
      caught = error;
    }
    expect((caught as { code?: string }).code).toBe('access_unauthorized');
    expect((caught as { status?: number }).status).toBe(401);
    expect(denied.seen.length).toBe(1);
  });

  it('replaces a stream that stays silent longer than idleTimeoutMs', async () => {
    const { seen, open } = serve((_, n) =>
      n === 0 ? sse(': open\n\n', true) : sse(event(1), true),
    );
    const events = await take(watchChanges(open, '', { ...fast, idleTimeoutMs: 200 }), 1);
    expect(events.map((e) => e.seq)).toEqual([1]);
    expect(seen.length).toBe(2);
  });

  it('abort ends the iteration cleanly (no throw) and closes the stream', async () => {
    const { open } = serve(() => sse(event(1), true));
    const controller = new AbortController();
    const got: number[] = [];
    const done = (async () => {
      for await (const e of watchChanges(open, '', { ...fast, signal: controller.signal })) {
        got.push(e.seq);
      }
      return 'ended';
    })();
    while (got.length === 0) await Bun.sleep(10);
    expect(openStreams).toBe(1);
    controller.abort();
    expect(await done).toBe('ended');
    await Bun.sleep(50);
    expect(openStreams).toBe(0);
    // Already aborted: nothing is requested at all.
    const none = await take(watchChanges(open, '', { signal: controller.signal }), 1);
    expect(none).toEqual([]);
  });

  it('a malformed event ends the iteration with api_internal_error', async () => {
    const { open } = serve(() => sse('id: 1\nevent: change\ndata: {"seq":"x"}\n\n', true));
    await expect(take(watchChanges(open, '', fast), 1)).rejects.toMatchObject({
      code: 'api_internal_error',
    });
  });
});
