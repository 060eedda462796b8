/**
 * Bad-input suite (issue 9): what a real user gets wrong, against one running operator, a real
 * apiserver with the generated CRD, and real registries. Each case must end in a clear outcome:
 * the apiserver refuses the object with a message naming the field, or the operator sets a
 * Ready condition with a stable reason and an actionable message and records an Event — while
 * it keeps running and a good ImageSync in the same namespace stays Ready. No secret appears in
 * any log line, Event or status.
 */

import assert from "node:assert/strict";
import { getManifest, pushImage, pushSchema1Image } from "./harness/fixtures.ts";
import {
  type FaultProxy,
  hugeTagList,
  oversizedManifest,
  startFaultProxy,
  startNonRegistryServer,
} from "./harness/fault_proxy.ts";
import { startKube } from "./harness/kube.ts";
import {
  applyCrd,
  assertNoSecrets,
  clusterTexts,
  condition,
  createNamespace,
  dockerConfigSecret,
  imageSync,
  imageSyncPath,
  type InProcessOperator,
  startOperator,
  type StoredObject,
  waitForEvent,
  waitForReady,
} from "./harness/operator.ts";
import { freePort } from "./harness/ports.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";

const NS = "bad-input";

/** A case the apiserver must refuse, with (part of) its message. */
interface Refused {
  what: string;
  /** An ImageSync spec, or a whole object with the collection path to POST it to. */
  spec?: Record<string, unknown>;
  object?: { path: string; body: Record<string, unknown> };
  /** HTTP status of the refusal; default 422 Unprocessable Entity (invalid). */
  status?: number;
  message: RegExp;
}

/** A case the operator must judge. */
interface Judged {
  /** ImageSync name. */
  name: string;
  what: string;
  spec: Record<string, unknown>;
  /** Ready status, reason and message expected. */
  ready: { status: "True" | "False"; reason: string; message: RegExp };
  /** For per-tag failures: the tag's reason and error. */
  tag?: { reason: string; error: RegExp };
  /** The Event expected (Warning unless the outcome is Ready). */
  event: { reason: string; message: RegExp };
  /** Extra checks. */
  check?: (obj: StoredObject) => void | Promise<void>;
}

function anon(registry: string): Record<string, unknown> {
  return { registry, auth: { method: "anonymous" } };
}

