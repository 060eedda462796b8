/**
 * An HTTP fault layer in front of a real registry, for what toxiproxy's TCP toxics cannot do:
 * answer 500/502/503 or 429 with `Retry-After` for the first N requests matching a pattern,
 * lie about a manifest's digest, corrupt blob bytes, cut a body short, redirect blobs to
 * another host, serve a huge paginated tag list or an oversized manifest. Everything else is
 * forwarded to the registry unchanged (Authorization included; `Location` headers are rewritten
 * so the client keeps talking through the proxy). Also: a server that is not a registry at all.
 *
 * ```ts
 * const proxy = startFaultProxy(registry, [
 *   { method: "GET", path: /\/blobs\//, times: 2, fault: { kind: "status", status: 503 } },
 * ]);
 * // use proxy.host as the registry; proxy.seen lists what clients sent
 * await proxy.stop();
 * ```
 * @module
 */

/** What to do with a matching request. */
export type Fault =
  /** Answer this status (with an optional body and headers) instead of forwarding. */
  | { kind: "status"; status: number; body?: string; headers?: Record<string, string> }
  /** Answer 429 Too Many Requests with `Retry-After: retryAfterSeconds`. */
  | { kind: "rateLimit"; retryAfterSeconds: number }
  /** Forward, but replace the response's `Docker-Content-Digest` with a wrong digest. */
  | { kind: "lyingDigest" }
  /** Forward, but flip one byte of the body (same length, different bytes). */
  | { kind: "corruptBody" }
  /** Forward, but send only the first `afterBytes` bytes of the body, then break the stream. */
  | { kind: "cutBody"; afterBytes: number }
  /** Answer 307 to `${to}${path}` (another host) instead of forwarding. */
  | { kind: "redirect"; to: string }
  /** Answer with what `respond` returns. */
  | { kind: "respond"; respond: (req: Request, url: URL) => Response | Promise<Response> };

/** A fault and the requests it applies to. */
export interface FaultRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Pattern the path (without the query) must match (any when absent). */
  path?: RegExp;
  /** How many matching requests get the fault; unlimited when absent. */
  times?: number;
  /** The fault. */
  fault: Fault;
}

/** One request the proxy received. */
export interface SeenRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** The Authorization header, or null. */
  authorization: string | null;
  /** Status answered. */
  status: number;
  /** Whether a fault rule answered or altered it. */
  faulted: boolean;
  /** When it arrived (Date.now()). */
  time: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** "127.0.0.1:PORT" — use it as the registry host. */
  host: string;
  /** "http://host". */
  url: string;
  /** Every request seen, in order. */
  seen: SeenRequest[];
  /** How many requests each rule has faulted, by index in the rule list. */
  hits: number[];
  /** Replaces the rules (hit counts restart). */
  setRules(rules: FaultRule[]): void;
  /** Stops serving. */
  stop(): Promise<void>;
}

/** Where the proxy forwards to: a registry's base URL (plain HTTP). */
export interface Upstream {
  url: string;
}

const WRONG_DIGEST = "sha256:" + "0123456789abcdef".repeat(4);

function matches(rule: FaultRule, req: Request, url: URL): boolean {
  if (rule.method && rule.method !== req.method) return false;
  if (rule.path && !rule.path.test(url.pathname)) return false;
  return true;
}

/**
 * Forwards `req` to the registry at `upstream` (body streamed), rewriting a `Location` into it
 * so that it points at `self`, the proxy's own base URL.
 */
export async function forward(upstream: string, self: string, req: Request, url: URL): Promise<Response> {
  const headers = new Headers(req.headers);
  headers.delete("host");
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && req.body !== null;
  const res = await fetch(new URL(url.pathname + url.search, upstream), {
    method: req.method,
    headers,
    body: hasBody ? req.body : undefined,
    redirect: "manual",
    // stream request bodies (blob uploads) instead of buffering them
    ...(hasBody ? { duplex: "half" } : {}),
  } as RequestInit);
  const out = new Headers(res.headers);
  const location = out.get("location");
  if (location?.startsWith(upstream)) out.set("location", self + location.slice(upstream.length));
  return new Response(req.method === "HEAD" ? null : res.body, { status: res.status, headers: out });
}

function corrupt(res: Response): Promise<Response> {
  return res.bytes().then((bytes) => {
    if (bytes.length > 0) bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    return new Response(bytes, { status: res.status, headers: res.headers });
  });
}

function cut(res: Response, afterBytes: number): Response {
  const reader = res.body?.getReader();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (!reader) return c.error(new Error("connection cut by the fault proxy"));
      const { done, value } = await reader.read();
      if (done) return c.close();
      const room = afterBytes - sent;
      if (value.length >= room) {
        if (room > 0) c.enqueue(value.subarray(0, room));
        sent = afterBytes;
        await reader.cancel();
        c.error(new Error("connection cut by the fault proxy"));
        return;
      }
      sent += value.length;
      c.enqueue(value);
    },
    cancel: (r) => reader?.cancel(r),
  });
  return new Response(body, { status: res.status, headers: res.headers });
}

/**
 * Starts a fault proxy on 127.0.0.1 (or `hostname`) in front of `upstream`, applying the first
 * rule that matches each request and still has hits left.
 */
