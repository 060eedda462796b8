/**
 * A test Sigstore for keyless checks: our own CA as Fulcio (certificates with an embedded SCT
 * from our own CT log) and our own transparency log, all from `@sigstore/mock`, plus the
 * `trusted_root.json` that describes them — what a private-Sigstore user configures. Signs
 * cosign simple-signing payloads (the `.sig` layout, with the Rekor bundle annotation cosign
 * writes) and DSSE in-toto statements (the Sigstore bundle a `--new-bundle-format` referrer holds).
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { initializeCA, initializeCTLog, initializeTLog } from "@sigstore/mock";
import {
  CERTIFICATE_ANNOTATION,
  dssePae,
  REKOR_BUNDLE_ANNOTATION,
  SIGNATURE_ANNOTATION,
  type SignatureCandidate,
  type SimpleSignature,
} from "../../src/gates/cosign.ts";
import { pushBlob, pushRawManifest, type RegistryAccess } from "./fixtures.ts";

/** The OIDC issuer the test certificates name by default. */
export const ISSUER = "https://token.actions.githubusercontent.com";
/** The legacy Fulcio OIDC-issuer extension. */
export const ISSUER_OID = "1.3.6.1.4.1.57264.1.1";
/** Base64 of bytes. */
export const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const ec = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const der = (k: KeyObject) => new Uint8Array(k.export({ type: "spki", format: "der" }));

/** A running test Sigstore. */
export interface TestSigstore {
  /** The `trusted_root.json` describing this CA, CT log and transparency log. */
  trustedRoot: Record<string, unknown>;
  /** Signs a payload with a fresh key and certificate; logged unless `log: false`. */
  sign(payload: Uint8Array, opts?: { issuer?: string; log?: boolean }): Promise<SimpleSignature>;
  /** Signs an in-toto statement as a DSSE Sigstore bundle (v0.3), logged. */
  signDsse(statement: unknown): Promise<SignatureCandidate>;
}

