import assert from "node:assert/strict";
import { parseDistribution } from "./distribution.ts";

const headers = new Headers();

function envelope(...events: unknown[]) {
  return { events };
}

const manifestPush = {
  id: "e-1",
  timestamp: "2026-11-30T09:00:00.123Z",
  action: "push",
  target: {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: "sha256:" + "a".repeat(64),
    repository: "team/app",
    url: "http://127.0.0.1:5000/v2/team/app/manifests/sha256:" + "a".repeat(64),
    tag: "1.2.3",
  },
  request: { host: "registry.example.com:5000", method: "PUT" },
};

Deno.test("distribution: a tagged manifest push names the pushed host, repository, tag, id and time", () => {
  assert.deepStrictEqual(parseDistribution(envelope(manifestPush), { headers }), [{
    source: "distribution",
    registry: "registry.example.com:5000",
    repository: "team/app",
    tag: "1.2.3",
    digest: "sha256:" + "a".repeat(64),
    id: "e-1",
    timestamp: Date.parse("2026-11-30T09:00:00.123Z"),
  }]);
});

Deno.test("distribution: blob pushes and pulls are not pushes of an image; ?registry= overrides the host", () => {
  const blob = {
    ...manifestPush,
    id: "e-2",
    target: {
      ...manifestPush.target,
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      tag: undefined,
    },
  };
  const pull = { ...manifestPush, id: "e-3", action: "pull" };
  const got = parseDistribution(envelope(blob, pull, manifestPush), { headers, registry: "mirror.local" });
  assert.deepStrictEqual(got.map((p) => [p.id, p.registry]), [["e-1", "mirror.local"]]);
});

Deno.test("distribution: a body that is no envelope, or events without target, is malformed", () => {
  assert.throws(() => parseDistribution({ hello: 1 }, { headers }), { reason: "Malformed", status: 400 });
  assert.throws(
    () => parseDistribution(envelope({ action: "push", target: {} }), { headers }),
    { name: "WebhookError", message: /target\.repository/ },
  );
  assert.throws(() => parseDistribution(envelope(...Array(101).fill(manifestPush)), { headers }), {
    name: "WebhookError",
    message: /at\ most\ 100/,
  });
});
