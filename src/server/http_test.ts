import assert from "node:assert/strict";
import { parseListenAddress, serveHttp, startServer } from "./http.ts";
import { selfSignedCertificate } from "./self_signed.ts";

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

async function alpnOf(port: number, cert: string): Promise<string | null> {
  const conn = await Deno.connectTls({
    hostname: "localhost",
    port,
    caCerts: [cert],
    alpnProtocols: ["h2", "http/1.1"],
  });
  try {
    return (await conn.handshake()).alpnProtocol;
  } finally {
    conn.close();
  }
}

Deno.test("HTTPS with a self-signed certificate: HTTP/1.1 only unless HTTP/2 is enabled", async () => {
  const tls = await selfSignedCertificate(["localhost", "127.0.0.1"]);
  const metrics = () => Promise.resolve({ body: "x_total 1\n", contentType: "text/plain" });
  for (const http2 of [false, true]) {
    const srv = await startServer("127.0.0.1:0", { metrics, tls, http2 });
    const client = Deno.createHttpClient({ caCerts: [tls.cert] });
    try {
      assert.equal(await alpnOf(srv.port, tls.cert), http2 ? "h2" : "http/1.1");
      const res = await fetch(`https://localhost:${srv.port}/metrics`, { client });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "x_total 1\n");
      // the certificate is also good for the IP address
      const byIp = await fetch(`https://127.0.0.1:${srv.port}/healthz`, { client });
      assert.equal(byIp.status, 200);
      await byIp.body?.cancel();
    } finally {
      client.close();
      await srv.shutdown();
    }
  }
});

Deno.test("the filter guards /metrics only; a metrics-only server answers no probes", async () => {
  const seen: string[] = [];
  const srv = await startServer("127.0.0.1:0", {
    metrics: () => Promise.resolve({ body: "x_total 1\n", contentType: "text/plain" }),
    authorize: (req) => {
      seen.push(new URL(req.url).pathname);
      return Promise.resolve(
        req.headers.get("authorization") === "Bearer ok"
          ? undefined
          : new Response("Unauthorized\n", { status: 401 }),
      );
    },
    probes: false,
  });
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    let res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 401);
    await res.body?.cancel();
    res = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer ok" } });
    assert.equal(await res.text(), "x_total 1\n");
    res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
    assert.deepEqual(seen, ["/metrics", "/metrics"]);
  } finally {
    await srv.shutdown();
  }
});

Deno.test("HTTPS over HTTP/1.1 takes a rotated certificate for new connections", async () => {
  const first = await selfSignedCertificate(["localhost"], { commonName: "first" });
  const second = await selfSignedCertificate(["localhost"], { commonName: "second" });
  const srv = await startServer("127.0.0.1:0", { tls: first });
  const get = async (ca: string) => {
    const client = Deno.createHttpClient({ caCerts: [ca] });
    try {
      const res = await fetch(`https://localhost:${srv.port}/healthz`, { client });
      await res.body?.cancel();
      return res.status;
    } catch {
      return "refused";
    } finally {
      client.close();
    }
  };
  try {
    assert.equal(await get(first.cert), 200);
    assert.ok(srv.reloadTls, "the HTTP/1.1 server can reload");
    srv.reloadTls(second);
    assert.equal(await get(second.cert), 200);
    assert.equal(await get(first.cert), "refused", "the old certificate is no longer served");
  } finally {
    await srv.shutdown();
  }
});

Deno.test("serveHttp: a handler gets request bodies on every transport (HTTPS over HTTP/1.1 too)", async () => {
  const tls = await selfSignedCertificate(["localhost"]);
  const echo = async (req: Request) => new Response(`${req.method} ${await req.text()}`);
  for (const options of [{}, { tls }, { tls, http2: true }, { guard: {} }]) {
    const srv = await serveHttp("127.0.0.1:0", echo, options);
    const client = Deno.createHttpClient({ caCerts: [tls.cert] });
    try {
      const scheme = "tls" in options ? "https" : "http";
      const res = await fetch(`${scheme}://localhost:${srv.port}/`, {
        method: "POST",
        body: "pushed",
        client,
      });
      assert.equal(await res.text(), "POST pushed", JSON.stringify(Object.keys(options)));
    } finally {
      client.close();
      await srv.shutdown();
    }
  }
});

Deno.test("HTTPS over HTTP/1.1: a body the handler does not read, or stops reading, leaves the connection usable", async () => {
  const tls = await selfSignedCertificate(["localhost"]);
  const srv = await serveHttp("127.0.0.1:0", async (req) => {
    if (new URL(req.url).pathname === "/cut") {
      const reader = req.body!.getReader();
      await reader.read();
      await reader.cancel();
      return new Response("cut\n", { status: 413 });
    }
    return new Response(req.method === "POST" ? "ignored\n" : "ok\n", {
      status: req.method === "POST" ? 405 : 200,
    });
  }, { tls });
  const client = Deno.createHttpClient({ caCerts: [tls.cert] });
  try {
    for (const path of ["/ignore", "/cut"]) {
      const big = await fetch(`https://localhost:${srv.port}${path}`, {
        method: "POST",
        body: "x".repeat(4 << 20),
        client,
      });
      assert.equal(big.status, path === "/cut" ? 413 : 405);
      await big.body?.cancel();
      const next = await fetch(`https://localhost:${srv.port}/`, { client });
      assert.equal(await next.text(), "ok\n", `after ${path}`);
    }
  } finally {
    client.close();
    await srv.shutdown();
  }
});
