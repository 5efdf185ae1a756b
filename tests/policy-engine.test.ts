/**
 * Policy validation (docs/spike-api.md §5) and the policy engine (§7): RE2 search semantics checked
 * against re2js itself and against JavaScript's RegExp where both agree, the reserved-path guard,
 * superuser and lite-workload rules, the compiled-policy cache, and linear time on a hostile
 * pattern.
 */
import { describe, expect, it } from 'bun:test';
import fc from 'fast-check';
import { RE2JS } from 're2js';
import { isSpikeError } from '../src/core/errors.ts';
import {
  ACL_PATH,
  CIPHER_EXEC_PATH,
  checkReservedOnPut,
  compilePolicy,
  createPolicyEngine,
  PROBE_VALUE,
  passesReservedGuard,
  policyAllows,
  RESERVED_PATHS,
  SECRET_LIST_PATH,
  type TrustRoots,
} from '../src/core/policy/engine.ts';
import {
  isValidName,
  isValidSecretPath,
  type PolicyInput,
  utf8ByteLength,
  VALIDATION_PATTERNS,
  validatePathPattern,
  validatePermissions,
  validatePolicyInput,
  validateSpiffeIdPattern,
} from '../src/core/policy/validate.ts';
import type { PolicyStore } from '../src/core/ports.ts';
import { createStaticRootKeyProvider } from '../src/nexus/root-key/providers.ts';
import { openStore } from '../src/nexus/store/index.ts';

/** The real in-memory store, with a count of `list()` calls to prove the engine caches. */
async function createPolicies(): Promise<PolicyStore & { listCalls(): number }> {
  const store = await openStore({ backend: 'memory' });
  const policies = store.policies(await createStaticRootKeyProvider());
  let calls = 0;
  return {
    ...policies,
    list: () => {
      calls++;
      return policies.list();
    },
    listCalls: () => calls,
  };
}

const TRUST: TrustRoots = {
  nexus: ['spike.ist'],
  keeper: ['spike.ist'],
  bootstrap: ['spike.ist'],
  superuser: ['spike.ist'],
  recover: ['spike.ist'],
  restore: ['spike.ist'],
  'lite-workload': ['spike.ist'],
};

const APP = 'spiffe://spike.ist/app/billing';
const SUPERUSER = 'spiffe://spike.ist/spike/pilot/role/superuser';
const LITE = 'spiffe://spike.ist/spike/workload/role/lite';

function policy(over: Partial<PolicyInput> = {}): PolicyInput {
  return {
    name: 'p',
    spiffeIdPattern: '^spiffe://spike\\.ist/app/.*$',
    pathPattern: '^tenants/.*$',
    permissions: ['read'],
    ...over,
  };
}

function badRequest(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(isSpikeError(error) && error.code).toBe('api_bad_request');
    return;
  }
  throw new Error('expected api_bad_request');
}

