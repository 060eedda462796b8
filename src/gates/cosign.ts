/**
 * The cosign gate, key-based half (the keyless half is `keyless.ts`, loaded only when used).
 *
 * Signatures are collected from both places cosign writes them:
 * - the `sha256-<hex>.sig` tag: one layer per signature, the layer is the simple-signing
 *   payload, its `dev.cosignproject.cosign/signature` annotation the base64 signature;
 * - Sigstore bundles stored as referrers (`cosign sign --new-bundle-format`): a DSSE envelope
 *   around an in-toto statement with predicate `https://sigstore.dev/cosign/sign/v1` whose
 *   subject is the image digest.
 * A signature counts when it verifies with the key AND what it signs names the source digest
 * (`critical.image.docker-manifest-digest`, or the statement's subject). One such signature
 * passes the gate (as cosign); no transparency log is required for key-based checks (as
 * upstream). Keys: PEM ECDSA P-256/P-384/P-521, RSA (2048 bits or more), Ed25519.
 * @module
 */

import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { type CallOptions, OciError, type Reference, type RegistryClient } from "../oci/mod.ts";
import { cosignTag, EMPTY_CONFIG_MEDIA_TYPE, listReferrers, type Referrer } from "../oci/referrers.ts";
import {
  GateError,
  getArtifactManifest,
  isAbort,
  MAX_ARTIFACTS_READ,
  MAX_SMALL_ARTIFACT_BYTES,
  parseJson,
  readBlob,
} from "./artifacts.ts";

/** Media type of cosign's simple-signing payload layers. */
export const SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Layer annotation holding the base64 signature. */
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** Layer annotation holding the PEM signing certificate (keyless). */
export const CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate";
/** Layer annotation holding the PEM certificate chain (keyless). */
export const CHAIN_ANNOTATION = "dev.sigstore.cosign/chain";
/** Layer annotation holding the Rekor bundle (SET and log entry) as JSON. */
export const REKOR_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle";
/** Artifact types of Sigstore bundles start with this. */
export const SIGSTORE_BUNDLE_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle";
/** The in-toto predicate cosign uses for image signatures in bundles. */
export const COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

/** A signature from the `.sig` tag layout. */
export interface SimpleSignature {
  /** Discriminator. */
  kind: "simple-signing";
  /** Where it was found, for messages: `tag sha256-….sig layer 0`. */
  where: string;
  /** The payload bytes exactly as stored (what was signed). */
  payload: Uint8Array;
  /** The raw signature. */
  signature: Uint8Array;
  /** PEM certificate, when signed keyless. */
  certificate?: string;
  /** PEM chain, when signed keyless. */
  chain?: string;
  /** Rekor bundle JSON, when logged. */
  rekorBundle?: string;
}

/** A Sigstore bundle stored as a referrer. */
export interface BundleSignature {
  /** Discriminator. */
  kind: "bundle";
  /** Where it was found: `referrer sha256:…`. */
  where: string;
  /** The bundle JSON. */
  bundle: Record<string, unknown>;
}

/** A signature to check. */
export type SignatureCandidate = SimpleSignature | BundleSignature;

/** Signatures found next to an image, and what could not be read. */
export interface CollectedSignatures {
  /** Readable signatures. */
  candidates: SignatureCandidate[];
  /** Why other signatures (or a whole source) could not be read. */
  problems: string[];
}

