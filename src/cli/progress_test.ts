import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatSummary,
  formatTagLine,
  imageOfRef,
  plain,
  Progress,
  type SummaryRow,
} from "./progress.ts";

const IMG = {
  sourceRepository: "src.example.com/library/nginx",
  destinationRepository: "127.0.0.1:5000/mirror/nginx",
};

Deno.test("byte and duration formatting", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(12.34 * 1024 * 1024), "12.3 MiB");
  assert.equal(formatBytes(300 * 1024 * 1024 * 1024), "300 GiB");
  assert.equal(formatDuration(7.24), "7.2s");
  assert.equal(formatDuration(42.4), "42s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(7440), "2h04m");
  assert.equal(formatDuration(Infinity), "?");
});

Deno.test("image of a destination reference keeps the registry port", () => {
  assert.equal(imageOfRef("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b");
  assert.equal(imageOfRef("127.0.0.1:5000/a/b@sha256:00"), "127.0.0.1:5000/a/b");
  assert.equal(imageOfRef("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
});

Deno.test("plain strips escapes and control characters", () => {
  assert.equal(plain("a\x1b[31mred\x1b[0m\tb\r\nc\x07"), "ared b c ");
});

Deno.test("tag lines say what happened, with no control characters", () => {
  const copied = formatTagLine("mirror", IMG, {
    tag: "1.27",
    action: "copied",
    sourceDigest: "sha256:" + "ab".repeat(32),
    bytesMoved: 2048,
    blobsCopied: 2,
    blobsMounted: 1,
    blobsSkipped: 0,
  });
  assert.equal(
    copied,
    "copied      mirror  127.0.0.1:5000/mirror/nginx:1.27  sha256:abababab  2.0 KiB (2 blobs copied, 1 mounted)",
  );
  const would = formatTagLine("mirror", IMG, {
    tag: "1",
    action: "would-copy",
    bytesMoved: 10,
    blobsCopied: 1,
    blobsSkipped: 2,
  }, {
    dryRun: true,
  });
  assert.match(would, /^would copy {2}mirror .* 10 B \(1 blob to copy, 2 to skip\)$/);
  const failed = formatTagLine("mirror", IMG, {
    tag: "x",
    action: "failed",
    reason: "NotFound",
    error: "manifest\n\x1b[2Kunknown",
  });
  assert.equal(
    failed,
    "FAILED      mirror  127.0.0.1:5000/mirror/nginx:x  NotFound: manifest unknown",
  );
});

Deno.test("without a terminal: one plain line per finished tag, nothing else", () => {
  const out: string[] = [];
  const p = new Progress({ tty: false, write: (s) => out.push(s), now: () => 0, columns: 80 });
  p.image("mirror", IMG.destinationRepository, 2);
  p.bytes("mirror", { ref: `${IMG.destinationRepository}:1`, bytes: 10, totalBytes: 100 });
  p.tag("mirror", IMG, { tag: "1", action: "copied", bytesMoved: 100, blobsCopied: 1 });
  p.tag("mirror", IMG, { tag: "2", action: "up-to-date" });
  p.close();
  assert.equal(out.length, 2);
  // deno-lint-ignore no-control-regex
  const controls = /[\x00-\x09\x0b-\x1f]/;
  assert.ok(out.every((l) => l.endsWith("\n") && !controls.test(l)), JSON.stringify(out));
});

Deno.test("on a terminal: bars redraw in place, at most every 100 ms, and are removed at the end", async () => {
  const out: string[] = [];
  let t = 0;
  const p = new Progress({ tty: true, write: (s) => out.push(s), now: () => t, columns: 100 });
  p.image("mirror", IMG.destinationRepository, 1);
  const first = out.join("");
  assert.match(first, /127\.0\.0\.1:5000\/mirror\/nginx .* 0% 0 B\/0 B {2}0\/1 tags/);
  assert.match(first, /overall 0 B\/0 B/);
  out.length = 0;
  t = 10;
  p.bytes("mirror", { ref: `${IMG.destinationRepository}:1`, bytes: 512, totalBytes: 1024 });
  assert.equal(out.length, 0, "no redraw within 100 ms");
  t = 1010;
  p.bytes("mirror", { ref: `${IMG.destinationRepository}:1`, bytes: 768, totalBytes: 1024 });
  const second = out.join("");
  assert.ok(second.startsWith("\x1b[2F\x1b[J"), JSON.stringify(second)); // back over two lines
  assert.match(second, / 75% 768 B\/1.0 KiB/);
  assert.match(second, /overall 768 B\/1.0 KiB {2}256 B\/s {2}ETA 1.0s/);
  out.length = 0;
  t = 1020;
  p.tag("mirror", IMG, { tag: "1", action: "copied", bytesMoved: 1024, blobsCopied: 1 });
  const third = out.join("");
  assert.ok(third.startsWith("\x1b[2F\x1b[Jcopied "), JSON.stringify(third));
  assert.match(third, /100% 1.0 KiB\/1.0 KiB {2}1\/1 tags/);
  // a pending redraw timer is cleared by close()
  p.bytes("mirror", { ref: `${IMG.destinationRepository}:1`, bytes: 1024, totalBytes: 1024 });
  out.length = 0;
  p.close();
  assert.deepEqual(out, ["\x1b[2F\x1b[J"]);
  await new Promise((r) => setTimeout(r, 0));
});

Deno.test("summary table: a row per image, totals, and whole-ImageSync failures", () => {
  const rows: SummaryRow[] = [
    {
      imageSync: "mirror",
      images: [{
        name: "nginx",
        ...IMG,
        tags: [
          { tag: "1", action: "copied", bytesMoved: 2048, blobsCopied: 2, blobsMounted: 0, blobsSkipped: 1 },
          { tag: "2", action: "up-to-date" },
          { tag: "3", action: "failed", error: "boom" },
        ],
      }],
    },
    { imageSync: "broken", images: [], error: "secret creds has no auth for registry x" },
  ];
  const text = formatSummary(rows);
  const lines = text.split("\n");
  assert.match(
    lines[0],
    /^IMAGESYNC +IMAGE +TAGS +COPIED +UP TO DATE +FAILED +MOVED +BLOBS COPIED\/MOUNTED\/SKIPPED$/,
  );
  assert.match(lines[1], /^mirror +127\.0\.0\.1:5000\/mirror\/nginx +3 +1 +1 +1 +2\.0 KiB +2\/0\/1$/);
  assert.match(lines[2], /^broken +- +- /);
  assert.match(lines[3], /^total +3 +1 +1 +1 +2\.0 KiB +2\/0\/1$/);
  assert.equal(lines[5], "broken: secret creds has no auth for registry x");
  assert.match(formatSummary(rows, { dryRun: true }), /WOULD COPY/);
});
