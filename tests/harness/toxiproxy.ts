/**
 * Toxiproxy (built from its Go module by scripts/build-tools.sh) for fault tests: a TCP proxy
 * between the operator and a registry (or the apiserver) whose connections can be slowed,
 * throttled, cut or stalled on demand through its HTTP API.
 *
 * ```ts
 * const toxi = await startToxiproxy();
 * try {
 *   const proxy = await toxi.createProxy("src", registry.host);
 *   await proxy.addToxic({ name: "slow", type: "bandwidth", attributes: { rate: 256 } });
 *   // ... point the operator at proxy.host ...
 *   await proxy.removeToxic("slow");
 * } finally {
 *   await toxi.stop();
 * }
 * ```
 * @module
 */

import { freePort } from "./ports.ts";
import { toolPath } from "./tools.ts";
import { sleep } from "./process.ts";

/** The toxic types toxiproxy 2.x implements, with the attributes each takes. */
export type Toxic =
  /** Delays data by `latency` ms (± `jitter`). */
  | { type: "latency"; attributes: { latency: number; jitter?: number } }
  /** Limits throughput to `rate` KB/s. */
  | { type: "bandwidth"; attributes: { rate: number } }
  /** Resets the connection (TCP RST) `timeout` ms after the toxic applies (0: at once). */
  | { type: "reset_peer"; attributes: { timeout: number } }
  /** Stops all data; closes the connection after `timeout` ms (0: never). */
  | { type: "timeout"; attributes: { timeout: number } }
  /** Splits data into pieces of about `average_size` bytes, `delay` µs apart. */
  | { type: "slicer"; attributes: { average_size: number; size_variation?: number; delay?: number } }
  /** Closes the connection after `bytes` bytes passed. */
  | { type: "limit_data"; attributes: { bytes: number } }
  /** Delays the close of a connection by `delay` ms. */
  | { type: "slow_close"; attributes: { delay: number } };

/** A toxic to add: its type and attributes, a name, and where it applies. */
export type ToxicSpec = Toxic & {
  /** Unique within the proxy; used to remove it. */
  name: string;
  /** "downstream" (upstream → client, the default) or "upstream" (client → upstream). */
  stream?: "downstream" | "upstream";
  /** Probability that a connection gets the toxic; default 1. */
  toxicity?: number;
};

/** One proxy: clients connect to `host`, toxiproxy connects to the upstream. */
export interface ToxiProxy {
  /** The proxy's name. */
  name: string;
  /** "127.0.0.1:PORT" clients connect to (use it as the registry host). */
  host: string;
  /** The upstream "host:port". */
  upstream: string;
  /** Adds a toxic; every new and existing connection gets it. */
  addToxic(toxic: ToxicSpec): Promise<void>;
  /** Removes a toxic by name (no error if it is not there). */
  removeToxic(name: string): Promise<void>;
  /** Disabled: existing connections are closed and new ones refused. */
  setEnabled(enabled: boolean): Promise<void>;
  /** Deletes the proxy. */
  remove(): Promise<void>;
}

/** A running toxiproxy server. */
export interface Toxiproxy {
  /** The HTTP API base URL, "http://127.0.0.1:PORT". */
  apiUrl: string;
  /** Creates a proxy on a free 127.0.0.1 port in front of `upstream` ("host:port"). */
  createProxy(name: string, upstream: string): Promise<ToxiProxy>;
  /** Removes every toxic and re-enables every proxy. */
  reset(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its log directory. */
  stop(): Promise<void>;
  /** The server's log (its stderr), for diagnosis. */
  log(): Promise<string>;
}

/** Errors of the toxiproxy harness; `reason` is StartFailed or ApiError. */
export class ToxiproxyError extends Error {
  /** Stable machine-readable reason. */
  readonly reason: "StartFailed" | "ApiError";
  /** Creates the error. */
  constructor(reason: "StartFailed" | "ApiError", message: string) {
    super(message);
    this.name = "ToxiproxyError";
    this.reason = reason;
  }
}

async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  allow: number[] = [],
): Promise<unknown> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok && !allow.includes(res.status)) {
    throw new ToxiproxyError("ApiError", `toxiproxy ${method} ${path} → ${res.status}: ${text.trim()}`);
  }
  return text ? JSON.parse(text) : undefined;
}

