import assert from "node:assert/strict";
import {
  intoStream,
  readerInto,
  returnScratch,
  SCRATCH_BYTES,
  STREAM_CHUNK_BYTES,
  takeScratch,
} from "./read_into.ts";

const bytes = new TextEncoder().encode("0123456789abcdef");

function byteStream(): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      const view = c.byobRequest!.view!;
      if (sent) {
        c.close();
        c.byobRequest!.respond(0);
        return;
      }
      sent = true;
      new Uint8Array(view.buffer, view.byteOffset, 10).set(bytes.subarray(0, 10));
      c.byobRequest!.respond(10);
    },
  });
}

function defaultStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes.subarray(0, 10));
      c.enqueue(bytes.subarray(10));
      c.close();
    },
  });
}

Deno.test("readerInto fills the caller's memory from a byte stream (moved, not copied) and copies from any other", async () => {
  const byob = readerInto(byteStream());
  const mine = new ArrayBuffer(32);
  const first = await byob.read(new Uint8Array(mine));
  assert.equal(mine.detached, true, "a BYOB read moves the caller's buffer");
  assert.equal(first.value!.buffer.byteLength, 32);
  assert.deepEqual(first.value, bytes.subarray(0, 10));
  const end = await byob.read(new Uint8Array(first.value!.buffer));
  assert.equal(end.done, true);
  assert.equal(end.value!.byteLength, 0);

  const copy = readerInto(defaultStream());
  const small = new Uint8Array(4);
  const got: number[] = [];
  while (true) {
    const { done, value } = await copy.read(small);
    if (done) break;
    assert.equal(value.buffer, small.buffer, "copied into the caller's buffer");
    got.push(...value);
  }
  assert.deepEqual(new Uint8Array(got), bytes);
});

Deno.test("intoStream is a byte stream: BYOB readers get their own memory back, default readers fresh chunks", async () => {
  const byob = intoStream(readerInto(defaultStream())).getReader({ mode: "byob" });
  const r = await byob.read(new Uint8Array(64));
  assert.equal(r.value!.buffer.byteLength, 64);
  assert.deepEqual(r.value, bytes.subarray(0, 10));
  const chunks = await Array.fromAsync(intoStream(readerInto(byteStream())));
  assert.deepEqual(chunks.map((c) => c.buffer.byteLength), [STREAM_CHUNK_BYTES]);
  assert.deepEqual(chunks[0], bytes.subarray(0, 10));
});

Deno.test("scratch buffers are reused only when handed back whole", () => {
  const a = takeScratch();
  assert.equal(a.byteLength, SCRATCH_BYTES);
  returnScratch(a);
  assert.equal(takeScratch(), a);
  const moved = a.transfer();
  returnScratch(a); // detached: not kept
  assert.notEqual(takeScratch(), a);
  returnScratch(moved);
});
