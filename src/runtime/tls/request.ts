/**
 * The Web `Request` the mTLS server (server.ts) hands to its handler. It carries what a `Request`
 * cannot say itself: the verified peer ID (docs/spiffe.md §5; docs/architecture.md decision 2)
 * and the request target and method exactly as received (a `Request` normalises `.`/`..`
 * segments away and turns methods it does not know, such as Vault's `LIST`, into `GET`). These
 * live in private fields, so no client and no other code can forge them: `originOf` answers only
 * for requests this module created.
 *
 * Built lazily (the hot path of every SPIKE server, issue 12): the `Headers` object is made from
 * the received header list on the first read of `headers`, and the `AbortSignal` on the first
 * read of `signal` (a request that is never asked for either pays for neither). The signal
 * aborts when the client goes away or the request times out, also when it is first read after.
 */

/** Fields a `Request` has no room for; see the module comment. */
export interface Origin {
  /** The verified peer ID; `''` for a connection without a client certificate. */
  readonly peer: string;
  /** The request target as received (HTTP/2 `:path`, the HTTP/1.1 request line). */
  readonly rawPath: string;
  /** The method as received. */
  readonly method: string;
}

/** The abort state of one exchange, shared by its request and the server. */
export class Abort {
  controller: AbortController | undefined;
  reason: Error | undefined;

  /** Aborts the signal (now, or when it is first read). Idempotent. */
  abort(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }

  signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.controller = controller;
      if (this.reason !== undefined) controller.abort(this.reason);
    }
    return controller.signal;
  }
}

/** The transport's `Request`: see the module comment. */
class TransportRequest extends Request {
  readonly #origin: Origin;
  /** Flat `[name, value, …]` list as received; pseudo-headers (`:path`, …) are skipped. */
  readonly #raw: readonly string[];
  readonly #abort: Abort;
  #headers: Headers | undefined;

  constructor(url: string, init: RequestInit, origin: Origin, raw: string[], abort: Abort) {
    super(url, init);
    this.#origin = origin;
    this.#raw = raw;
    this.#abort = abort;
  }

  static originOf(request: Request): Origin | undefined {
    return #origin in request ? request.#origin : undefined;
  }

  static headersOf(request: TransportRequest): Headers {
    let headers = request.#headers;
    if (headers !== undefined) return headers;
    headers = new Headers();
    const raw = request.#raw;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.charCodeAt(0) === 58 /* : */) continue;
      try {
        headers.append(name, raw[i + 1]!);
      } catch {
        // A field the Fetch standard refuses (the HTTP parsers let almost none through) is left
        // out rather than failing the whole request later, inside the handler.
      }
    }
    request.#headers = headers;
    return headers;
  }

  static signalOf(request: TransportRequest): AbortSignal {
    return request.#abort.signal();
  }
}

// Accessors, not fields: `Request` declares `headers` and `signal` as properties, which a
// subclass may not redeclare as getters in TypeScript; the runtime takes them as any getter.
Object.defineProperties(TransportRequest.prototype, {
  headers: {
    get(this: TransportRequest) {
      return TransportRequest.headersOf(this);
    },
    configurable: true,
  },
  signal: {
    get(this: TransportRequest) {
      return TransportRequest.signalOf(this);
    },
    configurable: true,
  },
});

/**
 * Builds the handler's `Request`; `undefined` when it cannot be represented (a target that is
 * not origin-form, a method or body the Fetch standard refuses).
 */
export function createRequest(
  origin: Origin,
  raw: string[],
  abort: Abort,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
): Request | undefined {
  const path = origin.rawPath;
  if (typeof path !== 'string' || path.charCodeAt(0) !== 47 /* / */) return;
  try {
    // A fixed origin: the client's Host / :authority is not ours to trust, and routers that find
    // the path by character position (Elysia) would be misled by a short host. String
    // concatenation, not `new URL(path, base)`: a path like `//evil/x` stays a path.
    const init: RequestInit & { duplex?: 'half' } = {
      method: origin.method,
      body: body as BodyInit | null,
    };
    // Required by the Fetch standard for stream bodies.
    if (body instanceof ReadableStream) init.duplex = 'half';
    return new TransportRequest(`https://localhost${path}`, init, origin, raw, abort);
  } catch {
    return;
  }
}

/** The origin of a request this module created, else `undefined` (a `Request` made elsewhere). */
export const originOf = (request: Request): Origin | undefined =>
  TransportRequest.originOf(request);