Deno.test("bad input: every mistake ends in a clear condition and Event (or the apiserver's refusal); the operator and a good ImageSync carry on", async (t) => {
  const kube = await startKube();
  const regs: RegistryServer[] = [];
  const start = async (...args: Parameters<typeof startRegistry>) => {
    const r = await startRegistry(...args);
    regs.push(r);
    return r;
  };
  const src = await start("plain");
  const dst = await start("plain");
  const basicDst = await start("basic");
  const bearerDst = await start("bearer");
  const schema1Src = await start("plain", { schema1: true });
  const tlsSrc = await start("tls");
  const proxies: FaultProxy[] = [];
  const web = startNonRegistryServer();
  let op: InProcessOperator | undefined;
  try {
    await applyCrd(kube);
    await createNamespace(kube, NS);
    await createNamespace(kube, "other");
    const good = await pushImage(src, { repository: "good/app", tag: "v1" }, { seed: 1 });
    await pushImage(src, { repository: "app", tag: "v1" }, { seed: 2 });
    await pushImage(src, { repository: "gated/app", tag: "v1" }, { seed: 5 });
    await pushImage(src, { repository: "denied/app", tag: "v1" }, { seed: 6 });
    // a destination tag that already points elsewhere, for overwrite: never
    await pushImage(src, { repository: "conflict/app", tag: "v1" }, { seed: 7 });
    const kept = await pushImage(dst, { repository: "conflict/app", tag: "v1" }, { seed: 8 });
    await pushSchema1Image(schema1Src, { repository: "legacy/app", tag: "v1" });
    await pushImage(tlsSrc, { repository: "app", tag: "v1" }, { seed: 3 });
    for (const tag of ["12.97.0", "12.98.0", "12.99.0"]) {
      await pushImage(src, { repository: "huge/app", tag }, { seed: 4 });
    }
    const faulty = startFaultProxy(src, [
      // 5000 tags in 50 pages; semver keeps the newest 3
      hugeTagList("huge/app", { count: 5000, pageSize: 100 }),
      // a tag list whose next page is itself
      {
        method: "GET",
        path: /^\/v2\/loop\/app\/tags\/list$/,
        fault: {
          kind: "respond",
          respond: () =>
            new Response(JSON.stringify({ name: "loop/app", tags: ["1.0.0"] }), {
              headers: {
                "content-type": "application/json",
                link: '</v2/loop/app/tags/list?n=1>; rel="next"',
              },
            }),
        },
      },
      oversizedManifest("big/manifest", "v1", 5 * 1024 * 1024),
    ]);
    proxies.push(faulty);
    // a destination whose policy denies pushes outright (403 DENIED, as Harbor or Artifactory do)
    const denying = startFaultProxy(dst, [{
      method: "POST",
      path: /\/blobs\/uploads\/$/,
      fault: {
        kind: "status",
        status: 403,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ errors: [{ code: "DENIED", message: "push denied by project policy" }] }),
      },
    }]);
    proxies.push(denying);
    const closedPort = `127.0.0.1:${freePort()}`;

    // Secrets: good ones, and every way a Secret goes wrong
    const basicCreds = { username: basicDst.username!, password: basicDst.password! };
    const wrongPassword = `not-${basicDst.password}`;
    await kube.apply(dockerConfigSecret(NS, "basic-creds", { [basicDst.host]: basicCreds }));
    await kube.apply(dockerConfigSecret(NS, "wrong-password", {
      [basicDst.host]: { username: basicDst.username!, password: wrongPassword },
    }));
    await kube.apply(dockerConfigSecret(NS, "other-registry", { "ghcr.io": basicCreds }));
    await kube.apply(dockerConfigSecret(NS, "bearer-creds", {
      [bearerDst.host]: { username: bearerDst.username!, password: bearerDst.password! },
    }));
    await kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "opaque", namespace: NS },
      type: "Opaque",
      data: { password: btoa(basicDst.password!) },
    });
    await kube.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "bad-auth", namespace: NS },
      type: "kubernetes.io/dockerconfigjson",
      data: {
        ".dockerconfigjson": btoa(
          JSON.stringify({ auths: { [basicDst.host]: { auth: "%%%not base64%%%" } } }),
        ),
      },
    });

    const good1 = { schedule: "@every 1h", source: { registry: src.host }, destination: anon(dst.host) };
    const withSecret = (name: string, host = basicDst.host) => ({
      schedule: "@every 1h",
      source: { registry: src.host },
      destination: { registry: host, auth: { method: "secret", secretRef: { name } } },
      images: [{ name: "app", tags: ["v1"] }],
    });
    const plainSpec = (source: string, images: unknown[]) => ({
      schedule: "@every 1h",
      source: { registry: source },
      destination: anon(dst.host),
      images,
    });

    const refused: Refused[] = [
      {
        what: "a registry with https://",
        spec: plainSpec("https://ghcr.io", [{ name: "app", tags: ["v1"] }]),
        message: /registry must not include a scheme/,
      },
      {
        what: "negative maxTags",
        spec: plainSpec(src.host, [{ name: "app", semver: "1.x", maxTags: -1 }]),
        message:
          /maxTags: Invalid value: -1: spec\.images\[0\]\.maxTags in body should be greater than or equal to 0/,
      },
      {
        what: "maxTags as a string",
        spec: plainSpec(src.host, [{ name: "app", semver: "1.x", maxTags: "ten" }]),
        message:
          /maxTags: Invalid value: "string": spec\.images\[0\]\.maxTags in body must be of type integer/,
      },
      {
        what: "no images",
        spec: plainSpec(src.host, []),
        message: /spec\.images: Invalid value: 0: spec\.images in body should have at least 1 items/,
      },
      {
        what: "an image with neither tags nor semver",
        spec: plainSpec(src.host, [{ name: "app" }]),
        message: /spec\.images\[0\]: Invalid value: "object": needs tags or semver/,
      },
      {
        what: "an unknown auth method",
        spec: {
          ...plainSpec(src.host, [{ name: "app", tags: ["v1"] }]),
          destination: { registry: dst.host, auth: { method: "password" } },
        },
        message:
          /spec\.destination\.auth\.method: Unsupported value: "password": supported values: "secret", "ecr", "gar", "anonymous"/,
      },
      {
        what: "no schedule",
        spec: {
          source: { registry: src.host },
          destination: anon(dst.host),
          images: [{ name: "app", tags: ["v1"] }],
        },
        message: /spec\.schedule: Required value/,
      },
      {
        what: "a misspelt field (strict field validation, as kubectl apply does)",
        spec: { ...plainSpec(src.host, [{ name: "app", tags: ["v1"] }]), createDestinationRepo: true },
        status: 400,
        message: /unknown field "spec\.createDestinationRepo"/,
      },
      {
        what: "an empty secretRef name",
        spec: {
          ...plainSpec(src.host, [{ name: "app", tags: ["v1"] }]),
          destination: { registry: dst.host, auth: { method: "secret", secretRef: { name: "" } } },
        },
        message:
          /spec\.destination\.auth\.secretRef\.name: Invalid value: "": spec\.destination\.auth\.secretRef\.name in body should be at least 1 chars long/,
      },
      {
        what: "a dockerconfigjson Secret that is not JSON",
        object: {
          path: `/api/v1/namespaces/${NS}/secrets`,
          body: {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: "not-json" },
            type: "kubernetes.io/dockerconfigjson",
            data: { ".dockerconfigjson": btoa("{auths: nope") },
          },
        },
        message: /data\[\.dockerconfigjson\]: Invalid value: "<secret contents redacted>"/,
      },
    ];

    const judged: Judged[] = [
      // --- the operator's own validation (terminal until the spec changes) ---
      {
        name: "cron-garbage",
        what: "an invalid cron expression",
        spec: { ...good1, schedule: "every day at noon", images: [{ name: "app", tags: ["v1"] }] },
        ready: {
          status: "False",
          reason: "InvalidSchedule",
          message: /^invalid schedule "every day at noon": a cron expression has 5 fields/,
        },
        event: { reason: "InvalidSchedule", message: /every day at noon/ },
      },
      {
        name: "cron-out-of-range",
        what: "a cron minute of 61",
        spec: { ...good1, schedule: "61 * * * *", images: [{ name: "app", tags: ["v1"] }] },
        ready: {
          status: "False",
          reason: "InvalidSchedule",
          message: /^invalid schedule "61 \* \* \* \*": .*61/,
        },
        event: { reason: "InvalidSchedule", message: /61/ },
      },
      {
        name: "every-under-a-second",
        what: "@every 500ms (upstream's robfig/cron runs it every second)",
        spec: { ...good1, schedule: "@every 500ms", images: [{ name: "app", tags: ["v1"] }] },
        ready: { status: "True", reason: "SyncSucceeded", message: /^All 1 image\(s\) synced successfully$/ },
        event: { reason: "SyncComplete", message: /^Sync complete: 1 synced, 0 failed, 1 total$/ },
        check: (obj) => {
          const gap = Date.parse(obj.status!.nextSyncTime!) - Date.parse(obj.status!.lastSyncTime!);
          assert.ok(gap >= 0 && gap <= 2_000, `next sync ${gap} ms after the last`);
        },
      },
      {
        name: "bad-semver",
        what: "a semver constraint that does not parse (fails only that image's tag resolution)",
        spec: {
          ...good1,
          images: [{ name: "app", tags: ["v1"], semver: ">=> 1.2" }, { name: "good/app", tags: ["v1"] }],
        },
        ready: {
          status: "False",
          reason: "SyncFailed",
          message:
            /^1 of 2 image\(s\) failed to sync; tag resolution failed for 1 image\(s\); first: app: .*>=> 1\.2/,
        },
        event: {
          reason: "TagResolutionFailed",
          message: /^Failed to resolve tags for app matching ">=> 1\.2": /,
        },
        check: async (obj) => {
          // as upstream counts: the image whose tags cannot be resolved is one failure; its
          // explicit tag and the other image still sync
          assert.deepEqual([obj.status?.totalImages, obj.status?.syncedImages, obj.status?.failedImages], [
            2,
            2,
            1,
          ]);
          assert.deepEqual(
            obj.status?.images?.map((i) => [i.name, i.tags?.map((t) => [t.tag, t.synced])]),
            [["app", [["v1", true]]], ["good/app", [["v1", true]]]],
          );
          // … and portage_images_failed_total counts it, as upstream's does
          const text = await op!.metrics.expose();
          const failed = new RegExp(
            `^portage_images_failed_total\\{name="bad-semver",namespace="${NS}"\\} (\\d+)$`,
            "m",
          ).exec(text);
          assert.ok(
            failed && Number(failed[1]) >= 1,
            text.split("\n").filter((l) => l.includes("failed_total")).join("\n"),
          );
        },
      },
      {
        name: "uppercase-image",
        what: "an image name with capitals",
        spec: { ...good1, images: [{ name: "Library/Nginx", tags: ["v1"] }] },
        ready: {
          status: "False",
          reason: "InvalidSpec",
          message: /images\[0\]\.name.*must be lowercase: "Library" has capital letters/,
        },
        event: { reason: "InvalidSpec", message: /lowercase/ },
      },
      {
        name: "tag-in-name",
        what: "a tag written into the image name",
        spec: { ...good1, images: [{ name: "nginx:1.25", tags: ["v1"] }] },
        ready: {
          status: "False",
          reason: "InvalidSpec",
          message: /must not include a tag \(":1\.25"\): list tags under tags/,
        },
        event: { reason: "InvalidSpec", message: /must not include a tag/ },
      },
      {
        name: "illegal-tag",
        what: "a tag with a space and a bang",
        spec: { ...good1, images: [{ name: "app", tags: ["latest build!"] }] },
        ready: { status: "False", reason: "InvalidSpec", message: /images\[0\]\.tags\[0\]/ },
        event: { reason: "InvalidSpec", message: /latest build!/ },
      },
      {
        name: "registry-with-space",
        what: "a registry with a space in it",
        spec: {
          ...good1,
          source: { registry: "my registry.example.com" },
          images: [{ name: "app", tags: ["v1"] }],
        },
        ready: {
          status: "False",
          reason: "InvalidSpec",
          message: /source\.registry.*must not contain spaces/,
        },
        event: { reason: "InvalidSpec", message: /spaces/ },
      },
      {
        name: "uppercase-prefix",
        what: "a repositoryPrefix with capitals",
        spec: {
          ...good1,
          destination: { ...anon(dst.host), repositoryPrefix: "Mirror" },
          images: [{ name: "app", tags: ["v1"] }],
        },
        ready: { status: "False", reason: "InvalidSpec", message: /repositoryPrefix.*lowercase/ },
        event: { reason: "InvalidSpec", message: /repositoryPrefix/ },
      },
      {
        name: "ecr-not-ecr",
        what: "auth method ecr for a registry that is not ECR",
        spec: {
          ...good1,
          destination: { registry: dst.host, auth: { method: "ecr" } },
          images: [{ name: "app", tags: ["v1"] }],
        },
        ready: {
          status: "False",
          reason: "AuthFailed",
          message: /is not an Amazon ECR registry/,
        },
        event: { reason: "AuthFailed", message: /not an Amazon ECR registry/ },
      },
      {
        name: "tag-conflict",
        what: "destination.overwrite never and the destination tag at another digest",
        spec: {
          ...good1,
          destination: { ...anon(dst.host), overwrite: "never" },
          images: [{ name: "conflict/app", tags: ["v1"] }],
        },
        ready: {
          status: "False",
          reason: "TagConflict",
          message:
            /^1 of 1 image\(s\) failed to sync; first: conflict\/app:v1: destination .*overwrite is never/,
        },
        tag: { reason: "TagConflict", error: /left as it is/ },
        event: {
          reason: "TagConflict",
          message: /^Left .*conflict\/app:v1 at sha256:[0-9a-f]{8}: the source /,
        },
        check: async () => {
          assert.equal((await getManifest(dst, "conflict/app", "v1")).digest, kept.digest, "never moved");
        },
      },
      {
        name: "secret-without-secretref",
        what: "method secret without secretRef (upstream's default sample: anonymous)",
        spec: {
          ...good1,
          destination: { registry: dst.host, auth: { method: "secret" } },
          images: [{ name: "app", tags: ["v1"] }],
        },
        ready: { status: "True", reason: "SyncSucceeded", message: /^All 1 image\(s\) synced successfully$/ },
        event: { reason: "SyncComplete", message: /^Sync complete: 1 synced, 0 failed, 1 total$/ },
      },
      // --- credentials (the Secret is named, its content never) ---
      {
        name: "secret-missing",
        what: "a secretRef to a Secret that does not exist",
        spec: withSecret("no-such-secret"),
        ready: {
          status: "False",
          reason: "AuthFailed",
          message: new RegExp(`secret ${NS}/no-such-secret not found .*${basicDst.host}`),
        },
        event: { reason: "AuthFailed", message: /no-such-secret not found/ },
      },
      {
        name: "secret-other-namespace",
        what: "a source authSecretRef into another namespace (refused by default, nothing read there)",
        spec: {
          ...withSecret("basic-creds"),
          source: { registry: src.host, authSecretRef: { name: "pull", namespace: "other" } },
        },
        ready: {
          status: "False",
          reason: "CrossNamespaceRefDenied",
          message:
            /^the source secretRef names namespace "other"; this operator only reads Secrets in the ImageSync's own namespace/,
        },
        event: { reason: "CrossNamespaceRefDenied", message: /--allow-cross-namespace-refs/ },
        check: (obj) => {
          // whether that Secret exists is not told
          assert.doesNotMatch(condition(obj, "Ready")!.message, /not found|pull/);
        },
      },
      {
        name: "secret-wrong-type",
        what: "an Opaque Secret instead of kubernetes.io/dockerconfigjson",
        spec: withSecret("opaque"),
        ready: { status: "False", reason: "AuthFailed", message: /opaque.*(type|dockerconfigjson)/ },
        event: { reason: "AuthFailed", message: /opaque/ },
      },
      {
        name: "secret-bad-auth",
        what: "a dockerconfigjson whose auth is not base64",
        spec: withSecret("bad-auth"),
        ready: { status: "False", reason: "AuthFailed", message: /bad-auth.*base64/ },
        event: { reason: "AuthFailed", message: /bad-auth/ },
      },
      {
        name: "secret-other-registry",
        what: "a Secret with credentials only for another registry",
        spec: withSecret("other-registry"),
        ready: {
          status: "False",
          reason: "AuthFailed",
          message: new RegExp(`other-registry.*${basicDst.host}`),
        },
        event: { reason: "AuthFailed", message: /other-registry/ },
      },
      {
        name: "wrong-password",
        what: "a wrong password",
        spec: withSecret("wrong-password"),
        ready: { status: "False", reason: "SyncFailed", message: /app:v1/ },
        tag: { reason: "Unauthorized", error: new RegExp(basicDst.host) },
        event: { reason: "SyncFailed", message: /app:v1/ },
      },
      // --- registries ---
      {
        name: "tag-missing",
        what: "a tag that does not exist at the source",
        spec: plainSpec(src.host, [{ name: "app", tags: ["v1", "v9"] }]),
        ready: { status: "False", reason: "SyncFailed", message: /1 of 2 image\(s\) failed.*app:v9/ },
        tag: { reason: "NotFound", error: /app:v9 not found/ },
        event: { reason: "SyncFailed", message: /app:v9/ },
      },
      {
        name: "schema1",
        what: "a Docker schema1 image",
        spec: plainSpec(schema1Src.host, [{ name: "legacy/app", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: /legacy\/app:v1/ },
        tag: { reason: "UnsupportedMediaType", error: /schema ?1/i },
        event: { reason: "SyncFailed", message: /schema ?1/i },
      },
      {
        name: "push-forbidden",
        what: "a destination that refuses the push (pull-only repository)",
        spec: {
          ...withSecret("bearer-creds", bearerDst.host),
          destination: {
            registry: bearerDst.host,
            repositoryPrefix: "readonly",
            auth: { method: "secret", secretRef: { name: "bearer-creds" } },
          },
        },
        ready: { status: "False", reason: "SyncFailed", message: /app:v1/ },
        tag: { reason: "Forbidden", error: /readonly\/app/ },
        event: { reason: "SyncFailed", message: /readonly\/app/ },
      },
      {
        name: "push-denied",
        what: "a destination that answers pushes with 403 DENIED",
        // (an image nothing else copies to dst: an up-to-date tag needs no push)
        spec: {
          ...plainSpec(src.host, [{ name: "denied/app", tags: ["v1"] }]),
          destination: anon(denying.host),
        },
        ready: { status: "False", reason: "SyncFailed", message: /denied\/app:v1/ },
        tag: { reason: "Forbidden", error: /HTTP 403.*push denied by project policy/ },
        event: { reason: "SyncFailed", message: /push denied by project policy/ },
        check: () => {
          const posts = denying.seen.filter((s) => s.method === "POST");
          assert(posts.length > 0 && posts.every((s) => s.status === 403));
          assert(!denying.seen.some((s) => s.method === "PUT"), "nothing pushed after the refusal");
        },
      },
      {
        name: "unreachable",
        what: "a registry nobody listens on",
        spec: plainSpec(closedPort, [{ name: "app", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: new RegExp(closedPort) },
        tag: { reason: "Network", error: new RegExp(closedPort) },
        event: { reason: "SyncFailed", message: new RegExp(closedPort) },
      },
      {
        name: "no-such-host",
        what: "a registry host that does not resolve",
        spec: plainSpec("registry.portager-test.invalid", [{ name: "app", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: /registry\.portager-test\.invalid/ },
        tag: { reason: "Network", error: /registry\.portager-test\.invalid/ },
        event: { reason: "SyncFailed", message: /registry\.portager-test\.invalid/ },
      },
      {
        name: "not-a-registry",
        what: "a web server that is not a registry",
        spec: plainSpec(web.host, [{ name: "app", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: new RegExp(web.host) },
        tag: { reason: "ManifestInvalid", error: new RegExp(web.host) },
        event: { reason: "SyncFailed", message: new RegExp(web.host) },
      },
      {
        name: "tls-unknown-ca",
        what: "a TLS registry whose CA the operator does not trust",
        spec: plainSpec(tlsSrc.host, [{ name: "app", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: /TLS/ },
        tag: {
          reason: "Network",
          // names the https URL that failed verification, not the plain-HTTP fallback tried after it
          error: new RegExp(
            `cannot reach the registry API at https://${tlsSrc.host}/v2/: TLS verification failed.*caCerts`,
          ),
        },
        event: { reason: "SyncFailed", message: /TLS/ },
      },
      {
        name: "oversized-manifest",
        what: "a manifest larger than registries allow",
        spec: plainSpec(faulty.host, [{ name: "big/manifest", tags: ["v1"] }]),
        ready: { status: "False", reason: "SyncFailed", message: /big\/manifest:v1/ },
        tag: { reason: "ManifestTooLarge", error: /larger than/ },
        event: { reason: "SyncFailed", message: /larger than/ },
      },
      {
        name: "tag-list-loop",
        what: "a tag list whose pagination loops",
        spec: plainSpec(faulty.host, [{ name: "loop/app", semver: "1.x" }]),
        ready: {
          status: "False",
          reason: "SyncFailed",
          message:
            /^1 of 0 image\(s\) failed to sync; tag resolution failed for 1 image\(s\); first: loop\/app: .*loops/,
        },
        event: { reason: "TagResolutionFailed", message: /loops/ },
      },
      {
        name: "gate-enabled",
        what: "a cosign gate with neither a key nor a keyless issuer",
        // (an image nothing else copies: a tag already up to date stays synced, as upstream)
        spec: {
          ...plainSpec(src.host, [{ name: "gated/app", tags: ["v1"] }]),
          validation: { cosign: { enabled: true } },
        },
        ready: { status: "False", reason: "SyncFailed", message: /gated\/app:v1/ },
        tag: { reason: "ValidationFailed", error: /neither publicKey nor keylessIssuer/ },
        event: {
          reason: "ValidationFailed",
          message: /^Validation failed for .*gated\/app:v1: cosign verification failed/,
        },
      },
      // --- not an error: a huge tag list is paged through and maxTags bounds the copy ---
      {
        name: "huge-tag-list",
        what: "5000 tags in 50 pages, semver with maxTags 3",
        spec: plainSpec(faulty.host, [{ name: "huge/app", semver: "^12.0.0", maxTags: 3 }]),
        ready: { status: "True", reason: "SyncSucceeded", message: /All 3 image\(s\) synced/ },
        event: { reason: "TagsResolved", message: /huge\/app/ },
        check: async (obj) => {
          assert.deepEqual(obj.status?.images?.[0].tags?.map((t) => [t.tag, t.synced]), [
            ["12.99.0", true],
            ["12.98.0", true],
            ["12.97.0", true],
          ]);
          const pages = faulty.seen.filter((s) => s.path.startsWith("/v2/huge/app/tags/list")).length;
          assert(pages >= 50, `${pages} tag list pages read`);
          assert.equal((await getManifest(dst, "huge/app", "12.99.0")).status, 200);
        },
      },
    ];
    assert(refused.length + judged.length >= 25, `${refused.length + judged.length} cases`);

    op = await startOperator(kube, {
      namespaces: [NS],
      maxConcurrentSyncs: 6,
      backoffBaseMs: 2_000,
      backoffMaxMs: 10_000,
    });
    await kube.apply(imageSync(NS, "good", { ...good1, images: [{ name: "good/app", tags: ["v1"] }] }));
    for (const c of judged) await kube.apply(imageSync(NS, c.name, c.spec));

    await t.step("the apiserver refuses what the CRD schema and CEL rules can judge", async (t) => {
      for (const [i, c] of refused.entries()) {
        await t.step(c.what, async () => {
          const res = await kube.adminFetch(`${c.object?.path ?? imageSyncPath(NS)}?fieldValidation=Strict`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(c.object?.body ?? imageSync(NS, `refused-${i}`, c.spec!)),
          });
          const body = await res.json();
          assert.equal(res.status, c.status ?? 422, JSON.stringify(body));
          assert.match(body.message, c.message);
        });
      }
    });

    await t.step("the operator judges the rest: condition, message, Event", async (t) => {
      for (const c of judged) {
        await t.step(`${c.what} → ${c.ready.reason}${c.tag ? `/${c.tag.reason}` : ""}`, async () => {
          const obj = await waitForReady(kube, NS, c.name, { timeoutMs: 60_000, logs: op!.log });
          const ready = condition(obj, "Ready")!;
          assert.equal(ready.status, c.ready.status, ready.message);
          assert.equal(ready.reason, c.ready.reason, ready.message);
          assert.match(ready.message, c.ready.message);
          if (c.tag) {
            const failed = obj.status?.images?.flatMap((i) => i.tags ?? []).find((t) => !t.synced);
            assert.equal(failed?.reason, c.tag.reason, JSON.stringify(obj.status?.images));
            assert.match(failed?.error ?? "", c.tag.error);
          }
          const ev = await waitForEvent(kube, NS, c.name, c.event.reason);
          assert.equal(ev.type, c.ready.status === "True" ? "Normal" : "Warning");
          assert.match(ev.message, c.event.message);
          await c.check?.(obj);
        });
      }
    });

    await t.step(
      "the STATUS column (kubectl get) is the Ready condition's reason, as upstream prints it",
      async () => {
        const res = await kube.adminFetch(imageSyncPath(NS), {
          headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" },
        });
        const table = await res.json() as {
          columnDefinitions: Array<{ name: string }>;
          rows: Array<{ cells: unknown[]; object: { metadata: { name: string } } }>;
        };
        const column = table.columnDefinitions.findIndex((c) => c.name === "Status");
        assert.ok(column >= 0, JSON.stringify(table.columnDefinitions));
        const status = new Map(table.rows.map((r) => [r.object.metadata.name, r.cells[column]]));
        for (const c of judged) assert.equal(status.get(c.name), c.ready.reason, c.name);
      },
    );

    await t.step("the operator keeps running and the good ImageSync is unaffected", async () => {
      const obj = await waitForReady(kube, NS, "good", { ok: (c) => c.status === "True", logs: op!.log });
      assert.equal(obj.status?.images?.[0].tags?.[0].sourceDigest, good.digest);
      assert.equal((await getManifest(dst, "good/app", "v1")).digest, good.digest);
      assert.equal(op!.exited(), false);
      const health = await fetch(`${op!.url}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    });

    await t.step("no password in any log line, Event or status", async () => {
      assertNoSecrets([{ where: "operator log", text: op!.log() }, ...await clusterTexts(kube)], [
        { secret: basicDst.password!, user: basicDst.username },
        { secret: wrongPassword, user: basicDst.username },
        { secret: bearerDst.password!, user: bearerDst.username },
      ]);
    });
  } finally {
    await op?.stop();
    for (const p of proxies) await p.stop();
    await web.stop();
    await Promise.all(regs.map((r) => r.stop()));
    await kube.stop();
  }
});
