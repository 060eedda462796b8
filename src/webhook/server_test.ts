import assert from "node:assert/strict";
import type { ImageSync } from "../api/mod.ts";
import { jsonBodyOf, readToEnd } from "../server/_test_utils.ts";
import { githubSignature, WebhookSecret } from "./auth.ts";
import { startWebhookServer, WebhookEndpoint, type WebhookResult, type WebhookTarget } from "./server.ts";

const SECRET = "0123456789abcdef-secret";

function imagesync(name: string, repo: string, tags: string[]): ImageSync {
  return {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name, namespace: "ns" },
    spec: {
      source: { registry: "reg.example.com:5000" },
      destination: { registry: "dst.example.com" },
      images: [{ name: repo, tags }],
    },
  } as unknown as ImageSync;
}

function harness(opts: { accepting?: boolean; burst?: number; maxBodyBytes?: number } = {}) {
  const triggered: Array<[string, string]> = [];
  const counts: string[] = [];
  let lists = 0;
  const target: WebhookTarget = {
    list: () => {
      lists++;
      return Promise.resolve([
        imagesync("a", "team/app", ["1.0"]),
        imagesync("b", "team/app", ["1.0", "2.0"]),
      ]);
    },
    syncNow: (requests) => {
      for (const r of requests) triggered.push([r.key, r.requestedBy]);
      return Promise.resolve();
    },
    accepting: () => opts.accepting ?? true,
  };
  return {
    triggered,
    counts,
    lists: () => lists,
    make: async () =>
      new WebhookEndpoint(target, {
        secret: await WebhookSecret.load({ value: SECRET }),
        count: (s: string, r: WebhookResult) => void counts.push(`${s}/${r}`),
        coalesceMs: 20,
        burst: opts.burst,
        ratePerSecond: 0.01,
        maxBodyBytes: opts.maxBodyBytes,
      }),
  };
}

let seq = 0;
function envelope(tag: string) {
  return JSON.stringify({
    events: [{
      id: `ev-${++seq}`,
      timestamp: new Date().toISOString(),
      action: "push",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", repository: "team/app", tag },
      request: { host: "reg.example.com:5000" },
    }],
  });
}

function post(path: string, body: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://127.0.0.1${path}`, { method: "POST", body, headers });
}

const auth = { authorization: `Bearer ${SECRET}` };
const settle = () => new Promise((r) => setTimeout(r, 60));

Deno.test("endpoint: a burst of pushes syncs each matching ImageSync once, with what was pushed", async () => {
  const h = harness();
  const ep = await h.make();
  try {
    for (let i = 0; i < 5; i++) {
      const res = await ep.handle(post("/webhook/distribution", envelope("1.0"), auth));
      assert.equal(res.status, 202);
      assert.deepStrictEqual(await res.json(), { accepted: 1 });
    }
    await settle();
    assert.deepStrictEqual(h.triggered, [
      ["ns/a", "a push of reg.example.com:5000/team/app:1.0 (distribution webhook)"],
      ["ns/b", "a push of reg.example.com:5000/team/app:1.0 (distribution webhook)"],
    ]);
    assert.equal(h.lists(), 1);
    assert.equal(h.counts.filter((c) => c === "distribution/accepted").length, 5);
  } finally {
    await ep.close();
  }
});

