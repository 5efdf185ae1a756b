/**
 * Watch streams (issue 14; docs/spike-api.md "Watch"): one Server-Sent Events stream per
 * `POST /v1/store/watch`, fed by the process's change feed (./feed.ts).
 *
 * A stream starts at a cursor (the request's `Last-Event-ID` or `after`, else the log's head)
 * and first catches up from the store, page by page; once it has reached the feed's head it
 * switches to the live batches the feed dispatches. Events arrive in `seq` order and each is
 * sent at most once, so a client that resumes after the last `id:` it saw loses nothing and sees
 * nothing twice. Every event is checked against the caller's read permission at the time it is
 * sent (`allowed`), so a caller never learns of a path it may not read.
 *
 * Bounds: at most `maxStreams` streams at once (then `server_busy`); a stream whose client does
 * not read (more than `MAX_BUFFERED_BYTES` waiting, or `MAX_PENDING` live events) is ended, and
 * the client resumes from its last id. A comment line `: heartbeat` goes to every stream every
 * `heartbeatMs` (one timer for all streams).
 */
import { SpikeError } from '../../core/errors.ts';
import type { ChangeEvent } from '../store/change-log.ts';
import type { ChangeFeed } from './feed.ts';

/** Bytes queued for a client before its stream is ended as too slow. */
const MAX_BUFFERED_BYTES = 1 << 20;
/** Live events waiting for their permission check before the stream is ended as too slow. */
const MAX_PENDING = 10_000;

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(': heartbeat\n\n');
const OPENED = encoder.encode(': watching\n\n');

/** The SSE frame of an event, encoded once however many streams send it. */
const frames = new WeakMap<ChangeEvent, Uint8Array>();

/** The wire form of an event (docs/spike-api.md "Watch"). */
export function eventData(event: ChangeEvent): string {
  return JSON.stringify({
    seq: event.seq,
    path: event.path,
    version: event.version,
    kind: event.kind,
    time: new Date(event.time).toISOString(),
  });
}

function frameOf(event: ChangeEvent): Uint8Array {
  let frame = frames.get(event);
  if (frame === undefined) {
    frame = encoder.encode(`id: ${event.seq}\nevent: change\ndata: ${eventData(event)}\n\n`);
    frames.set(event, frame);
  }
  return frame;
}

export interface WatchServiceOptions {
  readonly feed: ChangeFeed;
  /** `SPIKE_NEXUS_WATCH_HEARTBEAT` (ms). */
  readonly heartbeatMs: number;
  /** `SPIKE_NEXUS_WATCH_MAX_STREAMS`. */
  readonly maxStreams: number;
}

export interface WatchRequest {
  /** Send events after this number. */
  readonly after: number;
  /** May the caller see this event? Asked once per event, when it is about to be sent. */
  readonly allowed: (event: ChangeEvent) => boolean | Promise<boolean>;
  /** Ends the stream (the client went away). */
  readonly signal: AbortSignal;
}

/** The open streams of one process. */
export class WatchService {
  readonly #options: WatchServiceOptions;
  readonly #streams = new Set<Watcher>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(options: WatchServiceOptions) {
    this.#options = options;
    this.#timer = setInterval(() => {
      for (const stream of this.#streams) stream.send(HEARTBEAT);
    }, options.heartbeatMs);
    this.#timer.unref?.();
  }

  get feed(): ChangeFeed {
    return this.#options.feed;
  }

  /** Streams open right now. */
  get size(): number {
    return this.#streams.size;
  }

  /** Opens a stream; `server_busy` at the cap. */
  open(request: WatchRequest): ReadableStream<Uint8Array> {
    if (this.#streams.size >= this.#options.maxStreams) {
      throw new SpikeError('server_busy', 'too many watch streams');
    }
    let watcher: Watcher | undefined;
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          const w = new Watcher(this.#options.feed, request, controller, () => {
            this.#streams.delete(w);
          });
          watcher = w;
          this.#streams.add(w);
          w.start();
        },
        cancel: () => watcher?.close(),
      },
      { highWaterMark: MAX_BUFFERED_BYTES, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  close(): void {
    clearInterval(this.#timer);
    for (const stream of this.#streams) stream.close();
  }
}

/** One stream: catch-up from the store, then live batches from the feed. */
class Watcher {
  readonly #feed: ChangeFeed;
  readonly #request: WatchRequest;
  readonly #controller: ReadableStreamDefaultController<Uint8Array>;
  readonly #onClose: () => void;
  #cursor: number;
  #live = false;
  #pending: ChangeEvent[] = [];
  #wake: (() => void) | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(
    feed: ChangeFeed,
    request: WatchRequest,
    controller: ReadableStreamDefaultController<Uint8Array>,
    onClose: () => void,
  ) {
    this.#feed = feed;
    this.#request = request;
    this.#controller = controller;
    this.#onClose = onClose;
    this.#cursor = request.after;
  }

  start(): void {
    const { signal } = this.#request;
    if (signal.aborted) {
      this.close();
      return;
    }
    signal.addEventListener('abort', () => this.close(), { once: true });
    this.#unsubscribe = this.#feed.subscribe((events) => this.#onEvents(events));
    this.send(OPENED);
    void this.#run().catch(() => this.close());
  }

  /** Queues bytes for the client; ends a stream whose client stopped reading. */
  send(bytes: Uint8Array): void {
    if (this.#closed) return;
    if ((this.#controller.desiredSize ?? 0) < 0) {
      this.close();
      return;
    }
    this.#controller.enqueue(bytes);
  }

  #onEvents(events: readonly ChangeEvent[]): void {
    if (!this.#live) {
      this.#wake?.();
      return;
    }
    for (const event of events) this.#pending.push(event);
    if (this.#pending.length > MAX_PENDING) {
      this.close();
      return;
    }
    this.#wake?.();
  }

  async #deliver(event: ChangeEvent): Promise<void> {
    if (event.seq <= this.#cursor) return;
    if (await this.#request.allowed(event)) this.send(frameOf(event));
    this.#cursor = event.seq;
  }

  async #run(): Promise<void> {
    // Catch up from the store until the feed's head is reached; the switch to live batches is
    // synchronous with that check, so no batch falls between the two.
    while (!this.#closed) {
      const page = await this.#feed.read(this.#cursor);
      for (const event of page) await this.#deliver(event);
      if (this.#closed) return;
      if (this.#cursor >= this.#feed.head) {
        this.#live = true;
        break;
      }
      if (page.length === 0) await this.#sleep();
    }
    while (!this.#closed) {
      const batch = this.#pending;
      if (batch.length === 0) {
        await this.#sleep();
        continue;
      }
      this.#pending = [];
      for (const event of batch) await this.#deliver(event);
    }
  }

  /** Waits for the next batch (or the close). */
  #sleep(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    this.#onClose();
    this.#wake?.();
    try {
      this.#controller.close();
    } catch {
      // already closed or cancelled
    }
  }
}
