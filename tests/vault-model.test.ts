/**
 * Property test of docs/vault-kv2.md §4 (criterion 2): random sequences of operations through BOTH
 * APIs (the Vault handler and the SPIKE app, in process, on one store) compared after every step
 * with a model of the per-path record: version numbers never reused, effective max_versions and
 * oldest_version, delete/undelete/destroy, check-and-set, merge patch, metadata delete, and the
 * SPIKE view (§4.1: current = highest live version, non-string values as JSON text).
 */
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createTestbed, type Testbed } from './support/vault-testbed.ts';

type Data = Record<string, string | number>;
interface MVersion {
  data: Data | null;
  /** Epoch ms; a future time is a scheduled deletion (§4.3). */
  deletedAt: number | null;
  destroyed: boolean;
}
interface MRecord {
  latest: number;
  oldest: number;
  keyMax: number;
  /** Key `delete_version_after`, ms. */
  keyDva: number;
  /** Key `cas_required`. */
  keyCas: boolean;
  versions: Map<number, MVersion>;
}
interface Model {
  readonly paths: Map<string, MRecord>;
  mountMax: number;
  mountCas: boolean;
  now: number;
}

const PATHS = ['a', 'a/b', 'c'];
const DEFAULT_MAX = 10;

type Op =
  | { t: 'vput'; p: string; data: Data; cas: 'none' | 'good' | 'bad' }
  | { t: 'sput'; p: string; data: Record<string, string> }
  | { t: 'vpatch'; p: string; data: Data }
  | { t: 'vdel'; p: string }
  | { t: 'vdelv' | 'undel' | 'destroy'; p: string; vs: number[] }
  | { t: 'sdel'; p: string }
  | { t: 'max'; p: string; n: number }
  | { t: 'dva'; p: string; s: number }
  | { t: 'mmax'; n: number }
  | { t: 'kcas'; p: string; on: boolean }
  | { t: 'mcas'; on: boolean }
  | { t: 'tick'; s: number }
  | { t: 'purge'; p: string };

const path = fc.constantFrom(...PATHS);
const data = fc.dictionary(
  fc.constantFrom('k', 'l', 'm'),
  fc.oneof(fc.string({ maxLength: 3 }), fc.integer()),
  {
    minKeys: 1,
  },
);
const strData = fc.dictionary(fc.constantFrom('k', 'l'), fc.string({ maxLength: 3 }), {
  minKeys: 1,
});
const versions = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('vput' as const),
      p: path,
      data,
      cas: fc.constantFrom('none' as const, 'good' as const, 'bad' as const),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('sput' as const), p: path, data: strData }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('vpatch' as const), p: path, data }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('vdel' as const), p: path }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constantFrom('vdelv' as const, 'undel' as const, 'destroy' as const),
      p: path,
      vs: versions,
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sdel' as const), p: path }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('max' as const),
      p: path,
      n: fc.integer({ min: 0, max: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('purge' as const), p: path }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('dva' as const),
      p: path,
      s: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('mmax' as const), n: fc.integer({ min: 0, max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('kcas' as const), p: path, on: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('mcas' as const), on: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('tick' as const), s: fc.integer({ min: 0, max: 3 }) }),
  },
);

function record(m: Model, p: string): MRecord {
  let r = m.paths.get(p);
  if (r === undefined) {
    r = { latest: 0, oldest: 0, keyMax: 0, keyDva: 0, keyCas: false, versions: new Map() };
    m.paths.set(p, r);
  }
  return r;
}

function modelWrite(m: Model, p: string, d: Data): void {
  const r = record(m, p);
  r.latest += 1;
  const deletedAt = r.keyDva > 0 ? m.now + r.keyDva : null;
  r.versions.set(r.latest, { data: { ...d }, deletedAt, destroyed: false });
  const eff = Math.max(r.keyMax, m.mountMax);
  const max = eff > 0 ? eff : DEFAULT_MAX;
  if (r.latest - r.oldest >= max) {
    const cut = r.latest - max;
    for (const n of [...r.versions.keys()]) if (n <= cut) r.versions.delete(n);
    r.oldest = cut + 1;
  }
}

/** `cas_required` on the mount or the key (docs/vault-kv2.md §4.4). */
const casRequired = (m: Model, r: MRecord | undefined) => m.mountCas || r?.keyCas === true;

