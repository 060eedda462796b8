/**
 * The cosign gate, keyless half: the signing certificate chains to a trusted Fulcio root, its
 * OIDC issuer extension equals `keylessIssuer`, its SCT verifies against a trusted CT log, and
 * the signature is in the transparency log (Rekor SET or inclusion proof, verified against the
 * trusted log keys, its time inside the certificate's validity). All of it is done by the
 * Sigstore project's own libraries (`@sigstore/verify`, `@sigstore/bundle`); this module only
 * brings cosign's storage formats to them.
 *
 * This module is imported lazily (by `mod.ts`, only when a spec enables keyless checks): the
 * Sigstore libraries are not loaded by an operator that does not use them.
 *
 * Trusted root: the Sigstore public-good `trusted_root.json` shipped in `@sigstore/tuf`'s
 * seeds by default, or one the user supplies (private Sigstore, air-gapped clusters).
 * @module
 */

import { Buffer } from "node:buffer";
import nodeCrypto, { createHash } from "node:crypto";
import { bundleFromJSON } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toSignedEntity, toTrustMaterial, type TrustMaterial, Verifier } from "@sigstore/verify";
import seeds from "@sigstore/tuf/seeds.json" with { type: "json" };
import type { CallOptions, Reference, RegistryClient } from "../oci/mod.ts";
import type { Referrer } from "../oci/referrers.ts";
import { GateError } from "./artifacts.ts";
import {
  checkSimpleSigningPayload,
  checkStatement,
  collectSignatures,
  dsseEnvelope,
  type SignatureCandidate,
  type SimpleSignature,
  verdict,
} from "./cosign.ts";

const PUBLIC_GOOD_TUF = "https://tuf-repo-cdn.sigstore.dev";

/**
 * Deno's `node:crypto` throws "no default digest" for `verify(undefined, data, ecKey, sig)`,
 * where Node (OpenSSL) uses SHA-256 for EC and RSA keys. `@sigstore/core` relies on that
 * default for SETs, checkpoints and signatures, so without this every ECDSA check would fail.
 * Only that exact failure is retried with SHA-256 (Node's behaviour); when the runtime
 * defaults correctly, nothing changes. Installed once, when this (lazily loaded) module loads.
 */
function defaultDigestLikeNode(): void {
  const original = nodeCrypto.verify;
  const probe = nodeCrypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const data = new Uint8Array(1);
  const sig = nodeCrypto.sign("sha256", data, probe.privateKey);
  try {
    original(undefined as unknown as null, data, probe.publicKey, sig);
    return;
  } catch {
    // The runtime has no default digest: install the fallback below.
  }
  const patched = (algorithm: string | null | undefined, ...rest: unknown[]) => {
    const call = original as unknown as (a: string | null | undefined, ...r: unknown[]) => boolean;
    if (algorithm !== undefined && algorithm !== null) return call(algorithm, ...rest);
    try {
      return call(algorithm, ...rest);
    } catch (e) {
      if (!/no default digest/i.test((e as Error).message)) throw e;
      return call("sha256", ...rest);
    }
  };
  Object.defineProperty(nodeCrypto, "verify", { value: patched, writable: true, configurable: true });
}
defaultDigestLikeNode();

/** The Sigstore public-good trusted root as shipped in the pinned `@sigstore/tuf` package. */
export function publicGoodTrustedRoot(): unknown {
  const target = (seeds as Record<string, { targets: Record<string, string> }>)[PUBLIC_GOOD_TUF]
    ?.targets["trusted_root.json"];
  if (!target) {
    throw new GateError("TrustedRootInvalid", "the shipped Sigstore seeds have no trusted_root.json");
  }
  return JSON.parse(new TextDecoder().decode(Buffer.from(target, "base64")));
}

/**
 * Turns a `trusted_root.json` document into trust material, failing with TrustedRootInvalid
 * when it has no certificate authority or no transparency log (nothing could verify).
 */
export function trustMaterialFrom(json: unknown): TrustMaterial {
  let material: TrustMaterial;
  try {
    material = toTrustMaterial(TrustedRoot.fromJSON(json));
  } catch (e) {
    throw new GateError(
      "TrustedRootInvalid",
      `the trusted root is not a valid trusted_root.json: ${(e as Error).message}`,
    );
  }
  if (material.certificateAuthorities.length === 0 || material.tlogs.length === 0) {
    throw new GateError(
      "TrustedRootInvalid",
      "the trusted root lists no certificate authority or no transparency log; keyless signatures cannot be checked",
    );
  }
  return material;
}

