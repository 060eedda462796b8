/**
 * CPU of the whole stack a case runs — the bench's child processes (registries, etcd,
 * kube-apiserver, the operator) grouped by role — so B5 can say where the CPU of an ImageSync
 * goes and compare forms by a figure that does not move with the machine's load the way wall
 * time does (a run's time on a shared machine is bounded by the stack's CPU, most of it not the
 * operator's).
 * @module
 */

import { processCpuMs } from "./b6_shards.ts";

/** CPU (utime + stime, ms) by role: "registries", "kube-apiserver", "etcd", "operator", "bench", or a process name. */
export type StackCpu = Record<string, number>;

/** The role of a process by its name (`/proc/<pid>/comm`). */
export function roleOf(comm: string): string {
  return comm === "docker-registry" ? "registries" : comm;
}

/** The pids under `root` (children, theirs, …) from `/proc/<pid>/task/<tid>/children`. */
function descendants(root: number): number[] {
  const out: number[] = [];
  const walk = (pid: number) => {
    let tasks: Deno.DirEntry[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${pid}/task`)];
    } catch {
      return; // gone
    }
    for (const t of tasks) {
      let kids: string;
      try {
        kids = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`);
      } catch {
        continue;
      }
      for (const k of kids.trim().split(" ").filter(Boolean)) {
        out.push(Number(k));
        walk(Number(k));
      }
    }
  };
  walk(root);
  return out;
}

/**
 * The CPU so far of every process under this one, by role; `operator` names the operator's
 * pid (else it counts under its process name), and this process is "bench".
 */
export function stackCpu(operator?: number): StackCpu {
  const by: StackCpu = { bench: processCpuMs(Deno.pid) ?? 0 };
  for (const pid of descendants(Deno.pid)) {
    let role: string;
    try {
      role = pid === operator ? "operator" : roleOf(Deno.readTextFileSync(`/proc/${pid}/comm`).trim());
    } catch {
      continue; // gone
    }
    const ms = processCpuMs(pid);
    if (ms !== undefined) by[role] = (by[role] ?? 0) + ms;
  }
  return by;
}

/**
 * CPU per unit between two {@linkcode stackCpu} samples (`per` = ImageSyncs), by role, with a
 * `total` of the stack's roles (the bench's own CPU and helper processes such as `deno` shown, not
 * added), rounded to 0.1 ms. A role that only appears in `after` counts from zero.
 */
export function stackCpuPer(before: StackCpu, after: StackCpu, per: number): StackCpu {
  const out: StackCpu = {};
  let total = 0;
  for (const [role, ms] of Object.entries(after)) {
    const d = (ms - (before[role] ?? 0)) / per;
    out[role] = Math.round(d * 10) / 10;
    if (STACK_ROLES.includes(role)) total += d;
  }
  out.total = Math.round(total * 10) / 10;
  return out;
}

/** The roles that make the stack's total. */
export const STACK_ROLES = ["registries", "kube-apiserver", "etcd", "operator"];

/** "registries 29.3, kube-apiserver 10.5, etcd 2.6, operator 8.5 (total 50.9) ms" for a note. */
export function formatStackCpu(per: StackCpu): string {
  const parts = STACK_ROLES.filter((r) => r in per).map((r) => `${r} ${per[r].toFixed(1)}`);
  return `${parts.join(", ")} (total ${(per.total ?? 0).toFixed(1)}) ms`;
}
