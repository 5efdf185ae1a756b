/**
 * gRPC Length-Prefixed-Message framing (docs/spiffe.md §1.6; gRPC `doc/PROTOCOL-HTTP2.md`).
 *
 * Each message is a 1-byte compressed flag, a 4-byte big-endian length and the protobuf bytes.
 * HTTP/2 DATA frames do not align with messages, so the decoder is incremental: push chunks as
 * they arrive and collect whole messages (one chunk may hold many messages, one message may span
 * many chunks). Two invariants keep a hostile peer from exhausting memory:
 *
 * - the length is checked against the cap as soon as the 5-byte prefix is complete, **before**
 *   any buffer for the body is allocated (a `0xFFFFFFFF` prefix fails on its own, row 35);
 * - at most one message body (≤ cap) and a 5-byte prefix are buffered at any time.
 *
 * We never negotiate compression, so a set compressed flag is INTERNAL (row 36).
 */
import { GrpcCode, type GrpcStatus } from './status.ts';

/** gRPC's default maximum received message size: 4 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const PREFIX = 5;

/** What one `MessageDecoder.push` produced: whole messages, then possibly the error that ended it. */
export interface DecodeResult {
  /** Messages completed by the chunk, in order (those before an error are kept). */
  readonly messages: Uint8Array[];
  /** Set when the data is invalid: the call must end with this status and the stream be reset. */
  readonly error?: GrpcStatus;
}

/** Frames one protobuf message: flag 0, big-endian length, payload. */
export function encodeGrpcFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0);
  view.setUint32(1, payload.length, false);
  out.set(payload, PREFIX);
  return out;
}

/**
 * Incremental Length-Prefixed-Message decoder. Once it has reported an error the call is over:
 * further input only repeats that error.
 */
export class MessageDecoder {
  readonly maxMessageBytes: number;
  private readonly prefix = new Uint8Array(PREFIX);
  private prefixFill = 0;
  private body: Uint8Array | undefined;
  private bodyFill = 0;
  private failed: GrpcStatus | undefined;

  constructor(options: { maxMessageBytes?: number } = {}) {
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) {
      throw new RangeError('maxMessageBytes must be an integer between 0 and 2^32-1');
    }
    this.maxMessageBytes = max;
  }

  /** True while part of a message (prefix or body) is buffered. */
  get hasPartialMessage(): boolean {
    return this.prefixFill > 0 || this.body !== undefined;
  }

  /**
   * Consumes `chunk` and returns the messages it completed, in order. The result carries an error
   * (and the decoder refuses further input) when a length prefix exceeds the cap
   * (RESOURCE_EXHAUSTED) or the flag byte is set (INTERNAL).
   */
  push(chunk: Uint8Array): DecodeResult {
    if (this.failed !== undefined) return { messages: [], error: this.failed };
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.body === undefined) {
        const take = Math.min(PREFIX - this.prefixFill, chunk.length - pos);
        this.prefix.set(chunk.subarray(pos, pos + take), this.prefixFill);
        this.prefixFill += take;
        pos += take;
        if (this.prefixFill < PREFIX) break;
        const error = this.startBody(out);
        if (error !== undefined) {
          this.failed = error;
          return { messages: out, error };
        }
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFill, chunk.length - pos);
      this.body.set(chunk.subarray(pos, pos + take), this.bodyFill);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === this.body.length) {
        out.push(this.body);
        this.body = undefined;
        this.bodyFill = 0;
      }
    }
    return { messages: out };
  }

  /**
   * Declares the end of the data. Returns INTERNAL when it ended in the middle of a message
   * (row 34); the partial bytes are dropped.
   */
  finish(): GrpcStatus | undefined {
    if (this.failed !== undefined) return this.failed;
    if (!this.hasPartialMessage) return undefined;
    this.prefixFill = 0;
    this.body = undefined;
    this.bodyFill = 0;
    this.failed = { code: GrpcCode.INTERNAL, message: 'stream ended in the middle of a message' };
    return this.failed;
  }

  private startBody(out: Uint8Array[]): GrpcStatus | undefined {
    const flag = this.prefix[0]!;
    const length = new DataView(this.prefix.buffer).getUint32(1, false);
    this.prefixFill = 0;
    if (flag === 1) {
      return {
        code: GrpcCode.INTERNAL,
        message: 'compressed message received but no compression was negotiated',
      };
    }
    if (flag !== 0) return { code: GrpcCode.INTERNAL, message: `invalid compressed flag ${flag}` };
    // The cap is enforced from the prefix alone: nothing is allocated for an oversized message.
    if (length > this.maxMessageBytes) {
      return {
        code: GrpcCode.RESOURCE_EXHAUSTED,
        message: `received message larger than max (${length} vs. ${this.maxMessageBytes})`,
      };
    }
    if (length === 0) {
      out.push(new Uint8Array(0));
      return undefined;
    }
    this.body = new Uint8Array(length);
    this.bodyFill = 0;
    return undefined;
  }
}
