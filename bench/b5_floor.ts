/**
 * B5's floor: an "ideal operator" — the least an operator on this stack must do to take an
 * ImageSync of one small tag to Ready. It watches the ImageSyncs of one namespace (one LIST,
 * one WATCH) and, for each not yet Ready, at a fixed concurrency: GETs the source manifest,
 * GETs every blob and uploads it to the destination (POST + monolithic PUT, streamed), PUTs the
 * manifest, and writes one status merge patch (Ready=True). No existence checks, no pings, no
 * Events, no retries, no metrics, no schemas; plain HTTP and anonymous registries only.
 *
 * It takes the operator's command line so the bench runs it as a form of `portager run`:
 *
 *   deno run -A bench/b5_floor.ts [--concurrency=N] run --kubeconfig=F --metrics-addr=H:P
 *     --namespace=NS [other operator flags, ignored]
 *
 * `/readyz` on the metrics address answers 200 once the first LIST returned.
 * @module
 */

import { parseArgs } from "node:util";
import { load } from "js-yaml";

/** The fields of an ImageSync the floor reads. */
interface ImageSync {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    source: { registry: string };
    destination: { registry: string };
    images: Array<{ name: string; tags?: string[] }>;
  };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/** The fields of an image manifest the floor reads. */
interface Manifest {
  config: { digest: string; size: number };
  layers: Array<{ digest: string; size: number }>;
}

const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const GROUP_PATH = "/apis/portager.portager.io/v1alpha1";

/** The apiserver's address, CA and bearer token from a kubeconfig written by the test harness. */
export function readKubeconfig(text: string): { server: string; caPem: string; token: string } {
  const doc = load(text) as {
    clusters: Array<{ cluster: { server: string; "certificate-authority-data": string } }>;
    users: Array<{ user: { token?: string } }>;
  };
  const cluster = doc.clusters[0].cluster;
  const token = doc.users[0].user.token;
  if (!token) throw new Error("the floor needs a token kubeconfig");
  return { server: cluster.server, caPem: atob(cluster["certificate-authority-data"]), token };
}

async function expect(res: Response, what: string, ok: number[]): Promise<void> {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
  }
}

/** Copies `repository:tag` from `src` to `dst` (base URLs) with the fewest requests a copy needs. */
export async function copyTag(src: string, dst: string, repository: string, tag: string): Promise<void> {
  const res = await fetch(`${src}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: MANIFEST_TYPES },
  });
  await expect(res, "GET manifest", [200]);
  const mediaType = res.headers.get("content-type") ?? "application/vnd.oci.image.manifest.v1+json";
  const bytes = new Uint8Array(await res.arrayBuffer());
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as Manifest;
  await Promise.all([manifest.config, ...manifest.layers].map(async ({ digest }) => {
    const [blob, start] = await Promise.all([
      fetch(`${src}/v2/${repository}/blobs/${digest}`),
      fetch(`${dst}/v2/${repository}/blobs/uploads/`, { method: "POST" }),
    ]);
    await start.body?.cancel();
    await expect(blob, `GET blob ${digest}`, [200]);
    await expect(start, `POST upload ${digest}`, [202]);
    const location = new URL(start.headers.get("location") ?? "", dst);
    location.searchParams.set("digest", digest);
    const put = await fetch(location, {
      method: "PUT",
      body: blob.body,
      headers: { "content-type": "application/octet-stream" },
    });
    await expect(put, `PUT blob ${digest}`, [201]);
    await put.body?.cancel();
  }));
  const put = await fetch(`${dst}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    body: bytes,
    headers: { "content-type": mediaType },
  });
  await expect(put, "PUT manifest", [201]);
  await put.body?.cancel();
}

/** The one status write: Ready=True with the operator's reason. */
export function readyStatus(now: Date): unknown {
  const time = now.toISOString().replace(/\.\d+Z$/, "Z");
  return {
    status: {
      conditions: [{
        type: "Ready",
        status: "True",
        reason: "SyncSucceeded",
        message: "1 of 1 tags in sync",
        lastTransitionTime: time,
      }],
      lastSyncTime: time,
      syncedImages: 1,
      failedImages: 0,
    },
  };
}

