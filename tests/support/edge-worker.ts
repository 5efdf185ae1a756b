/**
 * A Cloudflare Worker that reads a SPIKE secret with `spike-ts/edge` (bundled by
 * tests/nexus-jwt.test.ts and run in workerd through Miniflare). Bindings: `NEXUS_URL`, `JWT_SVID`.
 */
import { createEdgeClient, isSpikeError } from '../../src/sdk/edge.ts';

interface Env {
  readonly NEXUS_URL: string;
  readonly JWT_SVID: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const spike = createEdgeClient({
      apiUrl: env.NEXUS_URL,
      token: () => env.JWT_SVID,
      retry: false,
    });
    const path = new URL(request.url).searchParams.get('path') ?? '';
    try {
      const { data } = await spike.getSecret(path);
      return Response.json({ data });
    } catch (error) {
      return Response.json({ code: isSpikeError(error) ? error.code : String(error) });
    }
  },
};
