/**
 * JWT-SVIDs end to end with real processes (docs/spike-api.md §2.1, docs/spiffe.md §6): the
 * development issuer signs the token (FetchJWTSVID) and streams its JWKS (FetchJWTBundles) to a
 * real `bun src/nexus/main.ts` with `SPIKE_NEXUS_JWT_AUDIENCE` set (memory backend); the workload
 * reads its secret with the edge client over server-authenticated TLS, without a certificate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { isSpikeError } from '../src/core/errors.ts';
import { fetchJwtSvid } from '../src/runtime/workload/fetch.ts';
import { createClient, type SpikeClient } from '../src/sdk/client.ts';
import { createEdgeClient } from '../src/sdk/edge.ts';
import { toPem } from './support/cert-factory.ts';
import { type Cluster, startCluster } from './support/cluster.ts';

const AUD = 'spike-nexus';
const EDGE_ID = 'spiffe://spike.ist/workload/edge';

let cluster: Cluster;
let pilot: SpikeClient;
let ca: string;

/** A `fetch` that trusts only the development trust bundle. */
const trustingFetch = ((input: RequestInfo | URL, init?: RequestInit) =>
  fetch(input, { ...init, tls: { ca } } as RequestInit)) as typeof fetch;

function edgeClient(token: string) {
  return createEdgeClient({
    apiUrl: cluster.nexusUrl,
    token: () => token,
    fetch: trustingFetch,
    retry: false,
  });
}

beforeAll(async () => {
  cluster = await startCluster({
    keepers: 0,
    extraWorkloads: { edge: EDGE_ID },
    nexusEnv: {
      SPIKE_NEXUS_BACKEND_STORE: 'memory',
      SPIKE_NEXUS_SHAMIR_SHARES: '3',
      SPIKE_NEXUS_SHAMIR_THRESHOLD: '2',
      SPIKE_NEXUS_JWT_AUDIENCE: AUD,
    },
  });
  await cluster.waitReady(60_000);
  ca = Buffer.from(toPem(cluster.issuer.rootCertificate)).toString();
  pilot = await createClient({
    socket: cluster.issuer.addressFor('pilot'),
    apiUrl: cluster.nexusUrl,
    nexusTrustDomains: ['spike.ist'],
    retry: false,
  });
  await pilot.putSecret('apps/edge/db', { pass: 'edge-secret' });
  await pilot.putSecret('apps/other/db', { pass: 'not-yours' });
  await pilot.putPolicy({
    name: 'edge-read',
    spiffeIdPattern: '^spiffe://spike\\.ist/workload/edge$',
    pathPattern: '^apps/edge/',
    permissions: ['read'],
  });
}, 90_000);

afterAll(async () => {
  await pilot?.close();
  await cluster?.close();
});

async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return isSpikeError(error) ? error.code : String(error);
  }
  return 'accepted';
}

describe('JWT-SVID with the development issuer and a real Nexus', () => {
  it('logs that JWT-SVID bearer tokens are accepted', async () => {
    const text = await Bun.file(cluster.nexus.outLog).text();
    expect(text).toContain('SPIKE_NEXUS_JWT_AUDIENCE is set');
  });

  it('reads a secret with a JWT-SVID from the issuer socket, no client certificate', async () => {
    const [svid] = await fetchJwtSvid({
      address: cluster.issuer.addressFor('edge'),
      audience: [AUD],
    });
    expect(svid?.spiffeId).toBe(EDGE_ID);
    const spike = edgeClient(svid!.svid);
    const { data } = await spike.getSecret('apps/edge/db');
    expect(data).toEqual({ pass: 'edge-secret' });
    // The same policies decide: another path is not this workload's.
    expect(await refusal(spike.getSecret('apps/other/db'))).toBe('access_unauthorized');
  }, 30_000);

  it('refuses a token for another audience with access_unauthorized', async () => {
    const [svid] = await fetchJwtSvid({
      address: cluster.issuer.addressFor('edge'),
      audience: ['vault'],
    });
    expect(svid?.spiffeId).toBe(EDGE_ID);
    expect(await refusal(edgeClient(svid!.svid).getSecret('apps/edge/db'))).toBe(
      'access_unauthorized',
    );
  }, 30_000);

  it('refuses a token with a tampered signature', async () => {
    const [svid] = await fetchJwtSvid({
      address: cluster.issuer.addressFor('edge'),
      audience: [AUD],
    });
    const [h, p, s] = svid!.svid.split('.');
    const flipped = `${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`;
    expect(await refusal(edgeClient(`${h}.${p}.${flipped}`).getSecret('apps/edge/db'))).toBe(
      'access_unauthorized',
    );
  }, 30_000);
});