describe('validation (§5)', () => {
  it('keeps the exact upstream regular expressions', () => {
    expect(VALIDATION_PATTERNS.path).toBe('^[a-zA-Z0-9._\\-/()?+*|[\\]{}\\\\]+$');
    expect(VALIDATION_PATTERNS.name).toBe('^[a-zA-Z0-9-_ ]+$');
    expect(VALIDATION_PATTERNS.spiffeid).toBe(
      '^\\^?spiffe://[\\\\a-zA-Z0-9.\\-*()+?\\[\\]]+(/[\\\\/a-zA-Z0-9._\\-*()+?\\[\\]]+)*\\$?$',
    );
    expect(VALIDATION_PATTERNS.pathPattern).toBe('^[a-zA-Z0-9._\\-/^$()?+*|[\\]{}\\\\]+$');
  });

  it('secret paths: allowed characters, 1-500 bytes', () => {
    for (const ok of ['a', 'db/creds', 'x.y_z-1/(a)?+*|[b]{c}\\', 'p'.repeat(500)]) {
      expect(isValidSecretPath(ok)).toBe(true);
    }
    for (const bad of ['', 'p'.repeat(501), 'a b', 'a$b', 'é', 'a\nb', 'a:b', 'a^b']) {
      expect(isValidSecretPath(bad)).toBe(false);
    }
  });

  it('names: letters, digits, -, _ and space, 1-250 bytes', () => {
    for (const ok of ['admin', 'read only', 'a-b_c', 'n'.repeat(250)]) {
      expect(isValidName(ok)).toBe(true);
    }
    for (const bad of ['', 'n'.repeat(251), 'a.b', 'a/b', 'ümlaut', 'a\tb']) {
      expect(isValidName(bad)).toBe(false);
    }
  });

  it('counts UTF-8 bytes, not UTF-16 units', () => {
    expect(utf8ByteLength('aé€😀')).toBe(1 + 2 + 3 + 4);
    expect(utf8ByteLength('\uD800')).toBe(3);
  });

  it('SPIFFE ID patterns: the spiffeid regex and RE2 compilation', () => {
    for (const ok of [
      'spiffe://spike.ist/app',
      '^spiffe://spike\\.ist/app/.*$',
      'spiffe://[a-z]+/x',
      '^spiffe://example.org/(web)?$',
    ]) {
      expect(validateSpiffeIdPattern(ok)).toBe(ok);
    }
    badRequest(() => validateSpiffeIdPattern(''));
    badRequest(() => validateSpiffeIdPattern('.*'));
    badRequest(() => validateSpiffeIdPattern('https://x/y'));
    // `|` is not in the spiffeid character set, so no alternation in SPIFFE patterns [U].
    badRequest(() => validateSpiffeIdPattern('^spiffe://example.org/(web|api)$'));
    // Passes the character regex but is not RE2: unbalanced group.
    badRequest(() => validateSpiffeIdPattern('spiffe://x/(a'));
  });

  it('path patterns: regex, 1-500 bytes, RE2 compilation', () => {
    expect(validatePathPattern('^secrets/(db|cache)/.*$')).toBe('^secrets/(db|cache)/.*$');
    badRequest(() => validatePathPattern(''));
    badRequest(() => validatePathPattern('a'.repeat(501)));
    badRequest(() => validatePathPattern('a b'));
    badRequest(() => validatePathPattern('a++'));
    badRequest(() => validatePathPattern('(a'));
    badRequest(() => validatePathPattern('a{1001}'));
  });

  it('permissions: non-empty, known names only', () => {
    expect(validatePermissions(['read', 'super'])).toEqual(['read', 'super']);
    badRequest(() => validatePermissions([]));
    badRequest(() => validatePermissions(null));
    badRequest(() => validatePermissions(['read', 'admin']));
    badRequest(() => validatePermissions(['READ']));
  });

  it('never repeats the rejected value in the message', () => {
    const secret = 'hunter2 my password';
    try {
      validatePolicyInput({
        name: `${secret}!`,
        spiffeIdPattern: '',
        pathPattern: '',
        permissions: [],
      });
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(secret);
      return;
    }
    throw new Error('expected a failure');
  });
});

