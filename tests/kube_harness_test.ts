// Smoke test of the Kubernetes harness: a real etcd + kube-apiserver, a CRD with a status
// subresource, a custom object watched over HTTP, and a ServiceAccount token under RBAC.
import assert from "node:assert/strict";
import { load as loadYaml } from "js-yaml";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { startKube } from "./harness/kube.ts";

const GROUP = "test.portager.io";
const WIDGETS = `/apis/${GROUP}/v1/namespaces/default/widgets`;

const widgetCrd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `widgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [{
      name: "v1",
      served: true,
      storage: true,
      subresources: { status: {} },
      schema: {
        openAPIV3Schema: {
          type: "object",
          properties: {
            spec: { type: "object", properties: { size: { type: "integer" } } },
            status: { type: "object", properties: { phase: { type: "string" } } },
          },
        },
      },
    }],
  },
};

interface Widget {
  metadata: { name: string; resourceVersion: string; generation: number };
  spec: { size: number };
  status?: { phase?: string };
}

interface WatchEvent {
  type: string;
  object: Widget;
}

/** Reads a watch response one JSON event per line. */
class WatchReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  constructor(res: Response) {
    this.#reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<WatchEvent> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        if (line.trim()) return JSON.parse(line);
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("watch stream ended before the expected event");
      this.#buf += value;
    }
  }
  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

Deno.test("kube harness: CRD, watch, status subresource, ServiceAccount token under RBAC", async (t) => {
  const kube = await startKube();
  try {
    await t.step("the admin kubeconfig works with @kubernetes/client-node", async () => {
      const kc = new KubeConfig();
      kc.loadFromFile(kube.kubeconfigPath);
      const names = (await kc.makeApiClient(CoreV1Api).listNamespace()).items
        .map((n) => n.metadata?.name);
      assert.ok(names.includes("default"), `namespaces: ${names}`);
    });

    await t.step("a created namespace works", async () => {
      await kube.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a" } });
      const cm = await kube.apply({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "settings", namespace: "team-a" },
        data: { a: "1" },
      }) as { metadata: { namespace: string } };
      assert.equal(cm.metadata.namespace, "team-a");
      // apply again = replace
      await kube.apply({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "settings", namespace: "team-a" },
        data: { a: "2" },
      });
      const res = await kube.adminFetch("/api/v1/namespaces/team-a/configmaps/settings");
      assert.equal(res.status, 200);
      assert.deepEqual((await res.json()).data, { a: "2" });
    });

    await t.step("a custom object is watched through create, update and status", async () => {
      await kube.apply(widgetCrd);
      const w1 = await kube.apply({
        apiVersion: `${GROUP}/v1`,
        kind: "Widget",
        metadata: { name: "w1", namespace: "default" },
        spec: { size: 1 },
      }) as Widget;
      assert.equal(w1.metadata.generation, 1);

      const list = await (await kube.adminFetch(WIDGETS)).json();
      const res = await kube.adminFetch(
        `${WIDGETS}?watch=1&resourceVersion=${list.metadata.resourceVersion}&timeoutSeconds=60`,
      );
      assert.equal(res.status, 200);
      const watch = new WatchReader(res);
      try {
        await kube.apply({
          apiVersion: `${GROUP}/v1`,
          kind: "Widget",
          metadata: { name: "w2" },
          spec: { size: 5 },
        });
        const added = await watch.next();
        assert.equal(added.type, "ADDED");
        assert.equal(added.object.metadata.name, "w2");

        // apply on an existing object replaces it: a spec change bumps the generation
        await kube.apply({
          apiVersion: `${GROUP}/v1`,
          kind: "Widget",
          metadata: { name: "w1" },
          spec: { size: 2 },
        });
        const modified = await watch.next();
        assert.equal(modified.type, "MODIFIED");
        assert.equal(modified.object.metadata.name, "w1");
        assert.equal(modified.object.spec.size, 2);
        assert.equal(modified.object.metadata.generation, 2);

        // status goes through the status subresource and leaves the generation alone
        const patch = await kube.adminFetch(`${WIDGETS}/w1/status`, {
          method: "PATCH",
          headers: { "content-type": "application/merge-patch+json" },
          body: JSON.stringify({ status: { phase: "Ready" } }),
        });
        assert.equal(patch.status, 200, await patch.clone().text());
        await patch.body?.cancel();
        const status = await watch.next();
        assert.equal(status.type, "MODIFIED");
        assert.equal(status.object.status?.phase, "Ready");
        assert.equal(status.object.metadata.generation, 2);
      } finally {
        await watch.cancel();
      }

      // with a status subresource, status written on the main resource is ignored
      await kube.apply({
        apiVersion: `${GROUP}/v1`,
        kind: "Widget",
        metadata: { name: "w1" },
        spec: { size: 2 },
        status: { phase: "Hacked" },
      });
      const w1After = await (await kube.adminFetch(`${WIDGETS}/w1`)).json() as Widget;
      assert.equal(w1After.status?.phase, "Ready");
    });

    await t.step("a ServiceAccount token authenticates and RBAC limits it", async () => {
      const token = await kube.tokenFor("portager-test", "operator");
      const kubeconfigPath = await kube.kubeconfigForToken(token);
      // Act only with what the kubeconfig holds.
      const cfg = loadYaml(await Deno.readTextFile(kubeconfigPath)) as {
        clusters: Array<{ cluster: { server: string; "certificate-authority-data": string } }>;
        users: Array<{ user: { token: string } }>;
      };
      const server = cfg.clusters[0].cluster.server;
      assert.equal(server, kube.server);
      const client = Deno.createHttpClient({
        caCerts: [atob(cfg.clusters[0].cluster["certificate-authority-data"])],
      });
      const asOperator = (path: string) =>
        fetch(new URL(path, server), {
          client,
          headers: { authorization: `Bearer ${cfg.users[0].user.token}` },
        });
      try {
        const apis = await asOperator("/apis");
        assert.equal(apis.status, 200);
        const groups = (await apis.json()).groups.map((g: { name: string }) => g.name);
        assert.ok(groups.includes(GROUP), `groups: ${groups}`);

        const secrets = await asOperator("/api/v1/namespaces/portager-test/secrets");
        assert.equal(secrets.status, 403);
        const denial = await secrets.json();
        assert.equal(denial.reason, "Forbidden");
        assert.match(denial.message, /system:serviceaccount:portager-test:operator/);

        const before = await asOperator("/apis/test.portager.io/v1/namespaces/default/widgets");
        assert.equal(before.status, 403);
        await before.body?.cancel();

        // RBAC grants take effect: a Role + RoleBinding lets it list widgets, not secrets.
        await kube.apply({
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "Role",
          metadata: { name: "widget-reader", namespace: "default" },
          rules: [{ apiGroups: [GROUP], resources: ["widgets"], verbs: ["get", "list", "watch"] }],
        });
        await kube.apply({
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "widget-reader", namespace: "default" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "widget-reader" },
          subjects: [{ kind: "ServiceAccount", name: "operator", namespace: "portager-test" }],
        });
        // the apiserver's RBAC authorizer reads Roles through an informer: a grant applies once
        // its watch event arrives (usually at once; under load, some milliseconds later)
        let after = await asOperator("/apis/test.portager.io/v1/namespaces/default/widgets");
        for (let tries = 0; after.status === 403 && tries < 100; tries++) {
          await after.body?.cancel();
          await new Promise((r) => setTimeout(r, 100));
          after = await asOperator("/apis/test.portager.io/v1/namespaces/default/widgets");
        }
        assert.equal(after.status, 200);
        const names = (await after.json()).items.map((w: Widget) => w.metadata.name).sort();
        assert.deepEqual(names, ["w1", "w2"]);
        const stillDenied = await asOperator("/api/v1/namespaces/default/secrets");
        assert.equal(stillDenied.status, 403);
        await stillDenied.body?.cancel();
      } finally {
        client.close();
      }

      // the same kubeconfig works with the client library the operator uses
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      await assert.rejects(
        kc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: "portager-test" }),
        (e: { code?: number }) => e.code === 403,
      );
    });
  } finally {
    await kube.stop();
  }

  // stop() leaves nothing behind: files gone, apiserver no longer answers
  await assert.rejects(Deno.stat(kube.dir), Deno.errors.NotFound);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(kube.server).port) }),
    Deno.errors.ConnectionRefused,
  );
});
