/** Nexus environment parsing (docs/spike-api.md §10, §12). */
import { afterAll, describe, expect, it } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseListenAddress } from '../src/core/config.ts';
import { isSpikeError } from '../src/core/errors.ts';
import { createLogger, formatGoTime, parseLogLevel } from '../src/core/log.ts';
import { parseKeeperPeers, parseNexusConfig } from '../src/nexus/config.ts';

const PEERS = 'https://k1:8443,https://k2:8443,https://k3:8443';

// The data directory is created under a private temporary HOME / TMPDIR (./data-dir.ts).
const SANDBOX = mkdtempSync(join(tmpdir(), 'nexus-config-'));
const HOME = join(SANDBOX, 'home');
mkdirSync(HOME);
afterAll(() => rmSync(SANDBOX, { recursive: true, force: true }));

function env(vars: Record<string, string> = {}): Record<string, string> {
  return { HOME, TMPDIR: SANDBOX, USER: 'alice', ...vars };
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isSpikeError(error) && error.code).toBe('config_invalid');
    return (error as Error).message;
  }
  throw new Error('expected config_invalid');
}

describe('parseNexusConfig', () => {
  it('applies the §10 defaults', () => {
    const c = parseNexusConfig(env({ SPIKE_NEXUS_KEEPER_PEERS: PEERS }));
    expect(c.tls).toEqual({ port: 8553 });
    expect(c.health).toBeUndefined();
    expect(c.backend).toBe('sqlite');
    expect(c.dataDir).toBe(join(HOME, '.spike', 'data'));
    expect(statSync(c.dataDir!).mode & 0o777).toBe(0o700);
    expect(c.maxSecretVersions).toBe(10);
    expect(c.logLevel).toBe('WARN');
    expect(c.maxBodyBytes).toBe(1048576);
    expect(c.maxCipherBytes).toBe(65536);
    expect(c.auditFile).toBeUndefined();
    expect(c.keeperPeers).toEqual(['https://k1:8443', 'https://k2:8443', 'https://k3:8443']);
    expect([c.shamirShares, c.shamirThreshold]).toEqual([3, 2]);
    expect(c.keeperUpdateIntervalMs).toBe(300_000);
    expect(c.spiffeSourceTimeoutMs).toBe(30_000);
    expect(c.readHeaderTimeoutMs).toBe(10_000);
    expect(c.requestTimeoutMs).toBe(30_000);
    expect(c.idleTimeoutMs).toBe(60_000);
    expect(c.trustRoots.superuser).toEqual(['spike.ist']);
    expect(c.trustRoots['lite-workload']).toEqual(['spike.ist']);
    expect(c.warnings).toEqual([]);
  });

  it('reads every variable', () => {
    const c = parseNexusConfig(
      env({
        SPIKE_NEXUS_TLS_PORT: '9443',
        SPIKE_NEXUS_HEALTH_PORT: '127.0.0.1:9080',
        SPIKE_NEXUS_BACKEND_STORE: 'sqlite',
        SPIKE_NEXUS_DATA_DIR: SANDBOX,
        SPIKE_NEXUS_MAX_SECRET_VERSIONS: '3',
        SPIKE_TRUST_ROOT_PILOT: ' a.org , spiffe://b.org ',
        SPIKE_TRUST_ROOT_NEXUS: 'n.org',
        SPIKE_TRUST_ROOT_LITE_WORKLOAD: 'l.org',
        SPIKE_SYSTEM_LOG_LEVEL: 'debug',
        SPIKE_HTTP_SERVER_MAX_BODY_BYTES: '2048',
        SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE: '1024',
        SPIKE_NEXUS_AUDIT_FILE: '/var/log/spike-audit.jsonl',
        SPIKE_NEXUS_KEEPER_PEERS: 'https://k1:1,https://k2:2',
        SPIKE_NEXUS_SHAMIR_SHARES: '2',
        SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: '1m30s',
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '250ms',
        SPIFFE_ENDPOINT_SOCKET: 'unix:///run/spire/api.sock',
      }),
    );
    expect(c.tls).toEqual({ port: 9443 });
    expect(c.health).toEqual({ host: '127.0.0.1', port: 9080 });
    expect(c.dataDir).toBe(join(SANDBOX, 'data'));
    expect(c.maxSecretVersions).toBe(3);
    expect(c.trustRoots.superuser).toEqual(['a.org', 'b.org']);
    expect(c.trustRoots.recover).toEqual(['a.org', 'b.org']);
    expect(c.trustRoots.restore).toEqual(['a.org', 'b.org']);
    expect(c.trustRoots.nexus).toEqual(['n.org']);
    expect(c.trustRoots['lite-workload']).toEqual(['l.org']);
    expect(c.trustRoots.keeper).toEqual(['spike.ist']);
    expect(c.logLevel).toBe('DEBUG');
    expect(c.maxBodyBytes).toBe(2048);
    expect(c.maxCipherBytes).toBe(1024);
    expect(c.auditFile).toBe('/var/log/spike-audit.jsonl');
    expect(c.keeperPeers).toEqual(['https://k1:1', 'https://k2:2']);
    expect(c.keeperUpdateIntervalMs).toBe(90_000);
    expect(c.spiffeSourceTimeoutMs).toBe(250);
    expect(c.spiffeEndpointSocket).toBe('unix:///run/spire/api.sock');
  });

  it('memory needs no Keepers and no data directory; lite needs Keepers', () => {
    const m = parseNexusConfig({ SPIKE_NEXUS_BACKEND_STORE: 'memory' });
    expect(m.backend).toBe('memory');
    expect(m.keeperPeers).toEqual([]);
    expect(m.dataDir).toBeUndefined();
    expect(configError(() => parseNexusConfig({ SPIKE_NEXUS_BACKEND_STORE: 'lite' }))).toContain(
      'SPIKE_NEXUS_KEEPER_PEERS',
    );
    const l = parseNexusConfig(
      env({ SPIKE_NEXUS_BACKEND_STORE: 'LITE', SPIKE_NEXUS_KEEPER_PEERS: PEERS }),
    );
    expect(l.backend).toBe('lite');
    expect(l.dataDir).toBeUndefined();
  });

  it('an unknown backend means sqlite, with a warning', () => {
    const c = parseNexusConfig(
      env({ SPIKE_NEXUS_BACKEND_STORE: 'mysql', SPIKE_NEXUS_KEEPER_PEERS: PEERS }),
    );
    expect(c.backend).toBe('sqlite');
    expect(c.warnings.join('\n')).toContain('SPIKE_NEXUS_BACKEND_STORE');
  });

  it('postgres needs SPIKE_NEXUS_DATABASE_URL, a postgres:// URL, and keeps it', () => {
    const base = { SPIKE_NEXUS_BACKEND_STORE: 'postgres', SPIKE_NEXUS_KEEPER_PEERS: PEERS };
    for (const bad of [undefined, '', 'not a url', 'http://db:5432/x', 'postgres:///nohost']) {
      let caught: unknown;
      try {
        parseNexusConfig(
          env(bad === undefined ? base : { ...base, SPIKE_NEXUS_DATABASE_URL: bad }),
        );
      } catch (e) {
        caught = e;
      }
      expect((caught as { code?: string } | undefined)?.code).toBe('config_invalid');
      expect(String((caught as Error).message)).toContain('SPIKE_NEXUS_DATABASE_URL');
    }
    const url = 'postgres://spike:pw@db.internal:5432/spike?sslmode=verify-full';
    const c = parseNexusConfig(env({ ...base, SPIKE_NEXUS_DATABASE_URL: url }));
    expect(c.backend).toBe('postgres');
    expect(c.databaseUrl).toBe(url);
    expect(c.dataDir).toBeUndefined();
  });

  it('invalid or non-positive durations fall back to the default, with a warning', () => {
    const c = parseNexusConfig(
      env({
        SPIKE_NEXUS_KEEPER_PEERS: PEERS,
        SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL: 'soon',
        SPIKE_SPIFFE_SOURCE_TIMEOUT: '-5s',
        SPIKE_HTTP_SERVER_IDLE_TIMEOUT: '0',
      }),
    );
    expect(c.keeperUpdateIntervalMs).toBe(300_000);
    expect(c.spiffeSourceTimeoutMs).toBe(30_000);
    expect(c.idleTimeoutMs).toBe(60_000);
    expect(c.warnings.length).toBe(3);
  });

  it('reads the store variables (SPIKE_NEXUS_DB_*), defaults first', () => {
    const d = parseNexusConfig(env({ SPIKE_NEXUS_KEEPER_PEERS: PEERS }));
    expect([d.dbJournalMode, d.dbBusyTimeoutMs, d.dbSkipSchemaCreation]).toEqual([
      'WAL',
      5000,
      false,
    ]);
    const c = parseNexusConfig(
      env({
        SPIKE_NEXUS_KEEPER_PEERS: PEERS,
        SPIKE_NEXUS_DB_JOURNAL_MODE: 'delete',
        SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS: '100',
        SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION: 'TRUE',
      }),
    );
    expect([c.dbJournalMode, c.dbBusyTimeoutMs, c.dbSkipSchemaCreation]).toEqual([
      'DELETE',
      100,
      true,
    ]);
    for (const mode of ['WAL', 'truncate', 'Persist']) {
      const m = parseNexusConfig(
        env({ SPIKE_NEXUS_KEEPER_PEERS: PEERS, SPIKE_NEXUS_DB_JOURNAL_MODE: mode }),
      );
      expect(m.dbJournalMode).toBe(mode.toUpperCase() as typeof m.dbJournalMode);
    }
    const off = parseNexusConfig(
      env({ SPIKE_NEXUS_KEEPER_PEERS: PEERS, SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION: 'false' }),
    );
    expect(off.dbSkipSchemaCreation).toBe(false);
  });

  it('invalid store variables stop the program instead of falling back (README "Configuration")', () => {
    const base = { SPIKE_NEXUS_KEEPER_PEERS: PEERS };
    const cases: [Record<string, string>, string][] = [
      // A journal mode that is not durable, or unknown, used to mean WAL silently.
      [{ SPIKE_NEXUS_DB_JOURNAL_MODE: 'OFF' }, 'SPIKE_NEXUS_DB_JOURNAL_MODE'],
      [{ SPIKE_NEXUS_DB_JOURNAL_MODE: 'MEMORY' }, 'SPIKE_NEXUS_DB_JOURNAL_MODE'],
      [{ SPIKE_NEXUS_DB_JOURNAL_MODE: 'wall' }, 'SPIKE_NEXUS_DB_JOURNAL_MODE'],
      // Non-numbers and ≤ 0 used to mean 5000 silently.
      [{ SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS: 'soon' }, 'SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS'],
      [{ SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS: '0' }, 'SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS'],
      [{ SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS: '-3' }, 'SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS'],
      [{ SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS: '2.5' }, 'SPIKE_NEXUS_DB_BUSY_TIMEOUT_MS'],
      // Anything but true/false used to mean false silently.
      [{ SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION: 'yes' }, 'SPIKE_NEXUS_DB_SKIP_SCHEMA_CREATION'],
      // Non-numbers and 0 used to mean 10 silently.
      [{ SPIKE_NEXUS_MAX_SECRET_VERSIONS: '-3' }, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS'],
      [{ SPIKE_NEXUS_MAX_SECRET_VERSIONS: 'ten' }, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS'],
    ];
    for (const [vars, variable] of cases) {
      const message = configError(() => parseNexusConfig(env({ ...base, ...vars })));
      expect(message.startsWith(`${variable}:`)).toBe(true);
      expect(message).not.toContain('\n');
      // The value itself is never repeated.
      expect(message).not.toContain(Object.values(vars)[0]!);
    }
  });

  it('reports plain SPIKE_TRUST_ROOT as unused', () => {
    const c = parseNexusConfig(
      env({ SPIKE_TRUST_ROOT: 'x.org', SPIKE_NEXUS_BACKEND_STORE: 'memory' }),
    );
    expect(c.warnings.join('\n')).toContain('SPIKE_TRUST_ROOT');
  });

  it('rejects invalid values with one line naming the variable', () => {
    const base = { SPIKE_NEXUS_KEEPER_PEERS: PEERS };
    const cases: [Record<string, string>, string][] = [
      [{ SPIKE_NEXUS_TLS_PORT: 'http' }, 'SPIKE_NEXUS_TLS_PORT'],
      [{ SPIKE_NEXUS_TLS_PORT: ':70000' }, 'SPIKE_NEXUS_TLS_PORT'],
      [{ SPIKE_NEXUS_HEALTH_PORT: 'x:y' }, 'SPIKE_NEXUS_HEALTH_PORT'],
      [{ SPIKE_NEXUS_MAX_SECRET_VERSIONS: '0' }, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS'],
      [{ SPIKE_NEXUS_MAX_SECRET_VERSIONS: '1.5' }, 'SPIKE_NEXUS_MAX_SECRET_VERSIONS'],
      [{ SPIKE_HTTP_SERVER_MAX_BODY_BYTES: '-1' }, 'SPIKE_HTTP_SERVER_MAX_BODY_BYTES'],
      [{ SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE: 'big' }, 'SPIKE_NEXUS_CRYPTO_MAX_CIPHERTEXT_SIZE'],
      [{ SPIKE_SYSTEM_LOG_LEVEL: 'LOUD' }, 'SPIKE_SYSTEM_LOG_LEVEL'],
      [{ SPIKE_TRUST_ROOT_PILOT: 'Bad_Domain!' }, 'SPIKE_TRUST_ROOT_PILOT'],
      [{ SPIKE_TRUST_ROOT_NEXUS: 'spiffe://x.org/path' }, 'SPIKE_TRUST_ROOT_NEXUS'],
      [{ SPIKE_NEXUS_SHAMIR_SHARES: '1' }, 'SPIKE_NEXUS_SHAMIR_SHARES'],
      [{ SPIKE_NEXUS_SHAMIR_SHARES: '256' }, 'SPIKE_NEXUS_SHAMIR_SHARES'],
      [{ SPIKE_NEXUS_SHAMIR_THRESHOLD: '4' }, 'SPIKE_NEXUS_SHAMIR_THRESHOLD'],
      [{ SPIKE_NEXUS_SHAMIR_SHARES: '4' }, 'SPIKE_NEXUS_KEEPER_PEERS'],
    ];
    for (const [vars, variable] of cases) {
      const message = configError(() => parseNexusConfig(env({ ...base, ...vars })));
      expect(message.startsWith(`${variable}:`)).toBe(true);
      expect(message).not.toContain('\n');
    }
  });
});

describe('pieces', () => {
  it('listen addresses', () => {
    expect(parseListenAddress(':8553', 'V')).toEqual({ port: 8553 });
    expect(parseListenAddress('8553', 'V')).toEqual({ port: 8553 });
    expect(parseListenAddress('localhost:0', 'V')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListenAddress('[::1]:8553', 'V')).toEqual({ host: '[::1]', port: 8553 });
    for (const bad of ['', ':', '85 53', ':65536', 'a:b:1'])
      configError(() => parseListenAddress(bad, 'V'));
  });

  it('keeper peers: https only, no empty entries, no duplicates', () => {
    expect(parseKeeperPeers(' https://a:1 ,https://b:2/')).toEqual(['https://a:1', 'https://b:2']);
    for (const bad of [
      undefined,
      '',
      'https://a:1,,https://b:2',
      'http://a:1',
      'a:1',
      'https://a:1,https://a:1',
      'https://a:1/path',
      'https://u:p@a:1',
      'https://a:1?x',
    ]) {
      expect(configError(() => parseKeeperPeers(bad))).toContain('SPIKE_NEXUS_KEEPER_PEERS');
    }
  });

  it('data directory: configured, else home, else temp; refused values fall back with a warning', () => {
    const custom = parseNexusConfig(
      env({ SPIKE_NEXUS_DATA_DIR: SANDBOX, SPIKE_NEXUS_KEEPER_PEERS: PEERS }),
    );
    expect(custom.dataDir).toBe(join(SANDBOX, 'data'));
    expect(custom.warnings).toEqual([]);
    for (const refused of ['/etc/spike', '/', join(SANDBOX, 'no', 'such', 'dir')]) {
      const c = parseNexusConfig(
        env({ SPIKE_NEXUS_DATA_DIR: refused, SPIKE_NEXUS_KEEPER_PEERS: PEERS }),
      );
      expect(c.dataDir).toBe(join(HOME, '.spike', 'data'));
      expect(c.warnings.join('\n')).toContain('SPIKE_NEXUS_DATA_DIR');
    }
    const noHome = parseNexusConfig({
      TMPDIR: SANDBOX,
      USER: 'bob',
      SPIKE_NEXUS_KEEPER_PEERS: PEERS,
    });
    expect(noHome.dataDir).toBe(join(SANDBOX, '.spike-bob', 'data'));
  });
});

describe('logger (SPIKE_SYSTEM_LOG_LEVEL)', () => {
  it('writes JSON lines at or above the level, to the injected sink', () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'INFO',
      sink: (l) => lines.push(l),
      component: 'nexus',
      clock: () => new Date('2026-07-25T20:37:48.120Z'),
    });
    log.debug('hidden');
    log.info('started', { port: 8553, level: 'ignored', skipped: undefined });
    log.error('failed');
    expect(lines).toEqual([
      '{"time":"2026-07-25T20:37:48.12Z","level":"INFO","component":"nexus","msg":"started","port":8553}',
      '{"time":"2026-07-25T20:37:48.12Z","level":"ERROR","component":"nexus","msg":"failed"}',
    ]);
    expect(log.enabled('DEBUG')).toBe(false);
    expect(log.enabled('WARN')).toBe(true);
  });

  it('parses level names case-insensitively', () => {
    expect(parseLogLevel('warn')).toBe('WARN');
    expect(parseLogLevel(' Error ')).toBe('ERROR');
    expect(parseLogLevel('TRACE')).toBeUndefined();
  });

  it('formats times as Go does', () => {
    expect(formatGoTime(new Date('2026-07-25T20:37:48.000Z'))).toBe('2026-07-25T20:37:48Z');
    expect(formatGoTime(new Date('2026-07-25T20:37:48.100Z'))).toBe('2026-07-25T20:37:48.1Z');
    expect(formatGoTime(new Date('2026-07-25T20:37:48.123Z'))).toBe('2026-07-25T20:37:48.123Z');
  });
});
