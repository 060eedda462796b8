import assert from "node:assert/strict";
import { KubeError, type KubeStatus, type WatchEvent } from "./client.ts";
import { Informer, type ListWatcher } from "./informer.ts";

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}

const o = (name: string, rv: string): Obj => ({ metadata: { name, namespace: "ns", resourceVersion: rv } });

/** A scripted ListWatcher: each list/watch call takes the next scripted answer. */
function scripted(
  lists: Array<Obj[] | Error>,
  watches: Array<Array<WatchEvent<Obj | KubeStatus>> | Error>,
  done: () => void,
): ListWatcher<Obj> & { watchedFrom: string[] } {
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
