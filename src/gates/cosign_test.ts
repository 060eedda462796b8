import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { parseReference } from "../oci/mod.ts";
import { GateError } from "./artifacts.ts";
import {
  COSIGN_SIGN_PREDICATE,
  dssePae,
  loadPublicKey,
  parsePublicKey,
  type SignatureCandidate,
  verdict,
  verifyCandidateWithKey,
} from "./cosign.ts";

const DIGEST = "sha256:" + "ab".repeat(32);
const OTHER = "sha256:" + "cd".repeat(32);
const enc = (s: string) => new TextEncoder().encode(s);
const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));

type Kind = "P-256" | "P-384" | "RSA" | "Ed25519";

function keyPair(kind: Kind): { pub: string; priv: KeyObject; hash: string | null } {
  const pair = kind === "RSA"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : kind === "Ed25519"
    ? generateKeyPairSync("ed25519")
    : generateKeyPairSync("ec", { namedCurve: kind === "P-256" ? "prime256v1" : "secp384r1" });
  const hash = kind === "Ed25519" ? null : kind === "P-384" ? "sha384" : "sha256";
  return {
    pub: pair.publicKey.export({ type: "spki", format: "pem" }) as string,
    priv: pair.privateKey,
    hash,
  };
}

/** cosign's simple-signing payload, byte for byte as cosign writes it. */
function payload(digest: string): Uint8Array {
  return enc(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": "127.0.0.1:5000/app" },
        image: { "docker-manifest-digest": digest },
        type: "cosign container image signature",
      },
      optional: null,
    }),
  );
}

function simple(p: Uint8Array, priv: KeyObject, hash: string | null): SignatureCandidate {
  return {
    kind: "simple-signing",
    where: "tag sha256-x.sig layer 0",
    payload: p,
    signature: new Uint8Array(sign(hash, p, priv)),
  };
}

function dsseBundle(
  priv: KeyObject,
  hash: string | null,
  statement: Record<string, unknown>,
): SignatureCandidate {
  const body = enc(JSON.stringify(statement));
  const type = "application/vnd.in-toto+json";
  const sig = new Uint8Array(sign(hash, dssePae(type, body), priv));
  return {
    kind: "bundle",
    where: "referrer sha256:…",
    bundle: {
      mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
      verificationMaterial: { publicKey: { hint: "" } },
      dsseEnvelope: { payload: b64(body), payloadType: type, signatures: [{ sig: b64(sig), keyid: "" }] },
    },
  };
}

function statement(digest: string, predicateType = COSIGN_SIGN_PREDICATE) {
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "127.0.0.1:5000/app", digest: { sha256: digest.slice(7) } }],
    predicateType,
    predicate: {},
  };
}

function rejectsWith(fn: () => unknown, reason: string, pattern: RegExp) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof GateError, `expected GateError, got ${e}`);
    assert.equal(e.reason, reason);
    assert.match(e.message, pattern);
    return true;
  });
}

for (const kind of ["P-256", "P-384", "RSA", "Ed25519"] as const) {
  Deno.test(`cosign key (${kind}): a good signature passes; another key, another digest, a tampered payload fail`, () => {
    const { pub, priv, hash } = keyPair(kind);
    const key = parsePublicKey(pub);
    assert.match(key.description, kind === "RSA" ? /^RSA 2048$/ : new RegExp(kind));
    verifyCandidateWithKey(key, simple(payload(DIGEST), priv, hash), DIGEST);

    const other = keyPair(kind);
    rejectsWith(
      () => verifyCandidateWithKey(key, simple(payload(DIGEST), other.priv, other.hash), DIGEST),
      "SignatureInvalid",
      /does not verify with the given public key/,
    );
    rejectsWith(
      () => verifyCandidateWithKey(key, simple(payload(OTHER), priv, hash), DIGEST),
      "SignatureInvalid",
      new RegExp(`signature is for ${OTHER}, not ${DIGEST}`),
    );
    const good = simple(payload(OTHER), priv, hash) as Extract<
      SignatureCandidate,
      { kind: "simple-signing" }
    >;
    // The payload edited to name the wanted digest after signing: the signature no longer covers it.
    const tampered = { ...good, payload: payload(DIGEST) };
    rejectsWith(() => verifyCandidateWithKey(key, tampered, DIGEST), "SignatureInvalid", /does not verify/);

    // The Sigstore bundle form (DSSE in-toto statement), as cosign --new-bundle-format writes it.
    verifyCandidateWithKey(key, dsseBundle(priv, hash, statement(DIGEST)), DIGEST);
    rejectsWith(
      () => verifyCandidateWithKey(key, dsseBundle(other.priv, other.hash, statement(DIGEST)), DIGEST),
      "SignatureInvalid",
      /bundle's signature does not verify/,
    );
    rejectsWith(
      () => verifyCandidateWithKey(key, dsseBundle(priv, hash, statement(OTHER)), DIGEST),
      "SignatureInvalid",
      /subject does not name/,
    );
  });
}