Deno.test("endpoint: unauthenticated, malformed, oversized, replayed requests get a 4xx and trigger nothing", async () => {
  const h = harness({ maxBodyBytes: 2048 });
  const ep = await h.make();
  try {
    const replay = envelope("2.0");
    const cases: Array<[Request, number, string]> = [
      [post("/webhook/distribution", envelope("1.0")), 401, "Unauthenticated"],
      [
        post("/webhook/distribution", envelope("1.0"), { authorization: "Bearer wrong" }),
        401,
        "Unauthenticated",
      ],
      [post("/webhook/distribution", "{not json", auth), 400, "Malformed"],
      [post("/webhook/distribution", JSON.stringify({ events: "x" }), auth), 400, "Malformed"],
      [post("/webhook/distribution", "x".repeat(4096), auth), 413, "TooLarge"],
      [
        post("/webhook/github", "{}", { "x-github-event": "package", "x-hub-signature-256": "sha256=00" }),
        401,
        "Unauthenticated",
      ],
      [new Request("http://127.0.0.1/webhook/harbor", { headers: auth }), 405, "MethodNotAllowed"],
    ];
    for (const [req, status, reason] of cases) {
      const res = await ep.handle(req);
      assert.equal(res.status, status, reason);
      assert.equal((await res.json()).reason, reason);
    }
    assert.equal((await ep.handle(post("/webhook/nope", "{}", auth))).status, 404);
    assert.equal((await ep.handle(post("/webhook/distribution", replay, auth))).status, 202);
    const again = await ep.handle(post("/webhook/distribution", replay, auth));
    assert.equal(again.status, 409);
    assert.match((await again.json()).message, /already received/);
    await settle();
    // only the one genuine push (2.0) synced: b lists it
    assert.deepStrictEqual(h.triggered.map(([k]) => k), ["ns/b"]);
    assert.equal(h.counts.filter((c) => c.endsWith("/rejected")).length, 8);
  } finally {
    await ep.close();
  }
});

Deno.test("endpoint: a GitHub delivery signed with the secret is taken", async () => {
  const h = harness();
  const ep = await h.make();
  try {
    const body = JSON.stringify({
      action: "published",
      package: {
        name: "app",
        package_type: "container",
        owner: { login: "team" },
        package_version: {
          container_metadata: { tag: { name: "1.0" } },
          package_url: "reg.example.com:5000/team/app:1.0",
        },
      },
    });
    const res = await ep.handle(post("/webhook/github", body, {
      "x-github-event": "package",
      "x-github-delivery": "d-1",
      "x-hub-signature-256": githubSignature(SECRET, new TextEncoder().encode(body)),
    }));
    assert.equal(res.status, 202);
    await settle();
    assert.deepStrictEqual(h.triggered.map(([k]) => k), ["ns/a", "ns/b"]);
  } finally {
    await ep.close();
  }
});

Deno.test("endpoint: a flood beyond the burst gets 429 with Retry-After; an instance not accepting answers 503", async () => {
  const h = harness({ burst: 3 });
  const ep = await h.make();
  try {
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const res = await ep.handle(post("/webhook/distribution", envelope("1.0"), auth));
      statuses.push(res.status);
      if (res.status === 429) assert.ok(Number(res.headers.get("retry-after")) >= 1);
      await res.body?.cancel();
    }
    assert.deepStrictEqual(statuses, [202, 202, 202, 429, 429, 429]);
    await settle();
    assert.equal(h.triggered.length, 2);
  } finally {
    await ep.close();
  }
  const standby = harness({ accepting: false });
  const ep2 = await standby.make();
  try {
    const res = await ep2.handle(post("/webhook/distribution", envelope("1.0"), auth));
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "5");
    assert.equal((await res.clone().json()).reason, "Unavailable");
    await res.body?.cancel();
  } finally {
    await ep2.close();
  }
});

Deno.test("endpoint: a body that drips in slower than the deadline gets 408; requests beyond the in-flight cap get 429", async () => {
  let synced = 0;
  const target: WebhookTarget = {
    list: () => Promise.resolve([]),
    syncNow: () => Promise.resolve(void synced++),
    accepting: () => true,
  };
  const ep = new WebhookEndpoint(target, {
    secret: await WebhookSecret.load({ value: SECRET }),
    bodyTimeoutMs: 100,
    maxInFlight: 1,
  });
  try {
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    const drip = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(new TextEncoder().encode("{"));
        await held;
        c.close();
      },
    });
    const slow = ep.handle(
      new Request("http://127.0.0.1/webhook/distribution", { method: "POST", body: drip, headers: auth }),
    );
    // while the slow one holds the only slot, another is turned away at once
    const busy = await ep.handle(post("/webhook/distribution", envelope("1.0"), auth));
    assert.equal(busy.status, 429);
    await busy.body?.cancel();
    const res = await slow;
    assert.equal(res.status, 408);
    assert.equal((await res.json()).reason, "Timeout");
    release();
    await settle();
    assert.equal(synced, 0);
  } finally {
    await ep.close();
  }
});

