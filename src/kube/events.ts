/**
 * A core/v1 Event recorder that aggregates as client-go's EventCorrelator does, so a sync of
 * 1000 tags does not write 1000 Events yet `kubectl describe` shows what happened: a record
 * identical to an earlier one (object, type, reason, message) within the window bumps that
 * Event's count (a PATCH, not a create); distinct messages of one object, type and reason are
 * kept as their own Events until {@linkcode MAX_SIMILAR} of them were seen in the window,
 * after which further distinct messages go to one Event whose message is
 * `(combined from similar events): ` and the latest one (repeats of the messages kept are still
 * counted on their own Events). The window restarts after 10 minutes without a similar record.
 *
 * Writes are bounded whatever the number of tags a sync goes through: a new Event is created
 * within `flushMs` (200 ms), but a record that only updates an Event already written (its count,
 * the combined message) waits until that Event's records pause for `quietMs` (1 s), at most
 * `maxDelayMs` (30 s): one PATCH per burst, at most two a minute while a long sync keeps
 * recording, where writing each flush would patch five times a second. Records that arrive close together are coalesced into one write.
 * client-go's spam filter (25 Events per object, then one per 5 minutes, dropped beyond) is
 * not copied: it would drop the SyncComplete of a large sync.
 * @module
 */

import type { Logger } from "../log/mod.ts";
import { isKubeReason, type KubeClient, KubeError } from "./client.ts";

/** The object an Event is about. */
export interface EventObject {
  /** apiVersion of the object. */
  apiVersion: string;
  /** Kind of the object. */
  kind: string;
  /** Name of the object. */
  name: string;
  /** Namespace of the object (and of the Event). */
  namespace: string;
  /** UID of the object. */
  uid?: string;
  /** resourceVersion the Event refers to. */
  resourceVersion?: string;
}

/** Event type. */
export type EventType = "Normal" | "Warning";

/** What happened: the Event's type, reason and message. */
export interface EventRecord {
  /** Normal or Warning. */
  type: EventType;
  /** CamelCase reason, e.g. ImageSynced (the aggregation key, with the object and type). */
  reason: string;
  /** Human-readable message; the latest one wins when Events are aggregated. */
  message: string;
}

/** Options of {@linkcode EventRecorder}. */
export interface EventRecorderOptions {
  /** `source.component` / `reportingComponent`; default "portager". */
  component?: string;
  /** `reportingInstance` (e.g. the pod name). */
  instance?: string;
  /** Records of the same object+type+reason within this window update one Event; default 10 min. */
  windowMs?: number;
  /** How long records of a new Event are gathered before it is created; default 200 ms. */
  flushMs?: number;
  /** An update of a written Event waits for this pause in its records; default 1 s. */
  quietMs?: number;
  /** …but no longer than this after its first unwritten record; default 30 s. */
  maxDelayMs?: number;
  /** Where failed writes are logged. */
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => Date;
}

interface Series {
  target: EventObject;
  type: EventType;
  reason: string;
  message: string;
  /** Name of the Event once created. */
  name?: string;
  /** Count stored in the apiserver. */
  count: number;
  /** Records not yet written. */
  pending: number;
  firstTimestamp: string;
  lastTimestamp: string;
  lastRecordMs: number;
  /** Consecutive failed writes. */
  failures?: number;
  /** When the pending records are to be written (Date.now() ms). */
  due?: number;
  /** When the first record not yet written of an Event already written came (Date.now() ms). */
  firstPendingMs?: number;
}

const MAX_MESSAGE = 1024;
/** Distinct messages of one object, type and reason kept as their own Events (client-go's maxEvents). */
export const MAX_SIMILAR = 10;
/** How long after the first expiry the recorder forgets expired series, batching the rest. */
const PRUNE_SLACK_MS = 60_000;
/** client-go's prefix of an Event that stands for several similar ones. */
const COMBINED = "(combined from similar events): ";
/** Writes of one Event tried before its records are dropped. */
const MAX_ATTEMPTS = 5;

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Writes aggregated Events. Call `close()` to flush and stop its timer. */
export class EventRecorder {
  #kube: Pick<KubeClient, "request">;
  #component: string;
  #instance: string;
  #windowMs: number;
  #flushMs: number;
  #quietMs: number;
  #maxDelayMs: number;
  #log?: Logger;
  #now: () => Date;
  /** Every series held, oldest last record first (a record moves its series to the end). */
  #series = new Map<string, Series>();
  /**
   * Per object, type and reason: the distinct messages seen in the window (up to MAX_SIMILAR),
   * oldest last record first.
   */
  #similar = new Map<string, { messages: Set<string>; lastRecordMs: number }>();
  /** Events created so far (mod 10⁶): the nanoseconds of the next one's name. */
  #seq = 0;
  /** The series with records not yet written: what a flush looks at, not every series held. */
  #pending = new Set<Series>();
  #timer?: ReturnType<typeof setTimeout>;
  /** When the timer fires (Date.now() ms). */
  #timerAt = Infinity;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  /** API writes made (creates + patches), for tests and debugging. */
  writes = { created: 0, patched: 0 };