let clockNow = 0;
const isDeleted = (v: MVersion) => v.deletedAt !== null && v.deletedAt <= clockNow;
const live = (v: MVersion) => !isDeleted(v) && !v.destroyed;

function mergePatch(target: Data, patch: Data): Data {
  return { ...target, ...patch };
}

async function apply(tb: Testbed, m: Model, o: Op): Promise<void> {
  clockNow = m.now;
  const r = 'p' in o ? m.paths.get(o.p) : undefined;
  switch (o.t) {
    case 'vput': {
      const latest = r?.latest ?? 0;
      const cas = o.cas === 'none' ? undefined : o.cas === 'good' ? latest : latest + 1;
      const res = await tb.vault('POST', `/v1/secret/data/${o.p}`, {
        body: { data: o.data, ...(cas === undefined ? {} : { options: { cas } }) },
      });
      if (o.cas === 'none' && casRequired(m, r)) {
        expect([res.status, res.json.errors]).toEqual([
          400,
          ['check-and-set parameter required for this call'],
        ]);
        return;
      }
      if (o.cas === 'bad') {
        expect(res.status).toBe(400);
        expect(res.json.errors).toEqual([
          'check-and-set parameter did not match the current version',
        ]);
        return;
      }
      expect(res.status).toBe(200);
      modelWrite(m, o.p, o.data);
      expect(res.json.data.version).toBe(m.paths.get(o.p)!.latest);
      return;
    }
    case 'sput': {
      const res = await tb.spike('/v1/store/secrets', { path: o.p, values: o.data });
      // docs/vault-kv2.md §4.4: a SPIKE put has no cas, so cas_required refuses it.
      if (casRequired(m, r)) {
        expect([res.status, res.json.err]).toEqual([400, 'api_bad_request']);
        return;
      }
      expect(res.status).toBe(200);
      modelWrite(m, o.p, o.data);
      return;
    }
    case 'vpatch': {
      const res = await tb.vault('PATCH', `/v1/secret/data/${o.p}`, { body: { data: o.data } });
      const cur = r?.versions.get(r.latest);
      if (r === undefined || r.latest === 0) {
        expect([res.status, res.text]).toEqual([404, '{"errors":[]}']);
      } else if (casRequired(m, r)) {
        expect([res.status, res.json.errors]).toEqual([
          400,
          ['check-and-set parameter required for this call'],
        ]);
      } else if (cur === undefined) {
        expect([res.status, res.text]).toEqual([404, '{"errors":[]}']);
      } else if (!live(cur)) {
        expect(res.status).toBe(404);
        expect(res.json.data.metadata.version).toBe(r.latest);
      } else {
        expect(res.status).toBe(200);
        modelWrite(m, o.p, mergePatch(cur.data!, o.data));
      }
      return;
    }
    case 'vdel': {
      expect((await tb.vault('DELETE', `/v1/secret/data/${o.p}`)).status).toBe(204);
      const v = r?.versions.get(r.latest);
      if (v !== undefined && live(v)) v.deletedAt = m.now;
      return;
    }
    case 'vdelv':
    case 'undel':
    case 'destroy': {
      const route = o.t === 'vdelv' ? 'delete' : o.t === 'undel' ? 'undelete' : 'destroy';
      const res = await tb.vault('POST', `/v1/secret/${route}/${o.p}`, {
        body: { versions: o.vs },
      });
      expect(res.status).toBe(204);
      for (const n of o.vs) {
        const v = r?.versions.get(n);
        if (v === undefined || v.destroyed) continue;
        if (o.t === 'vdelv') {
          if (!isDeleted(v)) v.deletedAt = m.now;
        } else if (o.t === 'undel') v.deletedAt = r!.keyDva > 0 ? m.now + r!.keyDva : null;
        else {
          v.destroyed = true;
          v.data = null;
        }
      }
      return;
    }
    case 'sdel': {
      // SPIKE delete of the current version = the highest live one (docs/spike-api.md §6).
      const res = await tb.spike('/v1/store/secrets?action=delete', { path: o.p, versions: [] });
      if (r === undefined) {
        expect(res.status).toBe(404);
        return;
      }
      expect(res.status).toBe(200);
      const cur = Math.max(0, ...[...r.versions].filter(([, v]) => live(v)).map(([n]) => n));
      if (cur > 0) r.versions.get(cur)!.deletedAt = m.now;
      return;
    }
    case 'max': {
      expect(
        (await tb.vault('POST', `/v1/secret/metadata/${o.p}`, { body: { max_versions: o.n } }))
          .status,
      ).toBe(204);
      record(m, o.p).keyMax = o.n;
      return;
    }
    case 'purge': {
      expect((await tb.vault('DELETE', `/v1/secret/metadata/${o.p}`)).status).toBe(204);
      m.paths.delete(o.p);
      return;
    }
    case 'dva': {
      const body = { delete_version_after: `${o.s}s` };
      expect((await tb.vault('POST', `/v1/secret/metadata/${o.p}`, { body })).status).toBe(204);
      record(m, o.p).keyDva = o.s * 1000;
      return;
    }
    case 'mmax': {
      const body = { max_versions: o.n };
      expect((await tb.vault('POST', '/v1/secret/config', { body })).status).toBe(204);
      m.mountMax = o.n;
      return;
    }
    case 'kcas': {
      const body = { cas_required: o.on };
      const res = await tb.vault('POST', `/v1/secret/metadata/${o.p}`, { body });
      // false under a mount that requires CAS: accepted with a warning (§4.4).
      expect(res.status).toBe(!o.on && m.mountCas ? 200 : 204);
      record(m, o.p).keyCas = o.on;
      return;
    }
    case 'mcas': {
      const body = { cas_required: o.on };
      expect((await tb.vault('POST', '/v1/secret/config', { body })).status).toBe(204);
      m.mountCas = o.on;
      return;
    }
    case 'tick': {
      m.now += o.s * 1000;
      tb.now.ms = m.now;
      return;
    }
  }
}

