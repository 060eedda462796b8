/**
 * Registry access logs for the harness's registries: turn a server's log lines into
 * "METHOD /request-uri STATUS" entries, leaving out the harness's own marked requests, and send
 * such a marked request (e.g. to flush the log: once its line is read, every earlier one is).
 * @module
 */

/** Query marker of the harness's own requests (readiness probe, log flush). */
export const HARNESS_MARK = "portager-harness=";

/**
 * "METHOD /request-uri STATUS" for each line matching `pattern` (groups 1–3: method, request
 * URI, status), in order, without the harness's own requests.
 */
export function accessEntries(lines: readonly string[], pattern: RegExp): string[] {
  const out: string[] = [];
  for (const line of lines) {
    const m = line.match(pattern);
    if (m && !m[2].includes(HARNESS_MARK)) out.push(`${m[1]} ${m[2]} ${m[3]}`);
  }
  return out;
}

/** GETs `<url>/v2/?portager-harness=<mark>` (trusting `caCertPem` if given) and drops the body. */
export async function markedRequest(url: string, mark: string, caCertPem?: string): Promise<void> {
  const client = caCertPem ? Deno.createHttpClient({ caCerts: [caCertPem] }) : undefined;
  try {
    const res = await fetch(`${url}/v2/?${HARNESS_MARK}${mark}`, client ? { client } : {});
    await res.body?.cancel();
  } finally {
    client?.close();
  }
}
