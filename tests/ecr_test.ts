/**
 * Amazon ECR end to end, against moto (the AWS API emulator from PyPI) and real CNCF
 * distribution registries from the harness.
 *
 * The AWS SDK takes its configuration from the process environment, so every case runs in a
 * child process (tests/harness/ecr_child.ts, or `main.ts sync`) with exactly the environment
 * given here: no AWS variable of this process, no shared config files, no instance metadata.
 * moto records every request, so the tests check which AWS actions were called, signed for
 * which region and by which access key.
 *
 * What moto cannot stand in for: ECR's registry endpoint itself (moto issues tokens but serves
 * no images). The data path therefore decodes the token moto issues and starts a harness
 * registry whose htpasswd entry is exactly that `AWS:<password>`, mapped to an ECR account and
 * region through the test-only `EcrOptions.hosts`.
 */

import assert from "node:assert/strict";
import { getManifest, pushImage } from "./harness/fixtures.ts";
import { isolatedAwsEnv, MOTO_ACCOUNT, type MotoCall, type MotoServer, startMoto } from "./harness/moto.ts";
import { type RegistryServer, startRegistry } from "./harness/registry.ts";
import { type ChildRun, type EcrChildJob, RESULT_MARK } from "./harness/ecr_child.ts";
import { decodeEcrToken } from "../src/credentials/mod.ts";
import type { ImageSyncSpec } from "../src/api/mod.ts";
import type { RepoEnsuredEvent } from "../src/sync/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CHILD = new URL("./harness/ecr_child.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ECR_HOST = `${MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
/** Web identity token the "kubelet" wrote (moto does not verify its signature). */
const WEB_IDENTITY_TOKEN =
  "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cG9ydGFnZXI6cG9ydGFnZXIifQ.sig";

// ---------------------------------------------------------------------------------------------
// helpers

/** A scratch directory with the files a child's environment points at. */
interface Scratch {
  dir: string;
  /** The environment every child starts from: nothing AWS-related but what a test adds. */
  env(extra: Record<string, string>): Record<string, string>;
  remove(): Promise<void>;
}

async function scratch(): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix: "portager-ecr-test-" });
  await Deno.writeTextFile(`${dir}/web-identity-token`, WEB_IDENTITY_TOKEN);
  return {
    dir,
    env: (extra) => isolatedAwsEnv(dir, extra),
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}

/** IRSA as EKS sets it up: a role to assume and the projected service-account token file. */
function irsaEnv(s: Scratch, moto: MotoServer, roleArn: string): Record<string, string> {
  return {
    AWS_ROLE_ARN: roleArn,
    AWS_WEB_IDENTITY_TOKEN_FILE: `${s.dir}/web-identity-token`,
    AWS_ROLE_SESSION_NAME: "portager",
    AWS_ENDPOINT_URL_ECR: moto.url,
    AWS_ENDPOINT_URL_STS: moto.url,
  };
}

async function runChild<T>(job: EcrChildJob, env: Record<string, string>): Promise<T> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD],
    cwd: ROOT,
    clearEnv: true,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(job)));
  await writer.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const line = stdout.split("\n").find((l) => l.startsWith(RESULT_MARK));
  if (!out.success || !line) {
    throw new Error(`ecr child failed (exit ${out.code}):\n${stdout}\n${stderr}`);
  }
  return JSON.parse(line.slice(RESULT_MARK.length)) as T;
}

async function runMain(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    cwd: ROOT,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function ecrCalls(calls: MotoCall[]): MotoCall[] {
  return calls.filter((c) => c.service === "ecr");
}

function actions(calls: MotoCall[]): string[] {
  return calls.map((c) => `${c.service}:${c.action}`);
}

function ensured(run: ChildRun): Array<[string, boolean]> {
  return run.events.filter((e): e is RepoEnsuredEvent => e.type === "RepoEnsured").map((
    e,
  ) => [e.repository, e.created]);
}

function tagActions(run: ChildRun): string[] {
  assert.ok(run.report, `sync threw: ${JSON.stringify(run.error)}`);
  return run.report.images.flatMap((i) =>
    i.tags.map((t) => `${i.destinationRepository}:${t.tag} ${t.action}`)
  );
}

/** The password moto's GetAuthorizationToken hands out for its account, decoded from the token. */
async function motoRegistryPassword(moto: MotoServer): Promise<string> {
  const out = await moto.ecr("GetAuthorizationToken", {}) as {
    authorizationData: Array<{ authorizationToken: string }>;
  };
  const cred = decodeEcrToken(out.authorizationData[0].authorizationToken);
  assert.ok(cred, "moto's token decodes as AWS:<password>");
  assert.equal(cred.username, "AWS");
  return cred.password;
}

async function stopAll(
  ...things: Array<{ stop(): Promise<void> } | { remove(): Promise<void> } | undefined>
) {
  for (const t of things) {
    if (!t) continue;
    if ("stop" in t) await t.stop();
    else await t.remove();
  }
}

// ---------------------------------------------------------------------------------------------

Deno.test("ECR host forms pick the API endpoint and signing region of the host, whatever AWS_REGION says", async () => {
  const s = await scratch();
  try {
    const registries = [
      ECR_HOST,
      `${MOTO_ACCOUNT}.dkr.ecr.us-gov-west-1.amazonaws.com`,
      `${MOTO_ACCOUNT}.dkr.ecr-fips.us-gov-east-1.amazonaws.com`,
      `${MOTO_ACCOUNT}.dkr.ecr-fips.us-east-2.amazonaws.com`,
      `${MOTO_ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn`,
      `${MOTO_ACCOUNT}.dkr-ecr.eu-west-1.on.aws`,
      `${MOTO_ACCOUNT}.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn`,
      `${MOTO_ACCOUNT}.dkr-ecr-fips.us-east-1.on.aws`,
      "ghcr.io",
    ];
    // Static keys so the SDK signs; the probe's request handler sends nothing.
    const env = s.env({
      AWS_ACCESS_KEY_ID: "AKIAPROBE",
      AWS_SECRET_ACCESS_KEY: "probe",
      AWS_REGION: "eu-central-1",
    });
    const got = await runChild<Array<{ registry: string; endpoint?: string; signingRegion?: string }>>(
      { op: "endpoints", registries },
      env,
    );
    assert.deepEqual(got.slice(0, -1).map((g) => [g.endpoint, g.signingRegion]), [
      ["https://api.ecr.us-east-1.amazonaws.com/", "us-east-1"],
      ["https://api.ecr.us-gov-west-1.amazonaws.com/", "us-gov-west-1"],
      ["https://api.ecr-fips.us-gov-east-1.amazonaws.com/", "us-gov-east-1"],
      ["https://api.ecr-fips.us-east-2.amazonaws.com/", "us-east-2"],
      ["https://api.ecr.cn-north-1.amazonaws.com.cn/", "cn-north-1"],
      ["https://ecr.eu-west-1.api.aws/", "eu-west-1"],
      ["https://ecr.cn-northwest-1.api.amazonwebservices.com.cn/", "cn-northwest-1"],
      ["https://ecr-fips.us-east-1.api.aws/", "us-east-1"],
    ]);
    assert.deepEqual(got.at(-1), {
      registry: "ghcr.io",
      error: {
        name: "CredentialError",
        reason: "AuthFailed",
        message:
          "ghcr.io is not an Amazon ECR registry (<account>.dkr.ecr.<region>.amazonaws.com), so auth " +
          "method ecr cannot get a token for it",
      },
    });

    // An explicit endpoint (a VPC endpoint, or moto here) decides where calls go, FIPS or not.
    const custom = await runChild<Array<{ endpoint?: string; signingRegion?: string }>>(
      { op: "endpoints", registries: registries.slice(2, 4) },
      { ...env, AWS_ENDPOINT_URL_ECR: "http://127.0.0.1:9/" },
    );
    assert.deepEqual(custom.map((g) => [g.endpoint, g.signingRegion]), [
      ["http://127.0.0.1:9/", "us-gov-east-1"],
      ["http://127.0.0.1:9/", "us-east-2"],
    ]);
  } finally {
    await s.remove();
  }
});

Deno.test("ECR via IRSA at moto: web identity → STS → token; the token pushes; repositories created once; token cached until near expiry", async () => {
  const s = await scratch();
  let moto: MotoServer | undefined;
  let src: RegistryServer | undefined;
  let dst: RegistryServer | undefined;
  let wrong: RegistryServer | undefined;
  try {
    moto = await startMoto();
    const roleArn = await moto.createWebIdentityRole("portager-mirror", [
      "ecr:GetAuthorizationToken",
      "ecr:DescribeRepositories",
      "ecr:CreateRepository",
    ]);
    // The registry accepts exactly the login moto's ECR token carries.
    const password = await motoRegistryPassword(moto);
    dst = await startRegistry("basic", { users: { AWS: password } });
    src = await startRegistry("plain");
    const nginx = await pushImage(src, { repository: "library/nginx", tag: "1.27" }, {
      seed: 7,
      layers: [3000],
    });
    const nginxOld = await pushImage(src, { repository: "library/nginx", tag: "1.26" }, {
      seed: 6,
      layers: [2500],
    });
    const redis = await pushImage(src, { repository: "library/redis", tag: "7" }, {
      seed: 8,
      layers: [2000],
    });

    const spec: ImageSyncSpec = {
      schedule: "@hourly",
      source: { registry: `${src.host}/library` },
      destination: { registry: dst.host, auth: { method: "ecr" }, repositoryPrefix: "mirror" },
      createDestinationRepos: true,
      images: [
        { name: "nginx", tags: ["1.27"] },
        { name: "redis", tags: ["7"] },
        // Another entry for the same destination repository: it is ensured once per sync.
        { name: "nginx", tags: ["1.26"] },
      ],
    };
    const hosts = { [dst.host]: { accountId: MOTO_ACCOUNT, region: "us-east-1" } };
    // moto's tokens say they expired on 2015-01-01; the clock is set before that.
    const job: EcrChildJob = {
      op: "sync",
      spec,
      hosts,
      runs: [
        { clock: "2014-12-31T12:00:00Z" },
        { clock: "2014-12-31T12:30:00Z" }, // token still fresh: no GetAuthorizationToken
        { clock: "2014-12-31T23:57:00Z" }, // within 5 minutes of expiry: a new token
      ],
    };
    await moto.resetCalls();
    // From now on moto checks every signature and policy; only the unsigned
    // AssumeRoleWithWebIdentity (which moto's IAM layer cannot check) goes through unchecked.
    await moto.enforceIam(1);
    // AWS_REGION names another region: the registry host's region must win.
    const runs = await runChild<ChildRun[]>(
      job,
      s.env({ ...irsaEnv(s, moto, roleArn), AWS_REGION: "eu-west-1" }),
    );
    const calls = await moto.calls();
    await moto.relaxIam();

    // 1. The credential chain: one AssumeRoleWithWebIdentity with the token file, then ECR
    //    calls signed by the session it returned, in the registry's region.
    const sts = calls.filter((c) => c.service === "sts");
    assert.deepEqual(actions(sts), ["sts:AssumeRoleWithWebIdentity"]);
    assert.equal(sts[0].params.RoleArn, roleArn);
    assert.equal(sts[0].params.WebIdentityToken, WEB_IDENTITY_TOKEN);
    assert.equal(sts[0].params.RoleSessionName, "portager");
    assert.equal(sts[0].accessKeyId, undefined, "web identity calls are unsigned");
    const ecr = ecrCalls(calls);
    const keys = new Set(ecr.map((c) => c.accessKeyId));
    assert.equal(keys.size, 1);
    assert.match([...keys][0]!, /^ASIA/, "temporary credentials from STS sign the ECR calls");
    assert.deepEqual(new Set(ecr.map((c) => c.region)), new Set(["us-east-1"]));

    // 2. Per run: token fetches and repository calls.
    assert.deepEqual(actions(ecr), [
      // run 1
      "ecr:GetAuthorizationToken",
      "ecr:DescribeRepositories",
      "ecr:CreateRepository",
      "ecr:DescribeRepositories",
      "ecr:CreateRepository",
      // run 2: cached token; repositories exist
      "ecr:DescribeRepositories",
      "ecr:DescribeRepositories",
      // run 3: token near expiry, fetched again
      "ecr:GetAuthorizationToken",
      "ecr:DescribeRepositories",
      "ecr:DescribeRepositories",
    ]);
    const described = ecr.filter((c) => c.action === "DescribeRepositories").slice(0, 2);
    assert.deepEqual(described.map((c) => c.params), [
      { repositoryNames: ["mirror/nginx"], registryId: MOTO_ACCOUNT },
      { repositoryNames: ["mirror/redis"], registryId: MOTO_ACCOUNT },
    ]);

    // 3. What the syncs did.
    assert.deepEqual(ensured(runs[0]), [["mirror/nginx", true], ["mirror/redis", true]]);
    assert.deepEqual(tagActions(runs[0]), [
      `${dst.host}/mirror/nginx:1.27 copied`,
      `${dst.host}/mirror/redis:7 copied`,
      `${dst.host}/mirror/nginx:1.26 copied`,
    ]);
    assert.ok(runs[0].report!.ok, JSON.stringify(runs[0].report!.images));
    assert.deepEqual(ensured(runs[1]), [["mirror/nginx", false], ["mirror/redis", false]]);
    assert.deepEqual(tagActions(runs[1]), [
      `${dst.host}/mirror/nginx:1.27 up-to-date`,
      `${dst.host}/mirror/redis:7 up-to-date`,
      `${dst.host}/mirror/nginx:1.26 up-to-date`,
    ]);
    assert.ok(runs[2].report!.ok);

    // 4. The images really are at the registry that accepts only moto's token.
    assert.equal((await getManifest({ ...dst }, "mirror/nginx", "1.27")).digest, nginx.digest);
    assert.equal((await getManifest({ ...dst }, "mirror/nginx", "1.26")).digest, nginxOld.digest);
    assert.equal((await getManifest({ ...dst }, "mirror/redis", "7")).digest, redis.digest);
    const pushes = (await dst.flushLog()).filter((l) => l.startsWith("PUT /v2/mirror/"));
    assert.ok(pushes.some((l) => l === "PUT /v2/mirror/nginx/manifests/1.27 201"), pushes.join("\n"));

    // 5. moto has both repositories.
    const listed = await moto.ecr("DescribeRepositories", {}) as {
      repositories: Array<{ repositoryName: string }>;
    };
    assert.deepEqual(listed.repositories.map((r) => r.repositoryName).sort(), [
      "mirror/nginx",
      "mirror/redis",
    ]);

    // 6. Control: a registry that expects another password refuses the push, so it really is
    //    the ECR token that authenticates above.
    wrong = await startRegistry("basic", { users: { AWS: "not-the-ecr-token" } });
    const refused = await runChild<ChildRun[]>({
      op: "sync",
      spec: {
        ...spec,
        destination: { ...spec.destination, registry: wrong.host },
        createDestinationRepos: false,
      },
      hosts: { [wrong.host]: { accountId: MOTO_ACCOUNT, region: "us-east-1" } },
      runs: [{}],
    }, s.env(irsaEnv(s, moto, roleArn)));
    const tags = refused[0].report!.images.flatMap((i) => i.tags);
    assert.deepEqual(new Set(tags.map((t) => t.reason)), new Set(["Unauthorized"]), JSON.stringify(tags));
  } finally {
    await stopAll(wrong, dst, src, moto, s);
  }
});

Deno.test("ECR denied at moto (IAM enforced): no ECR permission stops the sync with AuthFailed; no CreateRepository fails the image with RepoCreationFailed", async () => {
  const s = await scratch();
  let moto: MotoServer | undefined;
  try {
    moto = await startMoto();
    const noEcr = await moto.createWebIdentityRole("no-ecr", ["s3:ListAllMyBuckets"]);
    const noCreate = await moto.createWebIdentityRole("no-create", [
      "ecr:GetAuthorizationToken",
      "ecr:DescribeRepositories",
    ]);
    const user = await moto.createUser("ci", ["s3:ListAllMyBuckets"]);
    const spec: ImageSyncSpec = {
      schedule: "@hourly",
      source: { registry: "127.0.0.1:9" }, // never contacted: every tag stops before a copy
      destination: { registry: ECR_HOST, auth: { method: "ecr" }, repositoryPrefix: "mirror" },
      createDestinationRepos: true,
      images: [{ name: "nginx", tags: ["1.27", "1.26"] }],
    };

    await moto.enforceIam(1); // the unsigned AssumeRoleWithWebIdentity, then checked calls
    const [denied] = await runChild<ChildRun[]>(
      { op: "sync", spec, runs: [{}] },
      s.env(irsaEnv(s, moto, noEcr)),
    );
    assert.equal(denied.error?.name, "SyncError");
    assert.equal(denied.error?.reason, "AuthFailed");
    assert.match(
      denied.error!.message,
      new RegExp(
        `^AWS denied ecr:GetAuthorizationToken at registry ${ECR_HOST.replaceAll(".", "\\.")} ` +
          `\\(region us-east-1\\) \\(AccessDenied\\): the ECR API answered HTTP 403 `,
      ),
    );

    await moto.enforceIam(1);
    const [partial] = await runChild<ChildRun[]>(
      { op: "sync", spec, runs: [{}] },
      s.env(irsaEnv(s, moto, noCreate)),
    );
    assert.ok(partial.report, JSON.stringify(partial.error));
    const image = partial.report.images[0];
    assert.equal(image.repositoryError?.reason, "RepoCreationFailed");
    assert.match(
      image.repositoryError!.message,
      /^could not ensure ECR repository "mirror\/nginx": AWS denied ecr:CreateRepository at registry .* \(AccessDenied\): /,
    );
    assert.deepEqual(image.tags.map((t) => [t.tag, t.action, t.reason]), [
      ["1.27", "failed", "RepoCreationFailed"],
      ["1.26", "failed", "RepoCreationFailed"],
    ]);
    assert.equal(partial.events.filter((e) => e.type === "RepoEnsured").length, 0);
    assert.deepEqual(actions(ecrCalls(await moto.calls())).slice(-3), [
      "ecr:GetAuthorizationToken",
      "ecr:DescribeRepositories",
      "ecr:CreateRepository",
    ]);

    // The same through `portager sync` with static keys: an IAM user without ECR permissions,
    // and keys moto has never issued. (moto answers IAM refusals with an XML 403 even for
    // ECR's JSON API, so AWS's own error code is not visible: both read as AccessDenied.)
    const file = `${s.dir}/mirror.yaml`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        apiVersion: "portager.portager.io/v1alpha1",
        kind: "ImageSync",
        metadata: { name: "mirror", namespace: "default" },
        spec,
      }),
    );
    await moto.enforceIam(0);
    for (
      const [keys, name] of [
        [user, "ci"],
        [{ accessKeyId: "AKIANEVERISSUED00000", secretAccessKey: "nope" }, "unknown key"],
      ] as const
    ) {
      const out = await runMain(
        ["sync", "-f", file, "--output", "json"],
        s.env({
          AWS_ACCESS_KEY_ID: keys.accessKeyId,
          AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
          AWS_ENDPOINT_URL_ECR: moto.url,
        }),
      );
      assert.equal(out.code, 1, out.stdout + out.stderr);
      const result = JSON.parse(out.stdout) as { imageSyncs: Array<{ reason: string; error: string }> };
      assert.equal(result.imageSyncs[0].reason, "AuthFailed");
      assert.match(
        result.imageSyncs[0].error,
        /^AWS denied ecr:GetAuthorizationToken at registry \S+ \(region us-east-1\) \(AccessDenied\): /,
        name,
      );
    }
    await moto.relaxIam();
  } finally {
    await stopAll(moto, s);
  }
});

Deno.test("ECR without any AWS credentials: AuthFailed naming the ways to provide them, from the library and from `portager sync`", async () => {
  const s = await scratch();
  try {
    const spec: ImageSyncSpec = {
      schedule: "@hourly",
      source: { registry: "docker.io" },
      destination: { registry: ECR_HOST, auth: { method: "ecr" } },
      createDestinationRepos: true,
      images: [{ name: "nginx", tags: ["1.27"] }],
    };
    const want = new RegExp(
      `^no AWS credentials found for ecr:GetAuthorizationToken at registry ${
        ECR_HOST.replaceAll(".", "\\.")
      } ` +
        `\\(region us-east-1\\): configure IRSA \\(AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE\\), ` +
        `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role$`,
    );
    const [run] = await runChild<ChildRun[]>({ op: "sync", spec, runs: [{}] }, s.env({}));
    assert.deepEqual([run.error?.name, run.error?.reason], ["SyncError", "AuthFailed"]);
    assert.match(run.error!.message, want);
    assert.deepEqual(run.events, []);

    const file = `${s.dir}/mirror.yaml`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        apiVersion: "portager.portager.io/v1alpha1",
        kind: "ImageSync",
        metadata: { name: "m" },
        spec,
      }),
    );
    const out = await runMain(["sync", "-f", file, "--output", "json"], s.env({}));
    assert.equal(out.code, 1, out.stdout + out.stderr);
    const result = JSON.parse(out.stdout) as { imageSyncs: Array<{ reason: string; error: string }> };
    assert.equal(result.imageSyncs[0].reason, "AuthFailed");
    assert.match(result.imageSyncs[0].error, want);
  } finally {
    await s.remove();
  }
});

Deno.test("method ecr with a registry that is not ECR is AuthFailed, as upstream: `portager sync` fails it before any AWS call", async () => {
  const s = await scratch();
  try {
    const file = `${s.dir}/mirror.yaml`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        apiVersion: "portager.portager.io/v1alpha1",
        kind: "ImageSync",
        metadata: { name: "mirror" },
        spec: {
          schedule: "@hourly",
          source: { registry: "docker.io" },
          destination: { registry: "ghcr.io/me", auth: { method: "ecr" } },
          images: [{ name: "nginx", tags: ["1.27"] }],
        },
      }),
    );
    // Would-be credentials pointing nowhere: the run must stop before using them.
    const out = await runMain(
      ["sync", "-f", file],
      s.env({
        AWS_ACCESS_KEY_ID: "AKIAUNUSED",
        AWS_SECRET_ACCESS_KEY: "x",
        AWS_ENDPOINT_URL_ECR: "http://127.0.0.1:9",
      }),
    );
    assert.equal(out.code, 1, out.stdout + out.stderr);
    assert.match(
      out.stdout,
      /FAILED +mirror +AuthFailed: ghcr\.io is not an Amazon ECR registry \(<account>\.dkr\.ecr\.<region>\.amazonaws\.com\), so auth method ecr cannot get a token for it/,
    );
  } finally {
    await s.remove();
  }
});

Deno.test("ECR region mismatch: a token issued for another region is refused with a message saying so", async () => {
  const s = await scratch();
  let moto: MotoServer | undefined;
  try {
    moto = await startMoto();
    const spec: ImageSyncSpec = {
      schedule: "@hourly",
      source: { registry: "127.0.0.1:9" },
      destination: { registry: ECR_HOST, auth: { method: "ecr" } },
      images: [{ name: "nginx", tags: ["1.27"] }],
    };
    // The ECR API is reached in eu-west-1 (as a stray endpoint setting would do), the registry
    // host is in us-east-1: moto's token says eu-west-1 in its proxyEndpoint.
    const [run] = await runChild<ChildRun[]>(
      { op: "sync", spec, runs: [{}], clientConfig: { region: "eu-west-1" } },
      s.env({ AWS_ACCESS_KEY_ID: "AKIASTATIC", AWS_SECRET_ACCESS_KEY: "x", AWS_ENDPOINT_URL_ECR: moto.url }),
    );
    assert.deepEqual([run.error?.name, run.error?.reason], ["SyncError", "AuthFailed"]);
    assert.equal(
      run.error?.message,
      `region mismatch: ecr:GetAuthorizationToken for registry ${ECR_HOST} (region us-east-1) returned a token ` +
        `for region eu-west-1 (https://${MOTO_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com), which that registry will ` +
        `not accept; the ECR API endpoint (AWS_ENDPOINT_URL_ECR?) must be in the registry host's region`,
    );
    assert.deepEqual(ecrCalls(await moto.calls()).map((c) => [c.action, c.region]), [
      ["GetAuthorizationToken", "eu-west-1"],
    ]);
  } finally {
    await stopAll(moto, s);
  }
});

