/**
 * Workload API test double (docs/spiffe.md §7), in two modes.
 *
 * 1. `startWorkloadDouble()`: an independent gRPC implementation, @grpc/grpc-js + proto-loader with
 *    `tests/support/proto/workload.proto`, on a temporary unix socket. It behaves like SPIRE, not
 *    like go-spiffe's fake: the security header must be exactly one `workload.spiffe.io: true`
 *    (else InvalidArgument `security header missing from request`), and a call with no current
 *    response gets a Trailers-Only PermissionDenied `no identity issued`. Per server-streaming RPC
 *    it keeps a current response: every new stream gets it at once, `push*` sends a new one to
 *    every open stream. Scripts for the next streams: fail with a status (Trailers-Only or after
 *    headers), delay, stall. Messages can be raw bytes (malformed protobuf) or oversized; grpc-js
 *    frames them, so the client sees genuine gRPC framing around them.
 *
 * 2. `startRawH2cServer(handler)`: a bare `node:http2` h2c server for what grpc-js cannot produce
 *    (a `0xFFFFFFFF` length prefix, the compressed flag, a bad `:status` or content-type, trailers
 *    without `grpc-status`, RST_STREAM or a closed socket mid-message, GOAWAY, split DATA frames).
 *    The handler scripts each stream with the helpers below.
 *
 * Both count what happened (streams per method, cancellations; raw mode also connections and each
 * stream's RST code) so tests can assert reconnection and backoff.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proto', 'workload.proto');

/** One SVID of an `X509SVIDResponse`, as the double sends it. */
export interface X509SvidReplyEntry {
  spiffeId: string;
  x509Svid: Uint8Array;
  x509SvidKey: Uint8Array;
  bundle: Uint8Array;
  hint?: string;
}

/** An `X509SVIDResponse`. */
export interface X509SvidReply {
  svids: X509SvidReplyEntry[];
  crl?: Uint8Array[];
  federatedBundles?: Record<string, Uint8Array>;
}

/** Raw protobuf bytes sent as the message body (grpc-js still frames them). */
interface RawReply {
  raw: Uint8Array;
}

/** What a stream answers first. */
interface StreamScript {
  /** End at once with this status; Trailers-Only unless `afterHeaders`. */
  status?: { code: number; message?: string; afterHeaders?: boolean };
  /** Never answer (the stream stays open). */
  stall?: boolean;
  /** Wait this long before the first message. */
  delayMs?: number;
}

/** Server-streaming RPCs the double serves with a "current response". */
type StreamMethod = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles';

