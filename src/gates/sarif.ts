/**
 * The vulnerability gate: SARIF reports attached as referrers (`application/sarif+json`,
 * e.g. trivy's `--format sarif` output pushed with `oras attach`).
 *
 * A finding's severity, as upstream Portager decides it:
 * 1. its rule's `properties["security-severity"]` CVSS score: ≥9 critical, ≥7 high, ≥4 medium,
 *    else low;
 * 2. else its rule's `defaultConfiguration.level`: error → high, warning → medium, note → low;
 * 3. else the result's own `level` (same mapping); else low.
 * Findings at or above `maxSeverity` block the image. With `requireCveReport` (default true)
 * an image without a report is blocked too. Other referrer types are ignored. Unlike upstream,
 * a report that cannot be read or parsed blocks the image (it is never skipped silently).
 * @module
 */

import type { CallOptions, Reference, RegistryClient } from "../oci/mod.ts";
import type { Referrer } from "../oci/referrers.ts";
import {
  type Finding,
  GateError,
  getArtifactManifest,
  MAX_ARTIFACTS_READ,
  MAX_REPORT_BYTES,
  parseJson,
  readBlob,
  type Severity,
} from "./artifacts.ts";

/** The artifact type of SARIF reports. */
export const SARIF_ARTIFACT_TYPE = "application/sarif+json";

/** Severities, lowest first. */
export const SEVERITIES: readonly Severity[] = ["low", "medium", "high", "critical"];

/** Vulnerability gate settings (upstream's field names). */
export interface VulnerabilityGateConfig {
  /** Findings at or above this block (default critical). */
  maxSeverity?: Severity;
  /** Block images without a report (default true). */
  requireCveReport?: boolean;
}

/** Severity from a CVSS score (number or numeric string); undefined when not a number. */
export function severityFromCvss(score: unknown): Severity | undefined {
  if (typeof score === "string" && score.trim() === "") return undefined;
  const n = typeof score === "number" ? score : typeof score === "string" ? Number(score) : NaN;
  if (!Number.isFinite(n)) return undefined;
  if (n >= 9) return "critical";
  if (n >= 7) return "high";
  if (n >= 4) return "medium";
  return "low";
}

