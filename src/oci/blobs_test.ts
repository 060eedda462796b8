import assert from "node:assert/strict";
import {
  digestLike,
  pieces,
  sha256Digest,
  verifiedStream,
  verifyingStream,
  type VerifyOptions,
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

/** The two forms of the check: a TransformStream to pipe through, and the pull-driven wrapper. */
const forms: Array<
  [string, (s: ReadableStream<Uint8Array>, digest: string, o: VerifyOptions) => ReadableStream<Uint8Array>]
> = [
  ["verifyingStream", (s, digest, o) => s.pipeThrough(verifyingStream(digest, o))],
  ["verifiedStream", (s, digest, o) => verifiedStream(s, digest, o)],
];

for (const [name, verify] of forms) {
  Deno.test(`${name} passes correct content through unchanged`, async () => {
    let counted = 0;
    const out = verify(source(chunks), sha256Digest(bytes), {
      size: bytes.length,
      context: "c",
      onChunk: (n) => counted += n,
    });
    const { got, error } = await readAll(out);
    assert.equal(error, undefined);
    assert.deepEqual(new Uint8Array(got.flatMap((c) => [...c])), bytes);
    assert.equal(counted, bytes.length);
  });

  Deno.test(`${name} fails on a digest mismatch before the last chunk is released`, async () => {
    const wrong = sha256Digest(new TextEncoder().encode("something else"));
    const out = verify(source(chunks), wrong, { size: bytes.length, context: "blob x" });
    const { got, error } = await readAll(out);
    assert(error instanceof OciError);
    assert.equal(error.reason, "DigestMismatch");
    assert.match(error.message, /^blob x: content digest is sha256:[0-9a-f]{64}, expected /);
    const seen = got.reduce((n, c) => n + c.length, 0);
    assert(seen < bytes.length, `consumer saw ${seen} of ${bytes.length} bytes`);
  });

  Deno.test(`${name} fails on too many or too few bytes`, async () => {
    const digest = sha256Digest(bytes);
    const long = await readAll(verify(source(chunks), digest, { size: 6, context: "c" }));
    assert.equal((long.error as OciError).reason, "DigestMismatch");
    assert.match((long.error as OciError).message, /more than the 6 bytes/);
    const short = await readAll(verify(source(chunks), digest, { size: 100, context: "c" }));
    assert.match((short.error as OciError).message, /received 21 bytes, its descriptor declares 100/);
  });
}

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
