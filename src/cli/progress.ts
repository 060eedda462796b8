/**
 * Progress and results of `portager sync` for people and machines:
 * - on a terminal, a live bar per image plus overall bytes, rate and ETA, redrawn in place
 *   at most ten times a second, with a line per finished tag printed above the bars;
 * - without a terminal (CI logs), one plain line per finished tag and no control characters;
 * - a summary table at the end; `--output json` prints one JSON document instead.
 * @module
 */
import { formatBytes, shortDigest } from "../sync/format.ts";

// the one formatter of byte counts and digests (also for this module's callers)
export { formatBytes, shortDigest };

/** One tag's outcome as the display needs it (a subset of src/sync's TagResult). */
export interface TagLine {
  tag: string;
  action: "copied" | "up-to-date" | "would-copy" | "failed";
  sourceDigest?: string;
  error?: string;
  reason?: string;
  bytesMoved?: number;
  blobsCopied?: number;
  blobsMounted?: number;
  blobsSkipped?: number;
}

/** One image of a report as the display needs it. */
export interface ImageLine {
  name: string;
  sourceRepository: string;
  destinationRepository: string;
  tags: TagLine[];
}

/** One ImageSync's outcome, for the summary. */
export interface SummaryRow {
  /** The ImageSync's name (or namespace/name). */
  imageSync: string;
  images: ImageLine[];
  /** A failure of the whole ImageSync before any tag ran (credentials, tag listing). */
  error?: string;
}

/** Options for {@linkcode Progress}. */
export interface ProgressOptions {
  /** Live redrawn bars (a terminal) or one plain line per finished tag. */
  tty: boolean;
  /** Where text goes; default standard output. */
  write?: (text: string) => void;
  /** Milliseconds clock; default `performance.now()`. */
  now?: () => number;
  /** Terminal width for the bars; default from the console, else 100. */
  columns?: number;
  /** Dry run: words say "would copy". */
  dryRun?: boolean;
}

const encoder = new TextEncoder();