Deno.test("endpoint: a push naming a tag, repository, host or id no registry would send is refused as Malformed", async () => {
  const h = harness();
  const ep = await h.make();
  const event = (target: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      events: [{
        id: `bad-${++seq}`,
        action: "push",
        target: {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          repository: "team/app",
          tag: "1.0",
          ...target,
        },
        request: { host: "reg.example.com:5000" },
        ...extra,
      }],
    });
  try {
    const cases: Array<[string, RegExp, string?]> = [
      [event({ tag: "1.0\nInjected text" }), /the tag "1\.0\\nInjected text" is not a tag/],
      [event({ tag: "x".repeat(129) }), /is not a tag/],
      [event({ repository: `team/${"a".repeat(300)}` }), /the repository "team\/a{59}…" is not a name/],
      [event({ repository: "team/app two" }), /the repository "team\/app two" is not a name/],
      [event({}, { id: "i".repeat(300) }), /the id is longer than 256 characters/],
      [event({}), /the registry host "evil host" is not a name/, "?registry=evil%20host"],
    ];
    for (const [body, message, query] of cases) {
      const res = await ep.handle(post(`/webhook/distribution${query ?? ""}`, body, auth));
      assert.equal(res.status, 400);
      const got = await res.json();
      assert.equal(got.reason, "Malformed");
      assert.match(got.message, message);
    }
    await settle();
    assert.deepStrictEqual(h.triggered, []);
  } finally {
    await ep.close();
  }
});

Deno.test("server: slow request heads get 408 Timeout, connections beyond the limit 429, a huge head 4xx; pushes still get through", async () => {
  const h = harness();
  const srv = await startWebhookServer("127.0.0.1:0", {
    list: () => Promise.resolve([imagesync("a", "team/app", ["1.0"])]),
    syncNow: (requests) =>
      Promise.resolve(
        void h.triggered.push(...requests.map((r) => [r.key, r.requestedBy] as [string, string])),
      ),
    accepting: () => true,
  }, {
    secret: await WebhookSecret.load({ value: SECRET }),
    coalesceMs: 20,
    guard: { maxConnections: 2, requestTimeoutMs: 300, idleTimeoutMs: 300 },
  });
  const enc = new TextEncoder();
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: srv.port });
  try {
    // a head a byte at a time
    const slow = await connect();
    const answer = readToEnd(slow);
    for (const byte of enc.encode("POST /webhook/distribution HTTP/1.1\r\nhost: x\r\n").subarray(0, 15)) {
      await slow.write(Uint8Array.of(byte)).catch(() => {});
      await new Promise((r) => setTimeout(r, 30));
    }
    const timedOut = await answer;
    assert.match(timedOut, /^HTTP\/1\.1 408 /);
    assert.equal(jsonBodyOf(timedOut).reason, "Timeout");

    // two silent connections hold the limit: a third is refused at once
    const held = [await connect(), await connect()];
    await new Promise((r) => setTimeout(r, 50));
    const third = await readToEnd(await connect());
    assert.match(third, /^HTTP\/1\.1 429 /);
    assert.equal(jsonBodyOf(third).reason, "RateLimited");
    // and the silent ones are closed once idle for the limit
    for (const c of held) assert.equal(await readToEnd(c), "");

    const huge = await connect();
    await huge.write(
      enc.encode(`POST /webhook/distribution HTTP/1.1\r\nhost: x\r\nx: ${"a".repeat(1 << 20)}\r\n\r\n`),
    )
      .catch(() => {});
    assert.match(await readToEnd(huge), /^HTTP\/1\.1 4\d\d /);

    const res = await fetch(`http://127.0.0.1:${srv.port}/webhook/distribution`, {
      method: "POST",
      body: envelope("1.0"),
      headers: auth,
    });
    assert.equal(res.status, 202);
    await res.body?.cancel();
    await settle();
    assert.deepStrictEqual(h.triggered.map(([k]) => k), ["ns/a"]);
  } finally {
    await srv.shutdown();
  }
});