function isReady(o: ImageSync): boolean {
  return o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

async function main(args: string[]): Promise<void> {
  const { values: flags } = parseArgs({
    args,
    strict: false,
    allowPositionals: true,
    options: {
      kubeconfig: { type: "string" },
      "metrics-addr": { type: "string" },
      namespace: { type: "string" },
      concurrency: { type: "string" },
    },
  }) as { values: Record<string, string | undefined> };
  const concurrency = Number(flags.concurrency ?? 2);
  const namespace = flags.namespace;
  if (!flags.kubeconfig || !flags["metrics-addr"] || !namespace || !(concurrency >= 1)) {
    throw new Error(
      "usage: b5_floor.ts [--concurrency=N] run --kubeconfig=F --metrics-addr=H:P --namespace=NS",
    );
  }
  const kube = readKubeconfig(await Deno.readTextFile(flags.kubeconfig));
  const client = Deno.createHttpClient({ caCerts: [kube.caPem] });
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${kube.server}${path}`, {
      ...init,
      client,
      headers: { authorization: `Bearer ${kube.token}`, ...init.headers },
    } as RequestInit);
  const [host, port] = flags["metrics-addr"].split(/:(?=\d+$)/);
  let listed = false;
  Deno.serve(
    { hostname: host, port: Number(port), onListen: () => {} },
    () => new Response(listed ? "ok" : "not ready", { status: listed ? 200 : 503 }),
  );

  const queue: ImageSync[] = [];
  const seen = new Set<string>();
  /** Idle workers, each waiting for the next offer. */
  const idle: Array<() => void> = [];
  const offer = (o: ImageSync) => {
    if (isReady(o) || seen.has(o.metadata.name)) return;
    seen.add(o.metadata.name);
    queue.push(o);
    idle.shift()?.();
  };
  const scheme = (registry: string) => `http://${registry}`;
  const worker = async () => {
    for (;;) {
      const o = queue.shift();
      if (!o) {
        await new Promise<void>((r) => idle.push(r));
        continue;
      }
      const { name } = o.metadata;
      try {
        const image = o.spec.images[0];
        await copyTag(
          scheme(o.spec.source.registry),
          scheme(o.spec.destination.registry),
          image.name,
          image.tags![0],
        );
        const res = await api(`${GROUP_PATH}/namespaces/${namespace}/imagesyncs/${name}/status`, {
          method: "PATCH",
          body: JSON.stringify(readyStatus(new Date())),
          headers: { "content-type": "application/merge-patch+json" },
        });
        await expect(res, `PATCH ${name}/status`, [200]);
        await res.body?.cancel();
      } catch (e) {
        console.error(`${name}: ${e instanceof Error ? e.message : e}`);
      }
    }
  };
  for (let i = 0; i < concurrency; i++) worker();

  const path = `${GROUP_PATH}/namespaces/${namespace}/imagesyncs`;
  const list = await api(path);
  await expect(list, "LIST", [200]);
  const body = await list.json() as { metadata: { resourceVersion: string }; items: ImageSync[] };
  for (const o of body.items) offer(o);
  listed = true;
  let rv = body.metadata.resourceVersion;
  for (;;) {
    const res = await api(
      `${path}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=1800`,
    );
    await expect(res, "WATCH", [200]);
    let buffered = "";
    for await (const text of res.body!.pipeThrough(new TextDecoderStream())) {
      buffered += text;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line) as { type: string; object: ImageSync };
        if (event.type === "ERROR") throw new Error(`watch: ${line.slice(0, 300)}`);
        rv = event.object.metadata.resourceVersion ?? rv;
        if (event.type === "ADDED" || event.type === "MODIFIED") offer(event.object);
      }
    }
  }
}

if (import.meta.main) {
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  await main(Deno.args);
}
