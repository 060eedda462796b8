import assert from "node:assert/strict";
import { GateError } from "./artifacts.ts";
import { findingsAtOrAbove, resultSeverity, severityFromCvss, severityFromLevel } from "./sarif.ts";

/** A rule as trivy writes it (`trivy image --format sarif`). */
function rule(id: string, opts: { cvss?: string; level?: string } = {}) {
  return {
    id,
    name: "OsPackageVulnerability",
    shortDescription: { text: `${id}: something` },
    fullDescription: { text: "details" },
    ...(opts.level ? { defaultConfiguration: { level: opts.level } } : {}),
    helpUri: `https://avd.aquasec.com/nvd/${id.toLowerCase()}`,
    help: { text: "Vulnerability", markdown: "**Vulnerability**" },
    properties: {
      precision: "very-high",
      ...(opts.cvss !== undefined ? { "security-severity": opts.cvss } : {}),
      tags: ["vulnerability", "security"],
    },
  };
}

function result(ruleId: string, ruleIndex: number, level?: string) {
  return {
    ruleId,
    ruleIndex,
    ...(level ? { level } : {}),
    message: { text: `Package: openssl\nInstalled Version: 3.0.1\nVulnerability ${ruleId}` },
    locations: [{
      physicalLocation: {
        artifactLocation: { uri: "library/app", uriBaseId: "ROOTPATH" },
        region: { startLine: 1, startColumn: 1, endLine: 1, endColumn: 1 },
      },
      message: { text: "library/app: openssl@3.0.1" },
    }],
  };
}

function report(rules: unknown[], results: unknown[]) {
  return {
    version: "2.1.0",
    $schema:
      "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json",
    runs: [{
      tool: {
        driver: {
          fullName: "Trivy Vulnerability Scanner",
          informationUri: "https://github.com/aquasecurity/trivy",
          name: "Trivy",
          rules,
          version: "0.58.0",
        },
      },
      results,
      columnKind: "utf16CodeUnits",
      originalUriBaseIds: { ROOTPATH: { uri: "file:///" } },
    }],
  };
}

Deno.test("severity from CVSS: ≥9 critical, ≥7 high, ≥4 medium, else low; non-numbers ignored", () => {
  assert.equal(severityFromCvss("9.8"), "critical");
  assert.equal(severityFromCvss("9.0"), "critical");
  assert.equal(severityFromCvss("8.9"), "high");
  assert.equal(severityFromCvss(7), "high");
  assert.equal(severityFromCvss("6.9"), "medium");
  assert.equal(severityFromCvss("4.0"), "medium");
  assert.equal(severityFromCvss("3.9"), "low");
  assert.equal(severityFromCvss("0"), "low");
  assert.equal(severityFromCvss(""), undefined);
  assert.equal(severityFromCvss("high"), undefined);
  assert.equal(severityFromCvss(null), undefined);
  assert.equal(severityFromLevel("error"), "high");
  assert.equal(severityFromLevel("warning"), "medium");
  assert.equal(severityFromLevel("note"), "low");
  assert.equal(severityFromLevel("none"), "low");
});

Deno.test("a finding's severity: rule CVSS, else the rule's default level, else the result's level", () => {
  const rules = new Map<string, Record<string, unknown>>([
    ["CVE-A", rule("CVE-A", { cvss: "9.1", level: "note" })],
    ["CVE-B", rule("CVE-B", { level: "warning" })],
    ["CVE-C", rule("CVE-C", { cvss: "n/a" })],
    ["CVE-D", rule("CVE-D", { cvss: "7.5" })],
  ]);
  // CVSS wins over both levels.
  assert.equal(resultSeverity(result("CVE-A", 0, "note"), rules), "critical");
  // No score: the rule's defaultConfiguration.level wins over the result's level.
  assert.equal(resultSeverity(result("CVE-B", 1, "error"), rules), "medium");
  // Unparsable score and no default level: the result's level.
  assert.equal(resultSeverity(result("CVE-C", 2, "error"), rules), "high");
  assert.equal(resultSeverity(result("CVE-D", 3, "note"), rules), "high");
  // Unknown rule: the result's level; nothing at all: low.
  assert.equal(resultSeverity(result("CVE-X", 9, "warning"), rules), "medium");
  assert.equal(resultSeverity(result("CVE-X", 9), rules), "low");
});

Deno.test("findingsAtOrAbove blocks at or above maxSeverity, one entry per CVE, worst severity kept", () => {
  const doc = report(
    [
      rule("CVE-2024-0001", { cvss: "9.8", level: "error" }),
      rule("CVE-2024-0002", { cvss: "7.5", level: "error" }),
      rule("CVE-2024-0003", { cvss: "5.3", level: "warning" }),
      rule("CVE-2024-0004", { cvss: "2.1", level: "note" }),
      rule("GHSA-xxxx", { level: "error" }),
    ],
    [
      result("CVE-2024-0001", 0, "error"),
      result("CVE-2024-0001", 0, "error"),
      result("CVE-2024-0002", 1, "error"),
      result("CVE-2024-0003", 2, "warning"),
      result("CVE-2024-0004", 3, "note"),
      result("GHSA-xxxx", 4, "error"),
    ],
  );
  assert.deepEqual(findingsAtOrAbove(doc, "critical"), [{ id: "CVE-2024-0001", severity: "critical" }]);
  assert.deepEqual(findingsAtOrAbove(doc, "high").map((f) => f.id), [
    "CVE-2024-0001",
    "CVE-2024-0002",
    "GHSA-xxxx",
  ]);
  assert.equal(findingsAtOrAbove(doc, "medium").length, 4);
  assert.equal(findingsAtOrAbove(doc, "low").length, 5);
  assert.deepEqual(findingsAtOrAbove(report([], []), "low"), []);
});

Deno.test("malformed SARIF is ReportInvalid, never a pass", () => {
  const invalid = (doc: unknown, pattern: RegExp) =>
    assert.throws(() => findingsAtOrAbove(doc, "critical"), (e) => {
      assert.ok(e instanceof GateError);
      assert.equal(e.reason, "ReportInvalid");
      assert.match(e.message, pattern);
      return true;
    });
  invalid({ version: "2.1.0" }, /no "runs" list/);
  invalid([], /no "runs" list/);
  invalid({ runs: [42] }, /runs\[0\] is not an object/);
  invalid({ runs: [{ results: {} }] }, /results is not a list/);
  invalid({ runs: [{ results: ["x"] }] }, /results\[0\] is not an object/);
});
