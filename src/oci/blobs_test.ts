import assert from "node:assert/strict";
import {
  BLOB_CHUNK_BYTES,
  BlobBuffers,
  digestLike,
  pieces,
  RECYCLE_BEHIND_BYTES,
  sha256Digest,
  verifiedStream,
  verifyingStream,
  type VerifyOptions,
  WHOLE_BLOB_MAX_BYTES,
} from "./blobs.ts";
import { OciError } from "./errors.ts";

function source(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
}

const bytes = new TextEncoder().encode("hello, registry world");
const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 12), bytes.subarray(12)];

async function readAll(s: ReadableStream<Uint8Array>): Promise<{ got: Uint8Array[]; error?: unknown }> {
  const got: Uint8Array[] = [];
  const reader = s.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return { got };
      got.push(value);
    }
  } catch (error) {
    return { got, error };
  }
}

Deno.test("sha256Digest / digestLike hash like registries do", () => {
  assert.equal(
    sha256Digest(new TextEncoder().encode("abc")),
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(digestLike("sha512:" + "0".repeat(128), new Uint8Array()).length, 7 + 128);
});

/** A blob over {@linkcode WHOLE_BLOB_MAX_BYTES}: verifiedStream hashes it as it streams. */
const large = new Uint8Array(WHOLE_BLOB_MAX_BYTES + 21).map((_, i) => (i * 7 + (i >> 10)) & 0xff);

/**
 * The forms of the check: a TransformStream to pipe through, and the pull-driven wrapper — for
 * a small blob (read whole, hashed at once) and a large one (hashed as it streams).
 */
/** The streaming hash taken as not loaded (once a large blob streamed in this process, it is). */
const wholeRead = { streamingHashLoaded: () => false };

const forms: Array<
  [
    string,
    Uint8Array,
    (s: ReadableStream<Uint8Array>, digest: string, o: VerifyOptions) => ReadableStream<Uint8Array>,
  ]
> = [
  ["verifyingStream", bytes, (s, digest, o) => s.pipeThrough(verifyingStream(digest, o))],
  // a small blob is read whole only while the streaming hash is not loaded
  ["verifiedStream (small blob)", bytes, (s, digest, o) => verifiedStream(s, digest, { ...o, ...wholeRead })],
  ["verifiedStream (large blob)", large, (s, digest, o) => verifiedStream(s, digest, o)],
];

for (const [name, content, verify] of forms) {
  const parts = [content.subarray(0, 5), content.subarray(5, 12), content.subarray(12)];

  Deno.test(`${name} passes correct content through unchanged`, async () => {
    let counted = 0;
    const out = verify(source(parts), sha256Digest(content), {
      size: content.length,
      context: "c",
      onChunk: (n) => counted += n,
    });
    const { got, error } = await readAll(out);
    assert.equal(error, undefined);
    assert.deepEqual(concat(got), content);
    assert.equal(counted, content.length);
  });

  Deno.test(`${name} fails on a digest mismatch before the last chunk is released`, async () => {
    const wrong = sha256Digest(new TextEncoder().encode("something else"));
    const out = verify(source(parts), wrong, { size: content.length, context: "blob x" });
    const { got, error } = await readAll(out);
    assert(error instanceof OciError);
    assert.equal(error.reason, "DigestMismatch");
    assert.match(error.message, /^blob x: content digest is sha256:[0-9a-f]{64}, expected /);
    const seen = got.reduce((n, c) => n + c.length, 0);
    assert(seen < content.length, `consumer saw ${seen} of ${content.length} bytes`);
  });

  Deno.test(`${name} fails on too many or too few bytes`, async () => {
    const digest = sha256Digest(content);
    const n = content.length;
    const long = await readAll(verify(source(parts), digest, { size: n - 1, context: "c" }));
    assert.equal((long.error as OciError).reason, "DigestMismatch");
    assert.match((long.error as OciError).message, new RegExp(`more than the ${n - 1} bytes`));
    const short = await readAll(verify(source(parts), digest, { size: n + 79, context: "c" }));
    assert.match(
      (short.error as OciError).message,
      new RegExp(`received ${n} bytes, its descriptor declares ${n + 79}`),
    );
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

Deno.test("verifiedStream hands a blob of at most WHOLE_BLOB_MAX_BYTES on in one chunk, once verified; sha512 too", async () => {
  for (const size of [0, 1, 70_000, WHOLE_BLOB_MAX_BYTES]) {
    const content = large.subarray(0, size);
    for (const digest of [sha256Digest(content), digestLike("sha512:" + "0".repeat(128), content)]) {
      let counted = 0;
      const { got, error } = await readAll(
        verifiedStream(byteSource(content, 40_000), digest, {
          size,
          context: "c",
          onChunk: (n) => counted += n,
          ...wholeRead,
        }),
      );
      assert.equal(error, undefined);
      assert.equal(got.length, size === 0 ? 0 : 1);
      assert.deepEqual(concat(got), content);
      assert.equal(counted, size);
    }
  }
});

Deno.test("verifiedStream streams a blob of at most WHOLE_BLOB_MAX_BYTES once the streaming hash is loaded; reads it whole while it is not", async () => {
  const content = large.subarray(0, WHOLE_BLOB_MAX_BYTES);
  const digest = sha256Digest(content);
  for (const loaded of [true, false]) {
    const { got, error } = await readAll(
      verifiedStream(byteSource(content, 40_000), digest, {
        size: content.length,
        context: "c",
        streamingHashLoaded: () => loaded,
      }),
    );
    assert.equal(error, undefined);
    assert.deepEqual(concat(got), content);
    assert.deepEqual(
      got.map((c) => c.byteLength),
      loaded ? Array(WHOLE_BLOB_MAX_BYTES / BLOB_CHUNK_BYTES).fill(BLOB_CHUNK_BYTES) : [content.length],
      loaded ? "streamed in chunks" : "read whole",
    );
  }
  const corrupt = content.slice();
  corrupt[corrupt.length - 1] ^= 1;
  const { got, error } = await readAll(
    verifiedStream(byteSource(corrupt, 40_000), digest, {
      size: content.length,
      context: "c",
      streamingHashLoaded: () => true,
    }),
  );
  assert(error instanceof OciError && error.reason === "DigestMismatch");
  assert.equal(concat(got).length, content.length - BLOB_CHUNK_BYTES, "the last chunk was held back");
});

Deno.test("verifiedStream: cancelling it cancels the source", async () => {
  let reason: unknown;
  const src = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(bytes);
    },
    cancel(r) {
      reason = r;
    },
  });
  const out = verifiedStream(src, sha256Digest(bytes), { context: "c" });
  const reader = out.getReader();
  await reader.read();
  await reader.cancel("stop");
  assert.equal(reason, "stop");
});

Deno.test("verifyingStream refuses unknown digest algorithms", () => {
  assert.throws(() => verifyingStream("md5:" + "0".repeat(32), { context: "c" }), OciError);
});

Deno.test("pieces re-chunks a stream into fixed-size parts", async () => {
  const parts: number[][] = [];
  for await (const p of pieces(source(chunks), 8)) parts.push([...p]);
  assert.deepEqual(parts.map((p) => p.length), [8, 8, 5]);
  assert.deepEqual(new Uint8Array(parts.flat()), bytes);
  const exact: number[] = [];
  for await (const p of pieces(source([bytes.subarray(0, 16)]), 8)) exact.push(p.length);
  assert.deepEqual(exact, [8, 8]);
});

/** A byte stream of `content` handing out at most `step` bytes per read, as fetch's bodies do. */
function byteSource(content: Uint8Array, step: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: step,
    pull(c) {
      const view = c.byobRequest!.view!;
      const n = Math.min(step, view.byteLength, content.byteLength - at);
      if (n === 0) {
        c.close();
        c.byobRequest!.respond(0);
        return;
      }
      new Uint8Array(view.buffer, view.byteOffset, n).set(content.subarray(at, at + n));
      at += n;
      c.byobRequest!.respond(n);
    },
  });
}

