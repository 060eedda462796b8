import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { drip, evalInChild, serve } from "./_test_utils.ts";
import { OciError } from "./errors.ts";
import { HttpSender, MAX_REDIRECTS, SendFailure, sendFailureError, type SendRequest } from "./send.ts";

function request(url: string, over: Partial<SendRequest> = {}): SendRequest {
  return {
    registry: "test",
    url: new URL(url),
    method: "GET",
    headers: {},
    authOrigin: new URL(url).origin,
    ...over,
  };
}

Deno.test("HttpSender follows redirects, sending Authorization only to its origin", async () => {
  const seen: Array<[string, string | null]> = [];
  const storage = serve((req, url) => {
    seen.push([`storage${url.pathname}`, req.headers.get("authorization")]);
    return new Response("blob");
  }, "localhost");
  const registry = serve((req, url) => {
    seen.push([url.pathname, req.headers.get("authorization")]);
    if (url.pathname === "/a") return new Response(null, { status: 307, headers: { location: "/b" } });
    return new Response(null, { status: 302, headers: { location: `${storage.origin}/blob` } });
  });
  try {
    const sender = new HttpSender();
    const res = await sender.send(
      request(`${registry.origin}/a`, { headers: { authorization: "Bearer t" } }),
    );
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "blob");
    assert.equal(res.url, `${storage.origin}/blob`);
    assert.deepEqual(seen, [["/a", "Bearer t"], ["/b", "Bearer t"], ["storage/blob", null]]);
  } finally {
    await storage.stop();
    await registry.stop();
  }
});

Deno.test("HttpSender stops after MAX_REDIRECTS and refuses to redirect a streamed upload", async () => {
  const srv = serve(() => new Response(null, { status: 307, headers: { location: "/again" } }));
  try {
    const sender = new HttpSender();
    await assert.rejects(
      sender.send(request(`${srv.origin}/start`)),
      (e) =>
        e instanceof OciError && e.reason === "TooManyRedirects" && e.message.includes(`${MAX_REDIRECTS}`),
    );
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(3));
        c.close();
      },
    });
    await assert.rejects(
      sender.send(request(`${srv.origin}/upload`, { method: "PUT", body: stream })),
      (e) =>
        e instanceof OciError && e.reason === "Protocol" &&
        /streamed uploads cannot follow redirects/.test(e.message),
    );
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender: no answer within the idle timeout is a Timeout failure; a stalled body a Timeout error", async () => {
  let stalled: ReadableStreamDefaultController<Uint8Array> | undefined;
  const srv = serve((_req, url, self) => {
    if (url.pathname === "/silent") return self.hold();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        stalled = c;
        c.enqueue(new Uint8Array([1]));
      },
    });
    return new Response(body);
  });
  try {
    const sender = new HttpSender({ timeoutMs: 100 });
    await assert.rejects(
      sender.send(request(`${srv.origin}/silent`)),
      (e) => e instanceof SendFailure && e.kind === "Timeout",
    );
    const res = await sender.send(request(`${srv.origin}/stall`));
    await assert.rejects(res.bytes(1e6, () => new Error("big")), /idle timeout/);
  } finally {
    stalled?.close();
    await srv.stop();
  }
});

Deno.test("HttpSender: a refused connection is a Network failure; a cancelled one Aborted", async () => {
  const srv = serve(() => new Response("x"));
  const origin = srv.origin;
  await srv.stop();
  const sender = new HttpSender();
  await assert.rejects(
    sender.send(request(`${origin}/`)),
    (e) => e instanceof SendFailure && e.kind === "Network",
  );
  await assert.rejects(
    sender.send(request(`${origin}/`, { signal: AbortSignal.abort(new Error("stop")) })),
    (e) => e instanceof SendFailure && e.kind === "Aborted",
  );
});