Deno.test("ECR tokens for GovCloud, China, FIPS and dual-stack hosts come from their own regions (IRSA at moto)", async () => {
  const s = await scratch();
  let moto: MotoServer | undefined;
  try {
    moto = await startMoto();
    const roleArn = await moto.createWebIdentityRole("portager", ["ecr:GetAuthorizationToken"]);
    await moto.resetCalls();
    const registries = [
      `${MOTO_ACCOUNT}.dkr.ecr.us-gov-west-1.amazonaws.com`,
      `${MOTO_ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn`,
      `${MOTO_ACCOUNT}.dkr.ecr-fips.us-east-2.amazonaws.com`,
      `${MOTO_ACCOUNT}.dkr-ecr.eu-west-1.on.aws`,
    ];
    const got = await runChild<Array<{ registry: string; username?: string; password?: string }>>(
      { op: "resolve", registries },
      s.env(irsaEnv(s, moto, roleArn)),
    );
    assert.deepEqual(
      got.map((g) => [g.registry, g.username, g.password]),
      registries.map((r) => [r, "AWS", `${MOTO_ACCOUNT}-auth-token`]),
    );
    const ecr = ecrCalls(await moto.calls());
    assert.deepEqual(ecr.map((c) => [c.action, c.region]), [
      ["GetAuthorizationToken", "us-gov-west-1"],
      ["GetAuthorizationToken", "cn-north-1"],
      ["GetAuthorizationToken", "us-east-2"],
      ["GetAuthorizationToken", "eu-west-1"],
    ]);
    assert.ok(ecr.every((c) => c.accessKeyId?.startsWith("ASIA")), "signed by the web-identity session");
  } finally {
    await stopAll(moto, s);
  }
});

