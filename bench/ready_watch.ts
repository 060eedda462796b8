/**
 * Follows the Ready condition of every ImageSync in one namespace with one LIST and one WATCH, so the
 * bench's wait for "all Ready" costs the apiserver one stream rather than a LIST of every object every
 * half second (at 1000–3000 ImageSyncs that poll was a visible share of the apiserver's CPU inside the
 * timed span).
 *
 * @module
 */
import type { KubeCluster } from "../tests/harness/kube.ts";

/** The Ready condition's part the bench reads. */
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** An ImageSync as listed or watched: its name, resourceVersion and conditions. */
interface Item {
  metadata: { name: string; resourceVersion?: string };
  status?: { conditions?: Condition[] };
}

/** How many ImageSyncs are Ready, and which ended not Ready for a reason other than still syncing. */
export interface ReadyCount {
  ready: number;
  failed: Array<{ name: string; message: string }>;
}

/** Reasons of a Ready=False condition that mean "not done yet" rather than "failed". */
const PENDING_REASONS = new Set(["Syncing", "Progressing"]);

/** Counts Ready and failed ImageSyncs from their conditions (pure; the watch feeds it). */
export function countReady(conditions: Iterable<[string, Condition | undefined]>): ReadyCount {
  let ready = 0;
  const failed: ReadyCount["failed"] = [];
  for (const [name, c] of conditions) {
    if (c?.status === "True") ready++;
    else if (c?.status === "False" && !PENDING_REASONS.has(c.reason ?? "")) {
      failed.push({ name, message: `${c.reason}: ${c.message}` });
    }
  }
  return { ready, failed };
}

/** A running LIST + WATCH of one namespace's ImageSyncs; read {@linkcode ReadyWatch.count} at will. */
export interface ReadyWatch {
  /** The counts as of the last event received. */
  count(): ReadyCount;
  /** Ends the watch. */
  close(): Promise<void>;
}

/**
 * Lists `namespace`'s ImageSyncs under `groupPath` once, then watches from the list's resourceVersion
 * (re-listing when the apiserver answers 410 Gone, re-watching when it ends a watch) until closed.
 */
export async function watchReady(kube: KubeCluster, groupPath: string): Promise<ReadyWatch> {
  const ready = new Map<string, Condition | undefined>();
  const ac = new AbortController();
  /** The watch body being read: close() cancels it, as an abort of an answered fetch may not end it. */
  let current: ReadableStreamDefaultReader<string> | undefined;
  const readyOf = (item: Item) => item.status?.conditions?.find((c) => c.type === "Ready");

  const list = async (): Promise<string> => {
    const res = await kube.adminFetch(groupPath, { signal: ac.signal });
    if (!res.ok) throw new Error(`LIST ${groupPath}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    const body = await res.json() as { metadata: { resourceVersion: string }; items: Item[] };
    ready.clear();
    for (const item of body.items) ready.set(item.metadata.name, readyOf(item));
    return body.metadata.resourceVersion;
  };

  /** One watch from `rv`; returns the last resourceVersion seen, or undefined when it must re-list. */
  const watch = async (rv: string): Promise<string | undefined> => {
    const res = await kube.adminFetch(
      `${groupPath}?watch=1&resourceVersion=${encodeURIComponent(rv)}&timeoutSeconds=1800`,
      { signal: ac.signal },
    );
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    let buffered = "";
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    current = reader;
    for (;;) {
      const { done, value: text } = await reader.read();
      if (done) break;
      buffered += text;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        const event = JSON.parse(line) as { type: string; object: Item & { code?: number } };
        if (event.type === "ERROR") return undefined; // 410 Gone or another watch error: re-list
        const name = event.object.metadata.name;
        if (event.type === "DELETED") ready.delete(name);
        else ready.set(name, readyOf(event.object));
        rv = event.object.metadata.resourceVersion ?? rv;
      }
    }
    return rv;
  };

  let rv: string | undefined = await list();
  const loop = (async () => {
    while (!ac.signal.aborted) {
      try {
        rv = rv === undefined ? await list() : await watch(rv);
      } catch (e) {
        if (ac.signal.aborted) return;
        rv = undefined;
        console.error(`ready watch: ${e instanceof Error ? e.message : e}; re-listing`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();

  return {
    count: () => countReady(ready),
    close: async () => {
      ac.abort();
      await current?.cancel().catch(() => {});
      // the loop ends with the cancelled read; never let a stuck stream hold the bench
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([loop, new Promise((r) => timer = setTimeout(r, 2_000))]);
      clearTimeout(timer);
    },
  };
}
