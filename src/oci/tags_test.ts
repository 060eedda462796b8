import assert from "node:assert/strict";
import { nextLinkTarget, parseLinkHeader } from "./tags.ts";

Deno.test("parseLinkHeader reads distribution's next link", () => {
  assert.deepEqual(parseLinkHeader('</v2/foo/tags/list?last=b&n=2>; rel="next"'), [
    { target: "/v2/foo/tags/list?last=b&n=2", params: { rel: "next" } },
  ]);
});

Deno.test("parseLinkHeader handles several links, unquoted and extra parameters", () => {
  const links = parseLinkHeader(
    '<https://r.example/v2/x/tags/list?last=a,b>; rel=prev; title="a, b", ' +
      "<https://r.example/v2/x/tags/list?last=z>;REL=next",
  );
  assert.deepEqual(links, [
    { target: "https://r.example/v2/x/tags/list?last=a,b", params: { rel: "prev", title: "a, b" } },
    { target: "https://r.example/v2/x/tags/list?last=z", params: { rel: "next" } },
  ]);
});

Deno.test("nextLinkTarget finds rel=next among several relation types", () => {
  assert.equal(nextLinkTarget('</a>; rel="prev", </b>; rel="last next"'), "/b");
  assert.equal(nextLinkTarget('</a>; rel="prev"'), undefined);
  assert.equal(nextLinkTarget(null), undefined);
  assert.equal(nextLinkTarget(""), undefined);
});
