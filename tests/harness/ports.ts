/**
 * Free TCP ports on 127.0.0.1 for test servers.
 *
 * The OS picks the port; the listener is closed before returning, so a tiny race with other
 * processes remains. Servers started on these ports should retry on "address already in use".
 * @module
 */

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  return freePorts(1)[0];
}

/** Returns `count` distinct TCP ports on 127.0.0.1 (all held open together while choosing). */
export function freePorts(count: number): number[] {
  const listeners: Deno.Listener[] = [];
  try {
    for (let i = 0; i < count; i++) {
      listeners.push(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
    }
    return listeners.map((l) => (l.addr as Deno.NetAddr).port);
  } finally {
    for (const l of listeners) l.close();
  }
}
