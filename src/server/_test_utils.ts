/**
 * Raw-socket helpers for the tests of servers behind the connection guard (what a misbehaving
 * client sees: an answer and a close, or a connection left open).
 * @module
 */

/**
 * Reads `conn` until the server closes it and returns the text; when it is still open after
 * `limitMs`, closes it and returns what came followed by `<open after N ms>`.
 */
export async function readToEnd(conn: Deno.Conn, limitMs = 5_000): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), limitMs);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    return `${text}<open after ${limitMs} ms>`;
  } finally {
    clearTimeout(timer);
  }
  try {
    conn.close();
  } catch { /* closed */ }
  return text;
}

/** The JSON body of a raw HTTP/1.1 answer. */
export function jsonBodyOf(answer: string): Record<string, unknown> {
  return JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
}
