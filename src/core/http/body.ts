/**
 * Reading a request body under a byte cap (docs/spike-api.md §12 "Limits"), without ever holding
 * more than the cap in memory.
 *
 * A declared `Content-Length` above the cap is refused before reading anything. Otherwise the body
 * stream is read chunk by chunk and cancelled as soon as the running total passes the cap, so a
 * client that streams forever costs at most `cap` bytes and is refused with a 400
 * (`api_bad_request`, not 413: the Go SDK would report 413 as a connection failure).
 *
 * With `wipe`, for bodies that may carry key material (a Keeper's shard), every chunk read is
 * zeroed once copied and the answer is always a fresh buffer the caller zeroes after use.
 *
 * Portable: Web Streams only.
 */
import { isSpikeError, SpikeError } from '../errors.ts';

/** Options of `readBodyCapped`. */
export interface ReadBodyOptions {
  /** Zero every chunk once copied (and all of them on a refusal); default false. */
  readonly wipe?: boolean;
}

function tooLarge(): SpikeError {
  return new SpikeError('api_bad_request', 'request body too large');
}

/**
 * Reads `request`'s body, at most `maxBytes` bytes. A missing body reads as empty.
 *
 * @throws SpikeError `api_bad_request` when the body (declared or actual) exceeds `maxBytes`, or
 *   when reading it fails (a client that hangs up mid-body).
 * @throws RangeError when `maxBytes` is not a non-negative safe integer.
 */
export async function readBodyCapped(
  request: Request,
  maxBytes: number,
  options: ReadBodyOptions = {},
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError('maxBytes must be a non-negative integer');
  }
  const wipe = options.wipe === true;
  const declared = request.headers.get('content-length');
  if (declared !== null && /^[0-9]+$/.test(declared.trim()) && Number(declared.trim()) > maxBytes) {
    // Nothing will read this body: release it without waiting (a hostile stream may never settle).
    request.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const stream = request.body;
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      chunks.push(value);
      if (total > maxBytes) {
        // Stop the producer; do not wait for it (a hostile stream may never settle).
        reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
    }
  } catch (error) {
    if (wipe) for (const chunk of chunks) chunk.fill(0);
    if (isSpikeError(error)) throw error;
    throw new SpikeError('api_bad_request', 'request body could not be read', { cause: error });
  }
  // The reader keeps its lock: the body is consumed (or cancelled) and nothing reads it after
  // us, while `releaseLock()` would reject the reader's `closed` promise with a fresh TypeError,
  // a cost paid on every request for nothing.
  if (chunks.length === 1 && !wipe) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
    if (wipe) chunk.fill(0);
  }
  return out;
}
