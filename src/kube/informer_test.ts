import assert from "node:assert/strict";
import { KubeError, type KubeStatus, type WatchEvent } from "./client.ts";
import { Informer, type ListWatcher } from "./informer.ts";

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}

const o = (name: string, rv: string): Obj => ({ metadata: { name, namespace: "ns", resourceVersion: rv } });

/** A scripted ListWatcher: each list/watch call takes the next scripted answer. */
function scripted<T extends Obj>(
  lists: Array<T[] | Error>,
  watches: Array<Array<WatchEvent<T | KubeStatus>> | Error>,
  done: () => void,
): ListWatcher<T> & { watchedFrom: string[] } {
  const watchedFrom: string[] = [];
  let rv = 0;
  return {
    description: "test",
    watchedFrom,
    list() {
      const next = lists.shift();
      if (!next) {
        done();
        return new Promise(() => {});
      }
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve({ items: next, resourceVersion: String(++rv * 100) });
    },
    watch(resourceVersion) {
      watchedFrom.push(resourceVersion);
      const next = watches.shift();
      if (!next) {
        done();
        return Promise.reject(new KubeError("end of script", { reason: "Aborted", status: 0 }));
      }
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve((async function* () {
        for (const ev of next) yield ev;
      })());
    },
  };
}

Deno.test("informer: list, watch events, resume from last resourceVersion, relist on 410 with deletions", async () => {
  const seen: string[] = [];
  const ac = new AbortController();
  const lw = scripted(
    [[o("a", "1"), o("b", "1")], [o("a", "5")]],
    [
      [
        { type: "MODIFIED", object: o("a", "2") },
        { type: "ADDED", object: o("c", "3") },
        { type: "BOOKMARK", object: o("", "150") },
      ],
      [{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old" } }],
      [],
    ],
    () => ac.abort(),
  );
  const inf = new Informer<Obj>(lw, {
    onAdd: (x) => seen.push(`add ${x.metadata.name}@${x.metadata.resourceVersion}`),
    onUpdate: (p, x) =>
      seen.push(`update ${p.metadata.name}@${p.metadata.resourceVersion}->${x.metadata.resourceVersion}`),
    onDelete: (x) => seen.push(`delete ${x.metadata.name}`),
  }, { baseBackoffMs: 1 });
  await inf.run(ac.signal);
  assert.deepEqual(seen, [
    "add a@1",
    "add b@1",
    "update a@1->2",
    "add c@3",
    // relist after 410: a changed, b and c vanished while we were not watching
    "update a@2->5",
    "delete b",
    "delete c",
  ]);
  // first watch from the list's version; the second resumes from the bookmark; after the relist, from its version
  assert.deepEqual(lw.watchedFrom, ["100", "150", "200", "200"]);
  assert.equal(inf.lists, 2);
  assert.deepEqual(inf.list().map((x) => x.metadata.name), ["a"]);
});

Deno.test("informer: a failed list is retried with backoff", async () => {
  const ac = new AbortController();
  const lw = scripted(
    [new KubeError("down", { reason: "Network", status: 0 }), [o("a", "1")]],
    [],
    () => ac.abort(),
  );
  const inf = new Informer<Obj>(lw, {}, { baseBackoffMs: 1 });
  await inf.run(ac.signal);
  assert.equal(inf.lists, 2);
  assert.ok(inf.synced);
  assert.equal(inf.get("ns/a")?.metadata.resourceVersion, "1");
});

interface Full {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion: string;
    managedFields?: Array<Record<string, unknown>>;
  };
  spec?: { big: string };
}

const full = (name: string, rv: string): Full => ({
  metadata: {
    name,
    namespace: "ns",
    resourceVersion: rv,
    managedFields: [{ manager: "kubectl", operation: "Update", fieldsV1: { "f:spec": {} } }],
  },
  spec: { big: "x".repeat(100) },
});

Deno.test("informer: the cache never keeps managedFields (list, watch and observed objects)", async () => {
  const ac = new AbortController();
  const handed: Full[] = [];
  const lw = scripted(
    [[full("a", "1")]],
    [[{ type: "ADDED", object: full("b", "2") }, { type: "MODIFIED", object: full("a", "3") }]],
    () => ac.abort(),
  );
  const inf = new Informer<Full>(lw, {
    onAdd: (x) => handed.push(x),
    onUpdate: (_, x) => handed.push(x),
  }, { baseBackoffMs: 1 });
  await inf.run(ac.signal);
  inf.observe(full("b", "9"));
  assert.equal(handed.length, 4, "an observed write is handed on as an update");
  for (const x of [...handed, ...inf.list()]) {
    assert.equal(x.metadata.managedFields, undefined, `${x.metadata.name} kept managedFields`);
    assert.equal(x.spec?.big.length, 100, "everything else is kept");
  }
  assert.equal(inf.get("ns/b")?.metadata.resourceVersion, "9");
});

Deno.test("informer: a transform decides what the cache and the handlers get", async () => {
  const ac = new AbortController();
  const handed: Array<{ metadata: Obj["metadata"] }> = [];
  const lw = scripted([[full("a", "1")]], [[{ type: "DELETED", object: full("a", "2") }]], () => ac.abort());
  const inf = new Informer(lw, {
    onAdd: (x) => handed.push(x),
    onDelete: (x) => handed.push(x),
  }, {
    baseBackoffMs: 1,
    transform: (x: Full) => ({
      metadata: {
        name: x.metadata.name,
        namespace: x.metadata.namespace,
        resourceVersion: x.metadata.resourceVersion,
      },
    }),
  });
  await inf.run(ac.signal);
  assert.deepEqual(handed, [
    { metadata: { name: "a", namespace: "ns", resourceVersion: "1" } },
    { metadata: { name: "a", namespace: "ns", resourceVersion: "2" } },
  ]);
  assert.equal(inf.list().length, 0);
});

Deno.test("informer: an observed write is never undone by an older watch event or list", async () => {
  const ac = new AbortController();
  const seen: string[] = [];
  const mark = (x: Obj & { flag?: string }) => `${x.metadata.resourceVersion}${x.flag ? `:${x.flag}` : ""}`;
  const flagged = (rv: string, flag?: string) => ({ ...o("a", rv), flag });
  const ref: { inf?: Informer<Obj & { flag?: string }> } = {};
  const lw = scripted<Obj & { flag?: string }>(
    [[flagged("1", "sync-now")], [flagged("2", "sync-now")]],
    [
      [
        // the write this process made at 3 arrives after a change made at 2 by someone else
        { type: "MODIFIED", object: flagged("2", "sync-now") },
        { type: "MODIFIED", object: flagged("3") },
      ],
      [{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old" } }],
    ],
    () => ac.abort(),
  );
  const inf = ref.inf = new Informer(lw, {
    onAdd: (x) => {
      seen.push(`add ${mark(x)}`);
      // the reconcile of the new object removes the flag (a write at resourceVersion 3)
      ref.inf!.observe(flagged("3"));
    },
    onUpdate: (p, x) => seen.push(`update ${mark(p)}->${mark(x)}`),
  }, { baseBackoffMs: 1 });
  await inf.run(ac.signal);
  assert.deepEqual(seen, ["add 1:sync-now", "update 1:sync-now->3", "update 3->3"]);
  // nor by a relist whose snapshot predates the write
  assert.equal(mark(inf.get("ns/a")!), "3");
});
