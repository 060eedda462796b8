/**
 * The upstream user's suite (issue 15): ImageSyncs written the way upstream Portager v0.5's
 * README quick start, samples and docs write them (tests/fixtures/upstream_user/) are applied to
 * the harness apiserver with our CRD, and the operator runs with upstream's command line. The
 * test then reads what such a user reads: `kubectl get imagesyncs` columns (the apiserver's
 * Table), status, Events, `portage_*` metrics and the sync-now annotation.
 *
 * Only registry hosts are rewritten. A host whose name does not choose anything is replaced by
 * a harness loopback registry (docker.io, ghcr.io, cgr.dev, localhost:5001, a Harbor host). The
 * ECR and GAR destination hosts keep their names, because the name selects the credentials
 * (`method: ecr` / `gar` refuse other hosts, as upstream): the operator reaches them over plain
 * HTTP through an in-test forward proxy (HTTP_PROXY) that sends each to its loopback registry.
 * ECR is moto (GetAuthorizationToken, DescribeRepositories, CreateRepository), GAR is the
 * harness's Google STS with a workload-identity credential file, as GKE users configure ADC.
 */
import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { crdObject } from "../src/api/mod.ts";
import { decodeEcrToken } from "../src/credentials/mod.ts";
import { getManifest, type PushedImage, pushImage } from "./harness/fixtures.ts";
import { startGoogleSts } from "./harness/google_sts.ts";
import { type KubeCluster, startKube } from "./harness/kube.ts";
import { isolatedAwsEnv, MOTO_ACCOUNT, startMoto } from "./harness/moto.ts";
import {
  assertNoSecrets,
  clusterTexts,
  createNamespace,
  dockerConfigSecret,
  eventsFor,
  getImageSync,
  imageSyncPath,
  spawnUpstreamOperator,
  type StoredEvent,
  type StoredObject,
  type UpstreamOperator,
  waitFor,
  waitForReady,
} from "./harness/operator.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { orasAttach } from "./harness/supply_chain.ts";

const FIXTURES = new URL("./fixtures/upstream_user/", import.meta.url).pathname;
const NS = "default";
const ECR_HOST = `${MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
const GAR_HOST = "europe-west4-docker.pkg.dev";
const GAR_SA = "mirror@acme-prod.iam.gserviceaccount.com";
const GAR_TOKEN = "ya29.c.upstream-user-mirror-token";
const GAR_AUDIENCE =
  "//iam.googleapis.com/projects/4242/locations/global/workloadIdentityPools/gke/providers/portager";
const SUBJECT = "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig";
/** An Event's short digest as upstream's truncateDigest writes it. */
const SHORT = "sha256:[0-9a-f]{8}";

/** Every document of a fixture file, as written. */
async function fixture(file: string): Promise<Array<Record<string, unknown>>> {
  return loadAll(await Deno.readTextFile(`${FIXTURES}${file}`)) as Array<Record<string, unknown>>;
}

/**
 * `doc` with `spec.source.registry` and `spec.destination.registry` rewritten: the host part
 * through `hosts` (a host with no entry fails the test, so no fixture reaches the internet).
 */
function rewriteHosts(doc: Record<string, unknown>, hosts: Record<string, string>): Record<string, unknown> {
  const copy = structuredClone(doc) as {
    spec: { source: { registry: string }; destination: { registry: string } };
  };
  for (const side of [copy.spec.source, copy.spec.destination]) {
    const [host, ...path] = side.registry.split("/");
    const to = hosts[host];
    assert.ok(to !== undefined, `no harness stand-in for ${host}`);
    side.registry = [to, ...path].join("/");
  }
  return copy as unknown as Record<string, unknown>;
}

/**
 * A forward proxy for plain-HTTP requests: `http://<name>/…` goes to the registry `routes[name]`;
 * Location headers pointing at the registry are pointed back at the name. Records
 * "METHOD name path" and the Authorization scheme and user of each request.
 */
