import { describe, expect, it, test } from 'bun:test';
import {
  formatGoDurationSeconds,
  invalidPathWarning,
  isValidVaultMount,
  listChildren,
  parseGoBool,
  parseVaultDuration,
  parseVaultPath,
  patchContentTypeError,
  VAULT_STATUS,
  validateCustomMetadata,
  vaultEnvelope,
} from '../src/api/vault/index.ts';

describe('vault contract', () => {
  test('envelope key order and warnings', () => {
    const text = JSON.stringify(vaultEnvelope('id', { a: 1 }));
    expect(text).toBe(
      '{"request_id":"id","lease_id":"","renewable":false,"lease_duration":0,"data":{"a":1},"wrap_info":null,"warnings":null,"auth":null}',
    );
    expect(vaultEnvelope('id', null, ['w']).warnings).toEqual(['w']);
  });

  test('go durations and bools', () => {
    expect(formatGoDurationSeconds(0)).toBe('0s');
    expect(formatGoDurationSeconds(45_000)).toBe('45s');
    expect(formatGoDurationSeconds(1_800_000)).toBe('30m0s');
    expect(formatGoDurationSeconds((3 * 3600 + 25 * 60 + 19) * 1000)).toBe('3h25m19s');
    expect(formatGoDurationSeconds(-1000)).toBe('-1s');
    for (const t of ['1', 't', 'T', 'TRUE', 'true', 'True']) expect(parseGoBool(t)).toBe(true);
    for (const f of ['0', 'f', 'F', 'FALSE', 'false', 'False']) expect(parseGoBool(f)).toBe(false);
    for (const x of ['', 'yes', 'tRUE', '2']) expect(parseGoBool(x)).toBeUndefined();
    expect(parseVaultDuration(30, 'd')).toBe(30_000);
    expect(parseVaultDuration('30', 'd')).toBe(30_000);
    expect(parseVaultDuration('1h30m', 'd')).toBe(5_400_000);
    expect(parseVaultDuration('-1s', 'd')).toBe(-1000);
    for (const bad of ['x', 1.5, true, null, {}, '1e9999h']) {
      expect(() => parseVaultDuration(bad, 'd')).toThrow('error parsing d');
    }
  });

  test('paths', () => {
    const m = 'secret';
    expect(parseVaultPath('/v1/secret/config', m)).toEqual({ kind: 'config' });
    expect(parseVaultPath('/v1/secret/data/a/b%20c', m)).toEqual({
      kind: 'kv',
      op: 'data',
      path: 'a/b c',
    });
    expect(parseVaultPath('/v1/secret/metadata', m)).toEqual({
      kind: 'kv',
      op: 'metadata',
      path: '',
    });
    expect(parseVaultPath('/v1/secret/metadata/', m)).toEqual({
      kind: 'kv',
      op: 'metadata',
      path: '',
    });
    expect(parseVaultPath('/v1/secret/data/%zz', m)).toEqual({
      kind: 'kv',
      op: 'data',
      path: undefined,
    });
    expect(parseVaultPath('/v1/secret/foo', m)).toEqual({ kind: 'invalid' });
    expect(parseVaultPath('/v1/secret', m)).toEqual({ kind: 'invalid' });
    expect(parseVaultPath('/v1/sys/health', m)).toEqual({ kind: 'health' });
    expect(parseVaultPath('/v1/sys/internal/ui/mounts/secret/a', m)).toEqual({
      kind: 'ui-mounts',
      path: 'secret/a',
    });
    expect(parseVaultPath('/v1/auth/token/lookup-self', m)).toEqual({ kind: 'lookup-self' });
    expect(parseVaultPath('/v1/store/secrets', m)).toBeUndefined();
    expect(isValidVaultMount('kv-2')).toBe(true);
    expect(isValidVaultMount('sys')).toBe(false);
    expect(isValidVaultMount('a/b')).toBe(false);
  });

  test('list children', () => {
    expect(listChildren(['foo', 'foo/bar', 'x/y/z'], '')).toEqual(['foo', 'foo/', 'x/']);
    expect(listChildren(['foo', 'foo/bar', 'foo/baz/q'], 'foo/')).toEqual(['bar', 'baz/']);
    expect(listChildren(['foo'], 'bar/')).toEqual([]);
  });

  test('messages and statuses', () => {
    expect(invalidPathWarning('get')).toContain("use 'vault kv get' for this operation.");
    expect(patchContentTypeError('application/json')).toBe(
      'PATCH requires Content-Type of application/merge-patch+json, provided application/json',
    );
    expect(patchContentTypeError('a\nb')).toEndWith('provided ab');
    expect(VAULT_STATUS.unsupported_media_type).toBe(415);
  });

  test('custom_metadata limits', () => {
    expect(() => validateCustomMetadata({ a: 'b' })).not.toThrow();
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    expect(() => validateCustomMetadata(many)).toThrow(
      'custom_metadata validation failed: payload must contain at most 64 keys, provided 65',
    );
    expect(() => validateCustomMetadata({ ['k'.repeat(129)]: 'v' })).toThrow(
      /^custom_metadata validation failed: length of key "k+…" is 129 but must be 0 < len\(key\) <= 128/,
    );
    expect(() => validateCustomMetadata({ k: '' })).toThrow(
      'custom_metadata validation failed: length of value for key "k" is 0 but must be 0 < len(value) <= 512',
    );
    expect(() => validateCustomMetadata({ k: 'a\u0000' })).toThrow(
      'custom_metadata validation failed: value for key "k" contains unprintable characters',
    );
    expect(() => validateCustomMetadata({ 'a\tb': 'v' })).toThrow(
      'contains unprintable characters',
    );
    try {
      validateCustomMetadata({ k: 'secret\u0001' });
    } catch (e) {
      expect(String(e)).not.toContain('secret');
    }
  });
});

describe('vault env', () => {
  it('reads SPIKE_NEXUS_VAULT_API and SPIKE_NEXUS_VAULT_MOUNT', async () => {
    const { readVaultEnv } = await import('../src/nexus/vault/config.ts');
    expect(readVaultEnv({})).toEqual({ enabled: false, mount: 'secret' });
    expect(readVaultEnv({ SPIKE_NEXUS_VAULT_API: 'TRUE', SPIKE_NEXUS_VAULT_MOUNT: 'kv' })).toEqual({
      enabled: true,
      mount: 'kv',
    });
    for (const bad of ['sys', 'a/b', 'store', '../x']) {
      expect(() => readVaultEnv({ SPIKE_NEXUS_VAULT_MOUNT: bad })).toThrow(
        'SPIKE_NEXUS_VAULT_MOUNT',
      );
    }
  });
});
