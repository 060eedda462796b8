/**
 * Keyless verification against a test Sigstore: our own CA as Fulcio, our own CT log and our
 * own transparency log (all from `@sigstore/mock`), described by a `trusted_root.json` built
 * here — the same path a private-Sigstore or air-gapped user takes.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { initializeCA, initializeCTLog, initializeTLog } from "@sigstore/mock";
import { GateError } from "./artifacts.ts";
import { COSIGN_SIGN_PREDICATE, dssePae, type SignatureCandidate, type SimpleSignature } from "./cosign.ts";
import {
  bundleFromSimpleSigning,
  publicGoodTrustedRoot,
  trustMaterialFrom,
  verifyCandidateKeyless,
} from "./keyless.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
const OTHER = "sha256:" + "cd".repeat(32);
const ISSUER = "https://token.actions.githubusercontent.com";
const ISSUER_OID = "1.3.6.1.4.1.57264.1.1";
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const ec = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const der = (k: KeyObject) => new Uint8Array(k.export({ type: "spki", format: "der" }));

interface TestSigstore {
  trustedRoot: Record<string, unknown>;
  sign(payload: Uint8Array, opts?: { issuer?: string; log?: boolean }): Promise<SimpleSignature>;
  signDsse(statement: unknown): Promise<SignatureCandidate>;
}

async function testSigstore(opts: { caClock?: Date; logClock?: Date } = {}): Promise<TestSigstore> {
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

function payload(digest: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": "127.0.0.1:5000/app" },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature",
    },
    optional: null,
  }));
}

function fails(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof GateError, `expected GateError, got ${e}`);
    assert.equal(e.reason, "SignatureInvalid");
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("keyless (.sig layout): a signature from the trusted CA, logged, with the issuer passes", async () => {
  const s = await testSigstore();
  const trust = trustMaterialFrom(s.trustedRoot);
  const c = await s.sign(payload(DIGEST));
  assert.match(
    verifyCandidateKeyless(c, { digest: DIGEST, issuer: ISSUER, trust }),
    /keyless signature by dev@example.com from issuer https:\/\/token.actions/,
  );
  // The same signature checked for another digest, or with another issuer, fails.
  fails(() => verifyCandidateKeyless(c, { digest: OTHER, issuer: ISSUER, trust }), /signature is for/);
  fails(
    () => verifyCandidateKeyless(c, { digest: DIGEST, issuer: "https://accounts.google.com", trust }),
    /issuer/i,
  );
});

Deno.test("keyless: issuer mismatch, expired certificate, missing tlog entry and a wrong root each fail", async () => {
  const s = await testSigstore();
  const trust = trustMaterialFrom(s.trustedRoot);
  const opts = { digest: DIGEST, issuer: ISSUER, trust };
  const wrongIssuer = await s.sign(payload(DIGEST), { issuer: "https://evil.example" });
  fails(() => verifyCandidateKeyless(wrongIssuer, opts), /issuer/i);
  const unlogged = await s.sign(payload(DIGEST), { log: false });
  fails(() => verifyCandidateKeyless(unlogged, opts), /no transparency log entry/);
  const otherRoot = await (await testSigstore()).sign(payload(DIGEST));
  fails(() => verifyCandidateKeyless(otherRoot, opts), /certificate|chain|log/i);
  // The mock's root is valid from now on, so times are in the near future. A certificate
  // valid for 10 minutes from +1 min, logged an hour later: expired when logged.
  const soon = new Date(Date.now() + 60_000);
  const expired = await testSigstore({ caClock: soon, logClock: new Date(Date.now() + 3600_000) });
  const late = await expired.sign(payload(DIGEST));
  fails(
    () => verifyCandidateKeyless(late, { ...opts, trust: trustMaterialFrom(expired.trustedRoot) }),
    /certificate chain/i,
  );
  // Control: the same kind of certificate logged while it was valid passes.
  const inTime = await testSigstore({ caClock: soon, logClock: new Date(Date.now() + 120_000) });
  const timely = await inTime.sign(payload(DIGEST));
  verifyCandidateKeyless(timely, { ...opts, trust: trustMaterialFrom(inTime.trustedRoot) });
  // A tampered payload: the signature (and the logged digest) no longer match.
  const good = await s.sign(payload(OTHER));
  fails(
    () => verifyCandidateKeyless({ ...good, payload: payload(DIGEST) }, opts),
    /signature|digest|mismatch/i,
  );
});

Deno.test("keyless (bundle referrer): a DSSE image-signature statement passes; another subject fails", async () => {
  const s = await testSigstore();
  const trust = trustMaterialFrom(s.trustedRoot);
  const statement = (digest: string) => ({
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "app", digest: { sha256: digest.slice(7) } }],
    predicateType: COSIGN_SIGN_PREDICATE,
    predicate: {},
  });
  const good = await s.signDsse(statement(DIGEST));
  assert.match(verifyCandidateKeyless(good, { digest: DIGEST, issuer: ISSUER, trust }), /dev@example.com/);
  fails(
    () => verifyCandidateKeyless(good, { digest: OTHER, issuer: ISSUER, trust }),
    /subject does not name/,
  );
  const junk: SignatureCandidate = { kind: "bundle", where: "r", bundle: { mediaType: "nope" } };
  fails(
    () => verifyCandidateKeyless(junk, { digest: DIGEST, issuer: ISSUER, trust }),
    /malformed Sigstore bundle/,
  );
});

Deno.test("trusted roots: the shipped public-good root loads; junk and empty roots are TrustedRootInvalid", () => {
  const material = trustMaterialFrom(publicGoodTrustedRoot());
  assert.ok(material.certificateAuthorities.length >= 1);
  assert.ok(material.tlogs.length >= 1);
  for (const junk of [{}, { tlogs: [] }, { certificateAuthorities: "x" }]) {
    assert.throws(
      () => trustMaterialFrom(junk),
      (e) => e instanceof GateError && e.reason === "TrustedRootInvalid",
    );
  }
});

Deno.test("bundleFromSimpleSigning: missing or junk Rekor bundles are clear errors", () => {
  const base: SimpleSignature = {
    kind: "simple-signing",
    where: "w",
    payload: payload(DIGEST),
    signature: new Uint8Array(8),
    certificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
  };
  fails(() => bundleFromSimpleSigning({ ...base, certificate: undefined }), /no signing certificate/);
  fails(() => bundleFromSimpleSigning(base), /no transparency log entry/);
  fails(() => bundleFromSimpleSigning({ ...base, rekorBundle: "{" }), /not JSON/);
  fails(() => bundleFromSimpleSigning({ ...base, rekorBundle: "{}" }), /lacks SignedEntryTimestamp/);
});