export interface WorkloadDouble {
  /** `unix:///tmp/.../api.sock`. */
  readonly address: string;
  readonly socketPath: string;
  /** Streams (calls) started, per method, counted before the header check. */
  readonly started: Record<string, number>;
  /** Streams the client cancelled (RST_STREAM CANCEL), per method. */
  readonly cancelled: Record<string, number>;
  /** Header check: `spire` (exactly one `true`) or `off`. */
  headerCheck: 'spire' | 'off';
  /** Open streams of `method` right now. */
  open(method?: StreamMethod): number;
  /** Sets the current X509SVIDResponse (`undefined`: PermissionDenied) and pushes it to open streams. */
  pushX509(reply: X509SvidReply | RawReply | undefined, options?: { push?: boolean }): void;
  /** Sets the current X509BundlesResponse (trust-domain ID → DER roots) and pushes it. */
  pushX509Bundles(bundles: Record<string, Uint8Array> | undefined): void;
  /** Sets the current JWTBundlesResponse (trust-domain ID → JWKS JSON) and pushes it. */
  pushJwtBundles(bundles: Record<string, Uint8Array> | undefined): void;
  /** Answers FetchJWTSVID; `undefined` → PermissionDenied. */
  jwtSvids:
    | ((
        audience: string[],
        spiffeId: string,
      ) => { spiffeId: string; svid: string; hint?: string }[])
    | undefined;
  /** Ends every open stream of `method` with `status` (default OK). */
  endStreams(method?: StreamMethod, status?: { code: number; message?: string }): void;
  /** Queues scripts for the next streams of `method`, one per stream. */
  script(method: StreamMethod, ...scripts: StreamScript[]): void;
  /** Resolves when `started[method]` reaches `count` (rejects after `timeoutMs`). */
  waitForStarted(method: StreamMethod, count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A fresh private directory under the system temp dir for sockets. */
export function tempSocketDir(prefix = 'spike-wl-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

let loaded: grpc.ServiceDefinition | undefined;
function serviceDefinition(): grpc.ServiceDefinition {
  if (loaded === undefined) {
    const definition = protoLoader.loadSync(PROTO, { keepCase: false, defaults: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      SpiffeWorkloadAPI: { service: grpc.ServiceDefinition };
    };
    // Let a `RawReply` through the serializer untouched (malformed protobuf, row 39).
    loaded = Object.fromEntries(
      Object.entries(pkg.SpiffeWorkloadAPI.service).map(([name, method]) => {
        const serialize = method.responseSerialize;
        return [
          name,
          {
            ...method,
            responseSerialize: (value: unknown) =>
              isRaw(value) ? Buffer.from(value.raw) : serialize(value),
          },
        ];
      }),
    ) as grpc.ServiceDefinition;
  }
  return loaded;
}

function isRaw(value: unknown): value is RawReply {
  return typeof value === 'object' && value !== null && 'raw' in value;
}

function toWire(reply: X509SvidReply | RawReply): unknown {
  if (isRaw(reply)) return reply;
  return {
    svids: reply.svids.map((s) => ({
      spiffeId: s.spiffeId,
      x509Svid: Buffer.from(s.x509Svid),
      x509SvidKey: Buffer.from(s.x509SvidKey),
      bundle: Buffer.from(s.bundle),
      hint: s.hint ?? '',
    })),
    crl: (reply.crl ?? []).map((c) => Buffer.from(c)),
    federatedBundles: mapToWire(reply.federatedBundles ?? {}),
  };
}

function mapToWire(map: Record<string, Uint8Array>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k, Buffer.from(v)]));
}

type AnyStreamCall = grpc.ServerWritableStream<unknown, unknown>;

/** Starts the grpc-js double on a temporary unix socket. */
export async function startWorkloadDouble(
  options: { socketPath?: string } = {},
): Promise<WorkloadDouble> {
  const socketPath = options.socketPath ?? path.join(tempSocketDir(), 'api.sock');
  const started: Record<string, number> = {};
  const cancelled: Record<string, number> = {};
  const current: Record<StreamMethod, unknown> = {
    FetchX509SVID: undefined,
    FetchX509Bundles: undefined,
    FetchJWTBundles: undefined,
  };
  const openCalls: Record<StreamMethod, Set<AnyStreamCall>> = {
    FetchX509SVID: new Set(),
    FetchX509Bundles: new Set(),
    FetchJWTBundles: new Set(),
  };
  const scripts: Record<StreamMethod, StreamScript[]> = {
    FetchX509SVID: [],
    FetchX509Bundles: [],
    FetchJWTBundles: [],
  };
  const waiters = new Set<() => void>();

  const count = (method: string) => {
    started[method] = (started[method] ?? 0) + 1;
    for (const w of [...waiters]) w();
  };

  const headerOk = (metadata: grpc.Metadata): boolean => {
    if (double.headerCheck === 'off') return true;
    const values = metadata.get('workload.spiffe.io');
    return values.length === 1 && values[0] === 'true';
  };

  const fail = (
    call: { emit(event: 'error', error: Partial<grpc.StatusObject>): unknown },
    code: number,
    message: string,
  ) => {
    call.emit('error', { code, details: message, metadata: new grpc.Metadata() });
  };

  const serveStream = (method: StreamMethod) => (call: AnyStreamCall) => {
    count(method);
    if (!headerOk(call.metadata)) {
      fail(call, grpc.status.INVALID_ARGUMENT, 'security header missing from request');
      return;
    }
    const script = scripts[method].shift() ?? {};
    const open = openCalls[method];
    call.on('cancelled', () => {
      cancelled[method] = (cancelled[method] ?? 0) + 1;
      open.delete(call);
    });
    call.on('close', () => open.delete(call));
    const begin = () => {
      if (call.cancelled) return;
      if (script.status !== undefined) {
        if (script.status.afterHeaders === true) call.sendMetadata(new grpc.Metadata());
        fail(call, script.status.code, script.status.message ?? '');
        return;
      }
      if (script.stall === true) {
        open.add(call);
        return;
      }
      const reply = current[method];
      if (reply === undefined) {
        fail(call, grpc.status.PERMISSION_DENIED, 'no identity issued');
        return;
      }
      open.add(call);
      call.write(reply);
    };
    if (script.delayMs !== undefined) setTimeout(begin, script.delayMs);
    else begin();
  };

  const push = (method: StreamMethod, reply: unknown, doPush = true) => {
    current[method] = reply;
    if (!doPush) return;
    for (const call of [...openCalls[method]]) {
      if (reply === undefined) {
        openCalls[method].delete(call);
        fail(call, grpc.status.PERMISSION_DENIED, 'no identity issued');
      } else {
        call.write(reply);
      }
    }
  };

  const server = new grpc.Server();
  server.addService(serviceDefinition(), {
    FetchX509SVID: serveStream('FetchX509SVID'),
    FetchX509Bundles: serveStream('FetchX509Bundles'),
    FetchJWTBundles: serveStream('FetchJWTBundles'),
    FetchJWTSVID: (
      call: grpc.ServerUnaryCall<{ audience: string[]; spiffeId: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      count('FetchJWTSVID');
      if (!headerOk(call.metadata)) {
        callback({
          code: grpc.status.INVALID_ARGUMENT,
          details: 'security header missing from request',
        });
        return;
      }
      if (call.request.audience.length === 0) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: 'audience must be specified' });
        return;
      }
      if (double.jwtSvids === undefined) {
        callback({ code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' });
        return;
      }
      const svids = double.jwtSvids(call.request.audience, call.request.spiffeId);
      callback(null, { svids: svids.map((s) => ({ ...s, hint: s.hint ?? '' })) });
    },
    ValidateJWTSVID: (
      _call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      count('ValidateJWTSVID');
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'not implemented by the test double' });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    );
  });

  const double: WorkloadDouble = {
    address: `unix://${socketPath}`,
    socketPath,
    started,
    cancelled,
    headerCheck: 'spire',
    jwtSvids: undefined,
    open: (method = 'FetchX509SVID') => openCalls[method].size,
    pushX509: (reply, opts = {}) =>
      push('FetchX509SVID', reply === undefined ? undefined : toWire(reply), opts.push ?? true),
    pushX509Bundles: (bundles) =>
      push(
        'FetchX509Bundles',
        bundles === undefined ? undefined : { crl: [], bundles: mapToWire(bundles) },
      ),
    pushJwtBundles: (bundles) =>
      push('FetchJWTBundles', bundles === undefined ? undefined : { bundles: mapToWire(bundles) }),
    endStreams(method = 'FetchX509SVID', status = { code: grpc.status.OK }) {
      for (const call of [...openCalls[method]]) {
        openCalls[method].delete(call);
        if (status.code === grpc.status.OK) call.end();
        else fail(call, status.code, status.message ?? '');
      }
    },
    script(method, ...more) {
      scripts[method].push(...more);
    },
    waitForStarted(method, n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if ((started[method] ?? 0) >= n) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`${method}: ${started[method] ?? 0} of ${n} streams after ${timeoutMs} ms`),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      for (const set of Object.values(openCalls)) {
        for (const call of set) call.end();
        set.clear();
      }
      server.forceShutdown();
      fs.rmSync(socketPath, { force: true });
    },
  };
  return double;
}