Deno.test("verifiedStream fills chunks of BLOB_CHUNK_BYTES; with recycle a chunk's memory is read into again only once RECYCLE_BEHIND_BYTES of later chunks (besides the newest) went out", async () => {
  const size = 3 * 1024 * 1024 + 1000;
  const content = new Uint8Array(size);
  for (let i = 0; i < size; i++) content[i] = (i * 31 + (i >> 12)) & 0xff;
  const digest = sha256Digest(content);
  for (const recycle of [undefined, new BlobBuffers()]) {
    const reader = verifiedStream(byteSource(content, 40_000), digest, { size, context: "c", recycle })
      .getReader();
    const chunks: Uint8Array[] = [];
    const copies: Uint8Array[] = [];
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      const i = chunks.length;
      // Any earlier chunk whose memory was taken back (detached) was far enough behind.
      for (let j = 0; j < i; j++) {
        if (chunks[j].byteLength === 0) {
          assert(recycle, `chunk ${j} reused without recycle`);
          const behind = copies.slice(j + 1, i - 1).reduce((a, c) => a + c.byteLength, 0);
          assert(behind >= RECYCLE_BEHIND_BYTES, `chunk ${j} reused with ${behind} bytes behind it`);
        } else assert.deepEqual(chunks[j], copies[j], `chunk ${j} changed while still lent`);
      }
      chunks.push(value);
      copies.push(value.slice());
    }
    const whole = new Uint8Array(copies.flatMap((c) => [...c]));
    assert.deepEqual(whole, content);
    assert.deepEqual(
      copies.map((c) => c.byteLength),
      [...Array(12).fill(BLOB_CHUNK_BYTES), size - 12 * BLOB_CHUNK_BYTES],
    );
    const kept = chunks.filter((c) => c.byteLength > 0).length;
    if (recycle) assert(kept <= 4, `${kept} chunks kept their own memory`);
    else assert.equal(kept, 13);
  }
});

