/**
 * The per-request shortcuts of the secret-get path keep the answers they replace:
 * - role checks remember strict SPIFFE parses per string (src/core/spike/roles.ts), also after
 *   the bounded memo starts over;
 * - the policy engine remembers verdicts per (caller, permissions, path) and forgets them on
 *   every policy change; long inputs are never remembered, and no two inputs share a memo key;
 * - `formatGoTime` keeps its last answer, and matches Go's format for any time;
 * - `readBodyCapped` still caps streamed bodies with no or a lying `Content-Length`;
 * - the app re-checks a peer ID every time until it passes (docs/spike-api.md §2), and trail ids stay
 *   32 random hex digits.
 */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { isSpikeError } from '../src/core/errors.ts';
import { readBodyCapped } from '../src/core/http/body.ts';
import { formatGoTime } from '../src/core/log.ts';
import { createPolicyEngine, type TrustRoots } from '../src/core/policy/engine.ts';
import { isSpiffeId } from '../src/core/spiffe/id.ts';
import { hasRole, roleOf } from '../src/core/spike/roles.ts';
import { createNexusApp } from '../src/nexus/app.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { openStore } from '../src/nexus/store/index.ts';

const TRUST: TrustRoots = {
  nexus: ['spike.ist'],
  keeper: ['spike.ist'],
  bootstrap: ['spike.ist'],
  superuser: ['spike.ist', 'spiffe://other.org'],
  recover: ['spike.ist'],
  restore: ['spike.ist'],
  'lite-workload': ['spike.ist'],
};