/** Reads and parses a `trusted_root.json` file; any failure is TrustedRootInvalid naming the path. */
export async function readTrustedRoot(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new GateError(
      "TrustedRootInvalid",
      `cannot read the Sigstore trusted root ${path}: ${(e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new GateError(
      "TrustedRootInvalid",
      `the Sigstore trusted root ${path} is not JSON: ${(e as Error).message}`,
    );
  }
}

let publicGood: TrustMaterial | undefined;

function pemToDer(pem: string, what: string): Uint8Array {
  const m = pem.match(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/);
  if (!m) throw new GateError("SignatureInvalid", `${what} is not a PEM certificate`);
  return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/**
 * Builds a Sigstore v0.1 bundle from cosign's `.sig` layout: the certificate annotation and
 * the Rekor bundle annotation (SET plus the logged entry). Without a Rekor bundle there is no
 * transparency-log evidence and the signature cannot be verified keyless.
 */
export function bundleFromSimpleSigning(c: SimpleSignature): Record<string, unknown> {
  if (!c.certificate) {
    throw new GateError("SignatureInvalid", "no signing certificate (was it signed with a key?)");
  }
  if (!c.rekorBundle) {
    throw new GateError("SignatureInvalid", "no transparency log entry (signed with --tlog-upload=false?)");
  }
  let rekor: { SignedEntryTimestamp?: unknown; Payload?: Record<string, unknown> };
  try {
    rekor = JSON.parse(c.rekorBundle);
  } catch {
    throw new GateError("SignatureInvalid", "the Rekor bundle annotation is not JSON");
  }
  const p = rekor?.Payload;
  if (
    typeof rekor?.SignedEntryTimestamp !== "string" || !p || typeof p.body !== "string" ||
    typeof p.logID !== "string" || typeof p.logIndex !== "number" || typeof p.integratedTime !== "number"
  ) {
    throw new GateError(
      "SignatureInvalid",
      "the Rekor bundle annotation lacks SignedEntryTimestamp or Payload fields",
    );
  }
  let body: { kind?: unknown; apiVersion?: unknown };
  try {
    body = JSON.parse(Buffer.from(p.body, "base64").toString("utf8"));
  } catch {
    throw new GateError("SignatureInvalid", "the logged entry's body is not JSON");
  }
  return {
    mediaType: "application/vnd.dev.sigstore.bundle+json;version=0.1",
    verificationMaterial: {
      x509CertificateChain: { certificates: [{ rawBytes: b64(pemToDer(c.certificate, "the certificate")) }] },
      tlogEntries: [{
        logIndex: String(p.logIndex),
        logId: { keyId: b64(Buffer.from(p.logID, "hex")) },
        kindVersion: { kind: String(body.kind), version: String(body.apiVersion) },
        integratedTime: String(p.integratedTime),
        inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
        canonicalizedBody: p.body,
      }],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: "SHA2_256", digest: b64(createHash("sha256").update(c.payload).digest()) },
      signature: b64(c.signature),
    },
  };
}

/**
 * Verifies one candidate keyless: the Sigstore verifier (chain, SCT, tlog, signature, issuer
 * policy), then that what is signed names `digest`. Returns the signer's identity.
 */
export function verifyCandidateKeyless(
  c: SignatureCandidate,
  opts: { digest: string; issuer: string; trust: TrustMaterial },
): string {
  const json = c.kind === "bundle" ? c.bundle : bundleFromSimpleSigning(c);
  let bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (e) {
    throw new GateError("SignatureInvalid", `malformed Sigstore bundle: ${(e as Error).message}`);
  }
  const entity = c.kind === "bundle"
    ? toSignedEntity(bundle)
    : toSignedEntity(bundle, Buffer.from(c.payload));
  const verifier = new Verifier(opts.trust, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
  let signer;
  try {
    signer = verifier.verify(entity, { extensions: { issuer: opts.issuer } });
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new GateError("SignatureInvalid", `${code ? `${code}: ` : ""}${(e as Error).message}`);
  }
  if (c.kind === "bundle") {
    const env = dsseEnvelope(c.bundle);
    checkStatement(env.payloadType, env.payload, opts.digest);
  } else {
    checkSimpleSigningPayload(c.payload, opts.digest);
  }
  const san = signer.identity?.subjectAlternativeName;
  return `keyless signature by ${san ?? "unknown identity"} from issuer ${opts.issuer}`;
}

/** Options for {@linkcode verifyKeyless}. */
export interface KeylessOptions extends CallOptions {
  /** The OIDC issuer the certificate must name (`keylessIssuer`). */
  issuer: string;
  /** A parsed `trusted_root.json`; the shipped public-good root when absent. */
  trustedRoot?: unknown;
  /** A `trusted_root.json` file to read when `trustedRoot` is absent (private Sigstore). */
  trustedRootPath?: string;
  /** The subject's referrers, when the caller lists them anyway (shared with other gates). */
  referrers?: () => Promise<Referrer[]>;
}

/** Keyless cosign check of `subject` (pinned by digest); returns what passed. */
export async function verifyKeyless(
  client: RegistryClient,
  subject: Reference,
  opts: KeylessOptions,
): Promise<string> {
  const trust = opts.trustedRoot !== undefined
    ? trustMaterialFrom(opts.trustedRoot)
    : opts.trustedRootPath
    ? trustMaterialFrom(await readTrustedRoot(opts.trustedRootPath))
    : (publicGood ??= trustMaterialFrom(publicGoodTrustedRoot()));
  const collected = await collectSignatures(client, subject, opts);
  return verdict(
    subject,
    collected,
    (c) => verifyCandidateKeyless(c, { digest: subject.digest!, issuer: opts.issuer, trust }),
  );
}
