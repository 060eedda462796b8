/**
 * `Link` header parsing (RFC 8288) for tag-list pagination.
 * @module
 */

/** One link from a `Link` header. */
export interface Link {
  /** The target, as written (may be relative). */
  target: string;
  /** Link parameters, keys lower-cased, values unquoted (`rel`, …). */
  params: Record<string, string>;
}

/** Parses a `Link` header value: `<url>; rel="next", <url2>; rel=prev`. */
export function parseLinkHeader(header: string): Link[] {
  const links: Link[] = [];
  let i = 0;
  const s = header;
  while (i < s.length) {
    const open = s.indexOf("<", i);
    if (open < 0) break;
    const close = s.indexOf(">", open);
    if (close < 0) break;
    const link: Link = { target: s.slice(open + 1, close).trim(), params: {} };
    i = close + 1;
    // Parameters until the next top-level comma.
    while (i < s.length) {
      while (i < s.length && /\s/.test(s[i])) i++;
      if (s[i] === ",") {
        i++;
        break;
      }
      if (s[i] !== ";") {
        i++;
        continue;
      }
      i++;
      while (i < s.length && /\s/.test(s[i])) i++;
      let key = "";
      while (i < s.length && /[^=;,\s]/.test(s[i])) key += s[i++];
      while (i < s.length && /\s/.test(s[i])) i++;
      let value = "";
      if (s[i] === "=") {
        i++;
        while (i < s.length && /\s/.test(s[i])) i++;
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === "\\" && i + 1 < s.length) i++;
            value += s[i++];
          }
          i++;
        } else {
          while (i < s.length && /[^;,\s]/.test(s[i])) value += s[i++];
        }
      }
      if (key) link.params[key.toLowerCase()] = value;
    }
    links.push(link);
  }
  return links;
}

/** The `rel="next"` target of a `Link` header (rel may list several space-separated types). */
export function nextLinkTarget(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const link of parseLinkHeader(header)) {
    const rels = (link.params.rel ?? "").toLowerCase().split(/\s+/);
    if (rels.includes("next")) return link.target;
  }
  return undefined;
}
