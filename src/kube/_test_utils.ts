/**
 * Test helpers of src/kube: a fake apiserver on 127.0.0.1 in this process.
 * @module
 */

import { KubeClient } from "./client.ts";

/** Serves `handler` on 127.0.0.1 and runs `fn` with a client of it (plain HTTP, no auth); stops both after. */
export async function withLocalServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (client: KubeClient) => Promise<void>,
): Promise<void> {
  const ac = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} }, handler);
  const client = new KubeClient({
    server: `http://127.0.0.1:${server.addr.port}`,
    caCerts: [],
    auth: { kind: "none" },
    contextName: "test",
    inCluster: false,
  });
  try {
    await fn(client);
  } finally {
    client.close();
    ac.abort();
    await server.finished;
  }
}
