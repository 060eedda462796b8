import assert from "node:assert/strict";
import {
  convertToHostname,
  credentialFromEntry,
  DockerConfigResolver,
  findAuthEntry,
  parseDockerConfig,
  resolverFromSecret,
} from "./docker_config.ts";
import { CredentialError } from "./errors.ts";

const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

Deno.test("convertToHostname strips the scheme and the path like Docker", () => {
  assert.equal(convertToHostname("https://index.docker.io/v1/"), "index.docker.io");
  assert.equal(convertToHostname("http://localhost:5000/v2/"), "localhost:5000");
  assert.equal(convertToHostname("ghcr.io/org/repo"), "ghcr.io");
  assert.equal(convertToHostname("ghcr.io"), "ghcr.io");
});

Deno.test("lookup: exact key first, then keys that reduce to the same host", () => {
  const config = parseDockerConfig(JSON.stringify({
    auths: {
      "https://ghcr.io/v1/": { auth: b64("scheme:x") },
      "ghcr.io": { auth: b64("exact:x") },
      "https://quay.io": { auth: b64("quay:x") },
      "localhost:5000": { username: "local", password: "pw" },
      "registry.example.com/team": { auth: b64("path:x") },
    },
  }));
  assert.equal(findAuthEntry(config, "ghcr.io")?.key, "ghcr.io");
  assert.equal(findAuthEntry(config, "quay.io")?.key, "https://quay.io");
  assert.equal(findAuthEntry(config, "localhost:5000")?.key, "localhost:5000");
  assert.equal(findAuthEntry(config, "localhost:5001"), undefined, "the port is part of the host");
  assert.equal(findAuthEntry(config, "localhost"), undefined);
  assert.equal(findAuthEntry(config, "registry.example.com")?.key, "registry.example.com/team");
  assert.equal(findAuthEntry(config, "example.com"), undefined);
});

Deno.test("Docker Hub: https://index.docker.io/v1/ serves docker.io and its aliases", () => {
  const config = parseDockerConfig(JSON.stringify({
    auths: { "https://index.docker.io/v1/": { auth: b64("hub:pw") } },
  }));
  for (const host of ["docker.io", "index.docker.io", "registry-1.docker.io"]) {
    assert.equal(findAuthEntry(config, host)?.key, "https://index.docker.io/v1/", host);
  }
  const alias = parseDockerConfig(JSON.stringify({ auths: { "docker.io": { auth: b64("hub:pw") } } }));
  assert.equal(findAuthEntry(alias, "docker.io")?.key, "docker.io");
  assert.equal(findAuthEntry(alias, "registry-1.docker.io")?.key, "docker.io");
  assert.equal(findAuthEntry(alias, "ghcr.io"), undefined);
});

Deno.test("entries become Basic, identity-token or registry-token credentials", () => {
  const ctx = { source: "test", registry: "r" };
  assert.deepEqual(credentialFromEntry({ auth: b64("user:pa:ss") }, ctx), {
    username: "user",
    password: "pa:ss",
  });
  assert.deepEqual(credentialFromEntry({ auth: b64("üser:pässword") }, ctx), {
    username: "üser",
    password: "pässword",
  });
  assert.deepEqual(credentialFromEntry({ username: "u", password: "p" }, ctx), {
    username: "u",
    password: "p",
  });
  assert.deepEqual(credentialFromEntry({ auth: b64("u:p"), username: "other", password: "x" }, ctx), {
    username: "u",
    password: "p",
  });
  assert.deepEqual(credentialFromEntry({ identitytoken: "refresh", auth: b64("u:p") }, ctx), {
    identityToken: "refresh",
  });
  assert.deepEqual(credentialFromEntry({ registrytoken: "bearer", identitytoken: "refresh" }, ctx), {
    registryToken: "bearer",
  });
});

Deno.test("malformed entries fail with AuthFailed naming the source and registry, never the content", () => {
  const ctx = { source: "secret default/creds", registry: "ghcr.io" };
  const secretish = "hunter2-not-base64!";
  for (
    const entry of [{ auth: secretish }, { auth: b64("no-colon-here") }, {}, { username: "only-user" }]
  ) {
    assert.throws(() => credentialFromEntry(entry, ctx), (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.equal(e.reason, "AuthFailed");
      assert.match(e.message, /secret default\/creds/);
      assert.match(e.message, /ghcr\.io/);
      assert.ok(!e.message.includes(secretish) && !e.message.includes("no-colon-here"), e.message);
      assert.ok(!e.message.includes("only-user"), e.message);
      return true;
    });
  }
});

