/**
 * Rendering the results: markdown tables for stdout and docs/PERFORMANCE.md, and the JSON
 * document written to bench/results/<date>.json.
 * @module
 */

import type { CaseResult, Table } from "./context.ts";

/** The machine the numbers were taken on. */
export interface MachineInfo {
  /** Logical CPUs (nproc). */
  cpus: number;
  /** CPU model name. */
  cpuModel: string;
  /** Total memory in MiB. */
  memoryMiB: number;
  /** Kernel release. */
  kernel: string;
  /** OS pretty name. */
  os: string;
  /** Program versions: deno, skopeo, crane, regclient, docker-registry, kube-apiserver. */
  versions: Record<string, string>;
}

/** A markdown table; pipes inside cells are escaped. */
export function markdownTable(table: Table): string {
  const esc = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
  const lines = [
    `| ${table.columns.map(esc).join(" | ")} |`,
    `| ${table.columns.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...table.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ];
  return lines.join("\n");
}

/** One case as markdown: heading, tables, notes. */
export function markdownCase(result: CaseResult): string {
  const parts = [`### ${result.id} — ${result.title}`, ""];
  for (const t of result.tables) parts.push(markdownTable(t), "");
  for (const n of result.notes) parts.push(`- ${n}`);
  return parts.join("\n").trimEnd();
}

/** The machine as a markdown list. */
export function markdownMachine(m: MachineInfo): string {
  const versions = Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(", ");
  return [
    `- CPU: ${m.cpus} × ${m.cpuModel}`,
    `- Memory: ${(m.memoryMiB / 1024).toFixed(1)} GiB`,
    `- OS: ${m.os}, kernel ${m.kernel}`,
    `- Versions: ${versions}`,
  ].join("\n");
}

/** The full report: date, mode, machine, every case. */
export function markdownReport(
  results: CaseResult[],
  meta: { date: string; quick: boolean; machine: MachineInfo; seconds: number },
): string {
  return [
    `## Results ${meta.date}${meta.quick ? " (--quick)" : ""}`,
    "",
    markdownMachine(meta.machine),
    `- Whole run: ${Math.round(meta.seconds)} s`,
    "",
    ...results.flatMap((r) => [markdownCase(r), ""]),
  ].join("\n").trimEnd() + "\n";
}

/** Reads the machine facts from /proc and the OS. */
export function machineInfo(versions: Record<string, string>): MachineInfo {
  const cpuinfo = safeRead("/proc/cpuinfo");
  const meminfo = safeRead("/proc/meminfo");
  const osRelease = safeRead("/etc/os-release");
  return {
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown",
    memoryMiB: Math.round(Number(meminfo.match(/^MemTotal:\s+(\d+) kB/m)?.[1] ?? 0) / 1024),
    kernel: Deno.osRelease(),
    os: osRelease.match(/^PRETTY_NAME="?([^"\n]+)"?$/m)?.[1] ?? Deno.build.os,
    versions,
  };
}

function safeRead(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
