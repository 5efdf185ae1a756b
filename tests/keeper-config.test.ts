/** Keeper environment parsing (docs/spike-api.md §10, §12; README "Configuration"). */
import { describe, expect, it } from 'bun:test';
import { isSpikeError } from '../src/core/errors.ts';
import { parseKeeperConfig } from '../src/keeper/config.ts';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isSpikeError(error) && error.code).toBe('config_invalid');
    return (error as Error).message;
  }
  throw new Error('expected config_invalid');
}

describe('parseKeeperConfig', () => {
  it('applies the defaults', () => {
    const c = parseKeeperConfig({});
    expect(c.tls).toEqual({ port: 8443 });
    expect(c.health).toBeUndefined();
    expect(c.logLevel).toBe('WARN');
    expect(c.trustRoots).toEqual({
      nexus: ['spike.ist'],
      bootstrap: ['spike.ist'],
      keeper: ['spike.ist'],
    });
    expect(c.spiffeSourceTimeoutMs).toBe(30_000);
    expect(c.warnings).toEqual([]);
  });

  it('reads every variable', () => {
    const c = parseKeeperConfig({
      SPIKE_KEEPER_TLS_PORT: '127.0.0.1:9443',
      SPIKE_KEEPER_HEALTH_PORT: '[::1]:9080',
      SPIKE_SYSTEM_LOG_LEVEL: 'info',
      SPIKE_TRUST_ROOT_NEXUS: 'n.org',
      SPIKE_TRUST_ROOT_BOOTSTRAP: 'b.org, c.org',
      SPIKE_TRUST_ROOT_KEEPER: 'k.org',
      SPIKE_SPIFFE_SOURCE_TIMEOUT: '2s',
    });
    expect(c.tls).toEqual({ host: '127.0.0.1', port: 9443 });
    expect(c.health).toEqual({ host: '[::1]', port: 9080 });
    expect(c.logLevel).toBe('INFO');
    expect(c.trustRoots).toEqual({
      nexus: ['n.org'],
      bootstrap: ['b.org', 'c.org'],
      keeper: ['k.org'],
    });
    expect(c.spiffeSourceTimeoutMs).toBe(2000);
  });

  it('an invalid duration falls back to the default, with a warning', () => {
    const c = parseKeeperConfig({ SPIKE_SPIFFE_SOURCE_TIMEOUT: 'soon' });
    expect(c.spiffeSourceTimeoutMs).toBe(30_000);
    expect(c.warnings).toHaveLength(1);
    expect(c.warnings[0]).toStartWith('SPIKE_SPIFFE_SOURCE_TIMEOUT:');
  });

  it('rejects invalid values with one line naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ SPIKE_KEEPER_TLS_PORT: 'http://x' }, 'SPIKE_KEEPER_TLS_PORT'],
      [{ SPIKE_KEEPER_HEALTH_PORT: ':99999' }, 'SPIKE_KEEPER_HEALTH_PORT'],
      // Used to fall back to WARN with a warning, against the README.
      [{ SPIKE_SYSTEM_LOG_LEVEL: 'LOUD' }, 'SPIKE_SYSTEM_LOG_LEVEL'],
      [{ SPIKE_TRUST_ROOT_NEXUS: 'Bad Domain' }, 'SPIKE_TRUST_ROOT_NEXUS'],
      [{ SPIKE_TRUST_ROOT_BOOTSTRAP: 'spiffe://x.org/path' }, 'SPIKE_TRUST_ROOT_BOOTSTRAP'],
      [{ SPIKE_TRUST_ROOT_KEEPER: 'Bad_Domain!' }, 'SPIKE_TRUST_ROOT_KEEPER'],
    ];
    for (const [vars, variable] of cases) {
      const message = configError(() => parseKeeperConfig(vars));
      expect(message.startsWith(`${variable}:`)).toBe(true);
      expect(message).not.toContain('\n');
    }
  });
});