function startForwardProxy(routes: Record<string, RegistryServer>) {
  const seen: Array<{ host: string; method: string; path: string; user?: string }> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const reg = routes[url.host];
    if (!reg) return new Response(`no route to ${url.host}`, { status: 502 });
    const auth = req.headers.get("authorization") ?? "";
    seen.push({
      host: url.host,
      method: req.method,
      path: url.pathname,
      user: auth.startsWith("Basic ") ? atob(auth.slice(6)).split(":")[0] : undefined,
    });
    const headers = new Headers(req.headers);
    for (const h of ["host", "proxy-connection", "proxy-authorization", "connection"]) headers.delete(h);
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
    const res = await fetch(`${reg.url}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body,
      redirect: "manual",
    });
    const out = new Headers(res.headers);
    const location = out.get("location");
    if (location?.startsWith(reg.url)) {
      out.set("location", `http://${url.host}${location.slice(reg.url.length)}`);
    }
    return new Response(req.method === "HEAD" ? null : res.body, { status: res.status, headers: out });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, seen, stop: () => server.shutdown() };
}

/** Waits until `name` has an Event of each reason in `reasons`; returns all its Events. */
function eventsWith(kube: KubeCluster, name: string, reasons: string[]): Promise<StoredEvent[]> {
  let last: StoredEvent[] = [];
  return waitFor(`Events ${reasons.join(", ")} of ${name}`, async () => {
    last = await eventsFor(kube, NS, name);
    return reasons.every((r) => last.some((e) => e.reason === r)) ? last : undefined;
  }, { timeoutMs: 20_000, describe: () => JSON.stringify(last.map((e) => [e.reason, e.message])) });
}