Deno.test("cosign bundle: an attestation with another predicate is not an image signature", () => {
  const { pub, priv, hash } = keyPair("P-256");
  rejectsWith(
    () =>
      verifyCandidateWithKey(
        parsePublicKey(pub),
        dsseBundle(priv, hash, statement(DIGEST, "https://spdx.dev/Document")),
        DIGEST,
      ),
    "SignatureInvalid",
    /predicate is https:\/\/spdx.dev\/Document, not an image signature/,
  );
  const messageSig: SignatureCandidate = {
    kind: "bundle",
    where: "r",
    bundle: { messageSignature: { messageDigest: {}, signature: "" } },
  };
  rejectsWith(
    () => verifyCandidateWithKey(parsePublicKey(pub), messageSig, DIGEST),
    "SignatureInvalid",
    /message signature/,
  );
  const junk: SignatureCandidate = { kind: "bundle", where: "r", bundle: { dsseEnvelope: { payload: 1 } } };
  rejectsWith(
    () => verifyCandidateWithKey(parsePublicKey(pub), junk, DIGEST),
    "SignatureInvalid",
    /lacks payloadType/,
  );
});

Deno.test("parsePublicKey: junk, private keys and unsupported key types fail with KeyInvalid", () => {
  rejectsWith(() => parsePublicKey("not a key"), "KeyInvalid", /expected a PEM block/);
  rejectsWith(
    () => parsePublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    "KeyInvalid",
    /failed to parse public key/,
  );
  const priv = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
    type: "pkcs8",
    format: "pem",
  }) as string;
  rejectsWith(() => parsePublicKey(priv), "KeyInvalid", /expected a PEM block/);
  const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey.export({
    type: "spki",
    format: "pem",
  });
  rejectsWith(() => parsePublicKey(k1 as string), "KeyInvalid", /ECDSA on curve secp256k1/);
  const x = generateKeyPairSync("x25519").publicKey.export({ type: "spki", format: "pem" });
  rejectsWith(() => parsePublicKey(x as string), "KeyInvalid", /unsupported public key type x25519/);
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
    type: "spki",
    format: "pem",
  });
  rejectsWith(() => parsePublicKey(small as string), "KeyInvalid", /RSA with 1024 bits/);
});

Deno.test("verdict: one valid signature passes; none is SignatureMissing; only bad ones list why", () => {
  const subject = parseReference(`127.0.0.1:5000/app@${DIGEST}`);
  const ok = (c: SignatureCandidate) => {
    if (c.where === "bad") throw new GateError("SignatureInvalid", "nope");
    return "fine";
  };
  const cand = (where: string): SignatureCandidate => ({ kind: "bundle", where, bundle: {} });
  assert.equal(
    verdict(subject, { candidates: [cand("bad"), cand("good")], problems: [] }, ok),
    "fine (good)",
  );
  rejectsWith(
    () => verdict(subject, { candidates: [], problems: [] }, ok),
    "SignatureMissing",
    /no signatures found/,
  );
  rejectsWith(
    () => verdict(subject, { candidates: [cand("bad")], problems: ["tag x: unreadable"] }, ok),
    "SignatureInvalid",
    /no valid signatures found for .*: tag x: unreadable; bad: nope/,
  );
});

Deno.test("cosign key (Ed25519): cosign's prehashed signatures (Ed25519ph) verify too, another key's do not", async () => {
  const { ed25519ph } = await import("@noble/curves/ed25519.js");
  const raw = (s: string) =>
    Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const pair = generateKeyPairSync("ed25519");
  const seed = raw(pair.privateKey.export({ format: "jwk" }).d!);
  const key = await loadPublicKey(pair.publicKey.export({ type: "spki", format: "pem" }) as string);
  assert.equal(key.description, "Ed25519");
  const p = payload(DIGEST);
  verifyCandidateWithKey(key, {
    kind: "simple-signing",
    where: "w",
    payload: p,
    signature: ed25519ph.sign(p, seed),
  }, DIGEST);
  const body = enc(JSON.stringify(statement(DIGEST)));
  const type = "application/vnd.in-toto+json";
  const bundle: SignatureCandidate = {
    kind: "bundle",
    where: "r",
    bundle: {
      dsseEnvelope: {
        payload: b64(body),
        payloadType: type,
        signatures: [{ sig: b64(ed25519ph.sign(dssePae(type, body), seed)) }],
      },
    },
  };
  verifyCandidateWithKey(key, bundle, DIGEST);
  const otherSeed = raw(generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" }).d!);
  rejectsWith(
    () =>
      verifyCandidateWithKey(
        key,
        { kind: "simple-signing", where: "w", payload: p, signature: ed25519ph.sign(p, otherSeed) },
        DIGEST,
      ),
    "SignatureInvalid",
    /does not verify/,
  );
  // Without the prehash verifier (parsePublicKey alone) the same signature does not verify: the
  // variant is really different from pure Ed25519.
  rejectsWith(
    () =>
      verifyCandidateWithKey(
        parsePublicKey(pair.publicKey.export({ type: "spki", format: "pem" }) as string),
        { kind: "simple-signing", where: "w", payload: p, signature: ed25519ph.sign(p, seed) },
        DIGEST,
      ),
    "SignatureInvalid",
    /does not verify/,
  );
});