function b64(s: string, what: string): Uint8Array {
  try {
    const bin = atob(s.replace(/\s+/g, ""));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new GateError("SignatureInvalid", `${what} is not valid base64`);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Collects cosign signatures of `subject` (pinned by digest): the `.sig` tag's layers and the
 * Sigstore bundle referrers. Unreadable ones are listed as problems, not thrown; cancellation
 * is thrown.
 */
export async function collectSignatures(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions & { referrers?: () => Promise<Referrer[]> } = {},
): Promise<CollectedSignatures> {
  const digest = subject.digest!;
  const out: CollectedSignatures = { candidates: [], problems: [] };
  const tag = cosignTag(digest, "sig");
  try {
    const sig = await getArtifactManifest(client, subject.withTag(tag), opts);
    for (const [i, layer] of sig.layers.slice(0, MAX_ARTIFACTS_READ).entries()) {
      const where = `tag ${tag} layer ${i}`;
      try {
        const encoded = layer.annotations?.[SIGNATURE_ANNOTATION];
        if (!encoded) throw new GateError("SignatureInvalid", "no signature annotation");
        const signature = b64(encoded, "the signature annotation");
        const payload = await readBlob(client, subject, layer, {
          limit: MAX_SMALL_ARTIFACT_BYTES,
          what: "signature payload",
          reason: "SignatureInvalid",
          signal: opts.signal,
        });
        const c: SimpleSignature = { kind: "simple-signing", where, payload, signature };
        const a = layer.annotations ?? {};
        if (a[CERTIFICATE_ANNOTATION]) c.certificate = a[CERTIFICATE_ANNOTATION];
        if (a[CHAIN_ANNOTATION]) c.chain = a[CHAIN_ANNOTATION];
        if (a[REKOR_BUNDLE_ANNOTATION]) c.rekorBundle = a[REKOR_BUNDLE_ANNOTATION];
        out.candidates.push(c);
      } catch (e) {
        if (isAbort(e, opts.signal)) throw e;
        out.problems.push(`${where}: ${message(e)}`);
      }
    }
  } catch (e) {
    if (isAbort(e, opts.signal)) throw e;
    if (!(e instanceof OciError && e.reason === "NotFound")) out.problems.push(`tag ${tag}: ${message(e)}`);
  }
  try {
    const listed = {
      referrers: opts.referrers
        ? await opts.referrers()
        : (await listReferrers(client, subject, opts)).referrers,
    };
    // go-containerregistry (so cosign) writes the config's media type (the empty one) as the
    // artifactType of fallback-index entries: such entries are read to learn their real type.
    const bundles = listed.referrers.filter((r) =>
      !r.artifactType || r.artifactType === EMPTY_CONFIG_MEDIA_TYPE ||
      r.artifactType.startsWith(SIGSTORE_BUNDLE_TYPE_PREFIX)
    );
    for (const r of bundles.slice(0, MAX_ARTIFACTS_READ)) {
      const where = `referrer ${r.digest}`;
      try {
        const m = await getArtifactManifest(client, subject.withDigest(r.digest), opts);
        const declared = m.fetched.manifest.json.artifactType;
        if (typeof declared !== "string" || !declared.startsWith(SIGSTORE_BUNDLE_TYPE_PREFIX)) continue;
        const layer = m.layers.find((l) => l.mediaType.startsWith(SIGSTORE_BUNDLE_TYPE_PREFIX)) ??
          m.layers[0];
        if (!layer) throw new GateError("SignatureInvalid", "the bundle artifact has no layer");
        const bytes = await readBlob(client, subject, layer, {
          limit: MAX_SMALL_ARTIFACT_BYTES,
          what: "Sigstore bundle",
          reason: "SignatureInvalid",
          signal: opts.signal,
        });
        const bundle = parseJson(bytes, "the Sigstore bundle", "SignatureInvalid");
        if (typeof bundle !== "object" || bundle === null || Array.isArray(bundle)) {
          throw new GateError("SignatureInvalid", "the Sigstore bundle is not a JSON object");
        }
        out.candidates.push({ kind: "bundle", where, bundle: bundle as Record<string, unknown> });
      } catch (e) {
        if (isAbort(e, opts.signal)) throw e;
        out.problems.push(`${where}: ${message(e)}`);
      }
    }
  } catch (e) {
    if (isAbort(e, opts.signal)) throw e;
    out.problems.push(`referrers: ${message(e)}`);
  }
  return out;
}

const CURVE_HASHES: Record<string, string[]> = {
  prime256v1: ["sha256"],
  secp384r1: ["sha384", "sha256"],
  secp521r1: ["sha512", "sha256"],
};

/** A parsed verification key and the hash algorithms its signatures may use. */
export interface VerificationKey {
  /** The key. */
  key: KeyObject;
  /** Hashes tried in order (`null` for Ed25519, which hashes internally). */
  hashes: (string | null)[];
  /** Human description, e.g. "ECDSA P-256". */
  description: string;
  /**
   * Ed25519 keys: a verifier of HashEdDSA (Ed25519ph) signatures, which cosign makes with
   * Ed25519 keys; set by {@linkcode loadPublicKey}.
   */
  prehashed?: (signature: Uint8Array, data: Uint8Array) => boolean;
}

/**
 * Parses a PEM public key (SPKI "PUBLIC KEY", or PKCS#1 "RSA PUBLIC KEY"). Unsupported types
 * (DSA, X25519, secp256k1, RSA under 2048 bits…) fail with reason KeyInvalid.
 */
export function parsePublicKey(pem: string): VerificationKey {
  if (!/-----BEGIN [A-Z ]*PUBLIC KEY-----/.test(pem)) {
    throw new GateError(
      "KeyInvalid",
      'failed to parse public key: expected a PEM block "-----BEGIN PUBLIC KEY-----" (cosign.pub)',
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new GateError("KeyInvalid", `failed to parse public key: ${message(e)}`);
  }
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === "ec") {
    const curve = details.namedCurve ?? "";
    const hashes = CURVE_HASHES[curve];
    if (!hashes) {
      throw new GateError(
        "KeyInvalid",
        `unsupported public key: ECDSA on curve ${curve || "unknown"}; supported are P-256, P-384, P-521`,
      );
    }
    const name = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }[curve];
    return { key, hashes, description: `ECDSA ${name}` };
  }
  if (type === "rsa") {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) {
      throw new GateError(
        "KeyInvalid",
        `unsupported public key: RSA with ${bits} bits; at least 2048 are needed`,
      );
    }
    return { key, hashes: ["sha256"], description: `RSA ${bits}` };
  }
  if (type === "ed25519") return { key, hashes: [null], description: "Ed25519" };
  throw new GateError(
    "KeyInvalid",
    `unsupported public key type ${
      type ?? "unknown"
    }; supported are ECDSA (P-256, P-384, P-521), RSA and Ed25519`,
  );
}