/** Creates a test Sigstore; clocks set the CA's and the log's time (default now). */
export async function testSigstore(opts: { caClock?: Date; logClock?: Date } = {}): Promise<TestSigstore> {
  const caKeys = ec();
  const ctKeys = ec();
  const logKeys = ec();
  const ctLog = await initializeCTLog(ctKeys, opts.caClock);
  const ca = await initializeCA(caKeys, ctLog, opts.caClock);
  const tlog = await initializeTLog("https://rekor.test", logKeys, opts.logClock);
  const start = { start: "2020-01-01T00:00:00Z" };
  const trustedRoot = {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [{
      baseUrl: "https://rekor.test",
      hashAlgorithm: "SHA2_256",
      publicKey: {
        rawBytes: b64(der(logKeys.publicKey)),
        keyDetails: "PKIX_ECDSA_P256_SHA_256",
        validFor: start,
      },
      logId: { keyId: b64(createHash("sha256").update(der(logKeys.publicKey)).digest()) },
    }],
    certificateAuthorities: [{
      subject: { organization: "test", commonName: "test-fulcio" },
      uri: "https://fulcio.test",
      certChain: { certificates: [{ rawBytes: b64(new Uint8Array(ca.rootCertificate.buffer)) }] },
      validFor: start,
    }],
    ctlogs: [{
      baseUrl: "https://ctlog.test",
      hashAlgorithm: "SHA2_256",
      publicKey: { rawBytes: b64(ctLog.publicKey), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor: start },
      logId: { keyId: b64(new Uint8Array(ctLog.logID.buffer)) },
    }],
    timestampAuthorities: [],
  };
  async function certFor(key: KeyObject, issuer: string): Promise<string> {
    const cert = await ca.issueCertificate({
      publicKey: der(key),
      subjectAltName: "dev@example.com",
      extensions: [{ oid: ISSUER_OID, value: issuer, legacy: true }],
    });
    const body = b64(new Uint8Array(cert.buffer)).replace(/.{64}/g, "$&\n");
    return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
  }
  return {
    trustedRoot,
    async sign(payload, o = {}) {
      const signer = ec();
      const certificate = await certFor(signer.publicKey, o.issuer ?? ISSUER);
      const signature = new Uint8Array(sign("sha256", payload, signer.privateKey));
      const c: SimpleSignature = {
        kind: "simple-signing",
        where: "tag sha256-x.sig layer 0",
        payload,
        signature,
        certificate,
      };
      if (o.log === false) return c;
      const entries = await tlog.log({
        apiVersion: "0.0.1",
        kind: "hashedrekord",
        spec: {
          signature: {
            content: b64(signature),
            publicKey: { content: b64(new TextEncoder().encode(certificate)) },
          },
          data: { hash: { algorithm: "sha256", value: createHash("sha256").update(payload).digest("hex") } },
        },
      });
      const entry = Object.values(entries)[0] as Record<string, unknown>;
      const verification = entry.verification as { signedEntryTimestamp: string };
      // The `dev.sigstore.cosign/bundle` annotation cosign writes.
      c.rekorBundle = JSON.stringify({
        SignedEntryTimestamp: verification.signedEntryTimestamp,
        Payload: {
          body: entry.body,
          integratedTime: entry.integratedTime,
          logIndex: entry.logIndex,
          logID: entry.logID,
        },
      });
      return c;
    },
    async signDsse(statement) {
      const signer = ec();
      const certificate = await certFor(signer.publicKey, ISSUER);
      const body = new TextEncoder().encode(JSON.stringify(statement));
      const type = "application/vnd.in-toto+json";
      const sig = new Uint8Array(sign("sha256", dssePae(type, body), signer.privateKey));
      const entries = await tlog.log({
        apiVersion: "0.0.1",
        kind: "dsse",
        spec: {
          envelopeHash: {
            algorithm: "sha256",
            value: createHash("sha256").update(
              JSON.stringify({ payload: b64(body), payloadType: type, signatures: [{ sig: b64(sig) }] }),
            ).digest("hex"),
          },
          payloadHash: { algorithm: "sha256", value: createHash("sha256").update(body).digest("hex") },
          signatures: [{ signature: b64(sig), verifier: b64(new TextEncoder().encode(certificate)) }],
        },
      });
      const entry = Object.values(entries)[0] as Record<string, unknown>;
      const verification = entry.verification as {
        signedEntryTimestamp: string;
        inclusionProof: {
          logIndex: number;
          treeSize: number;
          rootHash: string;
          hashes: string[];
          checkpoint: string;
        };
      };
      const proof = verification.inclusionProof;
      const certDer = certificate.replace(/-----[A-Z ]+-----|\s/g, "");
      return {
        kind: "bundle",
        where: "referrer sha256:…",
        bundle: {
          mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
          verificationMaterial: {
            certificate: { rawBytes: certDer },
            tlogEntries: [{
              logIndex: String(entry.logIndex),
              logId: { keyId: b64(Buffer.from(String(entry.logID), "hex")) },
              kindVersion: { kind: "dsse", version: "0.0.1" },
              integratedTime: String(entry.integratedTime),
              inclusionPromise: { signedEntryTimestamp: verification.signedEntryTimestamp },
              inclusionProof: {
                logIndex: String(proof.logIndex),
                rootHash: b64(Buffer.from(proof.rootHash, "hex")),
                treeSize: String(proof.treeSize),
                hashes: proof.hashes,
                checkpoint: { envelope: proof.checkpoint },
              },
              canonicalizedBody: entry.body,
            }],
          },
          dsseEnvelope: { payload: b64(body), payloadType: type, signatures: [{ sig: b64(sig), keyid: "" }] },
        },
      };
    },
  };
}

/** cosign's simple-signing payload for a digest. */
export function simpleSigningPayload(digest: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": "127.0.0.1:5000/app" },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature",
    },
    optional: null,
  }));
}

/**
 * Pushes `signature` of the image at `digest` in cosign's `.sig` layout, as cosign writes a
 * keyless signature: the tag `sha256-<hex>.sig`, one simple-signing layer carrying the
 * signature, certificate and Rekor bundle annotations.
 */
export async function pushSigLayout(
  reg: RegistryAccess,
  opts: { repository: string; digest: string; signature: SimpleSignature },
): Promise<void> {
  const sig = opts.signature;
  const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const payload = await pushBlob(reg, opts.repository, sig.payload);
  const config = await pushBlob(reg, opts.repository, enc({ architecture: "", os: "" }));
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      ...payload,
      annotations: {
        [SIGNATURE_ANNOTATION]: b64(sig.signature),
        [CERTIFICATE_ANNOTATION]: sig.certificate!,
        [REKOR_BUNDLE_ANNOTATION]: sig.rekorBundle!,
      },
    }],
  };
  const tag = `${opts.digest.replace(":", "-")}.sig`;
  await pushRawManifest(reg, opts.repository, tag, enc(manifest), manifest.mediaType);
}
