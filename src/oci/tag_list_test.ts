import assert from "node:assert/strict";
import { serve } from "./_test_utils.ts";
import { RegistryClient } from "./client.ts";
import { OciError } from "./errors.ts";
import { parseReference } from "./reference.ts";
import { namesUnknownRepository } from "./tag_list.ts";

/** A registry whose tag list is written by `page(url, origin)`; counts the pages it served. */
function tagRegistry(page: (url: URL, origin: string) => { tags: unknown[]; next?: string; pad?: number }) {
  let pages = 0;
  const srv = serve((_req, url, self) => {
    if (url.pathname === "/v2/") return new Response("{}");
    pages++;
    const p = page(url, self.origin);
    const body = JSON.stringify({ name: "a", tags: p.tags }) + " ".repeat(p.pad ?? 0);
    return new Response(body, { headers: p.next ? { link: `<${p.next}>; rel="next"` } : {} });
  });
  return { srv, pages: () => pages, repo: parseReference(`${srv.host}/a`, { defaultTag: false }) };
}

Deno.test("listTags: pages followed, duplicates and invalid tags dropped, an empty page ends the listing", async () => {
  const t = tagRegistry((url) => {
    const n = Number(url.searchParams.get("p") ?? "0");
    if (n === 0) {
      return { tags: ["1", "../../victim/manifests/prod", 7, null, "2"], next: "/v2/a/tags/list?p=1" };
    }
    if (n === 1) return { tags: ["2", "3"], next: "/v2/a/tags/list?p=2" };
    return { tags: [], next: "/v2/a/tags/list?p=3" };
  });
  try {
    assert.deepEqual(await new RegistryClient().listTags(t.repo), ["1", "2", "3"]);
    assert.equal(t.pages(), 3);
  } finally {
    await t.srv.stop();
  }
});

Deno.test("listTags: a page loop with ever new URLs but no new tags is detected", async () => {
  const t = tagRegistry((url) => ({
    tags: ["same"],
    next: `/v2/a/tags/list?p=${Number(url.searchParams.get("p") ?? 0) + 1}`,
  }));
  try {
    const err = await new RegistryClient().listTags(t.repo).catch((e) => e);
    assert(err instanceof OciError && err.reason === "Protocol", String(err));
    assert.match(err.message, /pagination for .* loops/);
    assert.equal(t.pages(), 2);
  } finally {
    await t.srv.stop();
  }
});

Deno.test("listTags: bounded in total tags and total bytes over all pages", async () => {
  const endless = tagRegistry((url) => {
    const n = Number(url.searchParams.get("p") ?? 0);
    return { tags: [`t${n}a`, `t${n}b`], next: `/v2/a/tags/list?p=${n + 1}`, pad: 1000 };
  });
  try {
    const byTags = await new RegistryClient({ maxTags: 50 }).listTags(endless.repo).catch((e) => e);
    assert(byTags instanceof OciError && byTags.reason === "TagListTooLarge", String(byTags));
    assert.match(byTags.message, /more than 50 tags/);
    assert.equal(endless.pages(), 26);
    const byBytes = await new RegistryClient().listTags(endless.repo, { maxTagListBytes: 10_000 }).catch((
      e,
    ) => e);
    assert.equal(byBytes.reason, "TagListTooLarge");
    assert.match(byBytes.message, /more than 10000 bytes/);
  } finally {
    await endless.srv.stop();
  }
  const huge = tagRegistry(() => ({ tags: ["x"], pad: 200_000 }));
  try {
    const err = await new RegistryClient({ maxTagListBytes: 100_000 }).listTags(huge.repo).catch((e) => e);
    assert.equal(err.reason, "TagListTooLarge");
  } finally {
    await huge.srv.stop();
  }
});

Deno.test("namesUnknownRepository: only a 404 whose error codes are all NAME_UNKNOWN says the repository is absent", () => {
  const unknown = JSON.stringify({
    errors: [{ code: "NAME_UNKNOWN", message: "repository name not known" }],
  });
  assert.equal(namesUnknownRepository(404, unknown), true);
  assert.equal(namesUnknownRepository(200, unknown), false, "a 200 is never 'absent'");
  assert.equal(namesUnknownRepository(401, unknown), false);
  assert.equal(namesUnknownRepository(403, JSON.stringify({ errors: [{ code: "DENIED" }] })), false);
  assert.equal(
    namesUnknownRepository(404, JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN" }] })),
    false,
  );
  const mixed = { errors: [{ code: "NAME_UNKNOWN" }, { code: "UNAUTHORIZED" }] };
  assert.equal(namesUnknownRepository(404, JSON.stringify(mixed)), false);
  assert.equal(namesUnknownRepository(404, JSON.stringify({ errors: [] })), false);
  assert.equal(namesUnknownRepository(404, "404 page not found"), false);
  assert.equal(namesUnknownRepository(404, ""), false);
  assert.equal(namesUnknownRepository(404, unknown.slice(0, 20)), false, "a cut body is not an answer");
});

Deno.test("repositoryUnknown: one tags/list?n=1; true only for 404 NAME_UNKNOWN, false (never a throw) otherwise", async () => {
  const answers: Array<() => Response> = [
    () =>
      Response.json({ errors: [{ code: "NAME_UNKNOWN", message: "repository name not known" }] }, {
        status: 404,
      }),
    () => Response.json({ name: "a", tags: ["1"] }),
    () => Response.json({ name: "a", tags: [] }),
    () => Response.json({ errors: [{ code: "DENIED", message: "no" }] }, { status: 403 }),
    () => new Response("404 page not found", { status: 404 }),
    () => new Response("{".repeat(10_000), { status: 404 }),
  ];
  const seen: string[] = [];
  let answer = answers[0];
  const srv = serve((req, url) => {
    if (url.pathname === "/v2/") return new Response("{}");
    seen.push(`${req.method} ${url.pathname}${url.search}`);
    return answer();
  });
  const client = new RegistryClient({ retryBaseMs: 1, maxAttempts: 1 });
  const repo = parseReference(`${srv.host}/a`, { defaultTag: false });
  try {
    const got: boolean[] = [];
    for (const a of answers) {
      answer = a;
      got.push(await client.repositoryUnknown(repo));
    }
    assert.deepEqual(got, [true, false, false, false, false, false]);
    assert.deepEqual(new Set(seen), new Set(["GET /v2/a/tags/list?n=1"]));
    assert.equal(seen.length, answers.length);
  } finally {
    await srv.stop();
  }
  // a registry that cannot be reached: false, not an error
  assert.equal(await client.repositoryUnknown(repo), false);
  client.close();
});