/** Whether `signature` over `data` verifies with the key (any of its allowed hashes). */
export function verifySignature(key: VerificationKey, data: Uint8Array, signature: Uint8Array): boolean {
  for (const hash of key.hashes) {
    try {
      if (verify(hash, data, key.key, signature)) return true;
    } catch {
      // A malformed signature (bad DER) simply does not verify.
    }
  }
  try {
    return key.prehashed?.(signature, data) ?? false;
  } catch {
    return false;
  }
}

/**
 * Parses a PEM public key like {@linkcode parsePublicKey}; for Ed25519 also loads (lazily, only
 * then) a verifier of the prehashed variant cosign signs with (`@noble/curves`' ed25519ph:
 * `node:crypto` verifies pure Ed25519 only).
 */
export async function loadPublicKey(pem: string): Promise<VerificationKey> {
  const key = parsePublicKey(pem);
  if (key.key.asymmetricKeyType !== "ed25519") return key;
  const { ed25519ph } = await import("@noble/curves/ed25519.js");
  const x = key.key.export({ format: "jwk" }).x;
  if (typeof x !== "string") {
    throw new GateError("KeyInvalid", "failed to parse public key: no Ed25519 point");
  }
  const raw = Uint8Array.from(atob(x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  return { ...key, prehashed: (signature, data) => ed25519ph.verify(signature, data, raw) };
}

/**
 * Checks that a simple-signing payload names `digest` in `critical.image.docker-manifest-digest`.
 */
export function checkSimpleSigningPayload(payload: Uint8Array, digest: string): void {
  const json = parseJson(payload, "the signature payload", "SignatureInvalid");
  const critical = (json as { critical?: { image?: Record<string, unknown> } } | null)?.critical;
  const signed = critical?.image?.["docker-manifest-digest"];
  if (typeof signed !== "string") {
    throw new GateError("SignatureInvalid", "the payload has no critical.image.docker-manifest-digest");
  }
  if (signed !== digest) {
    throw new GateError("SignatureInvalid", `the signature is for ${signed}, not ${digest}`);
  }
}

/** DSSE's pre-authentication encoding: what a DSSE signature is computed over. */
export function dssePae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = new TextEncoder().encode(payloadType);
  const head = new TextEncoder().encode(`DSSEv1 ${type.byteLength} ${payloadType} ${payload.byteLength} `);
  const out = new Uint8Array(head.byteLength + payload.byteLength);
  out.set(head);
  out.set(payload, head.byteLength);
  return out;
}

/** The DSSE envelope of a bundle: payload type, payload bytes and base64 signatures. */
export function dsseEnvelope(bundle: Record<string, unknown>): {
  payloadType: string;
  payload: Uint8Array;
  signatures: Uint8Array[];
} {
  const env = bundle.dsseEnvelope as Record<string, unknown> | undefined;
  if (typeof env !== "object" || env === null) {
    const kind = bundle.messageSignature ? "a message signature" : "no DSSE envelope";
    throw new GateError(
      "SignatureInvalid",
      `the bundle holds ${kind}; image signatures are DSSE in-toto statements (cosign sign --new-bundle-format)`,
    );
  }
  if (
    typeof env.payloadType !== "string" || typeof env.payload !== "string" || !Array.isArray(env.signatures)
  ) {
    throw new GateError(
      "SignatureInvalid",
      "the bundle's DSSE envelope lacks payloadType, payload or signatures",
    );
  }
  const signatures = env.signatures.map((s, i) => {
    const sig = (s as { sig?: unknown } | null)?.sig;
    if (typeof sig !== "string") throw new GateError("SignatureInvalid", `DSSE signatures[${i}] has no sig`);
    return b64(sig, `DSSE signatures[${i}]`);
  });
  return { payloadType: env.payloadType, payload: b64(env.payload, "the DSSE payload"), signatures };
}

/**
 * Checks that a DSSE payload is an in-toto statement with cosign's signing predicate whose
 * subject names `digest`.
 */
export function checkStatement(payloadType: string, payload: Uint8Array, digest: string): void {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new GateError(
      "SignatureInvalid",
      `the DSSE payload type is ${payloadType}, not ${IN_TOTO_PAYLOAD_TYPE}`,
    );
  }
  const st = parseJson(payload, "the in-toto statement", "SignatureInvalid") as
    | Record<string, unknown>
    | null;
  if (st?.predicateType !== COSIGN_SIGN_PREDICATE) {
    throw new GateError(
      "SignatureInvalid",
      `the statement's predicate is ${
        String(st?.predicateType)
      }, not an image signature (${COSIGN_SIGN_PREDICATE})`,
    );
  }
  const [algorithm, hex] = digest.split(":");
  const subjects = Array.isArray(st.subject) ? st.subject : [];
  const names = subjects.some((s) =>
    (s as { digest?: Record<string, unknown> } | null)?.digest?.[algorithm] === hex
  );
  if (!names) throw new GateError("SignatureInvalid", `the statement's subject does not name ${digest}`);
}