Deno.test("sendFailureError names the registry, the action and the reference", () => {
  const ctx = { registry: "r.example", action: "pull manifest", reference: "r.example/x:1", timeoutMs: 5 };
  const timeout = sendFailureError(new SendFailure("Timeout", new Error("t")), ctx);
  assert.equal(timeout.reason, "Timeout");
  assert.equal(
    timeout.message,
    "registry r.example: cannot pull manifest r.example/x:1: no response for 5 ms",
  );
  assert.equal(timeout.retryable, true);
  const aborted = sendFailureError(new SendFailure("Aborted", new Error("a")), ctx);
  assert.equal(aborted.reason, "Aborted");
  assert.match(aborted.message, /aborted pull manifest/);
  const tls = sendFailureError(new SendFailure("Tls", new Error("UnknownIssuer")), ctx);
  assert.equal(tls.reason, "Network");
  assert.match(tls.message, /TLS verification failed \(UnknownIssuer\); give the registry's CA with caCerts/);
  const same = new OciError("DigestMismatch", "bad bytes");
  assert.equal(sendFailureError(same, ctx), same);
});

Deno.test("HttpSender: a small body dripped a byte per 200 ms is cut off at the request deadline", async () => {
  const srv = serve(() => new Response(drip(200), { headers: { "content-type": "application/json" } }));
  try {
    const sender = new HttpSender({ timeoutMs: 60_000, requestDeadlineMs: 800 });
    const started = performance.now();
    const res = await sender.send(request(`${srv.origin}/v2/x/manifests/1`));
    const err = await res.bytes(4 << 20, () => new Error("too big")).catch((e) => e);
    assert(err instanceof OciError, String(err));
    assert.equal(err.reason, "Timeout");
    assert.match(err.message, /the 800 ms request deadline passed/);
    assert(performance.now() - started < 5000);
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender: a blob below the minimum rate fails; a fast one outlives the request deadline", async () => {
  const srv = serve((_req, url) => {
    if (url.pathname === "/slow") return new Response(drip(200));
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 50));
        if (n++ === 20) c.close();
        else c.enqueue(new Uint8Array(64 * 1024));
      },
    });
    return new Response(body);
  });
  try {
    const sender = new HttpSender({ requestDeadlineMs: 300, minBytesPerSecond: 1024, rateWindowMs: 600 });
    const slow = await sender.send(request(`${srv.origin}/slow`, { bulk: true }));
    const err = await slow.bytes(1 << 20, () => new Error("too big")).catch((e) => e);
    assert(err instanceof OciError && err.reason === "Timeout", String(err));
    assert.match(err.message, /below the minimum of 1024 bytes\/s/);
    const fast = await sender.send(request(`${srv.origin}/fast`, { bulk: true }));
    const bytes = await fast.bytes(8 << 20, () => new Error("too big"));
    assert.equal(bytes.byteLength, 20 * 64 * 1024, "a 1 s blob is not cut by the 300 ms request deadline");
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender: a caller's deadline signal ends a body read as a Timeout, not a silent abort", async () => {
  const srv = serve(() => new Response(drip(200)));
  try {
    const sender = new HttpSender();
    const res = await sender.send(
      request(`${srv.origin}/b`, { bulk: true, signal: AbortSignal.timeout(500) }),
    );
    const err = await res.bytes(1 << 20, () => new Error("too big")).catch((e) => e);
    assert(err instanceof OciError && err.reason === "Timeout", String(err));
    assert.match(err.message, /the deadline passed/);
    const silent = serve((_req, _url, self) => self.hold());
    try {
      const failure = await sender.send(request(`${silent.origin}/`, { signal: AbortSignal.timeout(200) }))
        .catch((e) => e);
      const mapped = sendFailureError(failure, { registry: "r", action: "pull manifest", timeoutMs: 1 });
      assert.equal(mapped.reason, "Timeout");
      assert.match(mapped.message, /cannot pull manifest: the deadline passed/);
    } finally {
      await silent.stop();
    }
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender refuses to be led to file: or data: URLs (fetch would read them)", async () => {
  const srv = serve((_req, url) =>
    new Response(null, {
      status: 302,
      headers: { location: url.pathname === "/file" ? "file:///etc/hostname" : "data:text/plain,hello" },
    })
  );
  try {
    const sender = new HttpSender();
    for (const path of ["/file", "/data"]) {
      await assert.rejects(
        sender.send(request(`${srv.origin}${path}`)),
        (e) =>
          e instanceof OciError && e.reason === "Protocol" &&
          /refusing to follow the registry to a (file|data): URL/.test(e.message),
      );
    }
    await assert.rejects(
      sender.send(request("file:///etc/hostname")),
      /refusing to follow the registry to a file: URL/,
    );
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender: the idle timeout counts from the last data, however long the body takes; a stall after data ends it", async () => {
  const srv = serve((_req, url) => {
    if (url.pathname === "/slow") {
      // 12 pieces 60 ms apart: 720 ms in all, never 300 ms without data
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 60));
          c.enqueue(new Uint8Array([sent++]));
          if (sent === 12) c.close();
        },
      }, { highWaterMark: 0 });
      return new Response(body);
    }
    let stalled = false;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (stalled) return new Promise(() => {}); // data once, then nothing
          stalled = true;
          c.enqueue(new Uint8Array([1, 2, 3]));
        },
      }, { highWaterMark: 0 }),
    );
  });
  try {
    const sender = new HttpSender({ timeoutMs: 300 });
    const slow = await sender.send(request(`${srv.origin}/slow`, { bulk: true }));
    assert.deepEqual([...await slow.bytes(100, () => new Error("big"))], [...Array(12).keys()]);
    const stall = await sender.send(request(`${srv.origin}/stall`, { bulk: true }));
    await assert.rejects(stall.bytes(100, () => new Error("big")), /idle timeout/);
  } finally {
    await srv.stop();
  }
});