// ---------------------------------------------------------------------------------------------
// Raw h2c mode

/** What happened to one raw stream. */
interface RawStreamRecord {
  readonly headers: http2.IncomingHttpHeaders;
  /** The RST_STREAM code once closed (`NGHTTP2_CANCEL` = 8 when the client reset it). */
  rstCode?: number;
  closed: boolean;
}

export interface RawServer {
  readonly address: string;
  readonly socketPath: string;
  /** Connections accepted. */
  readonly connections: number;
  /** Every stream seen, in order. */
  readonly streams: RawStreamRecord[];
  /** Resolves when `streams.length` reaches `count`. */
  waitForStreams(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves when stream `index` has closed. */
  waitForClose(index: number, timeoutMs?: number): Promise<RawStreamRecord>;
  stop(): Promise<void>;
}

/** Scripts one raw stream. `index` counts streams from 0. */
export type RawHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  index: number,
  session: http2.ServerHttp2Session,
) => void;

/** Starts a bare `node:http2` h2c server on a temporary unix socket. */
export async function startRawH2cServer(handler: RawHandler): Promise<RawServer> {
  const socketPath = path.join(tempSocketDir('spike-raw-'), 'api.sock');
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  const streams: RawStreamRecord[] = [];
  const waiters = new Set<() => void>();
  let connections = 0;
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  server.on('session', (session) => {
    connections++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    const record: RawStreamRecord = { headers, closed: false };
    const index = streams.length;
    streams.push(record);
    stream.on('error', () => {});
    stream.on('close', () => {
      record.rstCode = stream.rstCode;
      record.closed = true;
      notify();
    });
    // Drain the request so flow control never blocks the client.
    stream.resume();
    notify();
    handler(
      stream as http2.ServerHttp2Stream,
      headers,
      index,
      stream.session as http2.ServerHttp2Session,
    );
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  const waitFor = <T>(test: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const value = test();
        if (value !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`raw server: timed out waiting for ${what}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  return {
    address: `unix://${socketPath}`,
    socketPath,
    get connections() {
      return connections;
    },
    streams,
    waitForStreams: (n, timeoutMs = 5000) =>
      waitFor(() => (streams.length >= n ? true : undefined), `${n} streams`, timeoutMs).then(
        () => {},
      ),
    waitForClose: (index, timeoutMs = 5000) =>
      waitFor(
        () => (streams[index]?.closed === true ? streams[index] : undefined),
        `stream ${index} to close`,
        timeoutMs,
      ),
    async stop() {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(socketPath, { force: true });
    },
  };
}

/** A gRPC Length-Prefixed-Message with an arbitrary flag and declared length. */
export function rawFrame(
  payload: Uint8Array,
  options: { flag?: number; length?: number } = {},
): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, options.flag ?? 0);
  view.setUint32(1, options.length ?? payload.length, false);
  out.set(payload, 5);
  return out;
}

/** Sends response headers (`:status` 200, `application/grpc` unless overridden); trailers are sent by `endRaw`. */
export function respondRaw(
  stream: http2.ServerHttp2Stream,
  headers: http2.OutgoingHttpHeaders = {},
): void {
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', ...headers },
    { waitForTrailers: true },
  );
}

