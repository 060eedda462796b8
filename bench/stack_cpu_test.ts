import assert from "node:assert/strict";
import { formatStackCpu, roleOf, stackCpu, stackCpuPer } from "./stack_cpu.ts";

Deno.test("stackCpuPer: CPU per ImageSync by role, the stack's total without the bench", () => {
  const before = { bench: 100, registries: 1000, "kube-apiserver": 500, etcd: 50 };
  const after = { bench: 300, registries: 4000, "kube-apiserver": 1500, etcd: 350, operator: 800 };
  const per = stackCpuPer(before, after, 100);
  assert.deepEqual(per, {
    bench: 2,
    registries: 30,
    "kube-apiserver": 10,
    etcd: 3,
    operator: 8,
    total: 51,
  });
  assert.equal(
    formatStackCpu(per),
    "registries 30.0, kube-apiserver 10.0, etcd 3.0, operator 8.0 (total 51.0) ms",
  );
  assert.equal(roleOf("docker-registry"), "registries");
  assert.equal(roleOf("etcd"), "etcd");
});

Deno.test("stackCpu: a live child's CPU shows under its process name, the operator's under its pid", async () => {
  // burns CPU, then stays alive to be sampled
  const sh = new Deno.Command("sh", {
    args: ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30"],
  }).spawn();
  const op = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    let cpu = stackCpu(op.pid);
    for (let i = 0; i < 100 && (cpu.sleep ?? 0) === 0; i++) {
      await new Promise((r) => setTimeout(r, 100)); // until the loop has ended (sh exec'd sleep)
      cpu = stackCpu(op.pid);
    }
    assert.ok(cpu.sleep > 0, `the exec'd child's CPU: ${JSON.stringify(cpu)}`);
    assert.equal(cpu.operator, 0, JSON.stringify(cpu)); // found by its pid, and burns nothing
    assert.ok(cpu.bench > 0, JSON.stringify(cpu));
  } finally {
    for (const c of [sh, op]) {
      c.kill();
      await c.status;
    }
  }
});
