/**
 * The watch route of Nexus (docs/spike-api.md "Watch"): `POST /v1/store/watch` answers a
 * Server-Sent Events stream of change-log events under a path prefix (src/nexus/watch/stream.ts).
 *
 * Guard: some read grant (superusers always); every event is then checked against the caller's
 * read permission on its own path, so the stream says nothing about paths the caller may not
 * read. `policy` events go only to callers who may read policies, and only on a stream of
 * everything (prefix `""`). The cursor is `Last-Event-ID` (wins) or `after`; one older than
 * the log keeps is refused with 410 `watch_cursor_expired` before any stream starts.
 */
import { NEXUS_ROUTES } from '../../api/v1/routes.ts';
import { REQUEST } from '../../api/v1/schemas.ts';
import { SpikeError } from '../../core/errors.ts';
import { ACL_PATH } from '../../core/policy/engine.ts';
import { validateSecretPath } from '../../core/policy/validate.ts';
import type { ChangeBounds, ChangeEvent } from '../store/change-log.ts';
import { defineRoute, type NexusRoute, type RouteContext } from './route.ts';

const SSE_HEADERS = Object.freeze({
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-store',
  'X-Accel-Buffering': 'no',
});

const bad = (message: string) => new SpikeError('api_bad_request', message);

/** The cursor: `Last-Event-ID` when present (decimal digits only), else `after` (0 = none). */
function cursorOf(request: Request, after: number): number | undefined {
  const header = request.headers.get('last-event-id');
  if (header !== null && header !== '') {
    if (!/^[0-9]{1,15}$/.test(header)) throw bad('Last-Event-ID must be an event id');
    return Number(header);
  }
  if (!Number.isSafeInteger(after) || after < 0) throw bad('after must be an integer >= 0');
  return after === 0 ? undefined : after;
}

/** True when every event after `cursor` is still in the log. */
function cursorKept(cursor: number, bounds: ChangeBounds): boolean {
  if (cursor > bounds.head) return false; // a number this log never gave out
  if (cursor === bounds.head) return true;
  return bounds.first !== undefined && bounds.first <= cursor + 1;
}

function validPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  // A prefix is a path, or the start of one: the §5 characters and length.
  validateSecretPath(prefix.endsWith('/') ? prefix.slice(0, -1) || prefix : prefix);
  return prefix;
}

/** Who may see an event of this stream. */
function eventFilter(ctx: RouteContext, callerId: string, prefix: string) {
  return (event: ChangeEvent): boolean | Promise<boolean> => {
    if (event.kind === 'policy') {
      return prefix === '' && ctx.engine.checkAccess(callerId, ACL_PATH, ['read']);
    }
    return event.path.startsWith(prefix) && ctx.engine.checkAccess(callerId, event.path, ['read']);
  };
}

export const WATCH_ROUTES: readonly NexusRoute[] = [
  defineRoute({
    spec: NEXUS_ROUTES.watch,
    decode: (ctx) => ctx.json(REQUEST.watch),
    guard: () => ({ somewhere: 'read' }),
    async handle(ctx, req) {
      const watch = ctx.deps.watch;
      if (watch === undefined) throw bad('route not served by this backend');
      const prefix = validPrefix(req.prefix);
      ctx.setResource(prefix);
      const cursor = cursorOf(ctx.request, req.after);
      const bounds = await watch.feed.bounds();
      if (cursor !== undefined && !cursorKept(cursor, bounds)) {
        throw new SpikeError('watch_cursor_expired', 'cursor older than the change log');
      }
      const callerId = ctx.deps.peerOf(ctx.request) ?? '';
      const body = watch.open({
        after: cursor ?? bounds.head,
        allowed: eventFilter(ctx, callerId, prefix),
        signal: ctx.request.signal,
      });
      return new Response(body, { status: 200, headers: SSE_HEADERS });
    },
  }),
];
