/**
 * A histogram with fixed buckets that keeps each label set in one small Float64Array.
 *
 * prom-client's own Histogram copies an object keyed by the bucket bounds for every label set;
 * with upstream's bounds (1 … 300 s) V8 stores those integer keys as a 300-slot array, about
 * 4 KB per series: 3.9 MiB of heap for 1000 ImageSyncs, the largest thing the idle operator
 * held. This one costs ~0.3 KB per series and hands prom-client's Registry the same values, so
 * the exposition text is prom-client's own (a test compares the two line by line).
 * @module
 */

import type { Histogram, Registry } from "prom-client";

/** One exposed sample: `<metricName>{labels} value`. */
export interface HistogramSample {
  /** name_bucket, name_sum or name_count. */
  metricName: string;
  /** The series' labels (and `le` for buckets). */
  labels: Record<string, string | number>;
  /** Cumulative bucket count, sum or count. */
  value: number;
}

/** What prom-client's Registry reads from a metric. */
export interface HistogramSnapshot {
  /** Metric name. */
  name: string;
  /** HELP text. */
  help: string;
  /** Always "histogram". */
  type: "histogram";
  /** Always "sum". */
  aggregator: "sum";
  /** Every sample of every series. */
  values: HistogramSample[];
}

/** Options of {@linkcode CompactHistogram}. */
export interface CompactHistogramOptions<L extends string> {
  /** Metric name, e.g. portage_sync_duration_seconds. */
  name: string;
  /** HELP text. */
  help: string;
  /** Label names, in exposition order. */
  labelNames: readonly L[];
  /** Upper bounds of the buckets, ascending (+Inf is implicit). */
  buckets: number[];
  /** Registries to register with. */
  registers: Registry[];
}

interface Series<L extends string> {
  labels: Record<L, string>;
  /** Per-bucket counts (not cumulative), then sum, then count. */
  data: Float64Array;
}

/** A memory-lean histogram that registers with prom-client's Registry like a Histogram. */
export class CompactHistogram<L extends string> {
  /** Metric name. */
  readonly name: string;
  /** HELP text. */
  readonly help: string;
  /** Always "histogram". */
  readonly type = "histogram" as const;
  /** How prom-client's cluster mode would aggregate it. */
  readonly aggregator = "sum" as const;
  #labelNames: readonly L[];
  #bounds: number[];
  #series = new Map<string, Series<L>>();

  /** Creates the histogram and registers it. */
  constructor(options: CompactHistogramOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    // prom-client's Registry reads name/help/type and calls get(); it types registerMetric
    // with its own four classes, hence the cast
    for (const r of options.registers) r.registerMetric(this as unknown as Histogram<L>);
  }

  #key(labels: Partial<Record<L, string | number>>): string {
    for (const k of Object.keys(labels)) {
      if (!this.#labelNames.includes(k as L)) {
        throw new Error(
          `Added label "${k}" is not included in initial labelset: ${this.#labelNames.join(", ")}`,
        );
      }
    }
    return this.#labelNames.map((n) => String(labels[n] ?? "")).join("\u0000");
  }

  /** Records one observation of `value` for `labels`. */
  observe(labels: Record<L, string | number>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const key = this.#key(labels);
    let s = this.#series.get(key);
    if (!s) {
      const copy = {} as Record<L, string>;
      for (const n of this.#labelNames) if (labels[n] !== undefined) copy[n] = String(labels[n]);
      s = { labels: copy, data: new Float64Array(this.#bounds.length + 2) };
      this.#series.set(key, s);
    }
    const b = this.#bounds.findIndex((bound) => value <= bound);
    if (b >= 0) s.data[b]++;
    s.data[this.#bounds.length] += value;
    s.data[this.#bounds.length + 1]++;
  }

  /** Drops the series of `labels`. */
  remove(labels: Partial<Record<L, string | number>>): void {
    this.#series.delete(this.#key(labels));
  }

  /** Drops every series. */
  reset(): void {
    this.#series.clear();
  }

  /** The values, in prom-client's Histogram shape (buckets cumulative, then +Inf, sum, count). */
  get(): Promise<HistogramSnapshot> {
    const values: HistogramSample[] = [];
    const n = this.#bounds.length;
    for (const { labels, data } of this.#series.values()) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        acc += data[i];
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { le: this.#bounds[i], ...labels },
          value: acc,
        });
      }
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: "+Inf", ...labels },
        value: data[n + 1],
      });
      values.push({ metricName: `${this.name}_sum`, labels: { ...labels }, value: data[n] });
      values.push({ metricName: `${this.name}_count`, labels: { ...labels }, value: data[n + 1] });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }
}