describe('matching semantics (§7)', () => {
  it('patterns match somewhere (unanchored), ^…$ anchors', () => {
    const open = compilePolicy(
      policy({ spiffeIdPattern: 'spiffe://spike.ist/', pathPattern: 'tenants/' }),
    );
    expect(policyAllows(open, APP, 'x/tenants/y', ['read'])).toBe(true);
    const anchored = compilePolicy(policy({ pathPattern: '^tenants/$' }));
    expect(policyAllows(anchored, APP, 'x/tenants/', ['read'])).toBe(false);
    expect(policyAllows(anchored, APP, 'tenants/', ['read'])).toBe(true);
  });

  it('permissions must include every wanted one, or super', () => {
    const rw = compilePolicy(policy({ permissions: ['read', 'write'] }));
    expect(policyAllows(rw, APP, 'tenants/a', ['read'])).toBe(true);
    expect(policyAllows(rw, APP, 'tenants/a', ['read', 'write'])).toBe(true);
    expect(policyAllows(rw, APP, 'tenants/a', ['list'])).toBe(false);
    const sup = compilePolicy(policy({ permissions: ['super'] }));
    expect(policyAllows(sup, APP, 'tenants/a', ['list', 'write', 'execute'])).toBe(true);
  });

  it('RE2 syntax: (?i), named groups, \\z; no backreferences or lookaround', () => {
    expect(
      policyAllows(compilePolicy(policy({ pathPattern: '(?i)^TENANTS/' })), APP, 'tenants/a', [
        'read',
      ]),
    ).toBe(true);
    expect(
      policyAllows(
        compilePolicy(policy({ pathPattern: '(?P<t>tenants)/a\\z' })),
        APP,
        'tenants/a',
        ['read'],
      ),
    ).toBe(true);
    expect(
      policyAllows(compilePolicy(policy({ pathPattern: 'a\\z' })), APP, 'tenants/a\n', ['read']),
    ).toBe(false);
    badRequest(() => compilePolicy(policy({ pathPattern: '(a)\\1' })));
    badRequest(() => compilePolicy(policy({ pathPattern: 'a(?=b)' })));
  });

  it('property: a policy matches exactly when re2js finds both patterns', () => {
    const alphabet = fc.constantFrom('a', 'b', '/', '.', '*', '+', '?', '|', '(', ')', '^', '$');
    const pattern = fc.array(alphabet, { minLength: 1, maxLength: 8 }).map((cs) => cs.join(''));
    const text = fc
      .array(fc.constantFrom('a', 'b', '/', 'x'), { maxLength: 12 })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(pattern, text, text, (pathPattern, path, idTail) => {
        let re: RE2JS;
        try {
          re = RE2JS.compile(pathPattern);
        } catch {
          return; // not RE2: compilePolicy refuses it (checked separately)
        }
        const id = `spiffe://spike.ist/${idTail}`;
        const compiled = compilePolicy(
          policy({ spiffeIdPattern: 'spiffe://spike', pathPattern, permissions: ['read'] }),
        );
        const reserved = (RESERVED_PATHS as readonly string[]).includes(path);
        if (!reserved) expect(policyAllows(compiled, id, path, ['read'])).toBe(re.test(path));
      }),
      { numRuns: 400 },
    );
  });

  it('property: RE2 search agrees with JavaScript RegExp on the common subset', () => {
    const alphabet = fc.constantFrom('a', 'b', '.', '*', '+', '?', '|', '(', ')', '[ab]', '^', '$');
    const pattern = fc.array(alphabet, { minLength: 1, maxLength: 7 }).map((cs) => cs.join(''));
    const text = fc
      .array(fc.constantFrom('a', 'b', 'c'), { maxLength: 10 })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(pattern, text, (p, s) => {
        let js: RegExp;
        let re: RE2JS;
        try {
          js = new RegExp(p);
          re = RE2JS.compile(p);
        } catch {
          return;
        }
        // Nested empty-width loops are where backtracking engines diverge; skip them.
        if (/\((?:[^()]*[*?][^()]*)\)[*+?]/.test(p) || /[*+?]{2}/.test(p)) return;
        const compiled = compilePolicy(policy({ spiffeIdPattern: 'spiffe://', pathPattern: p }));
        expect(policyAllows(compiled, APP, s, ['read'])).toBe(js.test(s) && re.test(s));
        expect(re.test(s)).toBe(js.test(s));
      }),
      { numRuns: 400 },
    );
  });

  it('property: the guard full-match equals re2js anchored matches()', () => {
    const alphabet = fc.constantFrom(
      'spike',
      '/',
      'system',
      'acl',
      '.',
      '*',
      '+',
      '|',
      '(',
      ')',
      'secret',
      's',
    );
    const pattern = fc.array(alphabet, { minLength: 1, maxLength: 6 }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(pattern, fc.constantFrom(...RESERVED_PATHS), (pathPattern, reserved) => {
        let re: RE2JS;
        try {
          re = RE2JS.compile(pathPattern);
        } catch {
          return;
        }
        const guard = passesReservedGuard(
          { spiffeIdPattern: '^spiffe://x/y$', pathPattern },
          reserved,
        );
        expect(guard).toBe(re.matches(reserved));
      }),
      { numRuns: 400 },
    );
  });

  it('answers a pathological pattern in linear time', () => {
    const compiled = compilePolicy(policy({ spiffeIdPattern: 'spiffe://', pathPattern: '(a+)+$' }));
    const path = `${'a'.repeat(5000)}!`;
    const start = performance.now();
    expect(policyAllows(compiled, APP, path, ['read'])).toBe(false);
    expect(performance.now() - start).toBeLessThan(100);
  });
});

