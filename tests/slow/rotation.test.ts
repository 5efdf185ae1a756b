/**
 * Rotation end to end (slow suite, ~50 s): the development issuer hands out 30 s X.509-SVIDs and
 * rotates them at half-life (~15 s). A real mTLS server (Nexus identity) and a real mTLS client
 * (Pilot identity), both fed by the Workload API client over the issuer's unix sockets, must get
 * through three server rotations with a steady 20 requests/s and zero failed requests, and a
 * fresh connection after each rotation must see the new server certificate
 * (docs/architecture.md decision 3; docs/spiffe.md §5; src/runtime/tls/*).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { authorizeId, authorizeMemberOf } from '../../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../../src/core/spiffe/types.ts';
import { type DevIssuer, startDevIssuer } from '../../src/dev/issuer.ts';
import { createMtlsClient } from '../../src/runtime/tls/client.ts';
import { createMtlsServer, type MtlsServer } from '../../src/runtime/tls/server.ts';
import { createX509Source } from '../../src/runtime/workload/client.ts';

const NEXUS = 'spiffe://spike.ist/spike/nexus';
const PILOT = 'spiffe://spike.ist/spike/pilot/role/superuser';
const ROTATIONS = 3;
const RATE_PER_SECOND = 20;
/** Hard cap: three rotations at ~15 s each take ~45 s; stop regardless after this. */
const MAX_RUN_MS = 80_000;

describe('SVID rotation under load (development issuer, 30 s SVIDs)', () => {
  let dir: string;
  let issuer: DevIssuer;
  let serverSource: X509Source;
  let clientSource: X509Source;
  let server: MtlsServer;
  let port: number;
  let handled = 0;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spike-rotation-'));
    issuer = await startDevIssuer({
      dir,
      ttlSeconds: 30,
      logger: { info: () => {}, warn: () => {} },
    });
    serverSource = createX509Source({ address: issuer.addressFor('nexus'), timeoutMs: 10_000 });
    clientSource = createX509Source({ address: issuer.addressFor('pilot'), timeoutMs: 10_000 });
    await Promise.all([serverSource.ready(), clientSource.ready()]);
    server = createMtlsServer({
      source: serverSource,
      authorizer: authorizeMemberOf('spike.ist'),
      handler: (request) => {
        handled++;
        return new Response(server.peerOf(request) ?? 'none');
      },
    });
    ({ port } = await server.listen(0));
  });

  afterAll(async () => {
    await server?.close();
    await serverSource?.close();
    await clientSource?.close();
    await issuer?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it(
    `keeps answering ${RATE_PER_SECOND} requests/s across ${ROTATIONS} rotations with zero failures`,
    async () => {
      const baseUrl = `https://127.0.0.1:${port}`;
      const client = createMtlsClient({
        source: clientSource,
        authorizer: authorizeId(NEXUS),
        baseUrl,
      });

      const serverSerials = [serverSource.current()!.svids[0]!.serial];
      const clientSerials = [clientSource.current()!.svids[0]!.serial];
      const seenByFreshClients: string[] = [];
      const checks: Promise<void>[] = [];
      const failures: string[] = [];
      let sent = 0;
      let ok = 0;

      // After each server rotation, a brand-new connection must get the new certificate.
      const checkFreshConnection = async (expected: string) => {
        const fresh = createMtlsClient({
          source: clientSource,
          authorizer: authorizeId(NEXUS),
          baseUrl,
        });
        try {
          const res = await fresh.request('/fresh', { method: 'POST' });
          if (res.status !== 200) failures.push(`fresh connection: status ${res.status}`);
          const serial = fresh.peerCertificateSerial() ?? '';
          seenByFreshClients.push(serial);
          if (serial !== expected) failures.push('fresh connection saw an old certificate');
        } catch (error) {
          failures.push(`fresh connection: ${(error as Error).message}`);
        } finally {
          await fresh.close();
        }
      };
      const offServer = serverSource.onUpdate((context) => {
        const serial = context?.svids[0]?.serial;
        if (serial === undefined) {
          failures.push('server SVID withdrawn');
          return;
        }
        if (serial === serverSerials.at(-1)) return;
        serverSerials.push(serial);
        // Give setSecureContext its turn (it runs in the same listener chain), then connect.
        checks.push(Bun.sleep(50).then(() => checkFreshConnection(serial)));
      });
      const offClient = clientSource.onUpdate((context) => {
        const serial = context?.svids[0]?.serial;
        if (serial !== undefined && serial !== clientSerials.at(-1)) clientSerials.push(serial);
      });

      const inFlight = new Set<Promise<void>>();
      const started = Date.now();
      while (serverSerials.length <= ROTATIONS && Date.now() - started < MAX_RUN_MS) {
        const tickStart = Date.now();
        const n = ++sent;
        const p = client
          .request(`/load/${n}`, { method: 'POST', body: `request ${n}` })
          .then((res) => {
            const body = new TextDecoder().decode(res.body);
            if (res.status === 200 && body === PILOT) ok++;
            else failures.push(`request ${n}: status ${res.status}`);
          })
          .catch((error: unknown) => {
            failures.push(`request ${n}: ${(error as Error).message}`);
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        await Bun.sleep(Math.max(0, 1000 / RATE_PER_SECOND - (Date.now() - tickStart)));
      }
      // Keep the load on for a moment past the last rotation, then drain.
      const tailUntil = Date.now() + 1000;
      while (Date.now() < tailUntil) {
        const n = ++sent;
        const p = client
          .request(`/load/${n}`, { method: 'POST' })
          .then((res) => {
            if (res.status === 200) ok++;
            else failures.push(`request ${n}: status ${res.status}`);
          })
          .catch((error: unknown) => {
            failures.push(`request ${n}: ${(error as Error).message}`);
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        await Bun.sleep(1000 / RATE_PER_SECOND);
      }
      await Promise.all([...inFlight]);
      await Promise.all(checks);
      offServer();
      offClient();
      const elapsed = (Date.now() - started) / 1000;
      await client.close();

      expect(failures).toEqual([]);
      expect(serverSerials.length).toBeGreaterThanOrEqual(ROTATIONS + 1);
      expect(clientSerials.length).toBeGreaterThanOrEqual(ROTATIONS);
      expect(ok).toBe(sent);
      // The load really was ~20/s over the whole window (not a burst).
      expect(sent).toBeGreaterThanOrEqual(Math.floor(elapsed * RATE_PER_SECOND * 0.8));
      expect(handled).toBeGreaterThanOrEqual(sent);
      // Each rotation's fresh connection saw that rotation's certificate.
      expect(seenByFreshClients).toEqual(serverSerials.slice(1));
      // The pooled client moved on to new sessions as its own SVID rotated.
      expect(client.connectionCount()).toBeGreaterThanOrEqual(ROTATIONS);
    },
    MAX_RUN_MS + 30_000,
  );
});
