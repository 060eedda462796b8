import assert from "node:assert/strict";
import { ANONYMOUS, credentialsForSpec, type SecretRef } from "./spec_credentials.ts";
import { CredentialError } from "./errors.ts";
import { EcrCredentialResolver, EcrRepositories } from "./ecr.ts";
import { GarCredentialResolver } from "./gar.ts";
import type { ImageSyncSpec } from "../api/mod.ts";
import type { SecretLike } from "./docker_config.ts";

const b64 = (s: string) => btoa(s);
const dockerSecret = (auths: Record<string, unknown>): SecretLike => ({
  type: "kubernetes.io/dockerconfigjson",
  data: { ".dockerconfigjson": b64(JSON.stringify({ auths })) },
});

function spec(destination: ImageSyncSpec["destination"], source: ImageSyncSpec["source"]): ImageSyncSpec {
  return { schedule: "@every 1h", source, destination, images: [{ name: "app", tags: ["1"] }] };
}

Deno.test("secrets are read from the ImageSync's namespace unless the ref names one", async () => {
  const asked: string[] = [];
  const secrets: Record<string, SecretLike> = {
    "team/pull": dockerSecret({ "src.example.com": { auth: b64("puller:pw") } }),
    "shared/push": dockerSecret({ "dst.example.com:5000": { auth: b64("pusher:pw") } }),
  };
  const loadSecret = (ref: SecretRef) => {
    asked.push(`${ref.namespace}/${ref.name}`);
    return Promise.resolve(secrets[`${ref.namespace}/${ref.name}`]);
  };
  const creds = await credentialsForSpec(
    spec(
      {
        registry: "dst.example.com:5000/mirror",
        auth: { method: "secret", secretRef: { name: "push", namespace: "shared" } },
      },
      { registry: "src.example.com/org", authSecretRef: { name: "pull" } },
    ),
    { namespace: "team", loadSecret },
  );
  assert.deepEqual(asked, ["team/pull", "shared/push"]);
  assert.deepEqual(await creds.source.resolve("src.example.com"), { username: "puller", password: "pw" });
  assert.deepEqual(await creds.destination.resolve("dst.example.com:5000"), {
    username: "pusher",
    password: "pw",
  });
  assert.equal(creds.repositories, undefined);
});

Deno.test("a missing Secret, or one the loader cannot read, is AuthFailed naming it (and the registry)", async () => {
  const cases: Array<[ImageSyncSpec, () => Promise<SecretLike | undefined>, string]> = [
    [
      spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, {
        registry: "src.example.com",
        authSecretRef: { name: "gone" },
      }),
      () => Promise.resolve(undefined),
      "secret ns/gone not found (named for the source registry src.example.com)",
    ],
    [
      spec({ registry: "dst.example.com", auth: { method: "secret", secretRef: { name: "push" } } }, {
        registry: "src.example.com",
      }),
      () => Promise.reject(new Error("forbidden")),
      "cannot read secret ns/push: forbidden",
    ],
  ];
  for (const [s, loadSecret, message] of cases) {
    await assert.rejects(
      () => credentialsForSpec(s, { namespace: "ns", loadSecret }),
      (e: unknown) => {
        assert.ok(e instanceof CredentialError);
        assert.equal(e.reason, "AuthFailed");
        assert.equal(e.message, message);
        return true;
      },
    );
  }
});

Deno.test("methods map to resolvers: anonymous, ecr (with repository creation), gar", async () => {
  const none = () => Promise.resolve(undefined);
  const anon = await credentialsForSpec(
    spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, { registry: "docker.io/library" }),
    { namespace: "ns", loadSecret: none },
  );
  assert.equal(anon.source, ANONYMOUS);
  assert.equal(anon.destination, ANONYMOUS);
  const ecrSpec = spec(
    { registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", auth: { method: "ecr" } },
    { registry: "docker.io/library" },
  );
  const ecr = await credentialsForSpec({ ...ecrSpec, createDestinationRepos: true }, {
    namespace: "ns",
    loadSecret: none,
  });
  assert.ok(ecr.destination instanceof EcrCredentialResolver);
  assert.ok(ecr.repositories instanceof EcrRepositories);
  const ecrNoCreate = await credentialsForSpec(ecrSpec, { namespace: "ns", loadSecret: none });
  assert.equal(ecrNoCreate.repositories, undefined);
  const gar = await credentialsForSpec(
    spec({ registry: "us-docker.pkg.dev/p/r", auth: { method: "gar" } }, { registry: "docker.io/library" }),
    { namespace: "ns", loadSecret: none },
  );
  assert.ok(gar.destination instanceof GarCredentialResolver);
});

