/**
 * A streaming parser of Server-Sent Events (the `text/event-stream` format of the WHATWG HTML
 * standard, "Server-sent events", part "Interpreting an event stream"), used by the SDK's
 * `watch` (src/sdk/watch.ts) to read `POST /v1/store/watch`.
 *
 * Bytes arrive in arbitrary chunks: a chunk may end inside a UTF-8 sequence, inside a line, or
 * between the CR and the LF of a CRLF. Lines end with CRLF, LF or CR; a leading BOM is dropped;
 * a line starting with `:` is a comment (the server's heartbeat); `field: value` loses one space
 * after the colon; `data` lines join with LF; an empty line dispatches the event (none when no
 * `data` came); `id` sets the last event ID (kept across events, ignored when it holds NUL);
 * `retry` takes digits only; unknown fields are ignored. An event cut off by the end of the
 * stream is discarded, as the standard says.
 *
 * Portable: no runtime APIs (TextDecoder is in every runtime).
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event` field, `message` when absent. */
  readonly type: string;
  /** The `data` lines joined with LF. */
  readonly data: string;
  /** The last event ID seen so far in this stream (`''` when none). */
  readonly id: string;
}

/** What the parser reports, as it reads. */
export interface SseHandlers {
  onEvent(event: SseEvent): void;
  /** A comment line, without its `:` (e.g. ` heartbeat`). */
  onComment?(text: string): void;
  /** A valid `retry` field: the reconnection time the server asks for, in milliseconds. */
  onRetry?(ms: number): void;
}

/** A parser for one stream: feed it chunks in order. */
export interface SseParser {
  /** Reads one chunk (bytes or already-decoded text). */
  push(chunk: Uint8Array | string): void;
  /** The stream ended: flushes the decoder; a partial event is discarded. */
  end(): void;
  /** The last event ID seen (`''` when none). */
  lastEventId(): string;
}

const LF = 10;
const CR = 13;

/** Creates a parser that calls `handlers` as events, comments and retry fields complete. */
export function createSseParser(handlers: SseHandlers): SseParser {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let started = false;
  // The previous chunk ended with CR: a LF at the start of the next one belongs to it.
  let pendingCr = false;
  let data = '';
  let hasData = false;
  let type = '';
  let lastId = '';

  const dispatch = () => {
    if (hasData) {
      handlers.onEvent({ type: type === '' ? 'message' : type, data, id: lastId });
    }
    data = '';
    hasData = false;
    type = '';
  };

  const line = (text: string) => {
    if (text === '') {
      dispatch();
      return;
    }
    if (text.charCodeAt(0) === 58 /* : */) {
      handlers.onComment?.(text.slice(1));
      return;
    }
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        type = value;
        return;
      case 'data':
        data = hasData ? `${data}\n${value}` : value;
        hasData = true;
        return;
      case 'id':
        if (!value.includes('\0')) lastId = value;
        return;
      case 'retry':
        if (/^[0-9]+$/.test(value)) handlers.onRetry?.(Number(value));
        return;
      default:
        return;
    }
  };

  const feed = (text: string) => {
    let input = text;
    if (!started && input.length > 0) {
      started = true;
      if (input.charCodeAt(0) === 0xfeff) input = input.slice(1);
    }
    if (pendingCr && input.length > 0) {
      pendingCr = false;
      if (input.charCodeAt(0) === LF) input = input.slice(1);
    }
    buffer += input;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      line(buffer.slice(start, i));
      if (c === CR) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === LF) i++;
        } else {
          pendingCr = true;
        }
      }
      start = i + 1;
    }
    buffer = buffer.slice(start);
  };

  return {
    push(chunk) {
      feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    },
    end() {
      feed(decoder.decode());
      buffer = '';
      data = '';
      hasData = false;
      type = '';
    },
    lastEventId: () => lastId,
  };
}
