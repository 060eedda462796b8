import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { KubeClient } from "./client.ts";
import { withLocalServer } from "./_test_utils.ts";

/** Serves one watch response whose bytes arrive in the given pieces, on 127.0.0.1 in this process. */
function withWatchServer(
  pieces: Uint8Array[],
  fn: (client: KubeClient) => Promise<void>,
): Promise<void> {
  return withLocalServer(() => {
    let i = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i === pieces.length) return c.close();
          c.enqueue(pieces[i++]);
          await new Promise((r) => setTimeout(r, 1)); // separate network reads
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  }, fn);
}

Deno.test("watch: events split anywhere across reads (mid-line, mid-UTF-8 character) arrive whole", async () => {
  const events = [
    { type: "ADDED", object: { metadata: { name: "a", resourceVersion: "1" } } },
    { type: "MODIFIED", object: { metadata: { name: "größe-✓", resourceVersion: "2" } } },
    { type: "BOOKMARK", object: { metadata: { resourceVersion: "3" } } },
  ];
  const bytes = new TextEncoder().encode(events.map((e) => JSON.stringify(e)).join("\n") + "\n");
  // cut inside the first line, inside the two-byte "ö", and inside the three-byte "✓"
  const cuts = [10, bytes.indexOf(0xc3) + 1, bytes.indexOf(0xe2) + 2, bytes.length];
  const pieces = cuts.map((end, i) => bytes.slice(i === 0 ? 0 : cuts[i - 1], end));
  await withWatchServer(pieces, async (client) => {
    const got = [];
    for await (const ev of await client.watch("/apis/x/v1/things")) got.push(ev);
    assert.deepEqual(got, events);
  });
});

Deno.test("watch: a stream larger than the read buffer arrives whole", async () => {
  const events = Array.from({ length: 300 }, (_, i) => ({
    type: "MODIFIED",
    object: { metadata: { name: `obj-${i}`, resourceVersion: String(i) }, data: "x".repeat(1000) },
  }));
  const text = events.map((e) => JSON.stringify(e)).join("\n") + "\n";
  await withWatchServer([new TextEncoder().encode(text)], async (client) => {
    const got = [];
    for await (const ev of await client.watch("/apis/x/v1/things")) got.push(ev);
    assert.equal(got.length, 300);
    assert.deepEqual(got.at(-1), events.at(-1));
  });
});

Deno.test("watch: leaving the loop early cancels the body (no leaked stream or timer)", async () => {
  const first = new TextEncoder().encode(
    JSON.stringify({ type: "ADDED", object: { metadata: { name: "a", resourceVersion: "1" } } }) + "\n",
  );
  // more pieces than the consumer reads: the rest must be cancelled, not drained
  const rest = Array.from({ length: 50 }, () => first);
  await withWatchServer([first, ...rest], async (client) => {
    for await (const ev of await client.watch("/apis/x/v1/things")) {
      assert.equal(ev.type, "ADDED");
      break;
    }
  });
});

/** V8's full collection, as `--expose-gc` would give it. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

Deno.test("watch: aborting the caller's signal ends a stalled watch, also after a GC took fetch's request", async () => {
  const first = new TextEncoder().encode(
    JSON.stringify({ type: "ADDED", object: { metadata: { name: "a", resourceVersion: "1" } } }) + "\n",
  );
  await withLocalServer(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(first);
        },
        pull: () => new Promise(() => {}), // nothing after the first event
      }, { highWaterMark: 0 }),
      { headers: { "content-type": "application/json" } },
    ), async (client) => {
    const ac = new AbortController();
    const events = await client.watch("/apis/x/v1/things", { signal: ac.signal });
    assert.equal((await events.next()).value?.type, "ADDED");
    collectGarbage();
    await new Promise((r) => setTimeout(r, 50));
    collectGarbage();
    const pending = events.next();
    ac.abort(new Error("stop"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      pending.then((r) => (r.done ? "ended" : "event"), () => "ended"),
      new Promise<string>((r) => timer = setTimeout(() => r("still waiting after 10 s"), 10_000)),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, "ended");
  });
});