Deno.test("a loader may answer with a resolver; the fallback serves unnamed and unknown Secrets", async () => {
  const fromFile = { resolve: () => Promise.resolve({ username: "file", password: "pw" }) };
  const docker = { resolve: () => Promise.resolve({ username: "docker", password: "pw" }) };
  const loadSecret = (ref: SecretRef) => Promise.resolve(ref.name === "known" ? fromFile : undefined);
  const creds = await credentialsForSpec(
    spec({ registry: "dst.example.com", auth: { method: "secret", secretRef: { name: "unknown" } } }, {
      registry: "src.example.com",
      authSecretRef: { name: "known" },
    }),
    { namespace: "ns", loadSecret, fallback: docker },
  );
  assert.equal(creds.source, fromFile);
  assert.equal(creds.destination, docker);
  const unnamed = await credentialsForSpec(
    spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, { registry: "src.example.com" }),
    { namespace: "ns", loadSecret, fallback: docker },
  );
  assert.equal(unnamed.source, docker);
  assert.equal(unnamed.destination, ANONYMOUS, "method anonymous sends nothing, fallback or not");
});

Deno.test("cross-namespace refs refused when not allowed: nothing is read, nothing about the Secret is said", async () => {
  for (const exists of [true, false]) {
    const asked: string[] = [];
    const loadSecret = (ref: SecretRef) => {
      asked.push(`${ref.namespace}/${ref.name}`);
      return Promise.resolve(exists ? dockerSecret({ "src.example.com": { auth: b64("u:p") } }) : undefined);
    };
    const err = await credentialsForSpec(
      spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, {
        registry: "src.example.com",
        authSecretRef: { name: "regcred", namespace: "team-b" },
      }),
      { namespace: "team-a", loadSecret, allowCrossNamespaceRefs: false },
    ).then(() => undefined, (e) => e);
    assert.ok(err instanceof CredentialError);
    assert.equal(err.reason, "CrossNamespaceRefDenied");
    assert.deepEqual(asked, [], "the other namespace is not even read");
    assert.doesNotMatch(err.message, /not found|type|exists/);
    assert.match(err.message, /--allow-cross-namespace-refs/);
  }
  // its own namespace, spelled out, is fine
  const own = await credentialsForSpec(
    spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, {
      registry: "src.example.com",
      authSecretRef: { name: "pull", namespace: "team-a" },
    }),
    {
      namespace: "team-a",
      loadSecret: () => Promise.resolve(dockerSecret({ "src.example.com": { auth: b64("u:p") } })),
      allowCrossNamespaceRefs: false,
    },
  );
  assert.deepEqual(await own.source.resolve("src.example.com"), { username: "u", password: "p" });
});

Deno.test("the operator's cloud identity only for the namespaces allowed", async () => {
  const none = () => Promise.resolve(undefined);
  const gar = spec({ registry: "us-docker.pkg.dev/p/r", auth: { method: "gar" } }, { registry: "docker.io" });
  const ecr = spec({ registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", auth: { method: "ecr" } }, {
    registry: "docker.io",
  });
  for (const s of [gar, ecr]) {
    await assert.rejects(
      () =>
        credentialsForSpec(s, { namespace: "team-a", loadSecret: none, cloudIdentityNamespaces: ["infra"] }),
      (e: unknown) => e instanceof CredentialError && e.reason === "CloudIdentityDenied",
    );
    await credentialsForSpec(s, { namespace: "infra", loadSecret: none, cloudIdentityNamespaces: ["infra"] });
    await credentialsForSpec(s, { namespace: "team-a", loadSecret: none });
  }
});
