import assert from "node:assert/strict";
import { SYNC_NOW_ANNOTATION } from "../api/mod.ts";
import { withLocalServer } from "./_test_utils.ts";
import { KubeStore } from "./store.ts";

/** A fake apiserver: pages of ImageSyncs per namespace (2 a page, `continue` tokens) and merge patches. */
function withApiserver(
  objects: Record<string, number>,
  fn: (store: KubeStore, seen: { requests: string[]; patches: unknown[] }) => Promise<void>,
  options: { namespaces?: string[] } = {},
): Promise<void> {
  const seen = { requests: [] as string[], patches: [] as unknown[] };
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  const handler = async (req: Request) => {
    const url = new URL(req.url);
    seen.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const one = /\/namespaces\/([^/]+)\/imagesyncs\/([^/]+)$/.exec(url.pathname);
    if (req.method === "PATCH" && one) {
      seen.patches.push({ contentType: req.headers.get("content-type"), body: await req.json() });
      if (!(one[1] in objects)) return json(404, { kind: "Status", reason: "NotFound", code: 404 });
      return json(200, { metadata: { name: one[2], namespace: one[1] } });
    }
    const ns = /\/namespaces\/([^/]+)\/imagesyncs$/.exec(url.pathname)?.[1];
    const all = Object.entries(objects).filter(([n]) => ns === undefined || n === ns)
      .flatMap(([n, count]) => Array.from({ length: count }, (_, i) => ({ n, i })));
    const from = Number(url.searchParams.get("continue") ?? "0");
    const page = all.slice(from, from + 2).map(({ n, i }) => ({
      apiVersion: "portager.portager.io/v1alpha1",
      kind: "ImageSync",
      metadata: { name: `s${i}`, namespace: n, managedFields: [{ manager: "x".repeat(100) }] },
      spec: { schedule: "@every 1h" },
      status: { conditions: [] },
    }));
    return json(200, {
      items: page,
      metadata: { resourceVersion: "9", continue: from + 2 < all.length ? String(from + 2) : undefined },
    });
  };
  return withLocalServer(
    handler,
    (client) => fn(new KubeStore(client, { identity: "test", namespaces: options.namespaces }), seen),
  );
}

Deno.test("listImageSyncs: paged LISTs of the watched namespaces, only name, namespace and spec kept", async () => {
  await withApiserver({ a: 3, b: 2, c: 4 }, async (store, seen) => {
    const items = await store.listImageSyncs();
    assert.deepEqual(items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), [
      "a/s0",
      "a/s1",
      "a/s2",
      "b/s0",
      "b/s1",
    ]);
    assert.deepEqual(items[0], {
      apiVersion: "portager.portager.io/v1alpha1",
      kind: "ImageSync",
      metadata: { name: "s0", namespace: "a" },
      spec: { schedule: "@every 1h" },
    });
    assert.ok(
      seen.requests.every((r) => /^GET .*\/namespaces\/(a|b)\/imagesyncs\?limit=500/.test(r)),
      seen.requests.join("\n"),
    );
    assert.equal(seen.requests.length, 3, "a: two pages, b: one");
  }, { namespaces: ["a", "b"] });
});

Deno.test("listImageSyncs: at most maxItems, reading no page past them", async () => {
  await withApiserver({ a: 9 }, async (store, seen) => {
    const items = await store.listImageSyncs({ maxItems: 3 });
    assert.equal(items.length, 3);
    assert.equal(seen.requests.length, 2, seen.requests.join("\n"));
    assert.match(seen.requests[0], /^GET \/apis\/portager\.portager\.io\/v1alpha1\/imagesyncs\?limit=500/);
  });
});

Deno.test("requestSync: sets the sync-now annotation with a merge patch; false when the ImageSync is gone", async () => {
  await withApiserver({ a: 1 }, async (store, seen) => {
    assert.equal(await store.requestSync("a", "s0"), true);
    assert.equal(await store.requestSync("gone", "s0"), false);
    assert.deepEqual(seen.patches[0], {
      contentType: "application/merge-patch+json",
      body: { metadata: { annotations: { [SYNC_NOW_ANNOTATION]: "true" } } },
    });
  });
});
