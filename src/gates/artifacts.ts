/**
 * What every gate shares: the result shape, the gate error with its stable reason, and bounded
 * reads of the small artifacts gates look at (referrer manifests, signature payloads, bundles,
 * reports) — each digest-verified by the OCI client and capped in size.
 * @module
 */

import {
  type CallOptions,
  type FetchedManifest,
  OciError,
  type Reference,
  type RegistryClient,
} from "../oci/mod.ts";
import { parseReferrer, type Referrer } from "../oci/referrers.ts";

/** The gates, in the order they run. */
export type GateName = "cosign" | "vulnerability" | "sbom";

/** Vulnerability severities, lowest first. */
export type Severity = "low" | "medium" | "high" | "critical";

/**
 * Stable reasons of a gate result. `Passed` for a pass; every other reason is a failure,
 * including the ones that mean "could not check" (`…Unavailable`, `…Invalid`): a gate never
 * passes because something could not be checked.
 */
export type GateReason =
  | "Passed"
  | "GateMisconfigured"
  | "KeyInvalid"
  | "TrustedRootInvalid"
  | "SignatureMissing"
  | "SignatureInvalid"
  | "CveReportMissing"
  | "ReportInvalid"
  | "VulnerabilitiesFound"
  | "SbomMissing"
  | "ReferrersUnavailable"
  | "ArtifactUnavailable";

/** A finding at or above the vulnerability gate's threshold. */
export interface Finding {
  /** The rule id, usually a CVE or GHSA id. */
  id: string;
  /** Its severity. */
  severity: Severity;
}

/** The outcome of one gate, as data; words are made by `formatGateFailure`. */
export interface GateResult {
  /** Which gate. */
  gate: GateName;
  /** Whether it passed. */
  passed: boolean;
  /** Stable reason (`Passed` when passed). */
  reason: GateReason;
  /** What was found or what went wrong, without the gate's prefix. */
  detail: string;
  /** Vulnerability gate: the findings at or above the threshold. */
  cves?: Finding[];
}

/** A gate failure with a stable reason, turned into a failed {@linkcode GateResult}. */
export class GateError extends Error {
  /** Stable reason. */
  readonly reason: Exclude<GateReason, "Passed">;
  /** Findings, for the vulnerability gate. */
  readonly cves?: Finding[];

  /** Creates an error with a reason and an actionable message. */
  constructor(
    reason: Exclude<GateReason, "Passed">,
    message: string,
    opts: { cves?: Finding[]; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "GateError";
    this.reason = reason;
    if (opts.cves) this.cves = opts.cves;
  }
}

/** Largest signature payload, Sigstore bundle or SBOM descriptor read (1 MiB). */
export const MAX_SMALL_ARTIFACT_BYTES = 1024 * 1024;

/**
 * Largest vulnerability report read: 8 MiB (trivy's SARIF for a large image is 1–3 MiB).
 * Parsing costs about three times the size in heap, and the operator lives in 128 MiB.
 */
export const MAX_REPORT_BYTES = 8 * 1024 * 1024;

/** Most referrers of one kind (bundles, reports) a gate reads for one image. */
export const MAX_ARTIFACTS_READ = 20;

/**
 * Reads a blob of at most `limit` bytes, digest-verified. The declared size is checked before
 * any byte moves; a registry sending more than declared fails the digest check.
 */
export async function readBlob(
  client: RegistryClient,
  repo: Reference,
  blob: { digest: string; size: number },
  opts: CallOptions & { limit: number; what: string; reason: Exclude<GateReason, "Passed"> },
): Promise<Uint8Array> {
  if (blob.size > opts.limit) {
    throw new GateError(
      opts.reason,
      `${opts.what} ${blob.digest} is ${blob.size} bytes, more than the ${opts.limit} bytes read`,
    );
  }
  const { stream } = await client.getBlob(repo, blob.digest, { size: blob.size, signal: opts.signal });
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** An artifact manifest (a referrer or a cosign tag) and its validated layers. */
export interface ArtifactManifest {
  /** The manifest as fetched (digest-verified, size-capped by the client). */
  fetched: FetchedManifest;
  /** Its layers, validated as descriptors (annotations kept). */
  layers: Referrer[];
}

/** Fetches an artifact manifest by digest or tag and validates its layer descriptors. */
export async function getArtifactManifest(
  client: RegistryClient,
  ref: Reference,
  opts: CallOptions = {},
): Promise<ArtifactManifest> {
  const fetched = await client.getManifest(ref, opts);
  if (fetched.manifest.isIndex) {
    throw new OciError("Protocol", `${ref} is an index, expected an artifact manifest`, {
      reference: ref.toString(),
    });
  }
  const raw = fetched.manifest.json.layers;
  const list = Array.isArray(raw) ? raw : [];
  const layers = list.map((l, i) => parseReferrer(l, `${ref}: layers[${i}]`));
  return { fetched, layers };
}

/** Decodes bytes as a JSON document, or fails with the given reason naming `what`. */
export function parseJson(bytes: Uint8Array, what: string, reason: Exclude<GateReason, "Passed">): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new GateError(reason, `${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** Whether an error is a cancellation that must propagate instead of becoming a gate result. */
export function isAbort(e: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (e instanceof OciError && e.reason === "Aborted");
}
