import assert from "node:assert/strict";
import { OciError } from "./errors.ts";
import { ping } from "./ping.ts";
import { RegistryResponse } from "./response.ts";
import { type Sender, SendFailure, type SendRequest } from "./send.ts";

/** A sender that answers each URL from a table: a response or a failure kind; records calls. */
function table(
  answers: Record<string, { status: number; headers?: Record<string, string> } | SendFailure["kind"]>,
): Sender & { urls: string[]; timeouts: Array<number | undefined> } {
  const s = {
    urls: [] as string[],
    timeouts: [] as Array<number | undefined>,
    send(req: SendRequest): Promise<RegistryResponse> {
      s.urls.push(req.url.href);
      s.timeouts.push(req.timeoutMs);
      const a = answers[req.url.href];
      if (a === undefined || typeof a === "string") {
        return Promise.reject(new SendFailure(a ?? "Network", new Error("connection refused")));
      }
      return Promise.resolve(new RegistryResponse(a.status, new Headers(a.headers), req.url.href, null));
    },
  };
  return s;
}

Deno.test("ping reads the registry's Bearer challenge over HTTPS", async () => {
  const realm = 'Bearer realm="https://auth.example/token",service="reg"';
  const s = table({ "https://reg.example/v2/": { status: 401, headers: { "www-authenticate": realm } } });
  const got = await ping("reg.example", { probe: s, sender: s, timeoutMs: 1000 });
  assert.equal(got.base.href, "https://reg.example/");
  assert.deepEqual(got.challenge, {
    scheme: "bearer",
    params: { realm: "https://auth.example/token", service: "reg" },
  });
});

Deno.test("ping reaches Docker Hub at its API host", async () => {
  const s = table({ "https://registry-1.docker.io/v2/": { status: 200 } });
  const got = await ping("docker.io", { probe: s, sender: s, timeoutMs: 1000 });
  assert.equal(got.base.host, "registry-1.docker.io");
  assert.equal(got.challenge, undefined);
});

Deno.test("ping speaks plain HTTP to loopback first, and probes HTTPS briefly before plain HTTP to listed registries", async () => {
  const probe = table({ "http://127.0.0.1:5000/v2/": { status: 200 } });
  const sender = table({});
  const got = await ping("127.0.0.1:5000", { probe, sender, timeoutMs: 60_000 });
  assert.equal(got.base.href, "http://127.0.0.1:5000/");
  assert.deepEqual(
    probe.urls,
    ["http://127.0.0.1:5000/v2/"],
    "no TLS connection for a plain loopback registry",
  );
  assert.deepEqual(probe.timeouts, [10_000], "the first scheme's probe is bounded by PROBE_TIMEOUT_MS");
  assert.deepEqual(sender.urls, []);
  // a loopback HTTPS registry answers plain HTTP with 400 (Go's servers) or drops it: then TLS
  for (const plainAnswer of [{ status: 400 }, "Network" as const]) {
    const tlsProbe = table({ "http://localhost:5443/v2/": plainAnswer });
    const tlsSender = table({ "https://localhost:5443/v2/": { status: 200 } });
    const viaTls = await ping("localhost:5443", { probe: tlsProbe, sender: tlsSender, timeoutMs: 1000 });
    assert.equal(viaTls.base.href, "https://localhost:5443/");
    assert.deepEqual(tlsSender.urls, ["https://localhost:5443/v2/"]);
  }
  // any other answer over plain HTTP is the registry's own, not a reason to try TLS
  const broken = table({ "http://127.0.0.1:5000/v2/": { status: 404 } });
  const brokenErr = await ping("127.0.0.1:5000", { probe: broken, sender: broken, timeoutMs: 1000 }).catch((
    e,
  ) => e);
  assert.equal(brokenErr.reason, "NotFound");
  assert.deepEqual(broken.urls, ["http://127.0.0.1:5000/v2/"]);
  // a listed (non-loopback) registry keeps HTTPS first
  const listedProbe = table({});
  const listed = table({ "http://reg.internal/v2/": { status: 200 } });
  const viaList = await ping("reg.internal", {
    probe: listedProbe,
    sender: listed,
    insecureRegistries: ["reg.internal"],
    timeoutMs: 1000,
  });
  assert.equal(viaList.base.protocol, "http:");
  assert.deepEqual(listedProbe.urls, ["https://reg.internal/v2/"]);
  // a loopback registry that answers neither way: the error names the plain-HTTP attempt
  const down = table({});
  const downErr = await ping("127.0.0.1:1", { probe: down, sender: down, timeoutMs: 1000 }).catch((e) => e);
  assert.equal(downErr.reason, "Network");
  assert.match(downErr.message, /reach the registry API at http:\/\/127\.0\.0\.1:1\/v2\//);
});

Deno.test("ping failures say what was tried", async () => {
  const none = table({});
  const err = await ping("reg.example", { probe: none, sender: none, timeoutMs: 1000 }).catch((e) => e);
  assert(err instanceof OciError);
  assert.equal(err.reason, "Network");
  assert.match(
    err.message,
    /reach the registry API at https:\/\/reg\.example\/v2\/.*plain HTTP is only tried for localhost/,
  );
  const tls = table({ "https://127.0.0.1:1/v2/": "Tls", "http://127.0.0.1:1/v2/": { status: 400 } });
  const tlsErr = await ping("127.0.0.1:1", { probe: tls, sender: tls, timeoutMs: 1000 }).catch((e) => e);
  assert.match(
    tlsErr.message,
    /TLS verification failed/,
    "an HTTPS registry answering HTTP oddly is a TLS problem",
  );
  const broken = table({ "https://reg.example/v2/": { status: 500 } });
  const brokenErr = await ping("reg.example", { probe: broken, sender: broken, timeoutMs: 1000 }).catch((e) =>
    e
  );
  assert.equal(brokenErr.reason, "ServerError");
});