/** Asserts one Event of `reason` whose message matches `re`, from upstream's component. */
function assertEvent(evs: StoredEvent[], reason: string, re: RegExp, type = "Normal"): void {
  const found = evs.filter((e) => e.reason === reason && re.test(e.message));
  assert.ok(
    found.length > 0,
    `no ${reason} Event matching ${re}: ${JSON.stringify(evs.map((e) => [e.reason, e.message]))}`,
  );
  for (const e of found) {
    assert.equal(e.type, type, `${reason} type`);
    assert.equal(e.source?.component, "imagesync-controller");
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The value of the one sample `series` (name and labels exactly as exposed), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The tags of image `name` in status, by tag. */
function tagStatus(obj: StoredObject, name: string) {
  const img = obj.status?.images?.find((i) => i.name === name);
  assert.ok(img, `no status.images entry for ${name}: ${JSON.stringify(obj.status?.images)}`);
  return new Map(
    (img.tags ?? []).map((
      t,
    ) => [t.tag, t as typeof t & { verified?: boolean; validationError?: string; lastSyncTime?: string }]),
  );
}

Deno.test("an upstream Portager v0.5 user's manifests, command line, columns, status, Events and metrics", async (t) => {
  let kube: KubeCluster | undefined;
  const registries: RegistryServer[] = [];
  let moto: Awaited<ReturnType<typeof startMoto>> | undefined;
  let sts: ReturnType<typeof startGoogleSts> | undefined;
  let proxy: ReturnType<typeof startForwardProxy> | undefined;
  let operator: UpstreamOperator | undefined;
  const dir = await Deno.makeTempDir({ prefix: "portager-upstream-user-" });
  try {
    const started = Promise.all([startKube(), startMoto()]);
    sts = startGoogleSts({
      audience: GAR_AUDIENCE,
      subjectTokens: [SUBJECT],
      serviceAccounts: [GAR_SA],
      fixedTokens: { [`iam:${GAR_SA}`]: GAR_TOKEN },
    });
    const [src, dst, cgr] = await Promise.all([
      startRegistry("plain"),
      startRegistry("plain"),
      startRegistry("basic", { users: { "acme-robot": "cgr-pull-token-8c2f1e" } }),
    ]);
    registries.push(src, dst, cgr);
    [kube, moto] = await started;
    const ecrLogin = await moto.ecr("GetAuthorizationToken", {}) as {
      authorizationData: Array<{ authorizationToken: string }>;
    };
    const ecrPassword = decodeEcrToken(ecrLogin.authorizationData[0].authorizationToken)!.password;
    const [ecr, gar] = await Promise.all([
      startRegistry("basic", { users: { AWS: ecrPassword } }),
      startRegistry("basic", { users: { oauth2accesstoken: GAR_TOKEN } }),
    ]);
    registries.push(ecr, gar);
    proxy = startForwardProxy({ [ECR_HOST]: ecr, [GAR_HOST]: gar });
    const hosts: Record<string, string> = {
      "docker.io": src.host,
      "ghcr.io": src.host,
      [GAR_HOST]: GAR_HOST, // destination: through the proxy; source: rewritten below
      "localhost:5001": dst.host,
      "harbor.acme.example": dst.host,
      "cgr.dev": cgr.host,
      [ECR_HOST]: ECR_HOST,
    };

    // the source images the fixtures name
    const pushed = new Map<string, PushedImage>();
    let seed = 100;
    const push = async (reg: RegistryServer, repository: string, tags: string[]) => {
      for (const tag of tags) {
        pushed.set(
          `${reg.host}/${repository}:${tag}`,
          await pushImage(reg, { repository, tag }, { seed: seed++, layers: [512] }),
        );
      }
    };
    await push(src, "library/alpine", ["3.20", "latest"]);
    await push(src, "library/nginx", ["latest", "1.26.3", "1.27.0", "1.27.4", "1.28.0", "1.27.5-rc.1"]);
    await push(src, "library/busybox", ["latest"]);
    await push(cgr, "acme.example/node", ["latest", "22"]);
    await push(cgr, "acme.example/redis", ["latest"]);
    await push(src, "acme-build/releases/api", ["latest", "v1.0"]);
    await push(src, "acme-build/releases/worker", [
      "1.9.0",
      "2.0.0",
      "2.1.0",
      "v2.2.0",
      "2.3.0-rc.1",
      "3.0.0",
    ]);
    await push(src, "acme/tools", ["0.9.0", "1.0.0", "1.2.0", "2.0.0"]);
    await push(src, "acme/go", ["latest", "1.22.0", "1.22.5", "1.23.0"]);
    await push(src, "acme/python", ["3.11.9", "3.12.0", "3.12.1", "3.12.8"]);
    await push(src, "acme/node", ["lts", "22.1.0", "21.7.0"]);
    await push(src, "acme/kubectl", ["1.28.9", "1.29.0", "1.29.3", "1.29.7", "1.30.0"]);
    await push(src, "acme/api", ["v1.0"]);
    // an SPDX SBOM attached to acme/api:v1.0 with the real oras CLI (fallback tag on this registry)
    await orasAttach(dir, `${src.host}/acme/api@${pushed.get(`${src.host}/acme/api:v1.0`)!.digest}`, {
      artifactType: "application/spdx+json",
      content: { spdxVersion: "SPDX-2.3", name: "api", packages: [] },
    });

    await kube.apply(crdObject());
    await createNamespace(kube, "portager-system");
    await createNamespace(kube, NS);
    await kube.apply(dockerConfigSecret(NS, "cgr-pull-secret", {
      [cgr.host]: { username: cgr.username!, password: cgr.password! },
    }));

    const files = [
      "quick_start.yaml",
      "local_registry.yaml",
      "ecr_private_source.yaml",
      "gar.yaml",
      "semver.yaml",
      "validation.yaml",
    ];
    const docs = (await Promise.all(files.map(fixture))).flat();

    await t.step("the apiserver accepts every upstream-shaped manifest exactly as written", async () => {
      for (const doc of docs) {
        const name = (doc.metadata as { name: string }).name;
        // server-side dry run: admission (schema, defaults, CEL) without storing
        const res = await waitFor(`dry-run create of ${name}`, async () => {
          const r = await kube!.adminFetch(`${imageSyncPath(NS)}?dryRun=All`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(doc),
          });
          if (r.status === 404) { // the CRD not served yet
            await r.body?.cancel();
            return undefined;
          }
          return r;
        }, { timeoutMs: 15_000 });
        assert.equal(res.status, 201, `${name} refused: ${await res.text()}`);
      }
      assert.equal(docs.length, 8, "every document of every fixture");
    });

    // upstream's command line (`/manager --leader-elect …`, no subcommand); /metrics over plain
    // HTTP (--metrics-secure=false) for the scrape; the registry names that are reached over
    // plain HTTP through the proxy are listed as insecure
    operator = await spawnUpstreamOperator([
      "--leader-elect",
      "--health-probe-bind-address=127.0.0.1:0",
      "--metrics-bind-address=127.0.0.1:0",
      "--metrics-secure=false",
      `--kubeconfig=${kube.kubeconfigPath}`,
      `--insecure-registry=${ECR_HOST},${GAR_HOST}`,
    ], {
      clearEnv: true,
      env: await operatorEnv(dir, proxy.url, moto.url, sts.stsTokenUrl, sts.impersonationUrl(GAR_SA)),
    });
    const { log, tail, scrape } = operator;

    // the same manifests, hosts pointed at the harness (the GAR source at the plain registry)
    for (const doc of docs) {
      const rewritten = rewriteHosts(doc, hosts) as { spec: { source: { registry: string } } };
      if (rewritten.spec.source.registry.startsWith(`${GAR_HOST}/`)) {
        rewritten.spec.source.registry = rewritten.spec.source.registry.replace(GAR_HOST, src.host);
      }
      await kube.apply(rewritten);
    }
    const k = kube;
    const ready = (name: string, reason: string) =>
      waitForReady(k, NS, name, { ok: (c) => c.reason === reason, timeoutMs: 60_000, logs: log });

    await t.step(
      "quick start (ECR via moto): repositories ensured, every tag synced, status as upstream",
      async () => {
        const obj = await ready("platform-images", "SyncSucceeded");
        const s = obj.status!;
        // alpine 3.20 + latest, nginx latest + the newest ~1.27.0 releases (1.27.4, 1.27.0; no rc)
        assert.deepEqual([s.totalImages, s.syncedImages, s.failedImages ?? 0], [5, 5, 0]);
        assert.equal(s.observedGeneration, 1);
        const readyC = s.conditions!.find((c) => c.type === "Ready")!;
        assert.equal(readyC.status, "True");
        assert.equal(readyC.message, "All 5 image(s) synced successfully");
        const syncing = s.conditions!.find((c) => c.type === "Syncing");
        assert.deepEqual([syncing?.status, syncing?.reason], ["False", "SyncComplete"]);
        const last = Date.parse(s.lastSyncTime!);
        const next = Date.parse(s.nextSyncTime!);
        assert.ok(
          Math.abs(next - last - 6 * 3600_000) < 60_000,
          `nextSyncTime ${s.nextSyncTime} is @every 6h after ${s.lastSyncTime}`,
        );
        assert.deepEqual([...tagStatus(obj, "alpine").keys()].sort(), ["3.20", "latest"]);
        const nginx = tagStatus(obj, "nginx");
        assert.deepEqual([...nginx.keys()].sort(), ["1.27.0", "1.27.4", "latest"]);
        for (const [tag, ts] of nginx) {
          assert.equal(ts.synced, true);
          assert.equal(ts.sourceDigest, pushed.get(`${src.host}/library/nginx:${tag}`)!.digest);
          assert.ok(ts.lastSyncTime, "per-tag lastSyncTime");
          const got = await getManifest(ecr, "mirror/nginx", tag);
          assert.equal(got.digest, ts.sourceDigest, `mirror/nginx:${tag} in the ECR registry`);
        }
        const repos = await moto!.ecr("DescribeRepositories", {}) as {
          repositories: Array<{ repositoryName: string }>;
        };
        const names = repos.repositories.map((r) => r.repositoryName);
        assert.ok(names.includes("mirror/alpine") && names.includes("mirror/nginx"), names.join(", "));
        // the pushes went to the ECR name with ECR's login, never anonymously elsewhere
        assert.ok(proxy!.seen.some((r) => r.host === ECR_HOST && r.method === "PUT" && r.user === "AWS"));

        const evs = await eventsWith(k, "platform-images", [
          "RepoEnsured",
          "TagsResolved",
          "ImageSynced",
          "SyncComplete",
        ]);
        assertEvent(evs, "RepoEnsured", /^ECR repository "mirror\/alpine" exists or was created/);
        assertEvent(evs, "RepoEnsured", /^ECR repository "mirror\/nginx" exists or was created/);
        assertEvent(evs, "TagsResolved", /^Resolved 2 tags for nginx matching "~1\.27\.0"/);
        for (const ref of ["alpine:3.20", "alpine:latest", "nginx:latest", "nginx:1.27.4", "nginx:1.27.0"]) {
          assertEvent(
            evs,
            "ImageSynced",
            new RegExp(
              `^Synced ${escape(`${src.host}/library/${ref}`)} → ${
                escape(`${ECR_HOST}/mirror/${ref}`)
              } \\(digest: ${SHORT}\\)`,
            ),
          );
        }
        assertEvent(evs, "SyncComplete", /^Sync complete: 5 synced, 0 failed, 5 total$/);
      },
    );

    await t.step("upstream's default sample: method secret without secretRef is anonymous", async () => {
      const obj = await ready("local-mirror", "SyncSucceeded");
      assert.deepEqual([obj.status!.syncedImages, obj.status!.failedImages ?? 0], [1, 0]);
      const got = await getManifest(dst, "busybox", "latest");
      assert.equal(got.digest, pushed.get(`${src.host}/library/busybox:latest`)!.digest);
    });

    await t.step("ECR sample: the private source read with its pull secret", async () => {
      const obj = await ready("chainguard-to-ecr", "SyncSucceeded");
      assert.equal(obj.status!.syncedImages, 3);
      for (const [repo, tag] of [["node", "22"], ["node", "latest"], ["redis", "latest"]]) {
        const got = await getManifest(ecr, `chainguard/${repo}`, tag);
        assert.equal(got.digest, pushed.get(`${cgr.host}/acme.example/${repo}:${tag}`)!.digest);
      }
      const evs = await eventsWith(k, "chainguard-to-ecr", ["RepoEnsured", "SyncComplete"]);
      assertEvent(evs, "RepoEnsured", /^ECR repository "chainguard\/node" exists or was created/);
    });

    await t.step(
      "GAR sample: Workload Identity (STS + impersonation) token pushes as oauth2accesstoken",
      async () => {
        const obj = await ready("gar-mirror", "SyncSucceeded");
        // api latest + v1.0, worker ^2.0.0: 2.0.0, 2.1.0, v2.2.0 (not 2.3.0-rc.1, not 3.0.0)
        assert.equal(obj.status!.totalImages, 5);
        assert.deepEqual([...tagStatus(obj, "worker").keys()].sort(), ["2.0.0", "2.1.0", "v2.2.0"]);
        const got = await getManifest(gar, "acme-prod/mirror/worker", "v2.2.0");
        assert.equal(got.digest, pushed.get(`${src.host}/acme-build/releases/worker:v2.2.0`)!.digest);
        assert.ok(
          proxy!.seen.some((r) =>
            r.host === GAR_HOST && r.method === "PUT" && r.user === "oauth2accesstoken"
          ),
        );
        assert.ok(
          sts!.requests.some((r) => r.path === "/v1/token"),
          "the STS exchange happened",
        );
        const evs = await eventsWith(k, "gar-mirror", ["TagsResolved", "SyncComplete"]);
        assertEvent(evs, "TagsResolved", /^Resolved 3 tags for worker matching "\^2\.0\.0"/);
      },
    );

    await t.step("semver constraints as upstream documents them resolve as Masterminds does", async () => {
      const obj = await ready("semver-ranges", "SyncSucceeded");
      const want: Record<string, string[]> = {
        tools: ["1.0.0", "1.2.0"],
        go: ["1.22.0", "1.22.5", "latest"],
        python: ["3.12.0", "3.12.1", "3.12.8"],
        node: ["22.1.0", "lts"],
        kubectl: ["1.29.3", "1.29.7"], // maxTags 2: the newest two of >= 1.29.0, < 1.30.0
      };
      for (const [image, tags] of Object.entries(want)) {
        assert.deepEqual([...tagStatus(obj, image).keys()].sort(), tags, image);
      }
      assert.equal(obj.status!.syncedImages, 12);
      const evs = await eventsWith(k, "semver-ranges", ["TagsResolved", "SyncComplete"]);
      assertEvent(evs, "TagsResolved", /^Resolved 2 tags for kubectl matching ">= 1\.29\.0, < 1\.30\.0"/);
      assertEvent(evs, "TagsResolved", /^Resolved 3 tags for python matching "3\.12\.x"/);
    });

    await t.step(
      "a constraint that does not parse fails that image only, counted as upstream counts",
      async () => {
        const obj = await ready("semver-typo", "SyncFailed");
        // upstream: the image's resolution failure is failedImages +1; node:lts still syncs
        // upstream's counts: total is the tags tried (node:lts), failed adds the image that did not resolve
        assert.deepEqual(
          [obj.status!.totalImages, obj.status!.syncedImages, obj.status!.failedImages],
          [1, 1, 1],
        );
        assert.equal(tagStatus(obj, "node").get("lts")?.synced, true);
        assert.equal((await getManifest(dst, "typo/node", "lts")).status, 200);
        const evs = await eventsWith(k, "semver-typo", ["TagResolutionFailed", "SyncComplete"]);
        assertEvent(
          evs,
          "TagResolutionFailed",
          /^Failed to resolve tags for tools matching "1\.x\.banana": /,
          "Warning",
        );
      },
    );

    await t.step("validation gates as upstream documents them: refused and passed tags", async () => {
      const refused = await ready("signed-only", "SyncFailed");
      assert.equal(refused.status!.failedImages, 1);
      const tag = tagStatus(refused, "api").get("v1.0")!;
      assert.equal(tag.synced, false);
      assert.ok(!tag.verified);
      assert.ok(tag.validationError, "validationError set");
      assert.ok(tag.error?.startsWith("validation failed: "), tag.error);
      assert.equal(
        (await getManifest(dst, "verified/api", "v1.0")).status,
        404,
        "a refused tag is not copied",
      );
      const src1 = `${src.host}/acme/api:v1.0`;
      assertEvent(
        await eventsWith(k, "signed-only", ["ValidationFailed"]),
        "ValidationFailed",
        new RegExp(`^Validation failed for ${escape(src1)}: `),
        "Warning",
      );

      const passed = await ready("sbom-required", "SyncSucceeded");
      assert.equal(tagStatus(passed, "api").get("v1.0")!.verified, true);
      assert.equal((await getManifest(dst, "sbom/api", "v1.0")).digest, pushed.get(src1)!.digest);
      assertEvent(
        await eventsWith(k, "sbom-required", ["ImageVerified"]),
        "ImageVerified",
        new RegExp(`^Validation passed for ${escape(src1)}`),
      );
    });

    await t.step("kubectl get imagesyncs: upstream's columns, STATUS is the Ready reason", async () => {
      const res = await k.adminFetch(imageSyncPath(NS), {
        headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" },
      });
      assert.equal(res.status, 200);
      const table = await res.json() as {
        columnDefinitions: Array<{ name: string; priority?: number }>;
        rows: Array<{ cells: unknown[]; object: { metadata: { name: string } } }>;
      };
      // what `kubectl get` prints without -o wide: the priority-0 columns; upstream's first five
      // keep their places (scripts read them by position), Age stays
      const shown = table.columnDefinitions.filter((c) => !c.priority).map((c) => c.name);
      assert.deepEqual(shown.slice(0, 5), ["Name", "Status", "Synced", "Failed", "Schedule"]);
      assert.ok(shown.includes("Age"), shown.join(", "));
      const at = (name: string) => table.columnDefinitions.findIndex((c) => c.name === name);
      const rows = new Map(
        table.rows.map((r) => [
          r.object.metadata.name,
          ["Status", "Synced", "Failed", "Schedule"].map((c) => r.cells[at(c)]),
        ]),
      );
      assert.deepEqual(rows.get("platform-images"), ["SyncSucceeded", 5, 0, "@every 6h"]);
      assert.deepEqual(rows.get("semver-typo"), ["SyncFailed", 1, 1, "@every 1h"]);
      assert.deepEqual(rows.get("signed-only"), ["SyncFailed", 0, 1, "@every 1h"]);
      assert.deepEqual(rows.get("semver-ranges"), ["SyncSucceeded", 12, 0, "0 */6 * * *"]);
      assert.deepEqual(rows.get("local-mirror"), ["SyncSucceeded", 1, 0, "@every 1h"]);
    });

    await t.step("portage_* metrics with upstream's names and labels", async () => {
      const text = await waitFor("the metrics of every sync", async () => {
        const t = await scrape();
        return /^portage_sync_total\{name="sbom-required"/m.test(t) &&
            /^portage_sync_total\{name="signed-only"/m.test(t)
          ? t
          : undefined;
      }, { timeoutMs: 15_000 });
      const qs = 'name="platform-images",namespace="default"';
      assert.equal(sample(text, `portage_sync_total{${qs},status="success"}`), 1);
      assert.equal(sample(text, `portage_images_copied_total{${qs}}`), 5);
      assert.equal(sample(text, `portage_image_info{${qs},synced="5",failed="0",total="5"}`), 1);
      assert.equal(sample(text, `portage_sync_duration_seconds_count{${qs}}`), 1);
      // a failed sync is retried with backoff (5 s, 10 s, …), so these count per sync: each failed
      // sync of semver-typo adds one failed image (its unparsable constraint), each of signed-only
      // one gate refusal
      const typo = 'name="semver-typo",namespace="default"';
      const typoSyncs = sample(text, `portage_sync_total{${typo},status="failure"}`)!;
      assert.ok(typoSyncs >= 1, "the failed sync is counted");
      assert.equal(
        sample(text, `portage_images_failed_total{${typo}}`),
        typoSyncs,
        "a resolution failure counts",
      );
      const gated = 'name="signed-only",namespace="default"';
      assert.equal(
        sample(text, `portage_images_validation_failed_total{${gated},gate="validation"}`),
        sample(text, `portage_sync_total{${gated},status="failure"}`),
      );
      assert.equal(
        sample(text, `portage_images_failed_total{${gated}}`),
        0,
        "a gate refusal is not a copy failure",
      );
      assert.equal(
        sample(text, `portage_images_verified_total{name="sbom-required",namespace="default"}`),
        1,
      );
    });

    await t.step(
      "kubectl annotate … portager.portager.io/sync-now=true syncs at once and is removed",
      async () => {
        const before = (await getImageSync(k, NS, "local-mirror"))!;
        const lastBefore = Date.parse(before.status!.lastSyncTime!);
        await new Promise((r) => setTimeout(r, 1100)); // lastSyncTime has a one-second resolution
        const res = await k.adminFetch(imageSyncPath(NS, "local-mirror"), {
          method: "PATCH",
          headers: { "content-type": "application/merge-patch+json" },
          body: JSON.stringify({ metadata: { annotations: { "portager.portager.io/sync-now": "true" } } }),
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const after = await waitFor("a second sync and the annotation removed", async () => {
          const o = await getImageSync(k, NS, "local-mirror");
          return o && Date.parse(o.status?.lastSyncTime ?? "") > lastBefore &&
              !o.metadata.annotations?.["portager.portager.io/sync-now"]
            ? o
            : undefined;
        }, { timeoutMs: 20_000, describe: tail });
        assert.equal(after.metadata.generation, before.metadata.generation, "no spec change");
        const evs = await eventsWith(k, "local-mirror", ["SyncNowTriggered", "ImageSkipped"]);
        assertEvent(evs, "SyncNowTriggered", /^Immediate sync triggered via annotation/);
        assertEvent(
          evs,
          "ImageSkipped",
          new RegExp(
            `^Image ${
              escape(`${src.host}/library/busybox:latest`)
            } already up-to-date \\(digest: ${SHORT}\\)`,
          ),
        );
        const text = await waitFor("the skip counted", async () => {
          const t = await scrape();
          return sample(t, 'portage_images_skipped_total{name="local-mirror",namespace="default"}') === 1
            ? t
            : undefined;
        }, { timeoutMs: 10_000 });
        assert.equal(
          sample(text, 'portage_sync_total{name="local-mirror",namespace="default",status="success"}'),
          2,
        );
      },
    );

    await t.step(
      "no pull-secret password, ECR login or Google token in the log, Events or status",
      async () => {
        assertNoSecrets([{ where: "operator log", text: log() }, ...await clusterTexts(k)], [
          { secret: cgr.password!, user: cgr.username },
          { secret: ecrPassword, user: "AWS" },
          { secret: GAR_TOKEN, user: "oauth2accesstoken" },
          { secret: SUBJECT },
        ]);
      },
    );
  } finally {
    await operator?.stop();
    await proxy?.stop();
    await sts?.stop();
    await Promise.all([...registries.map((r) => r.stop()), moto?.stop(), kube?.stop()]);
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The operator's whole environment: what Deno needs, the proxy for plain-HTTP registry names,
 * static AWS keys with ECR at moto (no config files, no instance metadata), and a GKE-style
 * workload-identity credential file (`gcloud iam workload-identity-pools create-cred-config`).
 */
async function operatorEnv(
  dir: string,
  proxyUrl: string,
  motoUrl: string,
  stsTokenUrl: string,
  impersonationUrl: string,
): Promise<Record<string, string>> {
  await Deno.writeTextFile(`${dir}/ksa-token`, SUBJECT);
  await Deno.writeTextFile(
    `${dir}/gcp-credentials.json`,
    JSON.stringify({
      type: "external_account",
      audience: GAR_AUDIENCE,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: stsTokenUrl,
      service_account_impersonation_url: impersonationUrl,
      credential_source: { file: `${dir}/ksa-token`, format: { type: "text" } },
    }),
  );
  return isolatedAwsEnv(dir, {
    POD_NAMESPACE: "portager-system",
    HTTP_PROXY: proxyUrl,
    NO_PROXY: "127.0.0.1,localhost",
    AWS_ACCESS_KEY_ID: "AKIAUPSTREAMUSER0001",
    AWS_SECRET_ACCESS_KEY: "upstream-user-secret-access-key",
    AWS_ENDPOINT_URL_ECR: motoUrl,
    GOOGLE_APPLICATION_CREDENTIALS: `${dir}/gcp-credentials.json`,
  });
}
