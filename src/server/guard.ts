/**
 * A connection guard in front of an HTTP server, for endpoints open to remote senders (the
 * webhook). `Deno.serve` bounds request heads (about 64 KiB, 100 fields: 400 beyond) but not
 * what a client does with its connections: one that opens many, or sends a request head a byte
 * at a time, or keeps a connection open and silent, holds sockets for ever — Deno.serve has no
 * header or idle timeout and does not close a connection when asked to. The guard accepts the
 * TCP connections itself and relays each to the server (over a Unix socket), and bounds them:
 *
 * - at most `maxConnections` open at once; one more is answered `429 RateLimited` with
 *   `Retry-After: 1` and closed;
 * - a request (from its first byte until the server's first byte of the answer) may take
 *   `requestTimeoutMs`; a slower one is answered `408 Timeout` and the connection closed;
 * - a connection with no request in progress (before the first, between keep-alive requests,
 *   or while the client does not read its answer) is closed after `idleTimeoutMs`.
 *
 * Close it after the server has shut down: relays still carrying an answer get a second to
 * deliver it, then every connection is closed.
 *
 * The refusals have the body shape of the webhook's own: `{"reason", "message"}` as JSON.
 * @module
 */

import type { Logger } from "../log/mod.ts";

/** Connections open at once by default (128). */
export const DEFAULT_MAX_CONNECTIONS = 128;
/** How long one request may take to arrive and be answered by default (20 s). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 20_000;
/** How long a connection may stay open with no request in progress by default (30 s). */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/** How long closing waits for relays to pass on their last answers before it cuts them. */
const CLOSE_GRACE_MS = 1_000;

/** The bounds of {@linkcode guardConnections}; each has a default. */
export interface GuardOptions {
  /** Connections open at once; default {@linkcode DEFAULT_MAX_CONNECTIONS}. */
  maxConnections?: number;
  /** From a request's first byte to the answer's first byte; default {@linkcode DEFAULT_REQUEST_TIMEOUT_MS}. */
  requestTimeoutMs?: number;
  /** Open with no request in progress; default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}. */
  idleTimeoutMs?: number;
}

/** A running guard. */
export interface ConnectionGuard {
  /** The address the guard listens on. */
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly open: number;
  /** Closes the listener: connections already open carry on. */
  stopAccepting(): void;
  /** Stops accepting, closes every connection and waits until each relay ended. */
  close(): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = { 408: "Request Timeout", 429: "Too Many Requests" };

/** A complete HTTP/1.1 refusal with the webhook's JSON body, the connection to be closed after it. */
function refusal(status: 408 | 429, reason: string, message: string, headers = ""): Uint8Array {
  const body = JSON.stringify({ reason, message }) + "\n";
  return new TextEncoder().encode(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: application/json\r\n` +
      `content-length: ${
        new TextEncoder().encode(body).byteLength
      }\r\nconnection: close\r\n${headers}\r\n${body}`,
  );
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  while (data.byteLength > 0) data = data.subarray(await conn.write(data));
}

/**
 * Copies `from` to `to` until either ends; `onChunk` runs as each chunk arrives. Resolves
 * with the side that ended: `from` (no more to read) or `to` (cannot write any more).
 */
async function pump(from: Deno.Conn, to: Deno.Conn, onChunk: () => void): Promise<"from" | "to"> {
  const buf = new Uint8Array(16 * 1024);
  for (;;) {
    let n: number | null;
    try {
      n = await from.read(buf);
    } catch {
      return "from";
    }
    if (n === null) return "from";
    onChunk();
    try {
      await writeAll(to, buf.subarray(0, n));
    } catch {
      return "to";
    }
  }
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // already closed
  }
}

/**
 * Accepts connections on `listener` and relays each to a fresh `connect()`ion of the server,
 * within the bounds of `options` (see the module doc).
 */
export function guardConnections(
  listener: Deno.TcpListener,
  options: GuardOptions & { connect: () => Promise<Deno.Conn>; logger?: Logger },
): ConnectionGuard {
  const max = Math.max(1, options.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  const requestMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const log = options.logger;
  const open = new Set<() => void>();
  const relays = new Set<Promise<void>>();
  let accepting = true;

  async function relay(client: Deno.Conn): Promise<void> {
    let upstream: Deno.Conn | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let busy = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      closeQuietly(upstream);
      closeQuietly(client);
    };
    open.add(close);
    const idle = () => {
      busy = false;
      clearTimeout(timer);
      timer = setTimeout(() => {
        log?.debug("http: idle connection closed", { afterMs: idleMs });
        close();
      }, idleMs);
    };
    const requesting = () => {
      busy = true;
      clearTimeout(timer);
      timer = setTimeout(() => {
        log?.info("http: request too slow; connection closed", { afterMs: requestMs });
        closeQuietly(upstream);
        const answer = refusal(
          408,
          "Timeout",
          `the request took longer than ${requestMs} ms to arrive; send it at once`,
        );
        writeAll(client, answer).catch(() => {}).finally(close);
      }, requestMs);
    };
    try {
      idle();
      upstream = await options.connect();
      if (closed) return;
      const answers = pump(upstream, client, () => {
        if (busy) idle();
      });
      const requests = pump(client, upstream, () => {
        if (!busy) requesting();
      }).then(async (ended) => {
        // the server stopped reading (e.g. a refused head): its answer still goes to the client
        if (ended === "to") await answers;
      });
      await Promise.race([answers, requests]);
    } catch (err) {
      log?.error("http: cannot reach the server behind the connection guard", { error: err });
    } finally {
      close();
      open.delete(close);
    }
  }

  async function refuseBusy(conn: Deno.Conn): Promise<void> {
    log?.debug("http: too many connections; refused", { open: open.size });
    const answer = refusal(
      429,
      "RateLimited",
      `more than ${max} connections open at once; retry`,
      "retry-after: 1\r\n",
    );
    await writeAll(conn, answer).catch(() => {});
    closeQuietly(conn);
  }

  const accept = async () => {
    while (accepting) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (!accepting || err instanceof Deno.errors.BadResource) return;
        // e.g. out of file descriptors: the guard's bound is what frees them
        log?.warn("http: cannot accept a connection", { error: err });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const p = open.size >= max ? refuseBusy(conn) : relay(conn);
      relays.add(p);
      p.finally(() => relays.delete(p));
    }
  };
  const accepted = accept();
  const stopAccepting = () => {
    if (!accepting) return;
    accepting = false;
    try {
      listener.close();
    } catch {
      // already closed
    }
  };

  return {
    addr: listener.addr,
    get open() {
      return open.size;
    },
    stopAccepting,
    async close() {
      stopAccepting();
      await accepted;
      // the server has shut down: each relay ends once its last answer is through
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise((r) => timer = setTimeout(r, CLOSE_GRACE_MS));
      await Promise.race([Promise.all(relays), grace]);
      clearTimeout(timer);
      for (const close of open) close();
      await Promise.all(relays);
    },
  };
}