Deno.test("BlobBuffers.release hands a finished read's buffers to the next blob read; unreleased buffers are never reused", async () => {
  const content = new Uint8Array(600_000).map((_, i) => i & 0xff);
  const digest = sha256Digest(content);
  const readWith = async (buffers: BlobBuffers) => {
    const { got, error } = await readAll(
      // No size: streamed through the buffers (a blob of a known size this small is read whole).
      verifiedStream(byteSource(content, 50_000), digest, { context: "c", recycle: buffers }),
    );
    assert.equal(error, undefined);
    return got;
  };
  const first = await readWith(new BlobBuffers());
  await readWith(new BlobBuffers());
  assert(first.every((c) => c.byteLength > 0), "a read that was not released lent its memory to another");
  const released = new BlobBuffers();
  const second = await readWith(released);
  released.release();
  await readWith(new BlobBuffers());
  assert(second.some((c) => c.byteLength === 0), "the next read did not reuse a released buffer");
});

Deno.test("BlobBuffers: a whole blob's buffer goes back to the spares on release and serves the next whole blob; never before", async () => {
  const content = new Uint8Array(600_000).map((_, i) => (i * 13) & 0xff);
  const digest = sha256Digest(content);
  const readWith = async (buffers: BlobBuffers) => {
    const { got, error } = await readAll(
      verifiedStream(byteSource(content, 50_000), digest, {
        size: content.length,
        context: "c",
        recycle: buffers,
        ...wholeRead,
      }),
    );
    assert.equal(error, undefined);
    assert.equal(got.length, 1, "read whole: one chunk");
    assert.deepEqual(got[0], content);
    return got[0];
  };
  // two reads that are never released take whatever spares earlier reads left
  const kept = [await readWith(new BlobBuffers()), await readWith(new BlobBuffers())];
  const released = new BlobBuffers();
  const chunk = await readWith(released);
  released.release();
  await readWith(new BlobBuffers());
  assert.equal(chunk.byteLength, 0, "the next whole read did not reuse the released buffer");
  assert(kept.every((c) => c.byteLength === content.length), "an unreleased whole buffer was reused");
});
