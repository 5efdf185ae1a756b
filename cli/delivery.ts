/**
 * What `spike run` and `spike agent` share (cli/commands/run.ts, cli/commands/agent.ts): follow a
 * few secret paths with the SDK's watch stream (src/sdk/watch.ts) and call back, one round at a
 * time, with the current data of every path whenever an event may have changed one.
 *
 * Order of start-up: the watch stream is established first and only then is the first round read,
 * so a write that lands between the two is never missed (it arrives as an event and causes one
 * more round, whose content comparison then finds nothing new or the new value). Events that
 * arrive while a round runs are coalesced into one further round. A `reset` event (Nexus no
 * longer holds the events since our cursor) causes a round as well. The callers compare
 * contents, not versions: a round that reads what they already have does nothing.
 */
import { isSpikeError } from '../src/core/errors.ts';
import type { SpikeClient } from '../src/sdk/client.ts';

/** The data of each followed path; a path that does not exist (any more) is absent. */
export type Snapshot = Map<string, Record<string, string>>;

/** Reads every path; a missing secret is left out, any other failure is thrown. */
export async function readSnapshot(
  client: SpikeClient,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<Snapshot> {
  const out: Snapshot = new Map();
  for (const path of paths) {
    try {
      out.set(path, (await client.getSecret(path, signal === undefined ? {} : { signal })).data);
    } catch (error) {
      if (isSpikeError(error) && error.code === 'api_not_found') continue;
      throw error;
    }
  }
  return out;
}

/** The longest common prefix of `paths` (the one watch stream covers them all). */
function commonPrefix(paths: readonly string[]): string {
  if (paths.length === 0) return '';
  let prefix = paths[0] as string;
  for (const p of paths) {
    while (!p.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return prefix;
}

/** Canonical form of one secret's data, for comparing contents. */
export function canonical(data: Readonly<Record<string, string>> | undefined): string {
  if (data === undefined) return '';
  return JSON.stringify(
    Object.keys(data)
      .sort()
      .map((k) => [k, data[k]]),
  );
}

export interface FollowOptions {
  readonly client: SpikeClient;
  readonly paths: readonly string[];
  readonly signal: AbortSignal;
  /** One round: the current data. Rounds never overlap. */
  readonly onRound: (snapshot: Snapshot, reason: 'start' | 'event' | 'reset') => Promise<void>;
  /** A round failed (Nexus unreachable, ...): it is retried at the next event. */
  readonly onError: (error: unknown) => void;
  /** The watch stream reconnects (a Nexus restart, ...). */
  readonly onReconnect?: (attempt: number) => void;
}

/**
 * Follows `paths` until `signal` aborts: resolves when it does; rejects when the watch fails in
 * a way a retry cannot fix (e.g. `access_unauthorized`), or when the first round fails.
 */
export async function follow(options: FollowOptions): Promise<void> {
  const { client, paths, signal } = options;
  const wanted = new Set(paths);
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const events = client.watch(commonPrefix(paths), {
    signal,
    onOpen: () => opened(),
    ...(options.onReconnect === undefined
      ? {}
      : { onReconnect: (attempt) => options.onReconnect?.(attempt) }),
  });

  // Pending work: the reason of the next round, if one is due.
  let due: 'start' | 'event' | 'reset' | undefined;
  let running: Promise<void> | undefined;
  let firstRound: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  const first = new Promise<void>((resolve, reject) => {
    firstRound = { resolve, reject };
  });
  const pump = () => {
    if (running !== undefined || due === undefined || signal.aborted) return;
    const reason = due;
    due = undefined;
    running = (async () => {
      try {
        await options.onRound(await readSnapshot(client, paths, signal), reason);
        if (reason === 'start') firstRound?.resolve();
      } catch (error) {
        if (reason === 'start') firstRound?.reject(error);
        else if (!signal.aborted) options.onError(error);
      } finally {
        running = undefined;
        pump();
      }
    })();
  };
  const schedule = (reason: 'start' | 'event' | 'reset') => {
    if (due !== 'start') due = due === 'reset' ? 'reset' : reason;
    pump();
  };

  const consume = (async () => {
    for await (const event of events) {
      if (event.kind === 'reset') schedule('reset');
      else if (wanted.has(event.path)) schedule('event');
    }
  })();
  // Either the stream is up (then the first round runs) or the watch failed for good.
  await Promise.race([open, consume]);
  if (signal.aborted) return;
  schedule('start');
  await Promise.all([first, consume]);
  await running;
}
