import assert from "node:assert/strict";
import {
  GarCredentialResolver,
  isGarHost,
  parseGoogleCredentials,
  type ServiceAccountKey,
  signJwtAssertion,
} from "./gar.ts";
import { CredentialError } from "./errors.ts";

async function rsaKey(): Promise<{ pem: string; publicKey: CryptoKey }> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n");
  return {
    pem: `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`,
    publicKey: pair.publicKey,
  };
}

function b64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

Deno.test("isGarHost knows Artifact Registry and Container Registry hosts", () => {
  for (const h of ["us-docker.pkg.dev", "europe-west1-docker.pkg.dev/p/r", "gcr.io", "eu.gcr.io"]) {
    assert.ok(isGarHost(h), h);
  }
  for (const h of ["docker.io", "pkg.dev", "evilgcr.io", "us-docker.pkg.dev.evil.com"]) {
    assert.ok(!isGarHost(h), h);
  }
});

Deno.test("parseGoogleCredentials accepts service accounts and authorized users, names the file on error", () => {
  const sa = parseGoogleCredentials(
    JSON.stringify({
      type: "service_account",
      client_email: "a@p.iam.gserviceaccount.com",
      private_key: "k",
    }),
    "key.json",
  );
  assert.equal(sa.type, "service_account");
  const user = parseGoogleCredentials(
    JSON.stringify({ type: "authorized_user", client_id: "c", client_secret: "s", refresh_token: "r" }),
    "adc.json",
  );
  assert.equal(user.type, "authorized_user");
  assert.throws(() => parseGoogleCredentials("{", "key.json"), /: key\.json is not valid JSON$/);
  assert.throws(
    () =>
      parseGoogleCredentials(
        JSON.stringify({ type: "service_account", private_key: "secret-value" }),
        "key.json",
      ),
    (e: unknown) =>
      e instanceof CredentialError && /missing client_email/.test(e.message) &&
      !e.message.includes("secret-value"),
  );
  assert.throws(
    () => parseGoogleCredentials(JSON.stringify({ type: "external_account" }), "k"),
    /external_account/,
  );
});

Deno.test("signJwtAssertion makes an RS256 JWT for the token endpoint that verifies with the public key", async () => {
  const { pem, publicKey } = await rsaKey();
  const key: ServiceAccountKey = {
    type: "service_account",
    client_email: "sync@proj.iam.gserviceaccount.com",
    private_key: pem,
    private_key_id: "kid-1",
    token_uri: "https://oauth2.example/token",
  };
  const jwt = await signJwtAssertion(key, { now: 1_700_000_000_000 });
  const [h, c, s] = jwt.split(".");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(b64urlDecode(h))), {
    alg: "RS256",
    typ: "JWT",
    kid: "kid-1",
  });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(b64urlDecode(c))), {
    iss: "sync@proj.iam.gserviceaccount.com",
    scope: "https://www.googleapis.com/auth/cloud-platform",
    aud: "https://oauth2.example/token",
    iat: 1_700_000_000,
    exp: 1_700_003_600,
  });
  const ok = await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    publicKey,
    b64urlDecode(s),
    new TextEncoder().encode(`${h}.${c}`),
  );
  assert.ok(ok, "signature verifies");
});

Deno.test("GarCredentialResolver: service-account grant and metadata server, cached until near expiry", async () => {
  const { pem } = await rsaKey();
  const seen: string[] = [];
  let issued = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/token") {
      const form = new URLSearchParams(await req.text());
      seen.push(`token ${form.get("grant_type")} ${form.get("assertion")?.split(".").length}`);
      return Response.json({ access_token: `sa-${++issued}`, expires_in: 3600, token_type: "Bearer" });
    }
    if (url.pathname === "/computeMetadata/v1/instance/service-accounts/default/token") {
      seen.push(`metadata ${req.headers.get("metadata-flavor")}`);
      return Response.json({ access_token: `md-${++issued}`, expires_in: 3600 });
    }
    return new Response("no", { status: 404 });
  });
  const dir = await Deno.makeTempDir();
  try {
    const base = `127.0.0.1:${server.addr.port}`;
    const file = `${dir}/key.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        type: "service_account",
        client_email: "a@b",
        private_key: pem,
        token_uri: `http://${base}/token`,
      }),
    );
    let now = 0;
    const sa = new GarCredentialResolver({ credentialsFile: file, now: () => now });
    assert.deepEqual(await sa.resolve("us-docker.pkg.dev"), {
      username: "oauth2accesstoken",
      password: "sa-1",
    });
    now = 3000 * 1000;
    assert.deepEqual(await sa.resolve("us-docker.pkg.dev"), {
      username: "oauth2accesstoken",
      password: "sa-1",
    });
    now = 3300 * 1000; // within 5 minutes of expiry
    assert.deepEqual(await sa.resolve("gcr.io"), { username: "oauth2accesstoken", password: "sa-2" });
    await assert.rejects(() => sa.resolve("ghcr.io"), /not a Google Artifact Registry/);

    const md = new GarCredentialResolver({ metadataHost: base, credentialsFile: undefined });
    // Without GOOGLE_APPLICATION_CREDENTIALS set, the metadata server is asked.
    const saved = Deno.env.get("GOOGLE_APPLICATION_CREDENTIALS");
    Deno.env.delete("GOOGLE_APPLICATION_CREDENTIALS");
    try {
      assert.deepEqual(await md.resolve("europe-docker.pkg.dev"), {
        username: "oauth2accesstoken",
        password: "md-3",
      });
    } finally {
      if (saved !== undefined) Deno.env.set("GOOGLE_APPLICATION_CREDENTIALS", saved);
    }
    assert.deepEqual(seen, [
      "token urn:ietf:params:oauth:grant-type:jwt-bearer 3",
      "token urn:ietf:params:oauth:grant-type:jwt-bearer 3",
      "metadata Google",
    ]);

    const denied = new GarCredentialResolver({ metadataHost: `${base}/nope`, anyHost: true });
    Deno.env.delete("GOOGLE_APPLICATION_CREDENTIALS");
    await assert.rejects(() => denied.resolve("127.0.0.1:5000"), (e: unknown) => {
      assert.ok(e instanceof CredentialError);
      assert.match(e.message, /refused the token request \(HTTP 404\)/);
      return true;
    });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
