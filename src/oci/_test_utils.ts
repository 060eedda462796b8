/**
 * Helpers for the unit tests of src/oci: a loopback HTTP server whose handlers may hold a
 * request open (a silent or dripping registry) and are all released when it stops.
 * @module
 */

import assert from "node:assert/strict";
import { OciError } from "./errors.ts";

/** Runs `fn`, which must throw an {@linkcode OciError}; returns it for further checks. */
export function ociThrows(fn: () => unknown): OciError {
  try {
    fn();
  } catch (e) {
    assert(e instanceof OciError, `expected OciError, got ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: "expected an OciError, nothing was thrown" });
}

/** A loopback server for one test. */
export interface TestServer {
  /** `http://host:port`. */
  origin: string;
  /** `host:port`. */
  host: string;
  /** A promise that never settles until the server stops (then it answers 503). */
  hold(): Promise<Response>;
  /** Releases held requests and shuts the server down. */
  stop(): Promise<void>;
}

/** Serves `handler` on a free port of `hostname` (default 127.0.0.1). */
export function serve(
  handler: (req: Request, url: URL, server: TestServer) => Response | Promise<Response>,
  hostname = "127.0.0.1",
): TestServer {
  const held: Array<() => void> = [];
  const closing = new AbortController();
  const box: { self?: TestServer } = {};
  const server = Deno.serve(
    { hostname, port: 0, onListen() {} },
    (req) => handler(req, new URL(req.url), box.self!),
  );
  const self: TestServer = {
    origin: `http://${hostname}:${server.addr.port}`,
    host: `${hostname}:${server.addr.port}`,
    hold() {
      return new Promise<Response>((resolve) =>
        held.push(() => resolve(new Response(null, { status: 503 })))
      );
    },
    async stop() {
      closing.abort();
      for (const release of held.splice(0)) release();
      await server.shutdown();
    },
  };
  box.self = self;
  return self;
}

/** A body that sends one byte every `everyMs` forever (until cancelled). */
export function drip(everyMs: number, byte = 0x20): ReadableStream<Uint8Array> {
  let timer: ReturnType<typeof setInterval> | undefined;
  return new ReadableStream<Uint8Array>({
    start(c) {
      timer = setInterval(() => {
        try {
          c.enqueue(new Uint8Array([byte]));
        } catch {
          clearInterval(timer);
        }
      }, everyMs);
    },
    cancel() {
      clearInterval(timer);
    },
  });
}

/**
 * Runs `script` in a fresh `deno eval --no-config` process (a clean global state: nothing
 * loaded yet); asserts it exited 0 and returns its stdout.
 */
export async function evalInChild(script: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}
