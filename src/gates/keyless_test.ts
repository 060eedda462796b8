/**
 * Keyless verification against a test Sigstore: our own CA as Fulcio, our own CT log and our
 * own transparency log (all from `@sigstore/mock`), described by a `trusted_root.json` built
 * here — the same path a private-Sigstore or air-gapped user takes.
 */
import assert from "node:assert/strict";
import { GateError } from "./artifacts.ts";
import { COSIGN_SIGN_PREDICATE, type SignatureCandidate, type SimpleSignature } from "./cosign.ts";
import { ISSUER, simpleSigningPayload as payload, testSigstore } from "../../tests/harness/sigstore.ts";
import {
  bundleFromSimpleSigning,
  publicGoodTrustedRoot,
  trustMaterialFrom,
  verifyCandidateKeyless,
} from "./keyless.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
const OTHER = "sha256:" + "cd".repeat(32);

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
