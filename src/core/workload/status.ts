/**
 * gRPC status codes and the `grpc-message` / `grpc-status` header encodings (docs/spiffe.md §1.4,
 * §1.6; gRPC `doc/PROTOCOL-HTTP2.md` and `doc/statuscodes.md`).
 *
 * The Workload API client turns every way a call can end (a real `grpc-status`, a synthesised one
 * for a broken HTTP/2 exchange, a socket error) into one `GrpcStatus`, and its errors carry that
 * status in `grpcCode` / `grpcMessage` so callers can explain it (PermissionDenied: "no registration
 * entry matches this process"; ENOENT: "is the SPIRE Agent running?").
 */
import { utf8 } from '../bytes.ts';
import { SpikeError } from '../errors.ts';

/** The gRPC status codes (`doc/statuscodes.md`). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** One of the `GrpcCode` values. */
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

const NAMES: readonly string[] = Object.keys(GrpcCode);

/** `PERMISSION_DENIED` for 7; `CODE(<n>)` for a number outside the table. */
export function grpcCodeName(code: number): string {
  return NAMES[code] ?? `CODE(${code})`;
}

/** How a call ended. `errno` is set when the status was synthesised from a socket error. */
export interface GrpcStatus {
  readonly code: number;
  readonly message: string;
  /** The socket error code (`ENOENT`, `ECONNREFUSED`, `EACCES`, …) behind an UNAVAILABLE status. */
  readonly errno?: string;
}

/**
 * Parses a `grpc-status` header value: decimal digits only. Returns `undefined` for anything else
 * (the caller then synthesises UNKNOWN, docs/spiffe.md §8 row 38).
 */
export function parseGrpcStatus(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,3}$/.test(value)) return undefined;
  return Number.parseInt(value, 10);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Decodes a `grpc-message` value: percent-encoded UTF-8. Decoding is lenient as gRPC requires: a
 * `%` not followed by two hex digits is kept literally, invalid UTF-8 becomes U+FFFD.
 */
export function decodeGrpcMessage(value: string | undefined): string {
  if (value === undefined || value.length === 0) return '';
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length) {
      const hi = hexValue(value.charCodeAt(i + 1));
      const lo = hexValue(value.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes.push(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    // Header values are ASCII; anything else is passed through as its UTF-8 encoding.
    for (const b of utf8.encode(value[i]!)) bytes.push(b);
  }
  return utf8.decode(Uint8Array.from(bytes));
}

/** A `SpikeError` carrying the gRPC status a Workload API call ended with. */
export type WorkloadApiError = SpikeError & {
  readonly grpcCode: number;
  readonly grpcMessage: string;
  readonly errno?: string;
};

/**
 * Builds the `workload_api_error` (or `workload_api_timeout`) error for a status. The message
 * names the status code and the server's message; Workload API messages carry no secrets.
 */
export function workloadApiError(
  status: GrpcStatus,
  options: { code?: 'workload_api_error' | 'workload_api_timeout'; context?: string } = {},
): WorkloadApiError {
  const what = status.errno ?? grpcCodeName(status.code);
  const detail = status.message.length > 0 ? `: ${status.message}` : '';
  const prefix = options.context !== undefined ? `${options.context}: ` : '';
  const error = new SpikeError(
    options.code ?? 'workload_api_error',
    `${prefix}Workload API ${what}${detail}`,
  ) as SpikeError & { grpcCode: number; grpcMessage: string; errno?: string };
  error.grpcCode = status.code;
  error.grpcMessage = status.message;
  if (status.errno !== undefined) error.errno = status.errno;
  return error;
}
