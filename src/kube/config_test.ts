import assert from "node:assert/strict";
import { KubeConfigError, loadInCluster, loadKubeConfig, loadKubeconfigFiles } from "./config.ts";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

function kubeconfig(extra = ""): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: ${btoa(CA)}
- name: c2
  cluster:
    server: https://other:443
    certificate-authority: ca.pem
users:
- name: u-token
  user:
    token: abc
- name: u-file
  user:
    tokenFile: token.txt
- name: u-basic
  user:
    username: bob
    password: pw
- name: u-exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin.sh
      args: [get]
contexts:
- name: one
  context: {cluster: c1, user: u-token, namespace: team-a}
- name: two
  context: {cluster: c2, user: u-file}
- name: three
  context: {cluster: c1, user: u-basic}
- name: four
  context: {cluster: c1, user: u-exec}
current-context: one
${extra}`;
}

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "portager-kubeconfig-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kubeconfig: current context, inline CA, token, namespace", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/config`, kubeconfig());
    const c = loadKubeconfigFiles([`${dir}/config`]);
    assert.equal(c.server, "https://127.0.0.1:6443");
    assert.deepEqual(c.caCerts, [CA]);
    assert.deepEqual(c.auth, { kind: "token", token: "abc" });
    assert.equal(c.namespace, "team-a");
    assert.equal(c.contextName, "one");
  });
});

Deno.test("kubeconfig: --context picks another context; relative paths resolve next to the file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/config`, kubeconfig());
    await Deno.writeTextFile(`${dir}/ca.pem`, CA);
    const two = loadKubeconfigFiles([`${dir}/config`], "two");
    assert.deepEqual(two.caCerts, [CA]);
    assert.deepEqual(two.auth, { kind: "tokenFile", path: `${dir}/token.txt` });
    assert.deepEqual(loadKubeconfigFiles([`${dir}/config`], "three").auth, {
      kind: "basic",
      username: "bob",
      password: "pw",
    });
    const four = loadKubeconfigFiles([`${dir}/config`], "four").auth;
    assert.equal(four.kind, "exec");
    assert.equal(four.kind === "exec" && four.exec.command, "./plugin.sh");
    assert.equal(four.kind === "exec" && four.exec.dir, dir);
  });
});

Deno.test("kubeconfig: errors name the context and what is missing", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/config`, kubeconfig());
    assert.throws(() => loadKubeconfigFiles([`${dir}/config`], "nope"), (e: Error) => {
      assert.ok(e instanceof KubeConfigError);
      assert.match(e.message, /context "nope" not found \(known: one, two, three, four\)/);
      return true;
    });
    await Deno.writeTextFile(
      `${dir}/bad`,
      "clusters:\n- name: x\n  cluster:\n    server: https://x\n    insecure-skip-tls-verify: true\n" +
        "contexts:\n- name: x\n  context: {cluster: x}\ncurrent-context: x\n",
    );
    assert.throws(() => loadKubeconfigFiles([`${dir}/bad`]), /insecure-skip-tls-verify/);
    await Deno.writeTextFile(`${dir}/yaml`, "clusters: [\n");
    assert.throws(() => loadKubeconfigFiles([`${dir}/yaml`]), /not valid YAML/);
  });
});

Deno.test("KUBECONFIG lists merge with the first file winning", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig());
    await Deno.writeTextFile(
      `${dir}/b`,
      "clusters:\n- name: c9\n  cluster: {server: 'https://nine:1'}\ncontexts:\n- name: nine\n" +
        "  context: {cluster: c9}\n- name: one\n  context: {cluster: c9}\ncurrent-context: nine\n",
    );
    const env = (n: string) => n === "KUBECONFIG" ? `${dir}/a:${dir}/b` : undefined;
    assert.equal(loadKubeConfig({ env }).server, "https://127.0.0.1:6443");
    assert.equal(loadKubeConfig({ env, context: "nine" }).server, "https://nine:1");
    // the run command hands KUBECONFIG to the --kubeconfig flag: the same list works there
    const none = () => undefined;
    assert.equal(
      loadKubeConfig({ env: none, kubeconfig: `${dir}/a:${dir}/b` }).server,
      "https://127.0.0.1:6443",
    );
    assert.equal(
      loadKubeConfig({ env: none, kubeconfig: `${dir}/a:${dir}/b`, context: "nine" }).server,
      "https://nine:1",
    );
  });
});

Deno.test("in-cluster: service-account files and KUBERNETES_SERVICE_*", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.crt`, CA);
    await Deno.writeTextFile(`${dir}/namespace`, "portager-system\n");
    await Deno.writeTextFile(`${dir}/token`, "t");
    const env = (n: string) => ({ KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" })[n];
    const c = loadInCluster({ env, serviceAccountDir: dir });
    assert.equal(c.server, "https://10.0.0.1:443");
    assert.equal(c.namespace, "portager-system");
    assert.deepEqual(c.auth, { kind: "tokenFile", path: `${dir}/token` });
    assert.ok(c.inCluster);
    assert.throws(() => loadInCluster({ env: () => undefined, serviceAccountDir: dir }), KubeConfigError);
  });
});