/** Verifies one candidate with a key; throws GateError(SignatureInvalid) saying why not. */
export function verifyCandidateWithKey(key: VerificationKey, c: SignatureCandidate, digest: string): void {
  if (c.kind === "simple-signing") {
    if (!verifySignature(key, c.payload, c.signature)) {
      throw new GateError("SignatureInvalid", "the signature does not verify with the given public key");
    }
    checkSimpleSigningPayload(c.payload, digest);
    return;
  }
  const env = dsseEnvelope(c.bundle);
  const pae = dssePae(env.payloadType, env.payload);
  if (!env.signatures.some((s) => verifySignature(key, pae, s))) {
    throw new GateError(
      "SignatureInvalid",
      "the bundle's signature does not verify with the given public key",
    );
  }
  checkStatement(env.payloadType, env.payload, digest);
}

/**
 * Picks the verdict over all candidates: the first that verifies passes; otherwise a failure
 * listing why each did not (bounded), or SignatureMissing when there were none.
 */
export function verdict(
  subject: Reference,
  collected: CollectedSignatures,
  check: (c: SignatureCandidate) => string,
): string {
  const problems = [...collected.problems];
  for (const c of collected.candidates) {
    try {
      return `${check(c)} (${c.where})`;
    } catch (e) {
      problems.push(`${c.where}: ${message(e)}`);
    }
  }
  if (problems.length === 0) {
    throw new GateError(
      "SignatureMissing",
      `no signatures found for ${subject}: neither a ${
        cosignTag(subject.digest!, "sig")
      } tag nor a Sigstore bundle referrer`,
    );
  }
  const shown = problems.slice(0, 5).join("; ") +
    (problems.length > 5 ? `; and ${problems.length - 5} more` : "");
  throw new GateError("SignatureInvalid", `no valid signatures found for ${subject}: ${shown}`);
}

/** Key-based cosign check of `subject` (pinned by digest); returns what passed. */
export async function verifyWithKey(
  client: RegistryClient,
  subject: Reference,
  opts: CallOptions & { publicKey: string; referrers?: () => Promise<Referrer[]> },
): Promise<string> {
  const key = await loadPublicKey(opts.publicKey);
  const collected = await collectSignatures(client, subject, opts);
  return verdict(subject, collected, (c) => {
    verifyCandidateWithKey(key, c, subject.digest!);
    return `signature verified with the ${key.description} public key`;
  });
}
