/**
 * DEVELOPMENT ONLY: an embedded SPIFFE identity issuer that serves the real Workload API
 * (docs/architecture.md "Development identity"; docs/spiffe.md §1). It is not a production CA and has
 * no workload attestation: it is for a laptop without SPIRE.
 *
 * It mints a root CA for one trust domain (default `spike.ist`) and listens on one unix socket per
 * component (`nexus.sock`, `keeper-1.sock` …, `pilot.sock`, `recover.sock`, `restore.sock`,
 * `workload.sock`, plus any extra workloads), each speaking h2c gRPC exactly as a SPIRE Agent
 * does: `FetchX509SVID` streams that component's X.509-SVID, `FetchX509Bundles` the trust bundle,
 * `FetchJWTSVID` signs a JWT-SVID and `FetchJWTBundles` streams the JWKS (./jwt-issuer.ts), and
 * `ValidateJWTSVID` answers Unimplemented. The caller's identity is the socket it
 * connects to, so **the socket directory is the only access control**: it is created with mode
 * 0700, and anyone who can open a socket in it gets that component's identity.
 *
 * SVIDs are short-lived (default 1 h; any TTL ≥ 2 s is accepted, ≥ 30 s recommended) and rotated
 * at half-life: the new SVID is pushed on every open stream, as SPIRE does. The security header
 * is enforced like SPIRE (exactly one `workload.spiffe.io: true`, else InvalidArgument).
 *
 * Invariant: private keys leave this module only inside Workload API responses on the sockets;
 * they are never logged.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { concatBytes } from '../core/bytes.ts';
import { SpikeError } from '../core/errors.ts';
import { formatSpiffeId, isMemberOf, parseSpiffeId, parseTrustDomain } from '../core/spiffe/id.ts';
import { formatUnixAddress } from '../core/workload/address.ts';
import { encodeGrpcFrame } from '../core/workload/framing.ts';
import { GrpcCode } from '../core/workload/status.ts';
import { createJwtAuthority, type JwtAuthority, serveJwtSvid } from './jwt-issuer.ts';
import { type Authority, createRootAuthority, issueX509Svid, type MintedLeaf } from './mint.ts';
import {
  encodeX509BundlesResponse,
  encodeX509SvidResponse,
  trailersOnly,
} from './workload-proto.ts';

/** Options of `startDevIssuer`. */
export interface DevIssuerOptions {
  /** Directory for the sockets; created (mode 0700) if missing, its mode forced to 0700. */
  dir: string;
  /** Trust domain name; default `spike.ist`. */
  trustDomain?: string;
  /** X.509-SVID lifetime in seconds; default 3600, minimum 2 (use ≥ 30 outside tests of rotation). */
  ttlSeconds?: number;
  /** Number of keepers (`keeper-1.sock` … `keeper-<n>.sock`); default 3. */
  keepers?: number;
  /** Extra sockets: name (`[a-z0-9-]`, becomes `<name>.sock`) → SPIFFE ID in the trust domain. */
  extraWorkloads?: Record<string, string>;
  /** Where the development warning and rotation notes go; default the console. */
  logger?: { info(message: string): void; warn(message: string): void };
}

/** A running development issuer. */
export interface DevIssuer {
  readonly trustDomain: string;
  /** Component name → socket path. */
  readonly sockets: Readonly<Record<string, string>>;
  /** Component name → SPIFFE ID. */
  readonly ids: Readonly<Record<string, string>>;
  /** The socket path of `name`; throws `RangeError` for an unknown name. */
  socketFor(name: string): string;
  /** The `unix://` Workload API address of `name` (for `SPIFFE_ENDPOINT_SOCKET`). */
  addressFor(name: string): string;
  /** The root CA certificate (DER): the trust bundle of the trust domain. */
  readonly rootCertificate: Uint8Array;
  /** Closes every stream and socket and stops rotating. */
  stop(): Promise<void>;
}

