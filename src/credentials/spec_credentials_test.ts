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

Deno.test("a missing secret fails with AuthFailed naming it and the registry", async () => {
  await assert.rejects(
    () =>
      credentialsForSpec(
        spec({ registry: "dst.example.com", auth: { method: "anonymous" } }, {
          registry: "src.example.com",
          authSecretRef: { name: "gone" },
        }),
        { namespace: "ns", loadSecret: () => Promise.resolve(undefined) },
      ),
    (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.equal(e.reason, "AuthFailed");
      assert.equal(e.message, "secret ns/gone not found (named for the source registry src.example.com)");
      return true;
    },
  );
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
