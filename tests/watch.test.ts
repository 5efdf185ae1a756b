/**
 * Watch streams over real sockets and real mTLS (issue 14; docs/spike-api.md "Watch"): an
 * in-process Nexus (tests/support/nexus-harness.ts) on the memory and SQLite backends, watched by
 * a raw HTTP/2 or HTTP/1.1 SSE client (tests/support/watch-client.ts), never the SDK.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { authorizeAny } from '../src/core/spiffe/authorizer.ts';
import type { X509Source } from '../src/core/spiffe/types.ts';
import { createMtlsClient, type MtlsClient } from '../src/runtime/tls/client.ts';
import { type NexusHarness, startNexusHarness } from './support/nexus-harness.ts';
import { openWatch, sourceFor } from './support/watch-client.ts';

const APP = 'spiffe://spike.ist/workload/app';
const NOBODY = 'spiffe://spike.ist/workload/nobody';

for (const backend of ['memory', 'sqlite'] as const) {
  describe(`watch over mTLS (${backend})`, () => {
    let h: NexusHarness;
    let pilot: X509Source;
    let app: X509Source;
    let nobody: X509Source;
    let admin: MtlsClient;

    const post = async (client: MtlsClient, path: string, body: unknown) => {
      const r = await client.request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: r.status, json: JSON.parse(new TextDecoder().decode(r.body) || 'null') };
    };
    const put = (path: string, k = 'v') =>
      post(admin, '/v1/store/secrets', { path, values: { k } }).then((r) =>
        expect(r.status).toBe(200),
      );

    beforeAll(async () => {
      h = await startNexusHarness({
        backend,
        watchHeartbeatMs: 200,
        watchRetentionMs: 1500,
        extraWorkloads: { app: APP, nobody: NOBODY },
      });
      pilot = await sourceFor(h.issuer.addressFor('pilot'));
      app = await sourceFor(h.issuer.addressFor('app'));
      nobody = await sourceFor(h.issuer.addressFor('nobody'));
      admin = createMtlsClient({
        source: pilot,
        authorizer: authorizeAny(),
        baseUrl: h.url,
        timeoutMs: 10_000,
      });
      const policy = await post(admin, '/v1/acl/policy', {
        name: 'app-reads-app',
        spiffeidPattern: `^${APP}$`,
        pathPattern: '^app/.*$',
        permissions: ['read'],
      });
      expect(policy.status).toBe(200);
    });

    afterAll(async () => {
      await admin.close();
      await Promise.all([pilot, app, nobody].map((s) => s.close()));
      await h.stop();
    });

    for (const protocol of ['h2', 'h1'] as const) {
      test(`events stream in order, one frame each, promptly (${protocol})`, async () => {
        const w = await openWatch(h.url, pilot, { prefix: `${protocol}/` }, { protocol });
        expect(w.status).toBe(200);
        expect(String(w.headers['content-type'])).toStartWith('text/event-stream');
        expect(w.headers['cache-control']).toBe('no-store');
        await w.waitForComment('watching');
        await put(`${protocol}/a`);
        // Each event arrives before the next write: the transport flushes per event.
        const first = await w.waitForEvents(1);
        await put(`${protocol}/b`);
        await put(`${protocol}-elsewhere/x`); // outside the prefix
        await post(admin, '/v1/store/secrets?action=delete', {
          path: `${protocol}/a`,
          versions: [],
        });
        await post(admin, '/v1/store/secrets?action=undelete', {
          path: `${protocol}/a`,
          versions: [1],
        });
        await post(admin, '/v1/store/secrets?action=destroy', {
          path: `${protocol}/b`,
          versions: [1],
        });
        await post(admin, '/v1/store/secrets?action=purge', { path: `${protocol}/b` });
        const events = await w.waitForEvents(6);
        expect(first[0]!.data).toMatchObject({ path: `${protocol}/a`, version: 1, kind: 'put' });
        expect(events.map((e) => [e.data.path, e.data.kind, e.data.version])).toEqual([
          [`${protocol}/a`, 'put', 1],
          [`${protocol}/b`, 'put', 1],
          [`${protocol}/a`, 'delete', 1],
          [`${protocol}/a`, 'undelete', 1],
          [`${protocol}/b`, 'destroy', 1],
          [`${protocol}/b`, 'purge', 0],
        ]);
        const seqs = events.map((e) => e.data.seq);
        expect(seqs.map(String)).toEqual(events.map((e) => e.id));
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
        expect(events.every((e) => e.event === 'change')).toBe(true);
        expect(Number.isNaN(Date.parse(events[0]!.data.time))).toBe(false);
        // No value ever travels on the stream.
        expect(JSON.stringify(events)).not.toContain('"k"');
        w.close();
      });
    }

    test('heartbeats keep an idle stream alive', async () => {
      const w = await openWatch(h.url, pilot, { prefix: 'idle/' });
      await w.waitForComment('heartbeat', 5000);
      const before = w.comments.filter((c) => c === 'heartbeat').length;
      await Bun.sleep(700);
      expect(w.comments.filter((c) => c === 'heartbeat').length).toBeGreaterThan(before);
      expect(w.events).toEqual([]);
      w.close();
    });

    test('a caller sees only events of paths it may read', async () => {
      const mine = await openWatch(h.url, app, { prefix: '' });
      expect(mine.status).toBe(200);
      await mine.waitForComment('watching');
      await put('secret-elsewhere/x');
      await put('app/visible');
      await post(admin, '/v1/acl/policy', {
        name: 'another',
        spiffeidPattern: '^spiffe://spike.ist/none$',
        pathPattern: '^none$',
        permissions: ['read'],
      });
      await put('secret-elsewhere/y');
      await put('app/visible', 'two');
      const seen = await mine.waitForEvents(2);
      await Bun.sleep(300);
      expect(mine.events.map((e) => [e.data.path, e.data.version])).toEqual([
        ['app/visible', 1],
        ['app/visible', 2],
      ]);
      expect(seen.length).toBe(2);
      mine.close();
      // The superuser sees everything, policy events included (their path: the policy name).
      const all = await openWatch(h.url, pilot, { prefix: '' });
      await all.waitForComment('watching');
      await put('secret-elsewhere/z');
      await post(admin, '/v1/acl/policy?action=delete', { id: 'another' });
      const both = await all.waitForEvents(2);
      expect(both.map((e) => [e.data.path, e.data.kind])).toEqual([
        ['secret-elsewhere/z', 'put'],
        ['another', 'policy'],
      ]);
      all.close();
      // An identity with no read grant anywhere may not watch at all.
      const denied = await openWatch(h.url, nobody, { prefix: 'app/' });
      expect(denied.status).toBe(401);
    });

    test('resume with Last-Event-ID loses nothing and repeats nothing', async () => {
      const w = await openWatch(h.url, pilot, { prefix: 'resume/' });
      await w.waitForComment('watching');
      await put('resume/a');
      const [a] = await w.waitForEvents(1);
      w.close();
      await w.ended;
      await put('resume/b');
      await put('resume/c');
      const again = await openWatch(h.url, pilot, { prefix: 'resume/' }, { lastEventId: a!.id });
      const missed = await again.waitForEvents(2);
      expect(missed.map((e) => e.data.path)).toEqual(['resume/b', 'resume/c']);
      await put('resume/d');
      await again.waitForEvents(3);
      expect(again.events.map((e) => e.data.path)).toEqual(['resume/b', 'resume/c', 'resume/d']);
      again.close();
      // `after` in the body means the same.
      const body = await openWatch(h.url, pilot, { prefix: 'resume/', after: Number(a!.id) });
      await body.waitForEvents(3);
      expect(body.events[0]!.data.path).toBe('resume/b');
      body.close();
    });

    test('a cursor older than the retention window is refused with 410', async () => {
      const w = await openWatch(h.url, pilot, { prefix: 'expire/' });
      await w.waitForComment('watching');
      await put('expire/a');
      await put('expire/a2');
      const [first] = await w.waitForEvents(2);
      w.close();
      // Retention 1.5 s, pruned every ~375 ms: the old entries go, the head entry stays, so the
      // event after `first` (expire/a2) is gone.
      await Bun.sleep(2500);
      await put('expire/b');
      await Bun.sleep(1000);
      const old = await openWatch(h.url, pilot, { prefix: '' }, { lastEventId: first!.id });
      expect(old.status).toBe(410);
      await old.ended;
      expect(JSON.parse(old.text)).toEqual({ err: 'watch_cursor_expired' });
      const future = await openWatch(h.url, pilot, { prefix: '' }, { lastEventId: '999999' });
      expect(future.status).toBe(410);
      const bad = await openWatch(h.url, pilot, { prefix: '' }, { lastEventId: 'x1' });
      expect(bad.status).toBe(400);
      const badPrefix = await openWatch(h.url, pilot, { prefix: 'no spaces' });
      expect(badPrefix.status).toBe(400);
    });

    test('conditional get: ifNewerThan answers notModified without data', async () => {
      await put('cond/a', 'one');
      const current = await post(admin, '/v1/store/secrets?action=get', { path: 'cond/a' });
      expect(current.json).toEqual({ data: { k: 'one' }, version: 1 });
      const same = await post(admin, '/v1/store/secrets?action=get', {
        path: 'cond/a',
        ifNewerThan: 1,
      });
      expect(same.json).toEqual({ notModified: true, version: 1 });
      await put('cond/a', 'two');
      const newer = await post(admin, '/v1/store/secrets?action=get', {
        path: 'cond/a',
        ifNewerThan: 1,
      });
      expect(newer.json).toEqual({ data: { k: 'two' }, version: 2 });
    });
  });
}
