import assert from "node:assert/strict";
import { readKubeconfig, readyStatus } from "./b5_floor.ts";

Deno.test("readKubeconfig: server, CA and token of a token kubeconfig; a certificate kubeconfig is refused", () => {
  const yaml = (user: string) =>
    [
      "apiVersion: v1",
      "clusters:",
      "- name: c",
      "  cluster:",
      "    server: https://127.0.0.1:6443",
      `    certificate-authority-data: ${btoa("PEM")}`,
      "users:",
      "- name: u",
      "  user:",
      `    ${user}`,
    ].join("\n");
  assert.deepEqual(readKubeconfig(yaml('token: "abc"')), {
    server: "https://127.0.0.1:6443",
    caPem: "PEM",
    token: "abc",
  });
  assert.throws(() => readKubeconfig(yaml("client-certificate-data: eA==")), /token kubeconfig/);
});

Deno.test("readyStatus: one Ready=True condition with every field the CRD requires", () => {
  const s = readyStatus(new Date("2026-11-30T16:00:00.123Z")) as {
    status: { conditions: Array<Record<string, string>> };
  };
  const [c] = s.status.conditions;
  for (const f of ["type", "status", "reason", "message", "lastTransitionTime"]) assert.ok(c[f], f);
  assert.equal(c.status, "True");
  assert.equal(c.lastTransitionTime, "2026-11-30T16:00:00Z");
});
