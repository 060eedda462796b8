import assert from "node:assert/strict";
import { serveHttp } from "./http.ts";
import { jsonBodyOf, readToEnd } from "./_test_utils.ts";

const enc = new TextEncoder();

function connect(port: number): Promise<Deno.Conn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

const ok = (req: Request) => Promise.resolve(new Response(`ok ${new URL(req.url).pathname}\n`));

Deno.test("guard: requests pass through, keep-alive too; a 1 MiB request head is refused and the server carries on", async () => {
  const srv = await serveHttp("127.0.0.1:0", ok, { guard: {} });
  try {
    for (const path of ["/a", "/b", "/c"]) {
      const res = await fetch(`http://127.0.0.1:${srv.port}${path}`);
      assert.equal(await res.text(), `ok ${path}\n`);
    }
    const huge = await connect(srv.port);
    await huge.write(enc.encode(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(1024 * 1024)}\r\n\r\n`))
      .catch(() => {});
    assert.match(await readToEnd(huge), /^HTTP\/1\.1 4\d\d /);
    const after = await fetch(`http://127.0.0.1:${srv.port}/after`);
    assert.equal(await after.text(), "ok /after\n");
  } finally {
    await srv.shutdown();
  }
});

Deno.test("guard: connections beyond the limit get 429 RateLimited with Retry-After, served again once others close", async () => {
  const srv = await serveHttp("127.0.0.1:0", ok, { guard: { maxConnections: 2, idleTimeoutMs: 10_000 } });
  const held: Deno.Conn[] = [];
  try {
    held.push(await connect(srv.port), await connect(srv.port));
    // the guard counts a connection once it accepted it: a request through each proves that
    for (const c of held) {
      await c.write(enc.encode("GET /held HTTP/1.1\r\nhost: x\r\n\r\n"));
      const n = await c.read(new Uint8Array(4096));
      assert.ok(n && n > 0);
    }
    const third = await connect(srv.port);
    const answer = await readToEnd(third);
    assert.match(answer, /^HTTP\/1\.1 429 /);
    assert.match(answer, /\r\nretry-after: 1\r\n/);
    assert.equal(jsonBodyOf(answer).reason, "RateLimited");
    assert.match(String(jsonBodyOf(answer).message), /more than 2 connections/);
    held.pop()!.close();
    // the guard sees the close a moment later
    let again = "";
    for (let i = 0; i < 50 && again !== "ok /again\n"; i++) {
      again = await (await fetch(`http://127.0.0.1:${srv.port}/again`)).text();
      if (again !== "ok /again\n") await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(again, "ok /again\n");
  } finally {
    for (const c of held) c.close();
    await srv.shutdown();
  }
});

Deno.test("guard: a request head sent a byte at a time is cut off with 408 Timeout; a silent connection is closed", async () => {
  const srv = await serveHttp("127.0.0.1:0", ok, { guard: { requestTimeoutMs: 300, idleTimeoutMs: 300 } });
  try {
    const slow = await connect(srv.port);
    const head = enc.encode("GET /slow HTTP/1.1\r\nhost: x\r\nx-a: b\r\n\r\n");
    const reading = readToEnd(slow);
    for (const byte of head.subarray(0, 20)) {
      await slow.write(Uint8Array.of(byte)).catch(() => {});
      await new Promise((r) => setTimeout(r, 30));
    }
    const answer = await reading;
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.equal(jsonBodyOf(answer).reason, "Timeout");
    assert.match(String(jsonBodyOf(answer).message), /longer than 300 ms/);

    const silent = await connect(srv.port);
    assert.equal(await readToEnd(silent), "", "closed without an answer");
    // a connection left open after its answer (keep-alive) is closed too
    const kept = await connect(srv.port);
    await kept.write(enc.encode("GET /kept HTTP/1.1\r\nhost: x\r\n\r\n"));
    assert.match(await readToEnd(kept), /^HTTP\/1\.1 200 [\s\S]*ok \/kept\n$/);
  } finally {
    await srv.shutdown();
  }
});

Deno.test("shutdown (plain, guarded) waits for the request in flight, closes idle connections, then runs onClose", async () => {
  for (const guard of [undefined, { idleTimeoutMs: 60_000 }]) {
    const order: string[] = [];
    const release = Promise.withResolvers<void>();
    const started = Promise.withResolvers<void>();
    const srv = await serveHttp("127.0.0.1:0", async () => {
      started.resolve();
      await release.promise;
      order.push("answered");
      return new Response("late\n");
    }, {
      guard,
      onClose: () => Promise.resolve(void order.push("onClose")),
    });
    const idle = await connect(srv.port);
    const inFlight = fetch(`http://127.0.0.1:${srv.port}/`);
    await started.promise;
    const stopping = srv.shutdown();
    setTimeout(() => release.resolve(), 100);
    const res = await inFlight;
    assert.equal(await res.text(), "late\n");
    await stopping;
    assert.deepEqual(order, ["answered", "onClose"]);
    assert.equal(await readToEnd(idle, 2_000), "", "the idle connection was closed by the shutdown");
    await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/`), "no longer listening");
  }
});

Deno.test("guard: without a folder for its socket (read-only /tmp) the server behind it is on loopback TCP, bounds the same", async () => {
  const before = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", "/nonexistent/portager-test");
  let srv;
  try {
    srv = await serveHttp("127.0.0.1:0", ok, { guard: { idleTimeoutMs: 300 } });
  } finally {
    if (before === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", before);
  }
  try {
    const res = await fetch(`http://127.0.0.1:${srv.port}/tcp`);
    assert.equal(await res.text(), "ok /tcp\n");
    assert.equal(await readToEnd(await connect(srv.port)), "", "a silent connection is closed");
  } finally {
    await srv.shutdown();
  }
});
