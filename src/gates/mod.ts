/**
 * Supply-chain validation gates, run on the source digest of a tag before it is copied:
 * cosign signature → vulnerability report (SARIF) → SBOM presence, in that order; a failing
 * gate skips the later ones. Every "could not check" is a failure, never a pass.
 *
 * Results are data ({@linkcode GateResult}); {@linkcode formatGateFailure} makes upstream
 * Portager's sentences (`cosign verification failed: …`, `vulnerability gate failed: …`,
 * `SBOM gate failed: …`) once, for status, Events and CLI lines.
 *
 * The keyless check loads the Sigstore libraries with a dynamic import, only when a spec uses
 * it: importing this module costs nothing of them. The key check (`cosign.ts`, on
 * `node:crypto`) is loaded the same way, so a sync without a cosign gate never loads Deno's
 * Node compatibility layer for it.
 *
 * ```ts
 * const outcome = await runGates(client, parseReference("ghcr.io/me/app@sha256:…"), {
 *   config: { cosign: { enabled: true, publicKey: pem }, sbomGate: { enabled: true } },
 * });
 * if (!outcome.verified) console.log(formatGateFailure(outcome.failed!));
 * ```
 * @module
 */

import { type CallOptions, OciError, type Reference, type RegistryClient } from "../oci/mod.ts";
import { listReferrers, type Referrer, resolveArtifactTypes } from "../oci/referrers.ts";
import { GateError, type GateName, type GateResult, isAbort, MAX_ARTIFACTS_READ } from "./artifacts.ts";
import { checkVulnerabilities, type VulnerabilityGateConfig } from "./sarif.ts";
import { checkSbom } from "./sbom.ts";

export {
  type Finding,
  GateError,
  type GateName,
  type GateReason,
  type GateResult,
  MAX_ARTIFACTS_READ,
  MAX_REPORT_BYTES,
  MAX_SMALL_ARTIFACT_BYTES,
  type Severity,
} from "./artifacts.ts";
export { describeFindings, findingsAtOrAbove, SARIF_ARTIFACT_TYPE, SEVERITIES } from "./sarif.ts";
export { CYCLONEDX_ARTIFACT_TYPE, SPDX_ARTIFACT_TYPE } from "./sbom.ts";

/** The `validation` block of an ImageSync spec (upstream's field names). */
export interface GatesConfig {
  /** Cosign signature verification: a PEM `publicKey`, or keyless with `keylessIssuer`. */
  cosign?: { enabled: boolean; publicKey?: string; keylessIssuer?: string };
  /** SARIF vulnerability gate. */
  vulnerabilityGate?: { enabled: boolean } & VulnerabilityGateConfig;
  /** SBOM presence gate. */
  sbomGate?: { enabled: boolean };
}

/** The outcome of all enabled gates for one source digest. */
export interface ValidationOutcome {
  /** True when every enabled gate passed. */
  verified: boolean;
  /** Results of the gates that ran, in order (a failure ends the list). */
  results: GateResult[];
  /** The failing gate's result, when one failed. */
  failed?: GateResult;
}

/** Options for {@linkcode runGates}. */
export interface RunGatesOptions extends CallOptions {
  /** Which gates run and how. */
  config: GatesConfig;
  /** A parsed `trusted_root.json` for keyless checks; Sigstore's public-good root when absent. */
  trustedRoot?: unknown;
  /**
   * A `trusted_root.json` file for keyless checks, read when `trustedRoot` is absent; a file
   * that cannot be read or parsed fails the cosign gate (TrustedRootInvalid).
   */
  trustedRootPath?: string;
}

/** Whether any gate is enabled in the config. */
export function gatesEnabled(config: GatesConfig | undefined): boolean {
  return !!(config?.cosign?.enabled || config?.vulnerabilityGate?.enabled || config?.sbomGate?.enabled);
}

/** The words before a gate's detail, as upstream writes them. */
const PREFIX: Record<GateName, string> = {
  cosign: "cosign verification failed",
  vulnerability: "vulnerability gate failed",
  sbom: "SBOM gate failed",
};

/** Upstream's `validationError` text for a failed gate: `cosign verification failed: …`. */
export function formatGateFailure(result: GateResult): string {
  return `${PREFIX[result.gate]}: ${result.detail}`;
}

async function cosignGate(
  client: RegistryClient,
  subject: Reference,
  opts: RunGatesOptions & { referrers: () => Promise<Referrer[]> },
): Promise<string> {
  const cfg = opts.config.cosign!;
  if (cfg.publicKey) {
    const { verifyWithKey } = await import("./cosign.ts");
    return await verifyWithKey(client, subject, {
      publicKey: cfg.publicKey,
      referrers: opts.referrers,
      signal: opts.signal,
    });
  }
  if (cfg.keylessIssuer) {
    const { verifyKeyless } = await import("./keyless.ts");
    return await verifyKeyless(client, subject, {
      issuer: cfg.keylessIssuer,
      trustedRoot: opts.trustedRoot,
      trustedRootPath: opts.trustedRootPath,
      referrers: opts.referrers,
      signal: opts.signal,
    });
  }
  throw new GateError(
    "GateMisconfigured",
    "cosign verification enabled but neither publicKey nor keylessIssuer is configured",
  );
}

/**
 * Runs the enabled gates on `subject` (a source reference pinned by digest) in order
 * cosign → vulnerability → SBOM, stopping at the first failure. The referrers are listed once
 * and shared by the vulnerability and SBOM gates. Cancellation is rethrown; every other error
 * becomes a failed result with a stable reason.
 */
export async function runGates(
  client: RegistryClient,
  subject: Reference,
  opts: RunGatesOptions,
): Promise<ValidationOutcome> {
  if (!subject.digest) {
    throw new OciError("InvalidReference", `gates run on a digest; ${subject} names none`, {
      reference: subject.toString(),
    });
  }
  const { config } = opts;
  const results: GateResult[] = [];
  let referrers: Referrer[] | undefined;
  const listed = async () => {
    try {
      referrers ??= await resolveArtifactTypes(
        client,
        subject,
        (await listReferrers(client, subject, { signal: opts.signal })).referrers,
        { signal: opts.signal, max: MAX_ARTIFACTS_READ },
      );
    } catch (e) {
      if (isAbort(e, opts.signal)) throw e;
      throw new GateError(
        "ReferrersUnavailable",
        `failed to fetch referrers for ${subject}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    return referrers;
  };
  const steps: [GateName, boolean, () => Promise<string>][] = [
    ["cosign", !!config.cosign?.enabled, () => cosignGate(client, subject, { ...opts, referrers: listed })],
    [
      "vulnerability",
      !!config.vulnerabilityGate?.enabled,
      async () =>
        checkVulnerabilities(client, subject, {
          referrers: await listed(),
          config: config.vulnerabilityGate!,
          signal: opts.signal,
        }),
    ],
    ["sbom", !!config.sbomGate?.enabled, async () => checkSbom(subject, await listed())],
  ];
  for (const [gate, enabled, run] of steps) {
    if (!enabled) continue;
    try {
      results.push({ gate, passed: true, reason: "Passed", detail: await run() });
    } catch (e) {
      if (isAbort(e, opts.signal)) throw e;
      const failed: GateResult = e instanceof GateError
        ? { gate, passed: false, reason: e.reason, detail: e.message, ...(e.cves ? { cves: e.cves } : {}) }
        : { gate, passed: false, reason: "ArtifactUnavailable", detail: (e as Error).message ?? String(e) };
      results.push(failed);
      return { verified: false, results, failed };
    }
  }
  return { verified: true, results };
}
