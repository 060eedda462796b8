import assert from "node:assert/strict";
import {
  CLOUD_PLATFORM_SCOPE,
  externalUserToken,
  impersonate,
  oauthTokenFrom,
  stsRequest,
} from "./gar_external.ts";
import type { ExternalAccount } from "./gar_credentials.ts";
import { CredentialError } from "./errors.ts";

const EXT: ExternalAccount = {
  type: "external_account",
  audience: "//iam.googleapis.com/locations/global/workforcePools/pool/providers/oidc",
  subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
  token_url: "https://sts.googleapis.com/v1/token",
  credential_source: { file: "/t" },
};
const ctx = { source: "cred.json", env: () => undefined, now: 1_000_000 };

Deno.test("stsRequest: Basic client auth with client_id, workforce userProject otherwise, cloud-platform before impersonation", () => {
  const plain = stsRequest({ ...EXT, workforce_pool_user_project: "proj-1" }, "subj", ["s1", "s2"]);
  assert.equal(plain.body.get("scope"), "s1 s2");
  assert.equal(plain.body.get("options"), JSON.stringify({ userProject: "proj-1" }));
  assert.equal(plain.headers.authorization, undefined);

  const client = stsRequest(
    { ...EXT, client_id: "id", client_secret: "sec", workforce_pool_user_project: "p" },
    "subj",
    [
      "s1",
    ],
  );
  assert.equal(client.headers.authorization, `Basic ${btoa("id:sec")}`);
  assert.equal(client.body.get("options"), null, "userProject only without client authentication");

  const imp = stsRequest({ ...EXT, service_account_impersonation_url: "https://iam/x" }, "subj", ["narrow"]);
  assert.equal(imp.body.get("scope"), CLOUD_PLATFORM_SCOPE);
});

Deno.test("oauthTokenFrom: a remote lifetime is bounded to a day; a missing token is AuthFailed", () => {
  assert.deepEqual(oauthTokenFrom({ access_token: "t", expires_in: 1e12 }, "STS", ctx), {
    token: "t",
    expiresAt: 1_000_000 + 24 * 3600_000,
  });
  assert.equal(
    oauthTokenFrom({ access_token: "t", expires_in: "x" }, "STS", ctx).expiresAt,
    1_000_000 + 3600_000,
  );
  assert.throws(
    () => oauthTokenFrom({ expires_in: 3 }, "STS", ctx),
    /cred\.json: STS returned no access_token/,
  );
});

Deno.test("impersonate: lifetime outside IAM's 600–43200 s is refused before any request", async () => {
  for (const lifetimeSeconds of [599, 43_201, 1.5]) {
    await assert.rejects(
      impersonate("http://127.0.0.1:9/x:generateAccessToken", "tok", { scopes: ["s"], lifetimeSeconds }, ctx),
      (e: unknown) =>
        e instanceof CredentialError &&
        /token_lifetime_seconds must be an integer from 600 to 43200/.test(e.message),
    );
  }
});

Deno.test("externalUserToken: refresh grant at token_url with Basic client authentication", async () => {
  const seen: { auth: string | null; form: Record<string, string> }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    seen.push({
      auth: req.headers.get("authorization"),
      form: Object.fromEntries(new URLSearchParams(await req.text())),
    });
    return Response.json({ access_token: "workforce-token", expires_in: 3600 });
  });
  try {
    const token = await externalUserToken({
      type: "external_account_authorized_user",
      refresh_token: "refresh",
      token_url: `http://127.0.0.1:${server.addr.port}/v1/oauthtoken`,
      client_id: "cid",
      client_secret: "csecret",
    }, ctx);
    assert.deepEqual(token, { token: "workforce-token", expiresAt: 1_000_000 + 3600_000 });
    assert.deepEqual(seen, [{
      auth: `Basic ${btoa("cid:csecret")}`,
      form: { grant_type: "refresh_token", refresh_token: "refresh" },
    }]);
  } finally {
    await server.shutdown();
  }
});