const DEFAULT_TRUST_DOMAIN = 'spike.ist';
const DEFAULT_TTL_SECONDS = 3600;
const MIN_TTL_SECONDS = 2;
/** `sun_path` is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
const ROOT_TTL_SECONDS = 30 * 24 * 3600;

interface Component {
  readonly name: string;
  readonly id: string;
  readonly socketPath: string;
  svid: MintedLeaf;
  response: Uint8Array;
  readonly streams: Set<http2.ServerHttp2Stream>;
  readonly bundleStreams: Set<http2.ServerHttp2Stream>;
  timer?: ReturnType<typeof setTimeout>;
  server?: http2.Http2Server;
  readonly sessions: Set<http2.ServerHttp2Session>;
}

/** The fixed components and the paths of their SPIFFE IDs (docs/spike-api.md §1 roles). */
function componentIds(keepers: number): [string, string][] {
  const out: [string, string][] = [['nexus', '/spike/nexus']];
  for (let i = 1; i <= keepers; i++) out.push([`keeper-${i}`, '/spike/keeper']);
  out.push(
    ['pilot', '/spike/pilot/role/superuser'],
    ['recover', '/spike/pilot/role/recover'],
    ['restore', '/spike/pilot/role/restore'],
    ['workload', '/workload/demo'],
  );
  return out;
}

/**
 * DNS and IP SANs of a component's SVID: the development Nexus answers on loopback, so its SVID
 * names `localhost` and `127.0.0.1` and standard TLS clients (hvac, node-vault, the Vault Go
 * client) can verify the hostname (docs/vault-kv2.md §1). Every other SVID has only its URI SAN.
 */
const NEXUS_DEV_SANS = Object.freeze({
  dnsNames: Object.freeze(['localhost']),
  ipAddresses: Object.freeze(['127.0.0.1']),
});

function sansFor(name: string): { dnsNames?: readonly string[]; ipAddresses?: readonly string[] } {
  return name === 'nexus' ? NEXUS_DEV_SANS : {};
}

function configError(message: string): SpikeError {
  return new SpikeError('config_invalid', `development issuer: ${message}`);
}

function prepareDirectory(dir: string): string {
  const abs = path.resolve(dir);
  fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(abs);
  if (!st.isDirectory()) throw configError('the socket directory is not a directory');
  fs.chmodSync(abs, 0o700);
  return abs;
}

/** True when something accepts connections on the unix socket `socketPath`. */
function socketIsLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Removes a socket left behind by a crashed issuer; refuses live sockets and other files. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  const name = path.basename(socketPath);
  if (!st.isSocket()) throw configError(`${name} exists and is not a socket`);
  if (await socketIsLive(socketPath)) throw configError(`${name} is in use by another process`);
  fs.unlinkSync(socketPath);
}

/**
 * Starts the development identity issuer (DEVELOPMENT ONLY, see the module header).
 *
 * @throws SpikeError `config_invalid` for a bad trust domain, TTL, keeper count, workload name or
 *   ID, a socket path that is too long, or a non-socket file in the way.
 */
