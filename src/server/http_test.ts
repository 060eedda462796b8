import assert from "node:assert/strict";
import { parseListenAddress, startServer } from "./http.ts";

Deno.test("parseListenAddress understands :port, host:port and [v6]:port", () => {
  assert.deepEqual(parseListenAddress(":8080"), { hostname: "0.0.0.0", port: 8080 });
  assert.deepEqual(parseListenAddress("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListenAddress("[::1]:9090"), { hostname: "::1", port: 9090 });
  assert.throws(() => parseListenAddress("8080"), RangeError);
  assert.throws(() => parseListenAddress("x:99999"), RangeError);
});

Deno.test("server answers /metrics, /healthz and /readyz (503 with a reason until ready)", async () => {
  let ready = false;
  let chosen = -1;
  const srv = await startServer("127.0.0.1:0", {
    metrics: () => Promise.resolve({ body: "x_total 1\n", contentType: "text/plain; version=0.0.4" }),
    ready: () => ready ? { ok: true } : { ok: false, detail: "watch not established" },
    onListening: ({ port }) => chosen = port,
  });
  try {
    assert.equal(chosen, srv.port);
    assert.ok(srv.port > 0);
    const base = `http://127.0.0.1:${srv.port}`;
    let res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "x_total 1\n");
    res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /watch not established/);
    ready = true;
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    await srv.shutdown();
  }
});
