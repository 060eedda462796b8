import assert from "node:assert/strict";
import { ANONYMOUS } from "../credentials/mod.ts";
import { UsageError } from "./args.ts";
import { dockerConfigPath, loadFileCredentials } from "./auth.ts";
import { tempDir } from "../../tests/harness/temp_dir.ts";

const CONFIG = JSON.stringify({ auths: { "127.0.0.1:5000": { auth: btoa("alice:s3cret") } } });
const OTHER = JSON.stringify({ auths: { "127.0.0.1:6000": { username: "bob", password: "pw" } } });

function spec(destination: Record<string, unknown>, source: Record<string, unknown> = {}) {
  return {
    schedule: "@every 1h",
    source: { registry: "127.0.0.1:6000/src", ...source },
    destination: { registry: "127.0.0.1:5000/dst", ...destination },
    images: [{ name: "a", tags: ["1"] }],
  } as Parameters<Awaited<ReturnType<typeof loadFileCredentials>>["forSpec"]>[0];
}

Deno.test("Docker config location: --authfile, then $DOCKER_CONFIG, then ~/.docker", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.deepEqual(dockerConfigPath("/x.json", env({ DOCKER_CONFIG: "/d" })), {
    path: "/x.json",
    origin: "--authfile",
  });
  assert.deepEqual(dockerConfigPath(undefined, env({ DOCKER_CONFIG: "/d/", HOME: "/h" })), {
    path: "/d/config.json",
    origin: "$DOCKER_CONFIG",
  });
  assert.deepEqual(dockerConfigPath(undefined, env({ HOME: "/h" })), {
    path: "/h/.docker/config.json",
    origin: "~/.docker/config.json",
  });
});

Deno.test("--secret takes a dockerconfigjson Secret manifest or a Docker config; else Docker's config serves", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/config.json`, CONFIG);
  await Deno.writeTextFile(
    `${dir}/secret.yaml`,
    `apiVersion: v1\nkind: Secret\nmetadata: {name: push}\ntype: kubernetes.io/dockerconfigjson\n` +
      `data:\n  .dockerconfigjson: ${btoa(OTHER)}\n`,
  );
  await Deno.writeTextFile(`${dir}/plain.json`, OTHER);
  const creds = await loadFileCredentials({
    secrets: [`pull=${dir}/secret.yaml`, `team/push=${dir}/plain.json`],
    env: (n) => (n === "DOCKER_CONFIG" ? dir : undefined),
  });
  // source names Secret "pull": the --secret file answers, and requires an entry
  const a = await creds.forSpec(
    spec({ auth: { method: "anonymous" } }, { authSecretRef: { name: "pull" } }),
    "default",
  );
  assert.deepEqual(await a.source.resolve("127.0.0.1:6000"), { username: "bob", password: "pw" });
  await assert.rejects(a.source.resolve("127.0.0.1:7000"), /no auth for registry 127\.0\.0\.1:7000/);
  assert.equal(a.destination, ANONYMOUS);
  // destination Secret team/push via NAMESPACE/NAME; a Secret with no --secret falls back to Docker's config
  const b = await creds.forSpec(
    spec({ auth: { method: "secret", secretRef: { name: "push" } } }, {
      authSecretRef: { name: "missing" },
    }),
    "team",
  );
  assert.deepEqual(await b.destination.resolve("127.0.0.1:6000"), { username: "bob", password: "pw" });
  assert.deepEqual(await b.source.resolve("127.0.0.1:5000"), { username: "alice", password: "s3cret" });
  assert.equal(
    await b.source.resolve("127.0.0.1:6000"),
    undefined,
    "Docker's config: anonymous where it has nothing",
  );
  // in another namespace, team/push does not match
  const c = await creds.forSpec(
    spec({ auth: { method: "secret", secretRef: { name: "push" } } }),
    "default",
  );
  assert.deepEqual(await c.destination.resolve("127.0.0.1:5000"), {
    username: "alice",
    password: "s3cret",
  });
});

Deno.test("bad credential inputs are usage errors naming the file, never its content", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/bad.json`, '{"auths": "hunter2"}');
  await Deno.writeTextFile(
    `${dir}/opaque.yaml`,
    "kind: Secret\ntype: Opaque\nstringData: {password: hunter2}\n",
  );
  const cases: Array<[Parameters<typeof loadFileCredentials>[0], RegExp]> = [
    [{ authfile: `${dir}/none.json` }, /cannot read --authfile .*none\.json/],
    [{ authfile: `${dir}/bad.json` }, /bad\.json: "auths" must be an object/],
    [{ secrets: ["nopath"] }, /--secret wants NAME=PATH/],
    [{ secrets: [`x=${dir}/none.yaml`] }, /--secret x: cannot read .*none\.yaml/],
    [
      { secrets: [`x=${dir}/opaque.yaml`] },
      /secret default\/x has type Opaque, expected kubernetes\.io\/dockerconfigjson/,
    ],
  ];
  for (const [opts, re] of cases) {
    await assert.rejects(loadFileCredentials({ env: () => undefined, ...opts }), (e) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("hunter2"));
      return true;
    });
  }
  // no Docker config at the default place is fine: anonymous
  const creds = await loadFileCredentials({ env: (n) => (n === "HOME" ? dir : undefined) });
  assert.equal(creds.docker, undefined);
});
