/**
 * The Vault API over the real mTLS transport (tests/support/vault-server.ts): SVIDs from the
 * Workload API, hostname verification ON against the Nexus SVID's DNS/IP SANs, HTTP/1.1 and
 * HTTP/2, identity from the certificate only, and audit lines with the caller's SPIFFE ID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { startVaultServer, VAULT_CLIENTS, type VaultServer } from './support/vault-server.ts';

let server: VaultServer;
let dir: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spk-v-'));
  server = await startVaultServer(dir);
}, 30_000);
afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function tls(name: keyof typeof VAULT_CLIENTS) {
  const c = server.files.clients[name];
  return {
    ca: fs.readFileSync(server.files.ca, 'utf8'),
    cert: fs.readFileSync(c.cert, 'utf8'),
    key: fs.readFileSync(c.key, 'utf8'),
  };
}

async function call(
  name: keyof typeof VAULT_CLIENTS,
  method: string,
  p: string,
  body?: unknown,
  host = 'localhost',
) {
  const res = await fetch(`https://${host}:${server.port}${p}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'X-Vault-Token': 'ignored', 'X-Vault-Request': 'true' },
    tls: tls(name),
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text };
}

describe('Vault API over mTLS', () => {
  it('verifies the hostname (localhost and 127.0.0.1) and serves KV v2', async () => {
    const w = await call('pilot', 'POST', '/v1/secret/data/app/x', { data: { pw: 's3' } });
    expect([w.status, w.type]).toEqual([200, 'application/json']);
    const r = await call('pilot', 'GET', '/v1/secret/data/app/x', undefined, '127.0.0.1');
    expect(JSON.parse(r.text).data.data).toEqual({ pw: 's3' });
    const h = await call('pilot', 'GET', '/v1/sys/health');
    expect(h.status).toBe(200);
  });

  it('a name outside the SANs fails the hostname check', async () => {
    await expect(call('pilot', 'GET', '/v1/sys/health', undefined, '127.0.0.2')).rejects.toThrow();
  });

  it('the certificate decides: reader reads app/, denied gets 403, tokens are ignored', async () => {
    await call('pilot', 'POST', '/v1/secret/data/app/y', { data: { a: '1' } });
    expect((await call('reader', 'GET', '/v1/secret/data/app/y')).status).toBe(200);
    expect((await call('reader', 'POST', '/v1/secret/data/app/y', { data: {} })).status).toBe(403);
    const d = await call('denied', 'GET', '/v1/secret/data/app/y');
    expect([d.status, d.text]).toEqual([403, '{"errors":["permission denied"]}']);
    const me = await call('denied', 'GET', '/v1/auth/token/lookup-self');
    expect(JSON.parse(me.text).data.display_name).toBe(VAULT_CLIENTS.denied);
    const lines = server.audit.map((l) => JSON.parse(l));
    expect(lines.some((l) => l.caller === VAULT_CLIENTS.denied && l.status === 403)).toBe(true);
    // The SPIKE API is still served beside it.
    const spike = await call('pilot', 'POST', '/v1/store/secrets?action=get', { path: 'app/y' });
    expect(JSON.parse(spike.text).data).toEqual({ a: '1' });
  });

  it('HTTP/2 GET ?list=true and the LIST verb both list the folder', async () => {
    await call('pilot', 'POST', '/v1/secret/data/app/z', { data: { a: '1' } });
    const session = http2.connect(`https://localhost:${server.port}`, tls('pilot'));
    try {
      const request = (method: string, p: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const s = session.request({ ':method': method, ':path': p });
          let body = '';
          let status = 0;
          s.on('response', (h) => {
            status = Number(h[':status']);
          });
          s.setEncoding('utf8');
          s.on('data', (c: string) => {
            body += c;
          });
          s.on('end', () => resolve({ status, body }));
          s.on('error', reject);
          s.end();
        });
      const list = await request('GET', '/v1/secret/metadata/app/?list=true');
      expect(JSON.parse(list.body).data.keys).toEqual(['x', 'y', 'z']);
      const verb = await request('LIST', '/v1/secret/metadata/app/');
      expect(verb.status).toBe(200);
      expect(JSON.parse(verb.body).data.keys).toEqual(['x', 'y', 'z']);
    } finally {
      session.close();
    }
  });
});