export function startFaultProxy(
  upstream: Upstream,
  rules: FaultRule[] = [],
  opts: { hostname?: string } = {},
): FaultProxy {
  const hostname = opts.hostname ?? "127.0.0.1";
  const base = upstream.url.replace(/\/+$/, "");
  let current = rules;
  const seen: SeenRequest[] = [];
  const state = { hits: rules.map(() => 0) };
  let self = "";
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const entry: SeenRequest = {
      method: req.method,
      path: url.pathname + url.search,
      authorization: req.headers.get("authorization"),
      status: 0,
      faulted: false,
      time: Date.now(),
    };
    seen.push(entry);
    let res: Response;
    const i = current.findIndex((r, i) =>
      matches(r, req, url) && (r.times === undefined || state.hits[i] < r.times)
    );
    try {
      if (i < 0) {
        res = await forward(base, self, req, url);
      } else {
        state.hits[i]++;
        entry.faulted = true;
        const fault = current[i].fault;
        const forwards = fault.kind === "lyingDigest" || fault.kind === "corruptBody" ||
          fault.kind === "cutBody";
        if (!forwards && fault.kind !== "respond") await req.body?.cancel();
        switch (fault.kind) {
          case "status":
            res = new Response(req.method === "HEAD" ? null : fault.body ?? `fault proxy: ${fault.status}`, {
              status: fault.status,
              headers: fault.headers,
            });
            break;
          case "rateLimit":
            res = new Response(req.method === "HEAD" ? null : "slow down", {
              status: 429,
              headers: { "retry-after": String(fault.retryAfterSeconds) },
            });
            break;
          case "lyingDigest": {
            const r = await forward(base, self, req, url);
            const headers = new Headers(r.headers);
            headers.set("docker-content-digest", WRONG_DIGEST);
            res = new Response(r.body, { status: r.status, headers });
            break;
          }
          case "corruptBody":
            res = await corrupt(await forward(base, self, req, url));
            break;
          case "cutBody":
            res = cut(await forward(base, self, req, url), fault.afterBytes);
            break;
          case "redirect":
            res = new Response(null, {
              status: 307,
              headers: { location: `${fault.to.replace(/\/+$/, "")}${url.pathname}${url.search}` },
            });
            break;
          case "respond":
            res = await fault.respond(req, url);
            break;
        }
      }
    } catch (e) {
      res = new Response(`fault proxy: upstream failed: ${(e as Error).message}`, { status: 599 });
    }
    entry.status = res.status;
    return res;
  });
  self = `http://${hostname}:${server.addr.port}`;
  return {
    host: `${hostname}:${server.addr.port}`,
    url: self,
    seen,
    get hits() {
      return state.hits;
    },
    setRules(next: FaultRule[]) {
      current = next;
      state.hits = next.map(() => 0);
    },
    async stop() {
      await server.shutdown();
    },
  };
}

/**
 * A fault that serves `/v2/<repository>/tags/list` as `count` tags (`1.0.0` … in a
 * deterministic order) in pages of at most `pageSize`, with `Link: <…>; rel="next"` headers
 * (distribution's `n`/`last` parameters), so a client must follow every page.
 */
export function hugeTagList(
  repository: string,
  opts: { count: number; pageSize: number; tag?: (i: number) => string },
): FaultRule {
  const tagOf = opts.tag ?? ((i: number) => `${Math.floor(i / 100)}.${i % 100}.0`);
  const all = Array.from({ length: opts.count }, (_, i) => tagOf(i));
  const path = `/v2/${repository}/tags/list`;
  return {
    method: "GET",
    path: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`),
    fault: {
      kind: "respond",
      respond(_req, url) {
        const n = Math.min(
          Number(url.searchParams.get("n") ?? opts.pageSize) || opts.pageSize,
          opts.pageSize,
        );
        const last = url.searchParams.get("last");
        const start = last === null ? 0 : all.indexOf(last) + 1;
        const page = all.slice(start, start + n);
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (start + n < all.length) {
          headers.link = `<${path}?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`;
        }
        return new Response(JSON.stringify({ name: repository, tags: page }), { headers });
      },
    },
  };
}

/**
 * A fault that answers manifest requests for `repository:tag` with an image manifest of
 * `bytes` bytes (a valid OCI manifest padded with annotations), larger than any registry allows.
 */
export function oversizedManifest(repository: string, tag: string, bytes: number): FaultRule {
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const base = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: "sha256:" + "a".repeat(64),
      size: 2,
    },
    layers: [],
    annotations: { padding: "" },
  };
  base.annotations.padding = "x".repeat(Math.max(0, bytes - JSON.stringify(base).length));
  const body = new TextEncoder().encode(JSON.stringify(base));
  return {
    path: new RegExp(`^/v2/${repository.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/manifests/${tag}$`),
    fault: {
      kind: "respond",
      // no Docker-Content-Digest: the client must read (and refuse) the body to learn it
      respond: (req) =>
        new Response(req.method === "HEAD" ? null : body, {
          headers: { "content-type": mediaType, "content-length": String(body.length) },
        }),
    },
  };
}

/** A running HTTP server that is not a registry. */
export interface NonRegistryServer {
  /** "127.0.0.1:PORT". */
  host: string;
  /** Requests seen (method and path). */
  seen: Array<{ method: string; path: string; authorization: string | null }>;
  /** Stops serving. */
  stop(): Promise<void>;
}

/**
 * A web server that answers every request with an HTML page (200), as a misconfigured
 * registry field pointing at a website would: no `/v2/` API, no JSON, no digests.
 */
export function startNonRegistryServer(opts: { hostname?: string } = {}): NonRegistryServer {
  const hostname = opts.hostname ?? "127.0.0.1";
  const seen: NonRegistryServer["seen"] = [];
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname + url.search,
      authorization: req.headers.get("authorization"),
    });
    return new Response(
      req.method === "HEAD" ? null : "<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>",
      { headers: { "content-type": "text/html" } },
    );
  });
  return {
    host: `${hostname}:${server.addr.port}`,
    seen,
    async stop() {
      await server.shutdown();
    },
  };
}
