/**
 * Workload API endpoint addresses (`SPIFFE_ENDPOINT_SOCKET`, docs/spiffe.md §2;
 * `SPIFFE_Workload_Endpoint.md`).
 *
 * An address is an RFC 3986 URI with scheme `unix` (an absolute socket path, no authority) or
 * `tcp` (an IP literal and a port, nothing else). It is parsed by hand: WHATWG `URL` keeps `%20`
 * encoded in `pathname`, rewrites `tcp://127.0.0.1:0080` to port 80, returns `[::1]` with
 * brackets and lower-cases `UNIX:`. Our stance is to reject: the scheme must be written in lower
 * case, the unix path may contain only RFC 3986 path characters (anything else percent-encoded)
 * and may not decode to NUL, and the tcp host must be a dotted-quad IPv4 address without
 * leading zeros or a bracketed IPv6 address without a zone.
 */
import { SpikeError } from '../errors.ts';

/** A parsed endpoint address. */
export type EndpointAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

function bad(reason: string): SpikeError {
  return new SpikeError('spiffe_invalid_address', `invalid Workload API address: ${reason}`);
}

// RFC 3986 pchar without pct-encoded: unreserved / sub-delims / ":" / "@"; plus "/" for paths.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;

function percentDecode(path: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c !== 0x25) {
      bytes.push(c);
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad('invalid percent-encoding in the socket path');
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  if (bytes.includes(0)) throw bad('socket path contains NUL');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw bad('socket path is not valid UTF-8');
  }
}

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(s: string): boolean {
  if (s.length === 0 || !/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const groups = (h: string): string[] | undefined => {
    if (h.length === 0) return [];
    const g = h.split(':');
    return g.every((x) => x.length > 0) ? g : undefined;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return false;
  const all = [...head, ...tail];
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i]!;
    if (g.includes('.')) {
      // An embedded IPv4 address may only be the last group and counts as two.
      if (i !== all.length - 1 || !isIPv4(g)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) {
      count += 1;
    } else {
      return false;
    }
  }
  return halves.length === 2 ? count <= 7 : count === 8;
}

function parseUnix(rest: string): EndpointAddress {
  let path: string;
  if (rest.startsWith('//')) {
    const afterSlashes = rest.slice(2);
    const end = afterSlashes.search(/[/?#]/);
    const authority = end === -1 ? afterSlashes : afterSlashes.slice(0, end);
    if (authority.length > 0) throw bad('unix address must not have an authority');
    path = end === -1 ? '' : afterSlashes.slice(end);
  } else {
    path = rest;
  }
  if (path.includes('?')) throw bad('unix address must not have a query');
  if (path.includes('#')) throw bad('unix address must not have a fragment');
  if (path.length === 0) throw bad('unix address must have a path');
  if (!path.startsWith('/')) throw bad('unix socket path must be absolute');
  if (!PATH_CHARS.test(path)) throw bad('socket path has characters that must be percent-encoded');
  return { kind: 'unix', path: percentDecode(path) };
}

function parseTcp(rest: string): EndpointAddress {
  if (!rest.startsWith('//')) throw bad('tcp address must have an authority');
  const authority = rest.slice(2);
  if (/[/?#]/.test(authority)) throw bad('tcp address must not have a path, query or fragment');
  if (authority.includes('@')) throw bad('tcp address must not have user info');
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) throw bad('unterminated IPv6 literal');
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (!after.startsWith(':')) throw bad('tcp address must have a port');
    portText = after.slice(1);
    if (!isIPv6(host)) throw bad('tcp host must be an IP address');
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon === -1) {
      if (authority.length === 0) throw bad('tcp address must have a host');
      throw bad('tcp address must have a port');
    }
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host.length === 0) throw bad('tcp address must have a host');
    if (!isIPv4(host)) throw bad('tcp host must be an IP address');
  }
  if (!/^[0-9]{1,5}$/.test(portText)) throw bad('tcp address must have a numeric port');
  const port = Number.parseInt(portText, 10);
  if (port < 1 || port > 65535) throw bad('tcp port out of range');
  return { kind: 'tcp', host, port };
}

/**
 * Parses a Workload API endpoint address (docs/spiffe.md §2): `unix:///abs/path`, `unix:/abs/path`
 * (path percent-decoded) or `tcp://<IP>:<port>`.
 *
 * @throws SpikeError `spiffe_invalid_address`; the message names the rule, not the value.
 */
export function parseEndpointAddress(value: string): EndpointAddress {
  if (typeof value !== 'string') throw new TypeError('address must be a string');
  const colon = value.indexOf(':');
  if (colon === -1) throw bad('missing scheme (expected unix: or tcp:)');
  const scheme = value.slice(0, colon);
  const rest = value.slice(colon + 1);
  if (scheme === 'unix') return parseUnix(rest);
  if (scheme === 'tcp') return parseTcp(rest);
  throw bad('scheme must be unix or tcp');
}

/** Formats a unix socket path as a `unix://` address, percent-encoding what needs it. */
export function formatUnixAddress(path: string): string {
  if (!path.startsWith('/')) throw new TypeError('socket path must be absolute');
  let out = 'unix://';
  for (const b of new TextEncoder().encode(path)) {
    const ch = String.fromCharCode(b);
    if (b < 0x80 && /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/.test(ch)) out += ch;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