Deno.test("parseDockerConfig reads auths, legacy dockercfg and rejects bad JSON without quoting it", () => {
  const legacy = parseDockerConfig(JSON.stringify({ "https://quay.io": { auth: b64("q:p"), email: "x@y" } }));
  assert.deepEqual(Object.keys(legacy.auths), ["https://quay.io"]);
  const helpers = parseDockerConfig(JSON.stringify({ auths: {}, credHelpers: { "gcr.io": "gcloud" } }));
  assert.deepEqual(helpers.credHelpers, { "gcr.io": "gcloud" });
  assert.throws(
    () => parseDockerConfig('{"auths": {"x": {"password": "s3cret"', { source: "f.json" }),
    (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.equal(e.message, "f.json is not valid JSON");
      return true;
    },
  );
  assert.throws(() => parseDockerConfig("[]"), /JSON object/);
  assert.throws(() => parseDockerConfig('{"auths": []}'), /"auths" must be an object/);
  assert.throws(() => parseDockerConfig('{"auths": {"r": {"auth": 5}}}'), /field "auth" .* must be a string/);
});

Deno.test("a required resolver refuses a registry it has no entry for; an optional one is anonymous", async () => {
  const config = parseDockerConfig(
    JSON.stringify({ auths: { "ghcr.io": { auth: b64("u:p") } }, credsStore: "desktop" }),
  );
  const optional = new DockerConfigResolver(config);
  assert.deepEqual(await optional.resolve("ghcr.io"), { username: "u", password: "p" });
  assert.equal(await optional.resolve("quay.io"), undefined);
  const required = new DockerConfigResolver(config, { source: "secret ns/creds", required: true });
  await assert.rejects(() => required.resolve("quay.io"), (e: unknown) => {
    assert.ok(e instanceof CredentialError);
    assert.equal(e.reason, "AuthFailed");
    assert.equal(e.registry, "quay.io");
    assert.match(
      e.message,
      /^secret ns\/creds has no auth for registry quay\.io \(it names credential helper "desktop"/,
    );
    return true;
  });
});

Deno.test("resolverFromSecret checks type, key and encoding and names the secret", async () => {
  const ref = { namespace: "team", name: "push" };
  const json = JSON.stringify({ auths: { "127.0.0.1:5000": { auth: b64("u:p") } } });
  const ok = resolverFromSecret({
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": b64(json) },
  }, ref);
  assert.deepEqual(await ok.resolve("127.0.0.1:5000"), { username: "u", password: "p" });
  await assert.rejects(
    () => ok.resolve("127.0.0.1:5001"),
    /secret team\/push has no auth for registry 127\.0\.0\.1:5001$/,
  );
  const fromString = resolverFromSecret({
    type: "kubernetes.io/dockerconfigjson",
    stringData: { ".dockerconfigjson": json },
  }, ref);
  assert.ok(await fromString.resolve("127.0.0.1:5000"));
  const legacy = resolverFromSecret(
    {
      type: "kubernetes.io/dockercfg",
      data: { ".dockercfg": b64(JSON.stringify({ "127.0.0.1:5000": { auth: b64("u:p") } })) },
    },
    ref,
  );
  assert.ok(await legacy.resolve("127.0.0.1:5000"));

  const cases: Array<[Parameters<typeof resolverFromSecret>[0], RegExp]> = [
    [
      { type: "Opaque", data: {} },
      /^secret team\/push has type Opaque, expected kubernetes\.io\/dockerconfigjson/,
    ],
    [{ data: {} }, /has type \(none\)/],
    [
      { type: "kubernetes.io/dockerconfigjson", data: {} },
      /^secret team\/push has no "\.dockerconfigjson" key$/,
    ],
    [{ type: "kubernetes.io/dockerconfigjson", data: { ".dockerconfigjson": "%%%" } }, /is not valid base64/],
    [
      { type: "kubernetes.io/dockerconfigjson", data: { ".dockerconfigjson": b64("{nope") } },
      /^secret team\/push is not valid JSON$/,
    ],
  ];
  for (const [secret, re] of cases) {
    assert.throws(() => resolverFromSecret(secret, ref), (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.equal(e.reason, "AuthFailed");
      assert.match(e.message, re);
      return true;
    });
  }
});