const asSpike = (d: Data) =>
  Object.fromEntries(
    Object.entries(d).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );

async function check(tb: Testbed, m: Model): Promise<void> {
  clockNow = m.now;
  for (const p of PATHS) {
    const r = m.paths.get(p);
    const meta = await tb.vault('GET', `/v1/secret/metadata/${p}`);
    if (r === undefined) {
      expect(meta.status).toBe(404);
      expect((await tb.vault('GET', `/v1/secret/data/${p}`)).status).toBe(404);
      continue;
    }
    expect(meta.status).toBe(200);
    expect(meta.json.data.current_version).toBe(r.latest);
    expect(meta.json.data.oldest_version).toBe(r.oldest);
    const got = Object.entries(
      meta.json.data.versions as Record<string, { destroyed: boolean; deletion_time: string }>,
    ).map(([n, v]) => [Number(n), v.destroyed, v.deletion_time]);
    const want = [...r.versions]
      .sort(([a], [b]) => a - b)
      .map(([n, v]) => [
        n,
        v.destroyed,
        v.deletedAt === null ? '' : new Date(v.deletedAt).toISOString(),
      ]);
    expect(got).toEqual(want);
    const latest = await tb.vault('GET', `/v1/secret/data/${p}`);
    const lv = r.versions.get(r.latest);
    if (lv === undefined) expect(latest.text).toBe('{"errors":[]}');
    else if (!live(lv)) {
      expect(latest.status).toBe(404);
      expect(latest.json.data.data).toBeNull();
    } else expect(latest.json.data.data).toEqual(lv.data);
    const liveOnes = [...r.versions].filter(([, v]) => live(v)).map(([n]) => n);
    const spike = await tb.spike('/v1/store/secrets?action=get', { path: p });
    if (liveOnes.length === 0) expect(spike.status).toBe(404);
    else expect(spike.json.data).toEqual(asSpike(r.versions.get(Math.max(...liveOnes))!.data!));
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('both APIs against a model (docs/vault-kv2.md §4)', () => {
  for (const [backend, runs] of [
    ['memory', 60],
    ['sqlite', 12],
  ] as const) {
    it(`random operation sequences on ${backend}`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { minLength: 10, maxLength: 40, size: 'max' }),
          async (ops) => {
            const dataDir = mkdtempSync(join(tmpdir(), 'spike-vault-model-'));
            dirs.push(dataDir);
            const tb = await createTestbed({ backend, dataDir });
            try {
              const m: Model = { paths: new Map(), mountMax: 0, mountCas: false, now: tb.now.ms };
              for (const o of ops) {
                await apply(tb, m, o);
                await check(tb, m);
              }
            } finally {
              await tb.close();
            }
          },
        ),
        { numRuns: runs },
      );
    }, 120_000);
  }
});
