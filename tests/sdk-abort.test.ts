/**
 * Cancellation (issue 15 criterion 5): every SDK call takes an `AbortSignal`; an aborted call
 * sends nothing more and its retries stop at once. Against a real in-process Nexus over mTLS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createClient, type SpikeClient } from '../src/sdk/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';
import { freePort } from './support/process.ts';

let nexus: NexusHarness;
let spike: SpikeClient;

beforeAll(async () => {
  nexus = await startNexusHarness();
  spike = await createClient({
    socket: nexus.issuer.addressFor('pilot'),
    apiUrl: nexus.url,
    nexusTrustDomains: ['spike.ist'],
  });
  await spike.putSecret('apps/abort/db', { pass: 'x' });
}, 60_000);

afterAll(async () => {
  await spike?.close();
  await nexus?.stop();
});

describe('AbortSignal on SDK calls', () => {
  it('a live signal changes nothing', async () => {
    const { data } = await spike.getSecret('apps/abort/db', {
      signal: new AbortController().signal,
    });
    expect(data).toEqual({ pass: 'x' });
  });

  it('an aborted signal rejects with its reason and sends no request', async () => {
    const before = nexus.audit.length;
    const controller = new AbortController();
    controller.abort();
    const calls: Promise<unknown>[] = [
      spike.getSecret('apps/abort/db', controller),
      spike.putSecret('apps/abort/db', { pass: 'y' }, controller),
      spike.listSecretKeys(controller),
      spike.deleteSecret('apps/abort/db', [], controller),
      spike.getPolicy('none', controller),
      spike.listPolicies({}, controller),
      spike.encrypt(new Uint8Array([1]), controller),
      spike.encryptJson(new Uint8Array([1]), { signal: controller.signal }),
      spike.recover(controller),
      spike.ready(controller),
    ];
    for (const call of calls) {
      const error = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as Error | undefined)?.name).toBe('AbortError');
    }
    expect(nexus.audit.length).toBe(before);
    expect((await spike.getSecret('apps/abort/db')).data).toEqual({ pass: 'x' });
  });

  it('stops retrying as soon as the signal aborts', async () => {
    const port = await freePort(); // nothing listens: every try fails and is retried
    const offline = await createClient({
      socket: nexus.issuer.addressFor('pilot'),
      apiUrl: `https://127.0.0.1:${port}`,
      nexusTrustDomains: ['spike.ist'],
      retry: { attempts: 10, initialMs: 2000, maxMs: 4000 },
    });
    try {
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(), 300);
      const error = await offline.getSecret('apps/abort/db', controller).then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = performance.now() - started;
      expect((error as Error | undefined)?.name).toBe('AbortError');
      // Ten tries with 1–4 s pauses would take well over 10 s; aborted, it ends at once.
      expect(elapsed).toBeLessThan(1800);
    } finally {
      await offline.close();
    }
  });
});