describe('role checks with remembered parses', () => {
  it('answer the same on repeat and after more distinct IDs than the memo holds', () => {
    const cases: [string, boolean][] = [
      ['spiffe://spike.ist/spike/pilot/role/superuser', true],
      ['spiffe://other.org/spike/pilot/role/superuser/x', true],
      ['spiffe://spike.ist/spike/pilot/role/superuserx', false],
      ['spiffe://spike.ist/spike/pilot/role/superuser/', false],
      ['spiffe://Spike.ist/spike/pilot/role/superuser', false],
      ['spiffe://spike.ist/spike/pilot/role/../role/superuser', false],
      ['', false],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [id, want] of cases) {
        expect(hasRole(id, 'superuser', TRUST.superuser)).toBe(want);
        // A bad trust-root entry never matches, remembered or not.
        expect(hasRole(id, 'superuser', ['bad/td', 'BAD'])).toBe(false);
      }
      // Push the memo past its bound (it starts over), then check again.
      for (let i = 0; i < 5000; i++) {
        expect(hasRole(`spiffe://spike.ist/w/${round}/${i}`, 'superuser', TRUST.superuser)).toBe(
          false,
        );
      }
    }
    expect(roleOf('spiffe://spike.ist/spike/nexus/1', TRUST)).toBe('nexus');
    expect(roleOf('spiffe://spike.ist/spike/nexus', TRUST)).toBe('nexus');
    expect(roleOf('spiffe://spike.ist/spike/nexu', TRUST)).toBe('workload');
  });

  it('agree with the strict parser on arbitrary strings, asked twice', () => {
    const unit = fc.constantFrom(...'aZ09._-/%:.'.split(''));
    const id = fc
      .array(unit, { maxLength: 30 })
      .map((u) => `spiffe://spike.ist/spike/keeper${u.join('')}`);
    fc.assert(
      fc.property(id, (value) => {
        const first = hasRole(value, 'keeper', ['spike.ist']);
        expect(hasRole(value, 'keeper', ['spike.ist'])).toBe(first);
        if (first) expect(isSpiffeId(value)).toBe(true);
        if (!isSpiffeId(value)) expect(first).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

describe('policy verdicts remembered per caller, permissions and path', () => {
  async function engine() {
    const store = await openStore({ backend: 'memory' });
    return createPolicyEngine({
      store: store.policies(await createStaticRootKeyProvider()),
      trustRoots: TRUST,
    });
  }
  const alice = 'spiffe://spike.ist/workload/alice';

  it('follow every upsert, delete and invalidation', async () => {
    const e = await engine();
    expect(await e.checkAccess(alice, 'app/db', ['read'])).toBe(false);
    await e.upsert({
      name: 'alice',
      spiffeIdPattern: '^spiffe://spike\\.ist/workload/alice$',
      pathPattern: '^app/',
      permissions: ['read'],
    });
    expect(await e.checkAccess(alice, 'app/db', ['read'])).toBe(true);
    expect(await e.checkAccess(alice, 'app/db', ['read'])).toBe(true);
    expect(await e.checkAccess(alice, 'app/db', ['write'])).toBe(false);
    expect(await e.checkAccess(alice, 'other/db', ['read'])).toBe(false);
    await e.upsert({
      name: 'alice',
      spiffeIdPattern: '^spiffe://spike\\.ist/workload/alice$',
      pathPattern: '^other/',
      permissions: ['read', 'write'],
    });
    expect(await e.checkAccess(alice, 'app/db', ['read'])).toBe(false);
    expect(await e.checkAccess(alice, 'other/db', ['read'])).toBe(true);
    expect(await e.checkAccess(alice, 'other/db', ['write'])).toBe(true);
    e.invalidate();
    expect(await e.checkAccess(alice, 'other/db', ['write'])).toBe(true);
    await e.delete('alice');
    expect(await e.checkAccess(alice, 'other/db', ['read'])).toBe(false);
  });

  it('keep inputs apart that plain concatenation would confuse; long inputs still answer', async () => {
    const e = await engine();
    await e.upsert({
      name: 'odd',
      spiffeIdPattern: '^spiffe://spike\\.ist/a$',
      pathPattern: '^read$',
      permissions: ['read'],
    });
    // `spiffe://spike.ist/a` reading `read` is granted; the same characters split differently
    // between caller, permissions and path must not reuse that verdict.
    expect(await e.checkAccess('spiffe://spike.ist/a', 'read', ['read'])).toBe(true);
    expect(await e.checkAccess('spiffe://spike.ist/aread', '', ['read'])).toBe(false);
    expect(await e.checkAccess('spiffe://spike.ist/a', 'readread', ['read'])).toBe(false);
    expect(await e.checkAccess('spiffe://spike.ist/ar', 'ead', ['read'])).toBe(false);
    expect(await e.checkAccess('spiffe://spike.ist/a', 'read', ['write'])).toBe(false);
    await e.upsert({
      name: 'long',
      spiffeIdPattern: '^spiffe://spike\\.ist/a$',
      pathPattern: '^x+$',
      permissions: ['read'],
    });
    const long = 'x'.repeat(5000);
    for (let i = 0; i < 2; i++) {
      expect(await e.checkAccess('spiffe://spike.ist/a', long, ['read'])).toBe(true);
      expect(await e.checkAccess('spiffe://spike.ist/a', `${long}y`, ['read'])).toBe(false);
    }
  });

  it('stay right past the memo bound', async () => {
    const e = await engine();
    await e.upsert({
      name: 'even',
      spiffeIdPattern: '^spiffe://spike\\.ist/w$',
      pathPattern: '^p/[0-9]*[02468]$',
      permissions: ['read'],
    });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i++) {
        expect(await e.checkAccess('spiffe://spike.ist/w', `p/${i}`, ['read'])).toBe(i % 2 === 0);
      }
    }
  });
});

describe('formatGoTime', () => {
  /** The reference: Go drops trailing zeros of the fraction, and the fraction when it is 0. */
  const reference = (d: Date) =>
    d.toISOString().replace(/\.(\d*?)0+Z$/, (_, kept: string) => (kept === '' ? 'Z' : `.${kept}Z`));

  it('matches the reference for any time, asked once or twice in a row', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
        const d = new Date(ms);
        expect(formatGoTime(d)).toBe(reference(d));
        expect(formatGoTime(new Date(ms))).toBe(reference(d));
      }),
      { numRuns: 2000 },
    );
    for (const ms of [0, 1, 10, 100, 120, 123, 999, 1000, -1, -10, -990]) {
      expect(formatGoTime(new Date(ms))).toBe(reference(new Date(ms)));
    }
    expect(formatGoTime(new Date(Date.UTC(2026, 6, 25, 20, 37, 48, 120)))).toBe(
      '2026-07-25T20:37:48.12Z',
    );
    expect(formatGoTime(new Date(Date.UTC(2026, 6, 25, 20, 37, 48)))).toBe('2026-07-25T20:37:48Z');
  });

  it('still refuses an invalid date, even right after a valid one', () => {
    formatGoTime(new Date(0));
    expect(() => formatGoTime(new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe('readBodyCapped', () => {
  const streamOf = (...chunks: Uint8Array[]) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(c);
        controller.close();
      },
    });
  const requestOf = (body: ReadableStream<Uint8Array> | string, headers: HeadersInit = {}) =>
    new Request('http://localhost/x', {
      method: 'POST',
      body,
      headers,
      duplex: 'half',
    } as RequestInit);
  const refused = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (error) {
      return isSpikeError(error) && error.code === 'api_bad_request';
    }
    return false;
  };

  it('joins chunks up to the cap and consumes the body', async () => {
    const request = requestOf(streamOf(Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4)));
    expect(await readBodyCapped(request, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(request.bodyUsed).toBe(true);
    await expect(request.arrayBuffer()).rejects.toThrow();
  });

  it('refuses a streamed body past the cap without, or despite, a Content-Length', async () => {
    const big = () => streamOf(new Uint8Array(3), new Uint8Array(3));
    expect(await refused(readBodyCapped(requestOf(big()), 5))).toBe(true);
    // A declared length under the cap does not let more through.
    expect(await refused(readBodyCapped(requestOf(big(), { 'content-length': '2' }), 5))).toBe(
      true,
    );
    expect(await refused(readBodyCapped(requestOf('abcdef'), 5))).toBe(true);
    expect(await readBodyCapped(requestOf('abcde'), 5)).toEqual(new TextEncoder().encode('abcde'));
  });
});

describe('the app on the get path', () => {
  async function app(peer: () => string) {
    const keys = await createStaticRootKeyProvider();
    const store = await openStore({ backend: 'memory' });
    const audit: string[] = [];
    const secrets = store.secrets(keys);
    await secrets.put('app/db', { user: 'u' });
    const nexus = createNexusApp({
      secrets,
      policies: store.policies(keys),
      keys,
      backend: 'memory',
      trustRoots: TRUST,
      maxBodyBytes: 1024,
      maxCipherBytes: 1024,
      audit: (line) => audit.push(line),
      peerOf: peer,
    });
    const get = async () => {
      const r = await nexus.handle(
        new Request('http://localhost/v1/store/secrets?action=get', {
          method: 'POST',
          body: '{"path":"app/db"}',
        }),
      );
      return { status: r.status, text: await r.text() };
    };
    return { get, audit };
  }

  it('re-checks a failing peer ID on every request; a passing one keeps passing', async () => {
    let id = 'spiffe://spike.ist/spike/pilot/role/superuser/../x';
    const f = await app(() => id);
    for (let i = 0; i < 3; i++) expect((await f.get()).status).toBe(401);
    id = 'spiffe://spike_ist/spike/pilot/role/superuser';
    for (let i = 0; i < 3; i++) expect((await f.get()).status).toBe(401);
    id = 'spiffe://spike.ist/spike/pilot/role/superuser';
    for (let i = 0; i < 3; i++) {
      expect(await f.get()).toEqual({ status: 200, text: '{"data":{"user":"u"},"version":1}' });
    }
    const trails = f.audit.map((line) => JSON.parse(line).trail as string);
    for (const trail of trails) expect(trail).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(trails).size).toBe(trails.length);
  });
});