/** Severity from a SARIF level: error → high, warning → medium, anything else → low. */
export function severityFromLevel(level: string): Severity {
  switch (level.toLowerCase()) {
    case "error":
      return "high";
    case "warning":
      return "medium";
    default:
      return "low";
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
}

/** The severity of one SARIF result given its run's rules (see the module doc for the order). */
export function resultSeverity(
  result: Record<string, unknown>,
  rules: Map<string, Record<string, unknown>>,
): Severity {
  const rule = typeof result.ruleId === "string" ? rules.get(result.ruleId) : undefined;
  if (rule) {
    const cvss = severityFromCvss(obj(rule.properties)?.["security-severity"]);
    if (cvss) return cvss;
    const level = obj(rule.defaultConfiguration)?.level;
    if (typeof level === "string" && level !== "") return severityFromLevel(level);
  }
  if (typeof result.level === "string" && result.level !== "") return severityFromLevel(result.level);
  return "low";
}

/**
 * The findings of a SARIF document at or above `maxSeverity`, one per rule id (the worst
 * severity seen), in the order first seen. Throws ReportInvalid on a document that is not
 * SARIF (no `runs` list, a run or result that is not an object).
 */
export function findingsAtOrAbove(doc: unknown, maxSeverity: Severity): Finding[] {
  const root = obj(doc);
  if (!root || !Array.isArray(root.runs)) {
    throw new GateError("ReportInvalid", 'the SARIF report has no "runs" list');
  }
  const threshold = SEVERITIES.indexOf(maxSeverity);
  const found = new Map<string, Severity>();
  for (const [r, runValue] of root.runs.entries()) {
    const run = obj(runValue);
    if (!run) throw new GateError("ReportInvalid", `SARIF runs[${r}] is not an object`);
    const rules = new Map<string, Record<string, unknown>>();
    const declared = obj(obj(run.tool)?.driver)?.rules;
    for (const ruleValue of Array.isArray(declared) ? declared : []) {
      const rule = obj(ruleValue);
      if (rule && typeof rule.id === "string") rules.set(rule.id, rule);
    }
    const results = run.results ?? [];
    if (!Array.isArray(results)) {
      throw new GateError("ReportInvalid", `SARIF runs[${r}].results is not a list`);
    }
    for (const [i, resultValue] of results.entries()) {
      const result = obj(resultValue);
      if (!result) throw new GateError("ReportInvalid", `SARIF runs[${r}].results[${i}] is not an object`);
      const severity = resultSeverity(result, rules);
      if (SEVERITIES.indexOf(severity) < threshold) continue;
      const id = typeof result.ruleId === "string" && result.ruleId !== "" ? result.ruleId : `results[${i}]`;
      const before = found.get(id);
      if (!before || SEVERITIES.indexOf(severity) > SEVERITIES.indexOf(before)) found.set(id, severity);
    }
  }
  return [...found].map(([id, severity]) => ({ id, severity }));
}

/** Reads a SARIF referrer's report (its first layer), bounded, digest-verified. */
async function readReport(
  client: RegistryClient,
  subject: Reference,
  referrer: Referrer,
  opts: CallOptions,
): Promise<unknown> {
  const m = await getArtifactManifest(client, subject.withDigest(referrer.digest), opts);
  const layer = m.layers[0];
  if (!layer) throw new GateError("ReportInvalid", `SARIF referrer ${referrer.digest} has no layer`);
  const bytes = await readBlob(client, subject, layer, {
    limit: MAX_REPORT_BYTES,
    what: "SARIF report",
    reason: "ReportInvalid",
    signal: opts.signal,
  });
  return parseJson(bytes, `SARIF report ${layer.digest}`, "ReportInvalid");
}

/**
 * Runs the vulnerability gate on `subject` given its referrers (already listed). Returns a
 * detail on pass; throws GateError (CveReportMissing, ReportInvalid, VulnerabilitiesFound).
 */
export async function checkVulnerabilities(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions & { referrers: Referrer[]; config: VulnerabilityGateConfig },
): Promise<string> {
  const maxSeverity = opts.config.maxSeverity ?? "critical";
  const reports = opts.referrers.filter((r) => r.artifactType === SARIF_ARTIFACT_TYPE);
  if (reports.length === 0) {
    if (opts.config.requireCveReport === false) return "no CVE report attached; requireCveReport is false";
    throw new GateError(
      "CveReportMissing",
      `no CVE report found for ${subject}; set requireCveReport: false to allow images without reports`,
    );
  }
  if (reports.length > MAX_ARTIFACTS_READ) {
    throw new GateError(
      "ReportInvalid",
      `${reports.length} SARIF reports are attached to ${subject}; at most ${MAX_ARTIFACTS_READ} are read`,
    );
  }
  const all = new Map<string, Severity>();
  for (const r of reports) {
    let findings: Finding[];
    try {
      findings = findingsAtOrAbove(await readReport(client, subject, r, opts), maxSeverity);
    } catch (e) {
      if (e instanceof GateError) {
        throw new GateError(e.reason, `SARIF referrer ${r.digest}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    for (const f of findings) {
      const before = all.get(f.id);
      if (!before || SEVERITIES.indexOf(f.severity) > SEVERITIES.indexOf(before)) all.set(f.id, f.severity);
    }
  }
  if (all.size > 0) {
    const cves = [...all].map(([id, severity]) => ({ id, severity }));
    throw new GateError("VulnerabilitiesFound", describeFindings(cves, maxSeverity), { cves });
  }
  return `${reports.length} SARIF report(s), no finding at or above ${maxSeverity}`;
}

/** Upstream's sentence for blocking findings (lists at most 20, then a count). */
export function describeFindings(cves: Finding[], maxSeverity: Severity): string {
  const shown = cves.slice(0, 20).map((f) => `${f.id} (${f.severity})`).join(", ");
  const more = cves.length > 20 ? ` and ${cves.length - 20} more` : "";
  return `vulnerability gate: ${cves.length} finding(s) at or above ${maxSeverity} severity: ${shown}${more}`;
}