export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const trustDomain = parseTrustDomain(options.trustDomain ?? DEFAULT_TRUST_DOMAIN);
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < MIN_TTL_SECONDS) {
    throw configError(`ttlSeconds must be at least ${MIN_TTL_SECONDS}`);
  }
  const keepers = options.keepers ?? 3;
  if (!Number.isInteger(keepers) || keepers < 0 || keepers > 64) {
    throw configError('keepers must be an integer between 0 and 64');
  }
  const logger = options.logger ?? {
    info: () => {},
    warn: (m: string) => console.warn(m),
  };

  const entries = componentEntries(trustDomain, keepers, options.extraWorkloads);
  const absDir = path.resolve(options.dir);
  checkSocketPaths(absDir, entries);
  const dir = prepareDirectory(absDir);

  const root: Authority = await createRootAuthority(trustDomain, { ttlSeconds: ROOT_TTL_SECONDS });
  const trustDomainId = `spiffe://${trustDomain}`;
  const bundlesFrame = encodeGrpcFrame(
    encodeX509BundlesResponse({ crl: [], bundles: new Map([[trustDomainId, root.certificate]]) }),
  );
  const jwt = await createJwtAuthority(trustDomain);
  let stopped = false;

  const respond = (svid: MintedLeaf, id: string) => svidFrame(root, svid, id);

  const components: Component[] = await Promise.all(
    entries.map(async ([name, id]) => {
      const svid = await issueX509Svid(root, id, { ttlSeconds, ...sansFor(name) });
      return {
        name,
        id,
        socketPath: path.join(dir, `${name}.sock`),
        svid,
        response: respond(svid, id),
        streams: new Set<http2.ServerHttp2Stream>(),
        bundleStreams: new Set<http2.ServerHttp2Stream>(),
        sessions: new Set<http2.ServerHttp2Session>(),
      };
    }),
  );

  const scheduleRotation = (c: Component) => {
    c.timer = setTimeout(
      () => {
        void rotate(c);
      },
      (ttlSeconds * 1000) / 2,
    );
  };

  const rotate = async (c: Component) => {
    if (stopped) return;
    try {
      c.svid = await issueX509Svid(root, c.id, { ttlSeconds, ...sansFor(c.name) });
      c.response = respond(c.svid, c.id);
      for (const stream of c.streams) {
        if (!stream.closed && !stream.destroyed) stream.write(c.response);
      }
      logger.info(`development issuer: rotated ${c.id} (serial ${c.svid.serial})`);
    } catch (error) {
      logger.warn(
        `development issuer: rotation of ${c.id} failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (!stopped) scheduleRotation(c);
  };

  const started: Component[] = [];
  try {
    for (const c of components) {
      await listenComponent(c, bundlesFrame, jwt);
      started.push(c);
      scheduleRotation(c);
    }
  } catch (error) {
    stopped = true;
    await Promise.all(started.map((c) => closeComponent(c)));
    throw error;
  }

  logger.warn(
    `DEVELOPMENT identity issuer (not for production, no workload attestation): trust domain ` +
      `${trustDomain}, ${components.length} Workload API sockets in ${dir}, SVID TTL ${ttlSeconds} s`,
  );

  const sockets = Object.fromEntries(components.map((c) => [c.name, c.socketPath]));
  const ids = Object.fromEntries(components.map((c) => [c.name, c.id]));
  const socketFor = (name: string): string => {
    const p = sockets[name];
    if (p === undefined) throw new RangeError(`no development identity named ${name}`);
    return p;
  };

  return {
    trustDomain,
    sockets,
    ids,
    socketFor,
    addressFor: (name) => formatUnixAddress(socketFor(name)),
    rootCertificate: root.certificate.slice(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(components.map((c) => closeComponent(c)));
    },
  };
}

/** The `FetchX509SVID` frame that hands `svid` (with ID `id`) and the root to a workload. */
function svidFrame(root: Authority, svid: MintedLeaf, id: string): Uint8Array {
  return encodeGrpcFrame(
    encodeX509SvidResponse({
      svids: [
        {
          spiffeId: id,
          x509Svid: concatBytes(...svid.chain),
          x509SvidKey: svid.privateKey,
          bundle: root.certificate,
          hint: '',
        },
      ],
      crl: [],
      federatedBundles: new Map(),
    }),
  );
}

/** The components' names and SPIFFE IDs: Nexus, the Keepers, the pilot and extra workloads. */
function componentEntries(
  trustDomain: string,
  keepers: number,
  extraWorkloads: DevIssuerOptions['extraWorkloads'],
): [string, string][] {
  const entries: [string, string][] = componentIds(keepers).map(([name, p]) => [
    name,
    formatSpiffeId(trustDomain, p),
  ]);
  for (const [name, id] of Object.entries(extraWorkloads ?? {})) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
      throw configError('workload names are lowercase letters, digits and dashes');
    }
    if (entries.some(([n]) => n === name)) throw configError(`workload name ${name} is taken`);
    parseSpiffeId(id);
    if (!isMemberOf(id, trustDomain)) {
      throw configError(`workload ${name} must have an ID in trust domain ${trustDomain}`);
    }
    entries.push([name, id]);
  }
  return entries;
}

/** Refuses socket paths longer than a unix socket address holds. */
function checkSocketPaths(absDir: string, entries: readonly [string, string][]): void {
  for (const [name] of entries) {
    if (new TextEncoder().encode(path.join(absDir, `${name}.sock`)).length > MAX_SOCKET_PATH) {
      throw configError(`socket path for ${name} is longer than ${MAX_SOCKET_PATH} bytes`);
    }
  }
}

/** Serves one Workload API stream of component `c`. */
function handleStream(
  c: Component,
  bundlesFrame: Uint8Array,
  jwt: JwtAuthority,
  stream: http2.ServerHttp2Stream,
  h: http2.IncomingHttpHeaders,
): void {
  stream.on('error', () => {});
  stream.resume(); // the stream requests are empty; FetchJWTSVID reads its own
  const method = h[':path'] ?? '';
  const contentType = String(h['content-type'] ?? '');
  if (h[':method'] !== 'POST' || !/^application\/grpc(?:$|[+;])/.test(contentType)) {
    stream.respond({ ':status': 415 }, { endStream: true });
    return;
  }
  if (!method.startsWith('/SpiffeWorkloadAPI/')) {
    trailersOnly(stream, GrpcCode.UNIMPLEMENTED, `unknown service ${method.split('/')[1] ?? ''}`);
    return;
  }
  // SPIRE: exactly one value, exactly `true` (node:http2 joins duplicates with ", ").
  if (h['workload.spiffe.io'] !== 'true') {
    trailersOnly(stream, GrpcCode.INVALID_ARGUMENT, 'security header missing from request');
    return;
  }
  const open = (set: Set<http2.ServerHttp2Stream>, frame: Uint8Array) => {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => {
      stream.sendTrailers({
        'grpc-status': String(GrpcCode.UNAVAILABLE),
        'grpc-message': 'issuer stopping',
      });
    });
    set.add(stream);
    stream.on('close', () => set.delete(stream));
    stream.write(frame);
  };
  switch (method) {
    case '/SpiffeWorkloadAPI/FetchX509SVID':
      open(c.streams, c.response);
      return;
    case '/SpiffeWorkloadAPI/FetchX509Bundles':
      open(c.bundleStreams, bundlesFrame);
      return;
    case '/SpiffeWorkloadAPI/FetchJWTBundles':
      open(c.bundleStreams, jwt.bundlesFrame);
      return;
    case '/SpiffeWorkloadAPI/FetchJWTSVID':
      serveJwtSvid(jwt, c.id, stream);
      return;
    default:
      trailersOnly(
        stream,
        GrpcCode.UNIMPLEMENTED,
        `the development issuer does not serve ${method}`,
      );
  }
}

/** Creates and starts the HTTP/2 server on `c`'s socket. */
async function listenComponent(
  c: Component,
  bundlesFrame: Uint8Array,
  jwt: JwtAuthority,
): Promise<void> {
  await removeStaleSocket(c.socketPath);
  const server = http2.createServer();
  server.on('session', (session) => {
    c.sessions.add(session);
    session.on('close', () => c.sessions.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) =>
    handleStream(c, bundlesFrame, jwt, stream as http2.ServerHttp2Stream, headers),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(c.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  c.server = server;
}

async function closeComponent(c: Component): Promise<void> {
  if (c.timer !== undefined) clearTimeout(c.timer);
  // End open streams with UNAVAILABLE (clients back off and retry), then close the listener.
  for (const stream of [...c.streams, ...c.bundleStreams]) {
    if (!stream.closed && !stream.destroyed) stream.end();
  }
  const server = c.server;
  if (server !== undefined) {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const session of c.sessions) session.close();
      setTimeout(() => {
        for (const session of c.sessions) session.destroy();
      }, 200).unref?.();
    });
  }
  fs.rmSync(c.socketPath, { force: true });
}
