import assert from "node:assert/strict";
import { formatLoadProblem, isManifestFile, loadImageSyncs, parseImageSyncs } from "./load.ts";

const GOOD = `apiVersion: portager.portager.io/v1alpha1
kind: ImageSync
metadata:
  name: mirror-nginx
spec:
  schedule: "@every 1h"
  source:
    registry: docker.io/library
  destination:
    registry: registry.example.com:5000
    auth:
      method: anonymous
  images:
    - name: nginx
      tags: ["1.27"]
`;

async function messages(text: string, file = "sync.yaml"): Promise<string[]> {
  return (await parseImageSyncs(text, file)).problems.map(formatLoadProblem);
}

Deno.test("a valid document loads with defaults and namespace default", async () => {
  const r = await parseImageSyncs(GOOD, "sync.yaml");
  assert.deepEqual(r.problems, []);
  assert.equal(r.imageSyncs.length, 1);
  const s = r.imageSyncs[0];
  assert.equal(s.key, "default/mirror-nginx");
  assert.equal(s.where, "sync.yaml (mirror-nginx)");
  assert.equal(s.object.spec.images[0].maxTags, 10);
});

Deno.test("every problem of every document is reported with file, document and path", async () => {
  const bad = GOOD.replace('tags: ["1.27"]', "tag: [x]\n    - name: other\n      tags: [1.20]")
    .replace("method: anonymous", "method: password");
  const text = `${GOOD}---\n${bad.replace("mirror-nginx", "second")}`;
  const got = await messages(text);
  assert.deepEqual(
    got.toSorted(),
    [
      "sync.yaml: doc 2 (second): spec.destination.auth.method: must be one of: secret, ecr, gar, anonymous",
      'sync.yaml: doc 2 (second): spec.images[0].tag: unknown field (did you mean "tags"?)',
      "sync.yaml: doc 2 (second): spec.images[0]: needs tags or semver",
      "sync.yaml: doc 2 (second): spec.images[1].tags[0]: must be a string, not number 1.2 " +
      '(quote version tags in YAML: "1.20", not 1.20)',
    ].toSorted(),
  );
  // the valid first document is still returned
  assert.equal((await parseImageSyncs(text, "sync.yaml")).imageSyncs.length, 1);
});

Deno.test("malformed YAML names the file, line and column", async () => {
  const got = await messages("apiVersion: x\n  kind: [oops\n", "broken.yaml");
  assert.equal(got.length, 1);
  assert.match(got[0], /^broken\.yaml:\d+:\d+: invalid YAML: /);
});

Deno.test("documents that are not ImageSync objects are problems; empty ones are ignored", async () => {
  assert.deepEqual(await messages("---\n---\n"), ["sync.yaml: no ImageSync in this file"]);
  assert.deepEqual(await messages("- a\n- b\n"), ["sync.yaml: expected an ImageSync object, found a list"]);
  const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\n";
  const got = await messages(`${GOOD}---\n${secret}`);
  assert.ok(
    got.includes("sync.yaml: doc 2 (creds): apiVersion: must be portager.portager.io/v1alpha1"),
    got.join("\n"),
  );
  assert.ok(got.includes("sync.yaml: doc 2 (creds): kind: must be ImageSync"), got.join("\n"));
  assert.ok(got.includes("sync.yaml: doc 2 (creds): spec: is required"), got.join("\n"));
});

Deno.test("JSON documents load too", async () => {
  const obj = {
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name: "j", namespace: "team" },
    spec: {
      schedule: "@daily",
      source: { registry: "ghcr.io/org" },
      destination: { registry: "r.example.com", auth: { method: "anonymous" } },
      images: [{ name: "app", semver: "^1.0.0" }],
    },
  };
  const r = await parseImageSyncs(JSON.stringify(obj), "x.json");
  assert.deepEqual(r.problems, []);
  assert.equal(r.imageSyncs[0].key, "team/j");
});

Deno.test("folders, stdin, unreadable paths and duplicates", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.yaml`, GOOD);
    await Deno.writeTextFile(`${dir}/b.yml`, GOOD.replace("mirror-nginx", "other"));
    await Deno.writeTextFile(`${dir}/notes.txt`, "not yaml: [");
    await Deno.writeTextFile(`${dir}/.hidden.yaml`, "not yaml: [");
    const r = await loadImageSyncs([dir, `${dir}/missing.yaml`, "-", `${dir}/a.yaml`], {
      readStdin: () => Promise.resolve(GOOD.replace("mirror-nginx", "from-stdin")),
    });
    assert.deepEqual(r.files, [`${dir}/a.yaml`, `${dir}/b.yml`, "<stdin>", `${dir}/a.yaml`]);
    assert.deepEqual(r.imageSyncs.map((s) => s.key), [
      "default/mirror-nginx",
      "default/other",
      "default/from-stdin",
    ]);
    assert.deepEqual(r.problems.map(formatLoadProblem), [
      `${dir}/missing.yaml: cannot read: no such file or folder`,
      `${dir}/a.yaml (mirror-nginx): metadata.name: duplicate ImageSync default/mirror-nginx ` +
      `(first defined in ${dir}/a.yaml (mirror-nginx))`,
    ]);
    const empty = await Deno.makeTempDir();
    const r2 = await loadImageSyncs([empty]);
    assert.deepEqual(r2.problems.map(formatLoadProblem), [
      `${empty}: folder has no *.yaml, *.yml or *.json files`,
    ]);
    // serve watches the folder: emptying it removes the last ImageSync, it is not an error
    const r3 = await loadImageSyncs([empty], { allowEmptyFolders: true });
    assert.deepEqual(r3.problems, []);
    assert.deepEqual(r3.imageSyncs, []);
    await Deno.remove(empty);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("which folder entries count as manifests", () => {
  assert.ok(isManifestFile("a.yaml"));
  assert.ok(isManifestFile("dir/b.YML"));
  assert.ok(isManifestFile("c.json"));
  assert.ok(!isManifestFile(".a.yaml"));
  assert.ok(!isManifestFile("a.yaml~"));
  assert.ok(!isManifestFile("a.yaml.swp"));
  assert.ok(!isManifestFile("README.md"));
});

Deno.test("cron schedules are checked as in the operator: a good one loads, a bad field is named", async () => {
  const withSchedule = (schedule: string) => GOOD.replace(`schedule: "@every 1h"`, `schedule: "${schedule}"`);
  const r = await parseImageSyncs(withSchedule("CRON_TZ=Europe/Paris 0 6 * * MON-FRI"), "sync.yaml");
  assert.deepEqual(r.problems, []);
  assert.equal(r.imageSyncs[0].object.spec.schedule, "CRON_TZ=Europe/Paris 0 6 * * MON-FRI");
  const [problem, ...rest] = await messages(withSchedule("61 * * * *"));
  assert.deepEqual(rest, []);
  assert.match(
    problem,
    /^sync\.yaml \(mirror-nginx\): spec\.schedule: invalid schedule "61 \* \* \* \*": .*61/,
  );
});