function writeStdout(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Formats seconds as `7s`, `3m05s` or `2h04m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 9.95) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Removes control characters (ANSI escapes included) from text that came from elsewhere. */
export function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  const escapes = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;
  // deno-lint-ignore no-control-regex
  const controls = /[\x00-\x1f\x7f-\x9f]/g;
  return text.replace(escapes, "").replace(/[\r\n\t]+/g, " ").replace(controls, " ");
}

/** The image part of a destination reference `host[:port]/repo:tag` (or `@digest`). */
export function imageOfRef(ref: string): string {
  const at = ref.indexOf("@");
  if (at >= 0) return ref.slice(0, at);
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash ? ref.slice(0, colon) : ref;
}

const ACTION_WORD: Record<TagLine["action"], string> = {
  "copied": "copied",
  "up-to-date": "up to date",
  "would-copy": "would copy",
  "failed": "FAILED",
};

function blobWords(t: TagLine, dryRun: boolean): string {
  const parts: string[] = [];
  const copied = t.blobsCopied ?? 0;
  const mounted = t.blobsMounted ?? 0;
  const skipped = t.blobsSkipped ?? 0;
  parts.push(`${copied} blob${copied === 1 ? "" : "s"} ${dryRun ? "to copy" : "copied"}`);
  if (mounted) parts.push(`${mounted} ${dryRun ? "to mount" : "mounted"}`);
  if (skipped) parts.push(`${skipped} ${dryRun ? "to skip" : "skipped"}`);
  return parts.join(", ");
}

/**
 * One line for a finished tag, with no control characters:
 * `copied      mirror  127.0.0.1:5000/library/nginx:1.27  sha256:0123456789ab  12.3 MiB (3 blobs copied, 1 mounted)`.
 */
export function formatTagLine(
  imageSync: string,
  image: Pick<ImageLine, "destinationRepository" | "sourceRepository">,
  t: TagLine,
  options: { dryRun?: boolean } = {},
): string {
  const dryRun = options.dryRun ?? false;
  const word = ACTION_WORD[t.action].padEnd(10);
  const where = `${image.destinationRepository}:${t.tag}`;
  let detail: string;
  switch (t.action) {
    case "copied":
    case "would-copy":
      detail = `${shortDigest(t.sourceDigest)}  ${formatBytes(t.bytesMoved ?? 0)}`;
      if (t.blobsCopied !== undefined || t.blobsMounted !== undefined || t.blobsSkipped !== undefined) {
        detail += ` (${blobWords(t, dryRun)})`;
      }
      break;
    case "up-to-date":
      detail = shortDigest(t.sourceDigest);
      break;
    case "failed":
      detail = `${t.reason ? `${t.reason}: ` : ""}${t.error ?? "failed"}`;
      break;
  }
  return plain(`${word}  ${imageSync}  ${where}  ${detail}`.trimEnd());
}

interface ImageState {
  imageSync: string;
  label: string;
  /** Per destination ref: bytes so far and planned total. */
  refs: Map<string, { bytes: number; total?: number; done: boolean }>;
  tagsDone: number;
  tagsTotal?: number;
  failed: number;
}

/**
 * The live display: feed it the copier's progress events and each finished tag; call
 * {@linkcode Progress.close} at the end (it clears the bars and stops the redraw timer).
 */
export class Progress {
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #columns: number;
  readonly #dryRun: boolean;
  readonly #images = new Map<string, ImageState>();
  readonly #byRef = new Map<string, ImageState>();
  readonly #started: number;
  #samples: Array<{ t: number; bytes: number }> = [];
  #drawnLines = 0;
  #lastDraw = -Infinity;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;

  /** Creates the display; nothing is written until something happens. */
  constructor(options: ProgressOptions) {
    this.#tty = options.tty;
    this.#write = options.write ?? writeStdout;
    this.#now = options.now ?? (() => performance.now());
    this.#dryRun = options.dryRun ?? false;
    let columns = options.columns;
    if (columns === undefined) {
      try {
        columns = Deno.consoleSize().columns;
      } catch {
        columns = 0;
      }
      // a terminal that reports no size (some ptys): $COLUMNS, else a common width
      if (columns < 20) columns = Number(Deno.env.get("COLUMNS")) || 100;
    }
    this.#columns = Math.max(40, columns);
    this.#started = this.#now();
  }

  /** Whether bars are drawn. */
  get tty(): boolean {
    return this.#tty;
  }

  #image(imageSync: string, destinationRepository: string): ImageState {
    const key = `${imageSync}\u0000${destinationRepository}`;
    let st = this.#images.get(key);
    if (!st) {
      st = { imageSync, label: destinationRepository, refs: new Map(), tagsDone: 0, failed: 0 };
      this.#images.set(key, st);
    }
    return st;
  }

  /** Announces an image and how many tags it will sync (so its bar shows `n of m tags`). */
  image(imageSync: string, destinationRepository: string, tagCount: number): void {
    this.#image(imageSync, destinationRepository).tagsTotal = tagCount;
    this.#schedule();
  }

  /** Records the copier's progress for the destination `ref` (`host/repo:tag`). */
  bytes(imageSync: string, e: { ref: string; bytes: number; totalBytes?: number }): void {
    const st = this.#image(imageSync, imageOfRef(e.ref));
    this.#byRef.set(e.ref, st);
    const r = st.refs.get(e.ref) ?? { bytes: 0, done: false };
    r.bytes = e.bytes;
    if (e.totalBytes !== undefined) r.total = e.totalBytes;
    st.refs.set(e.ref, r);
    this.#sample();
    this.#schedule();
  }

  /** Records a finished tag and prints its line (above the bars on a terminal). */
  tag(
    imageSync: string,
    image: Pick<ImageLine, "destinationRepository" | "sourceRepository">,
    t: TagLine,
  ): void {
    const st = this.#image(imageSync, image.destinationRepository);
    const ref = `${image.destinationRepository}:${t.tag}`;
    const r = st.refs.get(ref) ?? { bytes: 0, done: false };
    if (!r.done) st.tagsDone++;
    r.done = true;
    if (t.action === "copied") r.bytes = r.total = Math.max(t.bytesMoved ?? 0, r.bytes);
    else r.total = r.bytes;
    st.refs.set(ref, r);
    if (t.action === "failed") st.failed++;
    this.#sample();
    this.line(formatTagLine(imageSync, image, t, { dryRun: this.#dryRun }));
  }

  /** Prints a line of text (above the bars on a terminal). */
  line(text: string): void {
    if (this.#closed) return;
    if (!this.#tty) {
      this.#write(plain(text) + "\n");
      return;
    }
    this.#write(this.#clear() + plain(text) + "\n");
    this.#drawnLines = 0;
    this.#draw();
  }

  /** Overall bytes so far and planned. */
  totals(): { bytes: number; total: number } {
    let bytes = 0, total = 0;
    for (const st of this.#images.values()) {
      for (const r of st.refs.values()) {
        bytes += r.bytes;
        total += Math.max(r.total ?? 0, r.bytes);
      }
    }
    return { bytes, total };
  }

  #sample(): void {
    const t = this.#now();
    this.#samples.push({ t, bytes: this.totals().bytes });
    // keep a five-second window for the rate
    while (this.#samples.length > 2 && t - this.#samples[0].t > 5000) this.#samples.shift();
  }

  /** Bytes per second over the last few seconds. */
  rate(): number {
    if (this.#samples.length < 2) return 0;
    const a = this.#samples[0];
    const b = this.#samples[this.#samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? Math.max(0, (b.bytes - a.bytes) / dt) : 0;
  }

  #schedule(): void {
    if (!this.#tty || this.#closed) return;
    const wait = 100 - (this.#now() - this.#lastDraw);
    if (wait <= 0) {
      this.#redraw();
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#redraw();
    }, wait);
  }

  #clear(): string {
    if (this.#drawnLines === 0) return "";
    return `\x1b[${this.#drawnLines}F\x1b[J`;
  }

  #redraw(): void {
    if (this.#closed) return;
    const clear = this.#clear();
    this.#drawnLines = 0;
    const text = this.#render();
    this.#write(clear + text);
  }

  #draw(): void {
    this.#write(this.#render());
  }

  /** The bar lines as they would be drawn now (no cursor movement). */
  #render(): string {
    this.#lastDraw = this.#now();
    const lines: string[] = [];
    const width = this.#columns;
    const labelWidth = Math.min(
      40,
      Math.max(10, ...[...this.#images.values()].map((s) => s.label.length)),
    );
    for (const st of this.#images.values()) {
      let bytes = 0, total = 0;
      for (const r of st.refs.values()) {
        bytes += r.bytes;
        total += Math.max(r.total ?? 0, r.bytes);
      }
      const complete = st.tagsTotal !== undefined && st.tagsDone >= st.tagsTotal;
      // bytes are known per copy as it starts: never show 100% before the last tag is done
      const frac = complete ? 1 : total > 0 ? Math.min(0.99, bytes / total) : 0;
      const label = st.label.length > labelWidth ? "…" + st.label.slice(-(labelWidth - 1)) : st.label;
      const tags = `${st.tagsDone}/${st.tagsTotal ?? "?"} tags${st.failed ? `, ${st.failed} failed` : ""}`;
      const amount = `${formatBytes(bytes)}/${formatBytes(total)}`;
      const barWidth = Math.max(10, Math.min(30, width - labelWidth - amount.length - tags.length - 12));
      const filled = Math.round(frac * barWidth);
      const bar = "█".repeat(filled) + "░".repeat(barWidth - filled);
      lines.push(
        `${label.padEnd(labelWidth)} ${bar} ${String(Math.round(frac * 100)).padStart(3)}% ${amount}  ${tags}`
          .slice(0, width - 1),
      );
    }
    const { bytes, total } = this.totals();
    const rate = this.rate();
    const eta = rate > 0 && total > bytes
      ? formatDuration((total - bytes) / rate)
      : total > bytes
      ? "?"
      : "0s";
    const elapsed = formatDuration((this.#now() - this.#started) / 1000);
    lines.push(
      `overall ${formatBytes(bytes)}/${formatBytes(total)}  ${
        formatBytes(rate)
      }/s  ETA ${eta}  elapsed ${elapsed}`
        .slice(0, width - 1),
    );
    this.#drawnLines = lines.length;
    return lines.join("\n") + "\n";
  }

  /** Stops redrawing and removes the bars; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#tty) this.#write(this.#clear());
    this.#drawnLines = 0;
    this.#closed = true;
  }
}

/** Renders rows as an aligned text table. */
export function formatTable(header: string[], rows: string[][], options: { right?: number[] } = {}): string {
  const right = new Set(options.right ?? []);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) =>
    r.map((c, i) => (right.has(i) ? (c ?? "").padStart(widths[i]) : (c ?? "").padEnd(widths[i]))).join("  ")
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}

/** Counts of one summary row. */
export interface RowCounts {
  tags: number;
  copied: number;
  upToDate: number;
  failed: number;
  bytes: number;
  blobsCopied: number;
  blobsMounted: number;
  blobsSkipped: number;
}

/** Adds up the tags of some images. */
export function countTags(images: ImageLine[]): RowCounts {
  const c: RowCounts = {
    tags: 0,
    copied: 0,
    upToDate: 0,
    failed: 0,
    bytes: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
  };
  for (const img of images) {
    for (const t of img.tags) {
      c.tags++;
      if (t.action === "copied" || t.action === "would-copy") c.copied++;
      else if (t.action === "up-to-date") c.upToDate++;
      else c.failed++;
      c.bytes += t.bytesMoved ?? 0;
      c.blobsCopied += t.blobsCopied ?? 0;
      c.blobsMounted += t.blobsMounted ?? 0;
      c.blobsSkipped += t.blobsSkipped ?? 0;
    }
  }
  return c;
}

/**
 * The summary table printed at the end: one row per image, a total row, and one line per
 * ImageSync that failed as a whole.
 */
export function formatSummary(
  rows: SummaryRow[],
  options: { dryRun?: boolean; seconds?: number } = {},
): string {
  const dryRun = options.dryRun ?? false;
  const header = [
    "IMAGESYNC",
    "IMAGE",
    "TAGS",
    dryRun ? "WOULD COPY" : "COPIED",
    "UP TO DATE",
    dryRun ? "WOULD FAIL" : "FAILED",
    dryRun ? "TO MOVE" : "MOVED",
    dryRun ? "BLOBS COPY/MOUNT/SKIP" : "BLOBS COPIED/MOUNTED/SKIPPED",
  ];
  const body: string[][] = [];
  const all: ImageLine[] = [];
  const toRow = (a: string, b: string, c: RowCounts) => [
    a,
    b,
    String(c.tags),
    String(c.copied),
    String(c.upToDate),
    String(c.failed),
    formatBytes(c.bytes),
    `${c.blobsCopied}/${c.blobsMounted}/${c.blobsSkipped}`,
  ];
  for (const row of rows) {
    for (const img of row.images) {
      body.push(toRow(row.imageSync, img.destinationRepository, countTags([img])));
      all.push(img);
    }
    if (row.images.length === 0 && row.error) body.push([row.imageSync, "-", "-", "-", "-", "-", "-", "-"]);
  }
  const total = countTags(all);
  body.push(toRow("total", "", total));
  const failures = rows.filter((r) => r.error).map((r) => plain(`${r.imageSync}: ${r.error}`));
  const took = options.seconds !== undefined
    ? `\n${dryRun ? "planned" : "done"} in ${formatDuration(options.seconds)}`
    : "";
  const table = formatTable(header, body.map((r) => r.map(plain)), { right: [2, 3, 4, 5, 6] });
  return table +
    (failures.length ? `\n\n${failures.join("\n")}` : "") + took;
}