describe('reserved-path guard (§7)', () => {
  it('check: a reserved path needs a full-match path pattern and an anchored SPIFFE pattern', () => {
    const loose = compilePolicy(policy({ pathPattern: 'spike/system/.*', permissions: ['list'] }));
    // `spike/system/.*` full-matches the reserved path and the SPIFFE pattern is anchored.
    expect(policyAllows(loose, APP, SECRET_LIST_PATH, ['list'])).toBe(true);
    const substring = compilePolicy(policy({ pathPattern: 'system', permissions: ['list'] }));
    expect(policyAllows(substring, APP, SECRET_LIST_PATH, ['list'])).toBe(false);
    expect(policyAllows(substring, APP, 'my/system/x', ['list'])).toBe(true);
    const unanchoredId = compilePolicy(
      policy({
        spiffeIdPattern: 'spiffe://spike.ist/app',
        pathPattern: '^spike/system/acl$',
        permissions: ['read'],
      }),
    );
    expect(policyAllows(unanchoredId, APP, ACL_PATH, ['read'])).toBe(false);
    const wildcard = compilePolicy(
      policy({ spiffeIdPattern: '.*', pathPattern: '^spike/system/acl$', permissions: ['read'] }),
    );
    expect(policyAllows(wildcard, APP, ACL_PATH, ['read'])).toBe(true);
    expect(
      passesReservedGuard({ spiffeIdPattern: '.*', pathPattern: 'spike/system/acl' }, ACL_PATH),
    ).toBe(true);
    expect(
      passesReservedGuard(
        { spiffeIdPattern: 'spiffe://.*', pathPattern: 'spike/system/acl' },
        ACL_PATH,
      ),
    ).toBe(false);
    expect(RE2JS.compile('.*').matches(PROBE_VALUE)).toBe(true);
  });

  it('put: a pattern reaching a reserved path must pass the guard for the first one', () => {
    badRequest(() =>
      checkReservedOnPut(
        compilePolicy(
          policy({ spiffeIdPattern: 'spiffe://spike.ist/app', pathPattern: 'spike/system/acl' }),
        ),
      ),
    );
    // Matches acl (unanchored) via "system" but does not full-match it.
    badRequest(() => checkReservedOnPut(compilePolicy(policy({ pathPattern: 'system' }))));
    expect(() =>
      checkReservedOnPut(compilePolicy(policy({ pathPattern: '^spike/system/acl$' }))),
    ).not.toThrow();
    expect(() =>
      checkReservedOnPut(compilePolicy(policy({ pathPattern: '^tenants/.*$' }))),
    ).not.toThrow();
    // `.*` reaches acl first and full-matches it; the anchored SPIFFE pattern passes.
    expect(() => checkReservedOnPut(compilePolicy(policy({ pathPattern: '.*' })))).not.toThrow();
  });
});