/** V8's collector, as `--expose-gc` would give it. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

Deno.test("HttpSender: a body is a byte stream; a BYOB read pending when the idle timeout ends the exchange fails (also after a GC took fetch's request), and one pending when the body is cancelled settles", async () => {
  const srv = serve(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new Uint8Array([1, 2, 3]));
        },
        pull: () => new Promise(() => {}), // nothing after the first bytes
      }, { highWaterMark: 0 }),
    )
  );
  try {
    const sender = new HttpSender({ timeoutMs: 200 });
    for (const ending of ["timeout", "cancel"]) {
      const res = await sender.send(request(`${srv.origin}/blob`, { bulk: true }));
      const reader = res.body!.getReader({ mode: "byob" });
      const first = await reader.read(new Uint8Array(16));
      assert.deepEqual([...first.value!], [1, 2, 3]);
      assert.equal(first.value!.buffer.byteLength, 16, "the reader's own buffer comes back");
      // fetch's own abort of the body goes through its Request's signal, which a GC takes once
      // the response is out: the idle timeout must end the read without it.
      collectGarbage();
      const pending = reader.read(new Uint8Array(first.value!.buffer));
      if (ending === "timeout") {
        let guard: ReturnType<typeof setTimeout> | undefined;
        const hung = new Promise<never>((_, reject) => {
          guard = setTimeout(() => reject(new Error("the read never settled")), 10_000);
        });
        await assert.rejects(
          Promise.race([pending, hung]),
          (e) => e instanceof OciError && e.reason === "Timeout",
        );
        clearTimeout(guard);
      } else {
        await reader.cancel("done");
        assert.equal((await pending).done, true);
      }
    }
  } finally {
    await srv.stop();
  }
});

Deno.test("HttpSender: an exchange never reads the global setTimeout (whose first use loads Node's timers, 6–12 ms), nor ReadableStream before fetch when it has no body stream (~4 ms)", async () => {
  const url = new URL("./send.ts", import.meta.url).href;
  const script = `for (const name of ["setTimeout", "ReadableStream"]) {
      const d = Object.getOwnPropertyDescriptor(globalThis, name);
      Object.defineProperty(globalThis, name, { configurable: true, get() { console.log(name + " read"); return d.get.call(globalThis); } });
    }
    const { HttpSender } = await import(${JSON.stringify(url)});
    const fetch0 = globalThis.fetch;
    globalThis.fetch = (...a) => { console.log("fetch"); return fetch0(...a); };
    const srv = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hello"));
    const url = new URL("http://127.0.0.1:" + srv.addr.port + "/v2/");
    const res = await new HttpSender().send({ registry: "r", url, method: "GET", headers: {}, authOrigin: url.origin });
    console.log(res.status, new TextDecoder().decode(await res.bytes(100, () => new Error("too big"))));
    await srv.shutdown();`;
  const lines = (await evalInChild(script)).trim().split("\n");
  // (RegistryResponse tells a body stream from a reader: after the answer, once fetch made its body)
  assert.deepEqual([lines[0], lines.at(-1)], ["fetch", "200 hello"]);
  assert(!lines.includes("setTimeout read"), lines.join("\n"));
});