  /** Series (one per Event) and message groups held for aggregation, for tests and debugging. */
  get held(): { series: number; groups: number } {
    return { series: this.#series.size, groups: this.#similar.size };
  }

  /** Creates a recorder writing through `kube` (its `request` alone). */
  constructor(kube: Pick<KubeClient, "request">, options: EventRecorderOptions = {}) {
    this.#kube = kube;
    this.#component = options.component ?? "portager";
    this.#instance = options.instance ?? "portager";
    this.#windowMs = options.windowMs ?? 600_000;
    this.#flushMs = options.flushMs ?? 200;
    this.#quietMs = options.quietMs ?? 1_000;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#log = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** Records an Event; it is written asynchronously (never throws, never blocks). */
  record(target: EventObject, event: EventRecord): void {
    if (this.#closed) return;
    const { type, reason, message } = event;
    const now = this.#now();
    const group = `${target.namespace}/${target.uid ?? target.name}/${type}/${reason}`;
    let similar = this.#similar.get(group);
    if (!similar || now.getTime() - similar.lastRecordMs > this.#windowMs) {
      similar = { messages: new Set(), lastRecordMs: now.getTime() };
    }
    similar.lastRecordMs = now.getTime();
    // kept in order of their last record, so the expired ones are found at the front
    this.#similar.delete(group);
    this.#similar.set(group, similar);
    // client-go keeps MAX_SIMILAR - 1 messages of a group as their own Events; a further distinct
    // one goes to the combined Event (client-go then forgets an arbitrary kept message; this one
    // forgets the newcomer, so a kept message's repeats are counted on its own Event)
    if (!similar.messages.has(message) && similar.messages.size < MAX_SIMILAR - 1) {
      similar.messages.add(message);
    }
    const combined = !similar.messages.has(message);
    const key = combined ? `${group}/combined` : `${group}/${message}`;
    const full = combined ? COMBINED + message : message;
    const msg = full.length > MAX_MESSAGE ? full.slice(0, MAX_MESSAGE - 1) + "…" : full;
    let s = this.#series.get(key);
    if (!s || now.getTime() - s.lastRecordMs > this.#windowMs) {
      s = {
        target,
        type,
        reason,
        message: msg,
        count: 0,
        pending: 0,
        firstTimestamp: rfc3339(now),
        lastTimestamp: rfc3339(now),
        lastRecordMs: now.getTime(),
      };
    }
    this.#series.delete(key);
    this.#series.set(key, s);
    this.#pending.add(s);
    s.pending++;
    s.message = msg;
    s.target = target;
    s.lastTimestamp = rfc3339(now);
    s.lastRecordMs = now.getTime();
    const t = Date.now();
    if (s.name === undefined) {
      s.due ??= t + this.#flushMs;
    } else {
      // an update: one PATCH once the burst pauses, not one per flush while a sync runs
      s.firstPendingMs ??= t;
      s.due = Math.min(s.firstPendingMs + this.#maxDelayMs, t + this.#quietMs);
    }
    this.#arm(s.due);
  }

  /** Arms the one timer for `at` (Date.now() ms) unless it fires earlier already. */
  #arm(at: number): void {
    if (this.#closed || (this.#timer !== undefined && this.#timerAt <= at)) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#enqueue(false);
    }, Math.max(0, at - Date.now()));
  }

  /** Writes everything recorded so far, whether due or not. */
  flush(): Promise<void> {
    return this.#enqueue(true);
  }

  #enqueue(all: boolean): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushNow(all));
    return this.#flushing;
  }

  async #flushNow(all: boolean): Promise<void> {
    const nowMs = this.#now().getTime();
    const t = Date.now();
    let next = Infinity;
    this.#prune(nowMs);
    // only the series with records to write: a flush costs what it writes, not what is held
    // (thousands of series for as many ImageSyncs, each flush of a busy operator)
    for (const s of this.#pending) {
      if (!all && s.due !== undefined && s.due > t) {
        next = Math.min(next, s.due);
        continue;
      }
      const n = s.pending;
      s.pending = 0;
      s.due = s.firstPendingMs = undefined;
      try {
        await this.#write(s, n);
        s.failures = 0;
      } catch (err) {
        // an apiserver that is briefly away (restart, network) gets the records later
        const transient = err instanceof KubeError &&
          (err.status === 0 || err.status === 429 || err.status >= 500);
        s.failures = (s.failures ?? 0) + 1;
        if (transient && s.failures < MAX_ATTEMPTS && !this.#closed) {
          s.pending += n;
          s.due = Date.now() + Math.min(30_000, 1_000 * 2 ** s.failures);
          next = Math.min(next, s.due);
        }
        this.#log?.warn("could not write Event", {
          reason: s.reason,
          object: `${s.target.namespace}/${s.target.name}`,
          willRetry: s.pending > 0,
          error: err,
        });
      }
      // written (or given up), and nothing recorded meanwhile
      if (s.pending === 0) this.#pending.delete(s);
    }
    if (next === Infinity) next = this.#pruneAt(nowMs);
    if (next !== Infinity) this.#arm(next);
  }

  /**
   * When nothing is left to write: the flush (Date.now() ms) that forgets the series and groups
   * whose window has passed, a minute after the first of them expires so expiries are batched.
   * Without it an operator that stops recording keeps them for good: ~3 MiB of heap per 1000
   * ImageSyncs (two Events each: the objects, their messages and keys). Forgetting them changes
   * nothing written: a record after the window starts a new series anyway.
   */
  #pruneAt(nowMs: number): number {
    // both maps are in order of last record: their first entries are the oldest
    let first = Infinity;
    for (const g of this.#similar.values()) {
      first = Math.min(first, g.lastRecordMs);
      break;
    }
    for (const s of this.#series.values()) {
      first = Math.min(first, s.lastRecordMs);
      break;
    }
    if (first === Infinity) return Infinity;
    return Date.now() + Math.max(0, first + this.#windowMs - nowMs) +
      Math.min(PRUNE_SLACK_MS, Math.max(1, this.#windowMs));
  }

  /**
   * Forgets the groups and the written series whose window has passed at `nowMs`: found at the
   * front of their maps (oldest last record first), so this costs what it forgets.
   */
  #prune(nowMs: number): void {
    for (const [group, g] of this.#similar) {
      if (nowMs - g.lastRecordMs <= this.#windowMs) break;
      this.#similar.delete(group);
    }
    for (const [key, s] of this.#series) {
      if (nowMs - s.lastRecordMs <= this.#windowMs) break;
      // a series still failing to write keeps its records until its attempts run out
      if (s.pending === 0) this.#series.delete(key);
    }
  }

  async #write(s: Series, n: number): Promise<void> {
    const ns = encodeURIComponent(s.target.namespace);
    if (s.name) {
      try {
        await this.#kube.request("PATCH", `/api/v1/namespaces/${ns}/events/${encodeURIComponent(s.name)}`, {
          body: { count: s.count + n, message: s.message, lastTimestamp: s.lastTimestamp },
          contentType: "application/merge-patch+json",
        });
        s.count += n;
        this.writes.patched++;
        return;
      } catch (err) {
        // the Event expired (TTL) or was deleted: start a new one
        if (!isKubeReason(err, "NotFound")) throw err;
        s.name = undefined;
        s.count = 0;
        s.firstTimestamp = s.lastTimestamp;
      }
    }
    const t = s.target;
    // client-go's <name>.<unix nanos in hex>; the sequence keeps the names of Events created
    // in the same millisecond distinct (a clash would be refused with 409 and the Event lost)
    this.#seq = (this.#seq + 1) % 1_000_000;
    const name = `${t.name}.${(BigInt(Date.now()) * 1_000_000n + BigInt(this.#seq)).toString(16)}${
      Math.floor(Math.random() * 0xfff).toString(16)
    }`;
    await this.#kube.request("POST", `/api/v1/namespaces/${ns}/events`, {
      body: {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace: t.namespace },
        involvedObject: {
          apiVersion: t.apiVersion,
          kind: t.kind,
          name: t.name,
          namespace: t.namespace,
          uid: t.uid,
          resourceVersion: t.resourceVersion,
        },
        reason: s.reason,
        message: s.message,
        type: s.type,
        count: n,
        firstTimestamp: s.firstTimestamp,
        lastTimestamp: s.lastTimestamp,
        source: { component: this.#component },
        reportingComponent: this.#component,
        reportingInstance: this.#instance,
      },
    });
    s.name = name;
    s.count = n;
    this.writes.created++;
  }

  /** Flushes pending records and stops; later records are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
    await this.flush();
  }
}
