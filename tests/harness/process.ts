/**
 * Small helpers shared by the harness pieces that start server processes.
 * @module
 */

/** Collects text lines from a process stream until it ends. */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  sink: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let i;
    while ((i = rest.indexOf("\n")) >= 0) {
      sink(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
  }
  if (rest !== "") sink(rest);
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