Deno.test("createDestinationRepos tolerates losing the race: another writer creates the repository between describe and create", async () => {
  const s = await scratch();
  let moto: MotoServer | undefined;
  try {
    moto = await startMoto();
    await moto.resetCalls();
    const got = await runChild<{ outcome?: string; otherWriter?: string; error?: unknown }>(
      { op: "race", registry: ECR_HOST, repository: "mirror/race" },
      s.env({ AWS_ACCESS_KEY_ID: "AKIASTATIC", AWS_SECRET_ACCESS_KEY: "x", AWS_ENDPOINT_URL_ECR: moto.url }),
    );
    assert.deepEqual(got, {
      outcome: "exists",
      otherWriter: `arn:aws:ecr:us-east-1:${MOTO_ACCOUNT}:repository/mirror/race`,
    });
    // Ours described (not found), the other writer created, ours created and lost.
    assert.deepEqual(
      ecrCalls(await moto.calls()).map((
        c,
      ) => [c.action, c.params.repositoryName ?? c.params.repositoryNames]),
      [
        ["DescribeRepositories", ["mirror/race"]],
        ["CreateRepository", "mirror/race"],
        ["CreateRepository", "mirror/race"],
      ],
    );
    const listed = await moto.ecr("DescribeRepositories", {}) as {
      repositories: Array<{ repositoryName: string }>;
    };
    assert.deepEqual(listed.repositories.map((r) => r.repositoryName), ["mirror/race"]);
  } finally {
    await stopAll(moto, s);
  }
});