/**
 * Starts toxiproxy-server on a free 127.0.0.1 port and waits until its API answers. Throws
 * ToolMissingError if it is not built, ToxiproxyError if it does not come up within 20 s.
 */
export async function startToxiproxy(): Promise<Toxiproxy> {
  const bin = toolPath("toxiproxy-server");
  const dir = await Deno.makeTempDir({ prefix: "portager-toxiproxy-" });
  const logFile = `${dir}/toxiproxy.log`;
  const readLog = () => Deno.readTextFile(logFile).catch(() => "(no log)");
  let child: Deno.ChildProcess | undefined;
  let exited = false;
  let apiUrl = "";
  for (let attempt = 1; attempt <= 3 && !apiUrl; attempt++) {
    const port = freePort();
    // through sh so the log goes straight to a file (no pipe to pump); exec keeps the pid
    child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'log=$1; shift; exec "$@" >>"$log" 2>&1',
        "sh",
        logFile,
        bin,
        "-host",
        "127.0.0.1",
        "-port",
        String(port),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    exited = false;
    const proc = child;
    proc.status.then(() => exited = true);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/version`);
        const text = await res.text();
        // toxiproxy answers its version ("git" for a module build); a stranger would rarely
        // answer 200 to /version, and our process must still be alive
        if (res.ok && text.trim() !== "" && !exited) {
          apiUrl = `http://127.0.0.1:${port}`;
          break;
        }
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    if (!apiUrl) {
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
      await proc.status;
      if (!/address already in use/i.test(await readLog())) break;
    }
  }
  if (!apiUrl || !child) {
    const log = await readLog();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new ToxiproxyError("StartFailed", `toxiproxy-server did not start; log:\n${log}`);
  }
  const proc = child;
  const base = apiUrl;
  let stopped: Promise<void> | undefined;

  async function createProxy(name: string, upstream: string): Promise<ToxiProxy> {
    // port 0: toxiproxy binds a free port and answers with the address it got
    const proxy = await api(base, "POST", "/proxies", {
      name,
      listen: "127.0.0.1:0",
      upstream,
      enabled: true,
    }) as { listen: string };
    const path = `/proxies/${encodeURIComponent(name)}`;
    return {
      name,
      host: proxy.listen.replace(/^\[::\]|^0\.0\.0\.0/, "127.0.0.1"),
      upstream,
      async addToxic(t: ToxicSpec) {
        await api(base, "POST", `${path}/toxics`, {
          name: t.name,
          type: t.type,
          stream: t.stream ?? "downstream",
          toxicity: t.toxicity ?? 1,
          attributes: t.attributes,
        });
      },
      async removeToxic(toxic: string) {
        await api(base, "DELETE", `${path}/toxics/${encodeURIComponent(toxic)}`, undefined, [404]);
      },
      async setEnabled(enabled: boolean) {
        await api(base, "POST", path, { enabled });
      },
      async remove() {
        await api(base, "DELETE", path, undefined, [404]);
      },
    };
  }

  return {
    apiUrl,
    createProxy,
    async reset() {
      await api(base, "POST", "/reset");
    },
    log: readLog,
    stop() {
      stopped ??= (async () => {
        if (!exited) {
          try {
            proc.kill("SIGTERM");
          } catch { /* gone */ }
          let timer: ReturnType<typeof setTimeout> | undefined;
          const done = await Promise.race([
            proc.status.then(() => true),
            new Promise<boolean>((r) => timer = setTimeout(() => r(false), 5000)),
          ]);
          clearTimeout(timer);
          if (!done) {
            try {
              proc.kill("SIGKILL");
            } catch { /* gone */ }
          }
        }
        await proc.status;
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      })();
      return stopped;
    },
  };
}