/** Ends a stream opened with `respondRaw`, sending `trailers` (e.g. `{ 'grpc-status': '0' }`). */
export function endRaw(stream: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders): void {
  stream.once('wantTrailers', () => stream.sendTrailers(trailers));
  stream.end();
}

/** Writes `bytes` and resolves once they were handed to the socket (separate DATA frames). */
export function writeRaw(stream: http2.ServerHttp2Stream, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => stream.write(bytes, () => resolve()));
}

// ---------------------------------------------------------------------------------------------
// protobufjs codec (cross-checks of the hand-written codec)

/**
 * protobufjs (through proto-loader and the same .proto) encoding of a method's response; values
 * use proto-loader's camelCase shape (`X509SvidReply` is converted).
 */
export function encodeResponseWithProtobufjs(method: string, value: unknown): Uint8Array {
  const m = serviceDefinition()[method];
  if (m === undefined) throw new RangeError(`unknown method ${method}`);
  const wire = method === 'FetchX509SVID' && !isRaw(value) ? toWire(value as X509SvidReply) : value;
  return new Uint8Array(m.responseSerialize(wire));
}

/** protobufjs decoding of a method's response or request. */
export function decodeWithProtobufjs(
  method: string,
  bytes: Uint8Array,
  which: 'request' | 'response' = 'response',
): Record<string, unknown> {
  const m = serviceDefinition()[method];
  if (m === undefined) throw new RangeError(`unknown method ${method}`);
  const decode = which === 'request' ? m.requestDeserialize : m.responseDeserialize;
  return decode(Buffer.from(bytes)) as Record<string, unknown>;
}

/** An `X509SVIDResponse` as grpc-js + proto-loader decode it. */
export interface GrpcJsX509SvidResponse {
  svids: {
    spiffeId: string;
    x509Svid: Buffer;
    x509SvidKey: Buffer;
    bundle: Buffer;
    hint: string;
  }[];
  federatedBundles: Record<string, Buffer>;
}

/** A grpc-js client of the Workload API (proto-loader, same .proto), for testing our servers. */
export function createGrpcJsWorkloadClient(address: string): grpc.Client & {
  FetchX509SVID(
    request: object,
    metadata: grpc.Metadata,
  ): grpc.ClientReadableStream<GrpcJsX509SvidResponse>;
  FetchX509Bundles(
    request: object,
    metadata: grpc.Metadata,
  ): grpc.ClientReadableStream<{ bundles: Record<string, Buffer> }>;
  FetchJWTSVID(
    request: { audience: string[] },
    metadata: grpc.Metadata,
    callback: (error: grpc.ServiceError | null, value?: unknown) => void,
  ): grpc.ClientUnaryCall;
} {
  const definition = protoLoader.loadSync(PROTO, { keepCase: false, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    SpiffeWorkloadAPI: new (address: string, credentials: grpc.ChannelCredentials) => never;
  };
  return new pkg.SpiffeWorkloadAPI(address, grpc.credentials.createInsecure());
}