describe('engine (§7)', () => {
  it('superuser is always allowed; lite only for cipher', async () => {
    const engine = createPolicyEngine({ store: await createPolicies(), trustRoots: TRUST });
    expect(await engine.checkAccess(SUPERUSER, 'any/path', ['write'])).toBe(true);
    expect(await engine.checkAccess(SUPERUSER, ACL_PATH, ['write'])).toBe(true);
    expect(await engine.checkAccess(LITE, CIPHER_EXEC_PATH, ['execute'])).toBe(true);
    expect(await engine.checkAccess(LITE, CIPHER_EXEC_PATH, ['read'])).toBe(false);
    expect(await engine.checkAccess(LITE, 'tenants/a', ['read'])).toBe(false);
    expect(await engine.checkAccess(APP, 'tenants/a', ['read'])).toBe(false);
    // A superuser ID of another trust domain is a plain workload.
    expect(
      await engine.checkAccess('spiffe://other.org/spike/pilot/role/superuser', 'x', ['read']),
    ).toBe(false);
  });

  it('lite workloads are denied even when a policy matches', async () => {
    const engine = createPolicyEngine({ store: await createPolicies(), trustRoots: TRUST });
    await engine.upsert(
      policy({ spiffeIdPattern: '^spiffe://.*$', pathPattern: '.*', permissions: ['super'] }),
    );
    expect(await engine.checkAccess(APP, 'tenants/a', ['read'])).toBe(true);
    expect(await engine.checkAccess(LITE, 'tenants/a', ['read'])).toBe(false);
  });

  it('loads once, then serves checks from the cache updated on upsert and delete', async () => {
    const store = await createPolicies();
    await store.upsert(policy({ name: 'stored' }));
    const engine = createPolicyEngine({ store, trustRoots: TRUST });
    expect(await engine.checkAccess(APP, 'tenants/a', ['read'])).toBe(true);
    for (let i = 0; i < 20; i++) await engine.checkAccess(APP, 'tenants/a', ['read']);
    expect(store.listCalls()).toBe(1);
    await engine.upsert(policy({ name: 'w', pathPattern: '^writable/', permissions: ['write'] }));
    expect(await engine.checkAccess(APP, 'writable/x', ['write'])).toBe(true);
    await engine.delete('stored');
    expect(await engine.checkAccess(APP, 'tenants/a', ['read'])).toBe(false);
    expect(store.listCalls()).toBe(1);
    engine.invalidate();
    expect(await engine.checkAccess(APP, 'writable/x', ['write'])).toBe(true);
    expect(store.listCalls()).toBe(2);
  });

  it('upsert replaces a policy by name in the cache', async () => {
    const engine = createPolicyEngine({ store: await createPolicies(), trustRoots: TRUST });
    await engine.upsert(policy({ name: 'p', pathPattern: '^a/' }));
    await engine.upsert(policy({ name: 'p', pathPattern: '^b/' }));
    expect(await engine.checkAccess(APP, 'a/x', ['read'])).toBe(false);
    expect(await engine.checkAccess(APP, 'b/x', ['read'])).toBe(true);
  });

  it('re-evaluates the caller after a policy changes its SPIFFE pattern (per-caller memo)', async () => {
    const engine = createPolicyEngine({ store: await createPolicies(), trustRoots: TRUST });
    await engine.upsert(policy({ name: 'p', pathPattern: '^a/' }));
    expect(await engine.checkAccess(APP, 'a/x', ['read'])).toBe(true);
    await engine.upsert(
      policy({ name: 'p', pathPattern: '^a/', spiffeIdPattern: '^spiffe://spike\\.ist/nobody$' }),
    );
    expect(await engine.checkAccess(APP, 'a/x', ['read'])).toBe(false);
    engine.invalidate();
    expect(await engine.checkAccess(APP, 'a/x', ['read'])).toBe(false);
  });

  it('refuses invalid policies before touching the store', async () => {
    const store = await createPolicies();
    const engine = createPolicyEngine({ store, trustRoots: TRUST });
    for (const bad of [
      policy({ pathPattern: '(a' }),
      policy({ spiffeIdPattern: 'spiffe://x/(' }),
      policy({ pathPattern: 'spike/system/secret', spiffeIdPattern: 'spiffe://spike.ist/app' }),
      policy({ name: 'bad.name' }),
    ]) {
      await expect(engine.upsert(bad)).rejects.toMatchObject({ code: 'api_bad_request' });
    }
    expect((await store.list()).length).toBe(0);
  });

  it('retries the load after a store failure', async () => {
    const store = await createPolicies();
    let fail = true;
    const flaky = {
      ...store,
      list: async () => (fail ? Promise.reject(new Error('down')) : store.list()),
    };
    await store.upsert(policy());
    const engine = createPolicyEngine({ store: flaky, trustRoots: TRUST });
    await expect(engine.checkAccess(APP, 'tenants/a', ['read'])).rejects.toThrow('down');
    fail = false;
    expect(await engine.checkAccess(APP, 'tenants/a', ['read'])).toBe(true);
  });
});
